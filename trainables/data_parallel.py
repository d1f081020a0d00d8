"""Data parallel inside one trial: ``workers`` processes training one evaluation under torch DDP.

One GPU is not enough for the ImageNet protocol (250 epochs of 1.28 M images), so an evaluation
trial may run ``EvalConfig.workers`` processes: the trial's own process is rank 0 (it reports to
Tune and writes checkpoints) and starts ranks 1..N-1 as child processes (``spawn``). They meet
through a TCP store on 127.0.0.1 (one trial lives on one node: Ray places the trial's CPUs and
GPUs on one node). Backend: NCCL when the trial has GPUs (rank r uses the r-th GPU Ray gave the
trial), gloo on CPUs (the processes share the trial's CPUs). ``trainables.evaluation`` describes
how the batch and the test set are shared.

Resume: rank 0 restores the checkpoint (falling back to an earlier one if needed) and
broadcasts the loaded state to the others, so every process continues from the same epoch with
its own random state. Failure: a child that dies makes rank 0's next collective fail, which
fails the trial (Tune retries it from its last checkpoint); a rank 0 that dies takes its
children with it (they ask Linux for SIGKILL when their parent dies) and, when it only raises,
its ``finally`` ends them.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import logging
import multiprocessing as mp
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist

from trainables.eval_config import EvalConfig
from trainables.evaluation import Evaluation

logger = logging.getLogger(__name__)

COLLECTIVE_TIMEOUT = dt.timedelta(minutes=30)  # a silent peer fails the trial after this long
JOIN_SECONDS = 30.0  # how long rank 0 waits for its children to exit before killing them
_PR_SET_PDEATHSIG = 1

Report = Callable[[dict[str, Any], Evaluation, dict[str, Any]], None]


def run_data_parallel(
    config: EvalConfig,
    *,
    use_cuda: bool,
    threads: int,
    report: Report,
    restore: Callable[[Evaluation], None] | None = None,
) -> None:
    """Run ``config`` with ``config.workers`` processes; this process is rank 0.

    ``threads``: the trial's CPUs (shared out among the processes, at least one each).
    ``report(record, evaluation, state)`` is called in this process after every epoch, with the
    epoch's record (summed over the processes) and the whole state to checkpoint. ``restore``
    (rank 0, before the first epoch) may load a checkpoint into the evaluation; what it loaded
    reaches the other processes.
    """
    world = config.workers
    if use_cuda and torch.cuda.device_count() < world:
        raise ValueError(
            f"workers={world} needs {world} GPUs in the trial; it has "
            f"{torch.cuda.device_count()} (set --gpus-per-trial {world})"
        )
    each = max(1, threads // world)
    address = f"tcp://127.0.0.1:{_free_port()}"
    context = mp.get_context("spawn")
    children = [
        context.Process(
            target=_worker,
            args=(config.to_dict(), rank, address, use_cuda, each),
            name=f"evaluation-rank-{rank}",
            daemon=True,
        )
        for rank in range(1, world)
    ]
    for child in children:
        child.start()
    try:
        torch.set_num_threads(each)
        device = _join_group(0, world, address, use_cuda)
        evaluation = Evaluation(config, device, rank=0, world=world)
        if restore is not None:
            restore(evaluation)
        shared: list[Any] = [evaluation.restored_state]  # loaded onto the CPU by ``restore``
        dist.broadcast_object_list(shared, src=0)
        evaluation.restored_state = None  # the others have it: hold no copy for the training
        del shared
        while not evaluation.done:
            record = evaluation.run_epoch()
            report(record, evaluation, evaluation.state_dict())
    finally:
        _leave_group()
        _end(children)


def _worker(values: dict[str, Any], rank: int, address: str, use_cuda: bool, threads: int) -> None:
    """A child process: rank ``rank`` of the evaluation ``values`` (an EvalConfig dict)."""
    _die_with_parent()
    config = EvalConfig.from_dict(values)
    torch.set_num_threads(threads)
    device = _join_group(rank, config.workers, address, use_cuda)
    try:
        evaluation = Evaluation(config, device, rank=rank, world=config.workers)
        shared: list[Any] = [None]
        dist.broadcast_object_list(shared, src=0)
        if shared[0] is not None:
            evaluation.load_state_dict(shared[0])
        while not evaluation.done:
            evaluation.run_epoch()
            evaluation.state_dict()  # its part of rank 0's checkpoint (a collective call)
    finally:
        _leave_group()


def _join_group(rank: int, world: int, address: str, use_cuda: bool) -> torch.device:
    """Initialise the default process group; returns this rank's device."""
    device = torch.device("cpu")
    if use_cuda:
        device = torch.device("cuda", rank)
        torch.cuda.set_device(device)
    dist.init_process_group(
        "nccl" if use_cuda else "gloo",
        init_method=address,
        rank=rank,
        world_size=world,
        timeout=COLLECTIVE_TIMEOUT,
    )
    return device


def _leave_group() -> None:
    if dist.is_initialized():
        with contextlib.suppress(Exception):  # a peer already gone: nothing left to close
            dist.destroy_process_group()


def _end(children: list[Any]) -> None:
    """Wait for the children to exit; kill those still running after ``JOIN_SECONDS``."""
    for child in children:
        child.join(JOIN_SECONDS)
        if child.is_alive():
            logger.warning("data parallel: %s did not exit; killing it", child.name)
            child.kill()
            child.join()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent (rank 0) dies; elsewhere, nothing."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
