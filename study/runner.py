"""Run a list of SearchConfigs as one Ray Tune experiment: resources, storage, retries, resume.

One trial per SearchConfig. The trial configs stay flat SearchConfig dicts (plus ``_trial``, the
index into the grid, a Tune grid axis): each field is a ``tune.sample_from`` that picks the
field of config ``_trial``, so Tune's own logs, the progress table and the Parquet rows all see
ordinary columns. Checkpoints and Tune's experiment state live under ``RESULTS/tune/NAME``; the
Parquet dataset under ``RESULTS/parquet`` (``study.results``). RESULTS is a folder, which on a
multi-node cluster every node must mount at the same path (Tune 2.60 does not sync through the
head node), or a URI that pyarrow resolves (``s3://bucket/prefix``; ``file://`` is tested here).

Running the same experiment again resumes it (``Tuner.restore(..., resume_errored=True)``):
finished trials are not rerun, unfinished and errored ones continue from their last checkpoint.
A crashing trial is retried from its last checkpoint up to ``max_failures`` times.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray import tune

from search_spaces.benchmark import resolve_benchmark_dir
from trainables.config import SearchConfig
from trainables.datasets import check_dataset_files
from trainables.tune_trainable import search_trainable

TRIAL_INDEX = "_trial"


@dataclass(frozen=True)
class RunOptions:
    """How a grid runs. Units: CPUs and GPUs per trial (fractions allowed for GPUs)."""

    results: str = "results"  # folder (NFS on multi-node clusters) or URI (s3://bucket/prefix)
    address: str | None = None  # Ray cluster address; None = start a local cluster
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int = 0  # 0 = as many as the cluster's resources allow
    max_failures: int = 2  # retries of a crashing trial, each from its last checkpoint
    fast: bool | None = None  # GPU trials' execution path: None = default, True / False forced
    verbose: bool = False  # Tune's own console output instead of ours (study.progress)
    restart: bool = False  # start a damaged experiment afresh, keeping its Parquet rows
    autoscaling: bool = False  # the cluster may grow: skip the check against its total resources

    def __post_init__(self) -> None:
        if not math.isfinite(self.cpus_per_trial) or self.cpus_per_trial <= 0:
            raise ValueError(
                f"--cpus-per-trial {self.cpus_per_trial} must be a finite number > 0"
            )
        if not math.isfinite(self.gpus_per_trial) or self.gpus_per_trial < 0:
            raise ValueError(
                f"--gpus-per-trial {self.gpus_per_trial} must be a finite number >= 0"
            )
        if self.max_concurrent < 0 or self.max_failures < 0:
            raise ValueError("max_concurrent and max_failures must be >= 0")

    def resources(self) -> dict[str, float]:
        """Ray resources of one trial."""
        return {"cpu": self.cpus_per_trial, "gpu": self.gpus_per_trial}

    def is_remote(self) -> bool:
        return "://" in self.results

    def storage(self, part: str) -> str:
        """``RESULTS/part`` as Ray's ``storage_path`` expects it: an absolute path, or the URI."""
        if self.is_remote():
            return f"{self.results.rstrip('/')}/{part}"
        return str(Path(self.results).expanduser().resolve() / part)


class _Field:
    """``sample_from`` callable: field ``name`` of grid config number ``spec.config._trial``."""

    def __init__(self, configs: Sequence[dict[str, Any]], name: str) -> None:
        self.configs, self.name = configs, name

    def __call__(self, spec: Any) -> Any:
        return self.configs[spec.config[TRIAL_INDEX]][self.name]


def param_space(configs: Sequence[SearchConfig]) -> dict[str, Any]:
    """Tune param_space giving one trial per config, with flat SearchConfig fields."""
    dicts = [c.to_dict() for c in configs]
    space: dict[str, Any] = {TRIAL_INDEX: tune.grid_search(list(range(len(dicts))))}
    for name in SearchConfig.field_names():
        space[name] = tune.sample_from(_Field(dicts, name))
    return space


def check_inputs(configs: Sequence[SearchConfig]) -> None:
    """Fail before any trial starts: empty grid, a dataset whose files are not there, or a
    benchmark folder that is not a NATS-Bench fast-mode directory."""
    if not configs:
        raise ValueError("the grid has no trials")
    for dataset, data_dir in sorted({(c.dataset, c.data_dir) for c in configs}):
        check_dataset_files(dataset, data_dir or None)
    for benchmark_dir in sorted({c.benchmark_dir for c in configs if c.benchmark_dir}):
        resolve_benchmark_dir(benchmark_dir)


def experiment_path(options: RunOptions, experiment: str) -> str:
    return f"{options.storage('tune')}/{experiment}"


def build_tuner(
    configs: Sequence[SearchConfig],
    options: RunOptions,
    experiment: str,
    callbacks: Sequence[tune.Callback] = (),
    progress: tune.ProgressReporter | None = None,
) -> tune.Tuner:
    """A Tuner for the grid, restored from its saved state when the experiment exists."""
    trainable = trial_trainable(options)
    path = experiment_path(options, experiment)
    if tune.Tuner.can_restore(path):
        return tune.Tuner.restore(path, trainable, resume_errored=True)
    tune_config = tune.TuneConfig(max_concurrent_trials=options.max_concurrent or None)
    return tune.Tuner(
        trainable,
        param_space=param_space(configs),
        tune_config=tune_config,
        run_config=run_config(options, experiment, callbacks, progress),
    )


def trial_trainable(options: RunOptions) -> Any:
    """The search trainable with this run's resources and execution path. The path is a
    trainable parameter, not a trial field: it is no part of a trial's identity, and a resumed
    experiment takes this run's value (``Tuner.restore`` gets the trainable anew)."""
    return tune.with_resources(
        tune.with_parameters(search_trainable, fast=options.fast), options.resources()
    )


def run_config(
    options: RunOptions,
    experiment: str,
    callbacks: Sequence[tune.Callback] = (),
    progress: tune.ProgressReporter | None = None,
) -> tune.RunConfig:
    """Storage, retries, checkpoints kept, callbacks and progress of a new experiment."""
    return tune.RunConfig(
        name=experiment,
        storage_path=options.storage("tune"),
        failure_config=tune.FailureConfig(max_failures=options.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),  # the latest suffice to resume
        callbacks=list(callbacks),
        progress_reporter=progress,
        verbose=1 if progress is not None else 0,
    )


def ray_init_kwargs(options: RunOptions) -> dict[str, Any]:
    """``ray.init`` arguments: join ``address``, or start a new local cluster — ``"local"`` even
    when a cluster started with ``ray start`` runs on this machine (``ray.init()`` would join it)."""
    if options.address:
        return {"address": options.address}
    return {"address": "local", "include_dashboard": False, "num_cpus": os.cpu_count()}
