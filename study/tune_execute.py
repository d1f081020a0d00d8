"""Run ``study tune``: every cell's Optuna study in one Ray Tune run, resumable.

The same trainable, resources, GPU placement, checkpoints, retries and Parquet writer as
``study run`` (``study.runner``, ``study.results``); the trials come from ``CellStudies``
(``study.tune_search``) instead of a grid. Optuna's state lives in a database: SQLite in the
results folder by default (``RESULTS/optuna.db``), any SQLAlchemy URL with ``--storage`` (required
when the results are an object-store URI). The storage, like the results folder, always comes
from the current command, also when Tune restores the experiment.

A rerun of the same command resumes: Tune restores its trials (unfinished ones continue from
their checkpoints; errored ones stay errored, their samples were already replaced), the
searcher rebuilds its state from the database, and the run ends with exactly the requested
number of finished samples per cell.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any

import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler

from study.execute import fit, restart_line
from study.experiment import grid_record, open_experiment
from study.inputs import check_cluster_resources
from study.progress import ProgressDisplay
from study.results import DISK_FULL_EXIT, ParquetResultsWriter
from study.runner import (
    RunOptions,
    experiment_path,
    ray_cluster,
    restore_tuner,
    run_config,
    trial_trainable,
)
from study.tune_search import Binding, CellStudies, bind
from study.tune_spec import TuneSpec
from trainables.tune_trainable import OBJECTIVE

DATABASE = "optuna.db"  # default Optuna storage: RESULTS/optuna.db (SQLite)


def default_storage(options: RunOptions, storage: str | None) -> str:
    """The Optuna storage URL: ``storage`` when given, else SQLite in the results folder; an
    object-store results URI needs an explicit URL (SQLite cannot live there)."""
    if storage:
        return storage
    if options.is_remote():
        raise ValueError(
            f"--results {options.results} is not a local folder, so the Optuna database cannot "
            "default to SQLite in it; pass --storage with an SQLAlchemy URL that every run can "
            "reach (e.g. postgresql://user@host/db)"
        )
    path = Path(options.storage(DATABASE))
    path.parent.mkdir(parents=True, exist_ok=True)  # the spec is valid: the folder may exist now
    return f"sqlite:///{path}"


def check_storage(url: str) -> None:
    """Open the storage once (creating tables), so a bad URL fails before Ray starts."""
    import optuna

    try:
        optuna.storages.get_storage(url)
    except Exception as error:  # SQLAlchemy raises many kinds
        raise ValueError(f"cannot open the Optuna storage {url!r}: {error}") from error


def capacity(options: RunOptions) -> int:
    """Trials the cluster runs at once: its CPUs (and GPUs) over one trial's share."""
    resources = ray.cluster_resources()
    slots = math.floor(resources.get("CPU", 1) / options.cpus_per_trial)
    if options.gpus_per_trial > 0:
        slots = min(slots, math.floor(resources.get("GPU", 0) / options.gpus_per_trial))
    return max(1, slots)


def build_tune_tuner(
    spec: TuneSpec,
    options: RunOptions,
    experiment: str,
    callbacks: list[tune.Callback],
) -> tuple[tune.Tuner, frozenset[tuple[str, int]]]:
    """A Tuner for the tuning run, restored when the experiment exists, and the samples
    ``(study, number)`` its restored trials hold."""
    trainable = trial_trainable(options)
    path = experiment_path(options, experiment)
    if tune.Tuner.can_restore(path):
        tuner = restore_tuner(
            path, trainable, options, callbacks, resume_unfinished=True, resume_errored=False
        )
        grid = tuner.get_results()
        configs = [grid[index].config or {} for index in range(len(grid))]
        known = frozenset(
            (str(config["_tune_study"]), int(config["_tune_sample"]))
            for config in configs
            if "_tune_sample" in config
        )
        return tuner, known
    scheduler = None
    if spec.early_stopping:
        epochs = max(cell.config.epochs for cell in spec.cells)
        scheduler = ASHAScheduler(
            metric=OBJECTIVE, mode=spec.direction, max_t=epochs, grace_period=1
        )
    tune_config = tune.TuneConfig(
        search_alg=CellStudies(spec, experiment),
        num_samples=-1,  # the searcher says when every cell has its samples
        max_concurrent_trials=options.max_concurrent or capacity(options),
        scheduler=scheduler,
    )
    tuner = tune.Tuner(
        trainable,
        tune_config=tune_config,
        run_config=run_config(options, experiment, callbacks),
    )
    return tuner, frozenset()


def run_tuning(spec: TuneSpec, options: RunOptions, experiment: str, storage: str) -> int:
    """Run (or resume) the tuning experiment; print progress and the tuning tables. Exit
    status 0 when every cell has its samples, 1 otherwise (rerun the same command), 3 when a
    full disk stopped the run. The experiment is locked and its spec and saved state checked
    before Ray starts (``study.experiment``), as for ``study run``."""
    start = time.monotonic()
    parquet_root = options.storage("parquet")
    with open_experiment(
        options.storage("tune"),
        parquet_root,
        experiment,
        tuning_record(spec),
        restart=options.restart,
        finished=lambda rows: finished_samples(storage, rows),
    ) as opened:
        if opened.restart is not None:
            restart = opened.restart
            print(restart_line(experiment, restart, len(restart.done) + len(restart.superseded),
                               len(restart.superseded)))
        locations = [parquet_root, experiment_path(options, experiment)]
        with ray_cluster(options):
            check_cluster_resources(options)
            callbacks: list[tune.Callback] = [ParquetResultsWriter(parquet_root, experiment)]
            if not options.verbose:
                fields = [p.name for p in spec.params]
                callbacks.append(ProgressDisplay(experiment, fields=fields, objective=OBJECTIVE))
            tuner, known = build_tune_tuner(spec, options, experiment, callbacks)
            bind(experiment, Binding(storage, parquet_root, known))
            if fit(tuner, experiment, locations) is None:
                return DISK_FULL_EXIT
    final = CellStudies(spec, experiment)  # the database after the run: sidecar, importances
    counts = final.finished_counts()
    missing = {label: spec.samples - n for label, n in counts.items() if n < spec.samples}
    _print_summary(parquet_root, experiment, counts, time.monotonic() - start, spec)
    return 1 if missing else 0


def tuning_record(spec: TuneSpec) -> dict[str, Any]:
    """What a rerun of a tuning experiment must match: the cells' configs and every ``[tune]``
    setting except ``samples`` (raising it extends the studies)."""
    settings = {
        "cells": [cell.label for cell in spec.cells],
        "params": [dataclasses.asdict(param) for param in spec.params],
        **{key: getattr(spec, key) for key in (
            "objective", "epoch", "direction", "sampler", "seed", "early_stopping")},
    }
    return grid_record([cell.config for cell in spec.cells], settings)


def finished_samples(storage: str, rows: Any) -> dict[tuple[str, int], str]:
    """``{(study, sample): trial_id}`` of the samples in ``rows`` (de-duplicated results) that
    the Optuna database holds as finished (complete, pruned or failed): what ``--restart``
    keeps; the rows of samples still RUNNING there are superseded, and the searcher hands
    those samples out again."""
    import optuna
    from optuna.trial import TrialState

    done_states = {TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL}
    found: dict[tuple[str, int], str] = {}
    if "tune_study" not in rows:
        return found
    backend = optuna.storages.get_storage(storage)
    names = {s.study_name for s in backend.get_all_studies()}
    pairs = rows[["tune_study", "tune_sample", "trial_id"]].dropna().drop_duplicates()
    for name, frame in pairs.groupby("tune_study"):
        if name not in names:
            continue
        study = optuna.load_study(study_name=str(name), storage=backend)
        states = {t.number: t.state for t in study.get_trials(deepcopy=False)}
        for sample, trial_id in zip(frame["tune_sample"], frame["trial_id"], strict=True):
            if states.get(int(sample)) in done_states:
                found[(str(name), int(sample))] = str(trial_id)
    return found


def _print_summary(
    parquet_root: str, experiment: str, counts: dict[str, int], seconds: float, spec: TuneSpec
) -> None:
    from analysis.results import load_results
    from analysis.store import read_tuning
    from analysis.tables import paper_tables

    cells = ", ".join(f"{label}: {n}/{spec.samples}" for label, n in counts.items())
    print(f"\n{experiment}: finished samples per cell: {cells}; {seconds:.0f} s\n")
    try:
        df = load_results(parquet_root, experiments=[experiment], alphas=False)
    except FileNotFoundError:
        df = None
    if df is not None:
        tuning = read_tuning(parquet_root, [experiment])
        for table in paper_tables(df, ["tuning"], tuning=tuning):
            print(table.to_markdown())
    print(f"Parquet dataset: {parquet_root}; tables: study tables {parquet_root} --table tuning")
