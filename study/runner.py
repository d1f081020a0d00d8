"""Run a list of SearchConfigs as one Ray Tune experiment: resources, storage, retries, resume,
and the local Ray cluster the command starts.

One trial per SearchConfig, in grid order. Each trial's config is a flat SearchConfig dict plus
``_trial`` (its index into the grid, as ``study run --dry-run`` lists it): the configs are
``BasicVariantGenerator``'s ``points_to_evaluate``, one per sample, over a search space whose
fields are the values the grid gives them (a ``tune.choice`` of the values of a field that
varies, the value itself otherwise), so Tune's own output and the Parquet rows see ordinary
columns. Checkpoints and Tune's experiment state live under ``RESULTS/tune/NAME``; the
Parquet dataset under ``RESULTS/parquet`` (``study.results``). RESULTS is a folder, which on a
multi-node cluster every node must mount at the same path (Tune 2.60 does not sync through the
head node), or a URI that pyarrow resolves (``s3://bucket/prefix``; ``file://`` is tested here).

Running the same experiment again resumes it (``Tuner.restore(..., resume_errored=True)``):
finished trials are not rerun, unfinished and errored ones continue from their last checkpoint.
A crashing trial is retried from its last checkpoint up to ``max_failures`` times. A restored
experiment takes this command's callbacks and console settings, not the saved ones.

Console: unless ``verbose``, Tune prints nothing (``RunConfig(verbose=0)`` with Tune's legacy
output engine, ``RAY_AIR_NEW_OUTPUT=0``: the default engine prints its experiment banner and a
table per failing trial even when silent; no trial tracebacks in the log and no hint about
frequent experiment snapshots, ``QUIET_TUNE_ENV``; Ray's loggers at WARNING, Tune's TensorBoard
result logger and tensorboardX at ERROR; no worker logs on the driver) and ``study.progress``
shows the run; with ``verbose`` Tune's own output and the trials' logs come back.

Local cluster hygiene (no ``address``): Ray binds its gRPC servers (GCS, raylet, workers,
driver) to 127.0.0.1 only when the node's address is 127.0.0.1, which ``ray.init`` only keeps on
Windows and macOS (``ray_constants.ENABLE_RAY_CLUSTER``); ``ray_cluster`` clears that switch
while the cluster starts, so nothing of a local run listens on the network. Ray writes its
token (token authentication, on by default for a new local cluster) to ``~/.ray/auth_token``
with the process umask; ``tighten_token_file`` makes it readable by its owner only.
"""

from __future__ import annotations

import logging
import math
import os
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray import tune
from ray.tune.search import BasicVariantGenerator

from search_spaces.benchmark import resolve_benchmark_dir
from trainables.config import SearchConfig
from trainables.datasets import check_dataset_files
from trainables.eval_config import EvalConfig
from trainables.eval_trainable import evaluation_trainable
from trainables.tune_trainable import search_trainable

TrialConfig = SearchConfig | EvalConfig  # a trial runs a search or an evaluation

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


def param_space(configs: Sequence[TrialConfig]) -> dict[str, Any]:
    """The search space of a grid: every SearchConfig field and ``_trial``, a ``tune.choice``
    of the grid's values for those that vary, the one value for the others. The trials
    themselves come from ``grid_search_alg`` (Tune checks each point against this space)."""
    dicts = grid_points(configs)
    space: dict[str, Any] = {}
    for name in (TRIAL_INDEX, *type(configs[0]).field_names()):
        values: list[Any] = []
        for point in dicts:
            if point[name] not in values:
                values.append(point[name])
        space[name] = tune.choice(values) if len(values) > 1 else values[0]
    return space


def grid_points(
    configs: Sequence[TrialConfig], only: Sequence[int] | None = None
) -> list[dict[str, Any]]:
    """Each trial's config: the flat SearchConfig dict and ``_trial``, its grid index; for the
    grid entries ``only`` (all by default)."""
    indices = range(len(configs)) if only is None else only
    return [{TRIAL_INDEX: index, **configs[index].to_dict()} for index in indices]


def grid_search_alg(
    configs: Sequence[TrialConfig], max_concurrent: int, only: Sequence[int] | None = None
) -> BasicVariantGenerator:
    """One trial per config (of the entries ``only``), in grid order, at most ``max_concurrent``
    at once (0 = no limit; Tune ignores ``TuneConfig.max_concurrent_trials`` for a search
    algorithm it is given)."""
    return BasicVariantGenerator(
        points_to_evaluate=grid_points(configs, only), max_concurrent=max_concurrent
    )


class _Field:
    """Field ``name`` of grid config number ``config["_trial"]``: the ``tune.sample_from``
    callable of the search spaces that earlier versions saved with their experiments. Kept so
    that such an experiment (its ``tuner.pkl`` holds these objects) can still be restored;
    it now takes the trial's config, as Tune 2.60 passes it, instead of the deprecated spec."""

    def __init__(self, configs: Sequence[dict[str, Any]], name: str) -> None:
        self.configs, self.name = configs, name

    def __call__(self, config: Any) -> Any:
        return self.configs[config[TRIAL_INDEX]][self.name]


def grid_axes(configs: Sequence[TrialConfig]) -> list[str]:
    """The config fields whose values differ between the configs (the grid's axes)."""
    dicts = [config.to_dict() for config in configs]
    return [
        name
        for name in type(configs[0]).field_names()
        if any(d[name] != dicts[0][name] for d in dicts[1:])
    ]


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
    configs: Sequence[TrialConfig],
    options: RunOptions,
    experiment: str,
    callbacks: Sequence[tune.Callback] = (),
    only: Sequence[int] | None = None,
) -> tune.Tuner:
    """A Tuner for the grid, restored from its saved state when the experiment exists; a new
    one runs the grid entries ``only`` (all by default; ``--restart`` leaves out finished ones).
    SearchConfigs run as searches, EvalConfigs as evaluations (``trial_trainable``)."""
    trainable = trial_trainable(options, evaluation=isinstance(configs[0], EvalConfig))
    path = experiment_path(options, experiment)
    if tune.Tuner.can_restore(path):
        return restore_tuner(path, trainable, options, callbacks, resume_errored=True)
    count = len(configs) if only is None else len(only)
    tune_config = tune.TuneConfig(
        search_alg=grid_search_alg(configs, options.max_concurrent, only), num_samples=count
    )
    return tune.Tuner(
        trainable,
        param_space=param_space(configs),
        tune_config=tune_config,
        run_config=run_config(options, experiment, callbacks),
    )


def restore_tuner(
    path: str,
    trainable: Any,
    options: RunOptions,
    callbacks: Sequence[tune.Callback],
    *,
    resume_unfinished: bool = True,
    resume_errored: bool = False,
) -> tune.Tuner:
    """``Tuner.restore`` with this command's callbacks and console settings instead of the
    ones saved with the experiment (Tune restores the run config as it was pickled, with the
    first run's callbacks and verbosity). Tune has no public setter for them; its own restore
    updates the same object (name, storage path) in place. Under Ray Client there is no local
    tuner, and the saved settings stay."""
    tuner = tune.Tuner.restore(
        path, trainable, resume_unfinished=resume_unfinished, resume_errored=resume_errored
    )
    local = getattr(tuner, "_local_tuner", None)
    if local is not None:
        config = local.get_run_config()
        config.callbacks = list(callbacks)
        config.progress_reporter = None
        config.verbose = tune_verbosity(options)
    return tuner


def trial_trainable(options: RunOptions, evaluation: bool = False) -> Any:
    """The search trainable with this run's resources and execution path (or, with
    ``evaluation``, the evaluation trainable with its resources). The path is a trainable
    parameter, not a trial field: it is no part of a trial's identity, and a resumed experiment
    takes this run's value (``Tuner.restore`` gets the trainable anew)."""
    if evaluation:
        return tune.with_resources(evaluation_trainable, options.resources())
    return tune.with_resources(
        tune.with_parameters(search_trainable, fast=options.fast), options.resources()
    )


def run_config(
    options: RunOptions, experiment: str, callbacks: Sequence[tune.Callback] = ()
) -> tune.RunConfig:
    """Storage, retries, checkpoints kept, callbacks and console verbosity of a new experiment."""
    return tune.RunConfig(
        name=experiment,
        storage_path=options.storage("tune"),
        failure_config=tune.FailureConfig(max_failures=options.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),  # the latest suffice to resume
        callbacks=list(callbacks),
        verbose=tune_verbosity(options),
    )


def tune_verbosity(options: RunOptions) -> Any:
    """``RunConfig.verbose``: 0 (silent) unless ``verbose``, then Tune's default."""
    return tune.RunConfig().verbose if options.verbose else 0


# ---------------------------------------------------------------------- the Ray cluster
LOOPBACK = "127.0.0.1"
# Unless verbose: Tune's legacy output engine (silent at verbose=0), no trial tracebacks in the
# log (study.progress says which trial failed and where its error file is), and no hint that
# experiment snapshots come often (every epoch checkpoints, num_to_keep=2: they do with short
# epochs, by design; the warning about a slow snapshot stays).
QUIET_TUNE_ENV = {
    "RAY_AIR_NEW_OUTPUT": "0",
    "TUNE_PRINT_ALL_TRIAL_ERRORS": "0",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
}
# ... and no warning per non-finite value in a result (a diverged search's α) from Tune's
# TensorBoard logger callback and tensorboardX: the display reports the divergence once.
QUIET_LOGGERS = {"ray.tune.logger.tensorboardx": logging.ERROR, "tensorboardX": logging.ERROR}
TOKEN_FILE = Path(".ray") / "auth_token"  # where Ray 2.60 writes a generated token, under HOME


def ray_init_kwargs(options: RunOptions) -> dict[str, Any]:
    """``ray.init`` arguments: join ``address``, or start a new local cluster — ``"local"`` even
    when a cluster started with ``ray start`` runs on this machine (``ray.init()`` would join it)
    — on the loopback address (kept by ``ray_cluster``, see the module docstring)."""
    if options.address:
        return {"address": options.address}
    return {
        "address": "local",
        "include_dashboard": False,
        "num_cpus": os.cpu_count(),
        "_node_ip_address": LOOPBACK,
    }


def ray_output_kwargs(options: RunOptions) -> dict[str, Any]:
    """``ray.init`` console arguments: the trials' stdout/stderr and Ray's INFO logs only with
    ``verbose``."""
    return {
        "log_to_driver": options.verbose,
        "logging_level": logging.INFO if options.verbose else logging.WARNING,
    }


@contextmanager
def ray_cluster(options: RunOptions) -> Iterator[None]:
    """Start (or join) Ray for one command and shut it down after; meanwhile Tune's console
    output is off unless ``verbose``, and Ray's token file is readable by its owner only."""
    quiet = not options.verbose
    with _environment(QUIET_TUNE_ENV if quiet else {}), _levels(QUIET_LOGGERS if quiet else {}):
        with _loopback_node(not options.address):
            ray.init(**ray_init_kwargs(options), **ray_output_kwargs(options))
        try:
            tighten_token_file()
            yield
        finally:
            ray.shutdown()


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """``os.environ`` updated with ``values`` inside the block, as it was after it."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def _levels(levels: dict[str, int]) -> Iterator[None]:
    """The named loggers at the given levels inside the block, as they were after it."""
    saved = {name: logging.getLogger(name).level for name in levels}
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    try:
        yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


@contextmanager
def _loopback_node(local: bool) -> Iterator[None]:
    """Inside the block, a new local cluster's node address is 127.0.0.1 (Ray's switch for
    single-machine clusters on Windows and macOS); nothing changes when joining a cluster."""
    from ray._private import ray_constants

    if not local or not hasattr(ray_constants, "ENABLE_RAY_CLUSTER"):
        yield
        return
    previous = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = previous


def tighten_token_file(home: Path | None = None) -> Path | None:
    """Make Ray's token file (``HOME/.ray/auth_token``) readable and writable by its owner only
    when it exists, belongs to this user and others may read it; returns the path changed.

    Ray 2.60 writes a generated token there with the process umask (often 0644). A token given
    in ``RAY_AUTH_TOKEN`` or at ``RAY_AUTH_TOKEN_PATH`` is the user's own and left alone."""
    path = (home if home is not None else Path.home()) / TOKEN_FILE
    try:
        info = path.stat()
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
        return None
    if not stat.S_IMODE(info.st_mode) & 0o077:
        return None
    path.chmod(0o600)
    return path
