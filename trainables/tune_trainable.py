"""The Ray Tune function trainable: one trial = one search, one reported result per epoch.

The trial's config is a flat ``SearchConfig`` dict (``SearchConfig.to_dict()``). The trainable
picks its device from what Ray gave it (a GPU when one is assigned, else the CPU), sizes torch's
intra-op thread pool to the trial's CPUs, resumes from ``tune.get_checkpoint()`` when Tune restarts
the trial, and reports every epoch's record together with a checkpoint of the search. Ray
delivers results at least once: after a restart the epochs after the last checkpoint are
reported again, with the same values (the search resumes bit-identically on CPU).

A checkpoint that does not verify (``trainables.checkpoints.CorruptCheckpoint``: e.g. a file cut
short by a full disk) is not retried for ever: the trainable logs one warning and resumes from
the newest intact earlier checkpoint of the same trial (the sibling ``checkpoint_NNNNNN``
folders in the trial's storage, read through the checkpoint's filesystem, so also on object
stores), or, when none is intact, starts the search afresh. The epochs after the checkpoint
used are reported again, and the results reader keeps the last report of each epoch (by
``attempt``, then ``reported_at``). A full disk while checkpointing raises ``CheckpointDiskFull``,
which says so and names the folder.

Test-only fault injection: a config key ``FAIL_ONCE_AT_EPOCH`` = k makes a trial that started
without a checkpoint raise after reporting epoch k; the restarted attempt (which has a checkpoint)
runs on. ``KILL_ONCE_AT_EPOCH`` = k SIGKILLs the trial's process there instead (a real crash of
the worker: Ray sees it die). Like every key starting with ``_`` it is dropped before the ``SearchConfig`` is built.
"""

from __future__ import annotations

import logging
import math
import os
import re
import signal
import tempfile
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import pyarrow.fs as pafs
import ray
import torch
from ray import tune

from trainables.checkpoints import CheckpointDiskFull, CorruptCheckpoint, is_disk_full
from trainables.config import config_from_trial
from trainables.search import Search

logger = logging.getLogger(__name__)

FAIL_ONCE_AT_EPOCH = "_test_fail_once_at_epoch"
KILL_ONCE_AT_EPOCH = "_test_kill_once_at_epoch"  # SIGKILL the trial's process instead of raising
# Tuning (study tune): a trial whose config names a record column under OBJECTIVE_COLUMN also
# reports that column's value as OBJECTIVE, one metric name for every cell (ASHA compares it).
OBJECTIVE_COLUMN = "_objective_column"
OBJECTIVE = "objective"
_CHECKPOINT_NAME = re.compile(r"checkpoint_(\d+)")  # Tune's checkpoint folders in a trial's storage


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
    objective_column = config.get(OBJECTIVE_COLUMN)
    search_config = config_from_trial(search_fields(config))
    torch.set_num_threads(trial_threads())
    search = Search(search_config, trial_device(), fast=fast)
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        restore_intact(search, checkpoint)
    fresh_start = checkpoint is None
    while not search.done:
        record = search.run_epoch()
        if objective_column is not None:
            record = {**record, OBJECTIVE: record.get(objective_column)}
        report_with_checkpoint(record, search.save, search.epoch)
        inject_faults(config, search.epoch, fresh_start)


def report_with_checkpoint(record: dict[str, Any], save: Callable[[str], Any], epoch: int) -> None:
    """``tune.report`` the epoch's ``record`` with a checkpoint that ``save(folder)`` writes; a
    full disk (writing it, or Tune copying it into the trial's storage) raises
    ``CheckpointDiskFull`` naming the folder."""
    with tempfile.TemporaryDirectory() as directory:
        save(directory)
        try:
            tune.report(record, checkpoint=tune.Checkpoint.from_directory(directory))
        except OSError as error:  # Tune copying the checkpoint into the trial's storage
            if not is_disk_full(error) or isinstance(error, CheckpointDiskFull):
                raise
            folder = _trial_storage()
            raise CheckpointDiskFull(
                error.errno,
                f"the disk is full: could not store the checkpoint of epoch {epoch} "
                f"in the trial folder {folder} ({error})",
                folder,
            ) from error


def inject_faults(config: dict[str, Any], epoch: int, fresh_start: bool) -> None:
    """The test-only faults (module docstring), after ``epoch`` was reported: raise
    (``FAIL_ONCE_AT_EPOCH``) or SIGKILL this process (``KILL_ONCE_AT_EPOCH``), each only in a
    trial that started without a checkpoint."""
    if not fresh_start:
        return
    if config.get(FAIL_ONCE_AT_EPOCH) == epoch:
        raise InjectedFault(f"test fault injected after epoch {epoch}")
    if config.get(KILL_ONCE_AT_EPOCH) == epoch:
        os.kill(os.getpid(), signal.SIGKILL)


def _trial_storage() -> str:
    """The trial's folder in the run's storage (where Tune keeps its checkpoints); the trial's
    local folder if Ray does not tell."""
    context = tune.get_context()
    try:
        storage = context.get_storage()
        path, kind = storage.trial_fs_path, storage.storage_filesystem.type_name
    except Exception:  # a developer API of Ray: never let it hide the disk-full error
        return context.get_trial_dir()
    return path if kind == "local" else f"{kind}://{path}"


class Restorable(Protocol):
    """What ``restore_intact`` needs: a search or an evaluation."""

    epoch: int

    def restore(self, directory: str) -> None: ...


def restore_intact(search: Restorable, checkpoint: tune.Checkpoint) -> tune.Checkpoint | None:
    """Restore ``search`` from ``checkpoint`` or, when that one is corrupt or gone, from the
    newest intact earlier checkpoint of the same trial; returns the checkpoint used, or None
    when none is intact (``search`` is then untouched: the search starts afresh). Logs one
    warning when it did not use ``checkpoint``."""
    tried: list[str] = []
    for candidate in _candidates(checkpoint):
        try:
            with candidate.as_directory() as directory:
                search.restore(directory)
        except (CorruptCheckpoint, FileNotFoundError) as error:
            reason = error.reason if isinstance(error, CorruptCheckpoint) else str(error)
            tried.append(f"{candidate.path} ({reason})")
            continue
        if tried:
            logger.warning(
                "checkpoint not usable: %s; resuming from the earlier checkpoint %s (after "
                "epoch %d)",
                "; ".join(tried),
                candidate.path,
                search.epoch,
            )
        return candidate
    logger.warning("no intact checkpoint: %s; starting the search afresh", "; ".join(tried))
    return None


def _candidates(checkpoint: tune.Checkpoint) -> Iterator[tune.Checkpoint]:
    """``checkpoint``, then the earlier ones (listed only when asked for: when it is not
    usable)."""
    yield checkpoint
    yield from earlier_checkpoints(checkpoint)


def earlier_checkpoints(checkpoint: tune.Checkpoint) -> list[tune.Checkpoint]:
    """The checkpoints of the same trial older than ``checkpoint``, newest first: the sibling
    folders ``checkpoint_NNNNNN`` with a lower number, listed through its filesystem."""
    parent, _, name = checkpoint.path.rstrip("/").rpartition("/")
    match = _CHECKPOINT_NAME.fullmatch(name)
    if not parent or match is None:
        return []
    fs = checkpoint.filesystem
    if fs is None:
        return []
    try:
        entries = fs.get_file_info(pafs.FileSelector(parent, allow_not_found=True))
    except OSError as error:
        logger.warning("cannot list the earlier checkpoints in %s: %s", parent, error)
        return []
    earlier = []
    for entry in entries:
        found = _CHECKPOINT_NAME.fullmatch(entry.base_name)
        if entry.type == pafs.FileType.Directory and found and int(found[1]) < int(match[1]):
            earlier.append((int(found[1]), entry.path))
    return [tune.Checkpoint(path, filesystem=fs) for _, path in sorted(earlier, reverse=True)]
