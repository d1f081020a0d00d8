"""Execute a grid on a Ray cluster: own the experiment, start or join Ray, run the Tuner, write
Parquet, summarise."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any

from ray import tune

from study.experiment import Restart, finished_grid_trials, grid_record, open_experiment
from study.inputs import check_cluster_resources
from study.progress import ProgressDisplay
from study.results import DISK_FULL_EXIT, ParquetResultsWriter, storage_failure_message
from study.runner import RunOptions, build_tuner, experiment_path, grid_axes, ray_cluster
from trainables import records as R
from trainables.config import SearchConfig
from trainables.eval_config import NAMED_BY_ARCH, EvalConfig


def run_experiment(
    configs: Sequence[SearchConfig] | Sequence[EvalConfig], options: RunOptions, experiment: str
) -> int:
    """Run (or resume) ``experiment``: searches (SearchConfigs, ``study run``) or evaluations
    (EvalConfigs, ``study evaluate``); print progress and a summary. Exit status: 0 if every
    trial finished, 1 if some errored (rerun the same command to resume them), 3 if a full disk
    stopped the run (free space, then rerun). Before Ray starts, the experiment is locked and
    its grid and saved state checked (``study.experiment``; a refusal raises ``ValueError``)."""
    start = time.monotonic()
    parquet_root = options.storage("parquet")
    evaluation = isinstance(configs[0], EvalConfig)
    kind = "evaluation" if evaluation else "search"
    with open_experiment(
        options.storage("tune"),
        parquet_root,
        experiment,
        grid_record(configs),
        restart=options.restart,
        finished=lambda rows: finished_grid_trials(rows, configs),
        kind=kind,
    ) as opened:
        only = list(range(len(configs)))
        if opened.restart is not None:
            only = [index for index in only if index not in opened.restart.done]
            print(restart_line(experiment, opened.restart, len(configs), len(only)))
        errors, full = 0, None
        if only:
            locations = [parquet_root, experiment_path(options, experiment)]
            with ray_cluster(options):
                check_cluster_resources(options)
                callbacks: list[tune.Callback] = [
                    ParquetResultsWriter(parquet_root, experiment, kind=kind)
                ]
                if not options.verbose:
                    accuracy = ("top-1", R.TEST_ACC) if evaluation else None
                    fields = [f for f in grid_axes(configs) if f not in NAMED_BY_ARCH]
                    callbacks.append(ProgressDisplay(
                        experiment, total=len(only), fields=fields, accuracy=accuracy
                    ))
                results = fit(build_tuner(configs, options, experiment, callbacks, only),
                              experiment, locations)
                if results is None:
                    return DISK_FULL_EXIT
            errors = len(results.errors)
            full = next(
                filter(None, (storage_failure_message(e, locations) for e in results.errors)),
                None,
            )
    seconds = time.monotonic() - start
    if evaluation:
        _print_evaluation_summary(parquet_root, experiment, errors, seconds)
    else:
        benchmark_dir = next(
            (c.benchmark_dir for c in configs if isinstance(c, SearchConfig) and c.benchmark_dir),
            None,
        )
        _print_summary(parquet_root, experiment, errors, seconds, benchmark_dir)
    if errors and full is not None:  # trials that failed on a full disk
        print(f"\n{full}", file=sys.stderr)
        return DISK_FULL_EXIT
    return 1 if errors else 0


def fit(tuner: tune.Tuner, experiment: str, locations: Sequence[str]) -> Any:
    """``tuner.fit()``'s results, or None when a full disk stopped the run (the message, which
    says how to go on, is printed to stderr); any other error is raised."""
    try:
        return tuner.fit()
    except Exception as error:
        message = storage_failure_message(error, locations)
        if message is None:
            raise
        print(f"\n{experiment}: {message}", file=sys.stderr)
        return None


def restart_line(experiment: str, restart: Restart, total: int, to_run: int) -> str:
    """What ``--restart`` did, in one line."""
    moved = f"damaged state moved to {restart.moved_to}; " if restart.moved_to else ""
    superseded = (
        f"; the rows of {len(restart.superseded)} unfinished trial(s) are kept but superseded"
        if restart.superseded else ""
    )
    return (
        f"{experiment}: restarted ({moved}{total - to_run} of {total} trials finished before and "
        f"are kept, {to_run} start afresh{superseded})"
    )


def _print_summary(
    parquet_root: str, experiment: str, errors: int, seconds: float, benchmark_dir: str | None
) -> None:
    """Trial counts, the main table (paper Table 1 layout) and how to load the results."""
    from analysis.results import load_results
    from analysis.tables import main_table

    try:
        df = load_results(parquet_root, experiments=[experiment], alphas=False)
    except FileNotFoundError:  # no trial reported anything (e.g. all failed at start-up)
        df = None
    count = 0 if df is None else df["trial_id"].nunique()
    print(f"\n{experiment}: {count} trials with results, {errors} errored, {seconds:.0f} s\n")
    if df is not None and count:
        print(main_table(df, benchmark_dir=benchmark_dir).to_markdown())
    print(f"Parquet dataset: {parquet_root}")
    print("  from analysis.results import load_results")
    print(f"  df = load_results({parquet_root!r}, experiments=[{experiment!r}])")
    print(f"  more tables: study tables {parquet_root}; figures: study plots {parquet_root} --out DIR")


def _print_evaluation_summary(parquet_root: str, experiment: str, errors: int, seconds: float) -> None:
    """Trial counts, the evaluation table (the paper's DARTS-space layout, joined with the
    searches the genotypes came from when they are under the same root) and how to load."""
    from analysis.evaluation import evaluation_tables

    try:
        tables = evaluation_tables(parquet_root, experiments=[experiment])
    except FileNotFoundError:  # no trial reported anything
        tables = []
    print(f"\n{experiment}: {errors} errored, {seconds:.0f} s\n")
    for table in tables:
        print(table.to_markdown())
    print(f"Parquet dataset: {parquet_root}")
    print("  from analysis import load_evaluations, evaluation_table")
    print(f"  df = load_evaluations({parquet_root!r}, experiments=[{experiment!r}])")
    print(f"  more: study tables {parquet_root} --table evaluation")
