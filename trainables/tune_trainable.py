"""The Ray Tune function trainable: one trial = one search, one reported result per epoch.

The trial's config is a flat ``SearchConfig`` dict (``SearchConfig.to_dict()``). The trainable
picks its device from what Ray gave it (a GPU when one is assigned, else the CPU), sizes torch's
intra-op thread pool to the trial's CPUs, resumes from ``tune.get_checkpoint()`` when Tune restarts
the trial, and reports every epoch's record together with a checkpoint of the search. Ray
delivers results at least once: after a restart the epochs after the last checkpoint are
reported again, with the same values (the search resumes bit-identically on CPU).

Test-only fault injection: a config key ``FAIL_ONCE_AT_EPOCH`` = k makes a trial that started
without a checkpoint raise after reporting epoch k; the restarted attempt (which has a checkpoint)
runs on. Like every key starting with ``_`` it is dropped before the ``SearchConfig`` is built.
"""

from __future__ import annotations

import math
import tempfile
from typing import Any

import ray
import torch
from ray import tune

from trainables.config import config_from_trial
from trainables.search import Search

FAIL_ONCE_AT_EPOCH = "_test_fail_once_at_epoch"
# Tuning (study tune): a trial whose config names a record column under OBJECTIVE_COLUMN also
# reports that column's value as OBJECTIVE, one metric name for every cell (ASHA compares it).
OBJECTIVE_COLUMN = "_objective_column"
OBJECTIVE = "objective"


def search_fields(config: dict[str, Any]) -> dict[str, Any]:
    """The SearchConfig part of a trial config: keys starting with ``_`` are study bookkeeping
    (the grid index, test-only switches) and never reach a SearchConfig or a record."""
    return {k: v for k, v in config.items() if not k.startswith("_")}


class InjectedFault(RuntimeError):
    """Raised by the test-only fault injection."""


def trial_device() -> torch.device:
    """``cuda`` when Ray assigned this trial a GPU (it sets CUDA_VISIBLE_DEVICES), else ``cpu``."""
    if ray.get_gpu_ids() and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def trial_threads() -> int:
    """Torch intra-op threads for this trial: the CPUs Ray reserved for it, at least 1."""
    resources = tune.get_context().get_trial_resources().required_resources
    return max(1, math.floor(resources.get("CPU", 1)))


def search_trainable(config: dict[str, Any], fast: bool | None = None) -> None:
    """Run the search described by ``config`` inside a Tune trial; ``fast`` is the execution
    path of a GPU trial (``trainables.search``: None = the default, False = eager)."""
    fail_at = config.get(FAIL_ONCE_AT_EPOCH)
    objective_column = config.get(OBJECTIVE_COLUMN)
    search_config = config_from_trial(search_fields(config))
    torch.set_num_threads(trial_threads())
    search = Search(search_config, trial_device(), fast=fast)
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            search.restore(directory)
    fresh_start = checkpoint is None
    while not search.done:
        record = search.run_epoch()
        if objective_column is not None:
            record = {**record, OBJECTIVE: record.get(objective_column)}
        with tempfile.TemporaryDirectory() as directory:
            search.save(directory)
            tune.report(record, checkpoint=tune.Checkpoint.from_directory(directory))
        if fresh_start and fail_at is not None and search.epoch == fail_at:
            raise InjectedFault(f"test fault injected after epoch {fail_at}")
