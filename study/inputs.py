"""Checks of the command line's inputs that need the file system or the machine, made before Ray
starts or anything is written: every failure is a ``ValueError`` naming the bad value, what is
wrong with it and how to fix it (``study.cli`` prints it and exits with status 2).

* ``check_results_location`` / ``check_out_folder``: a local ``--results`` or ``--out`` can be a
  folder this process may write (not a file, not under a file, not read-only). The check leaves
  nothing behind: the folders it creates for the test are removed again. URIs (``s3://...``,
  ``file://...``: anything with ``://``, as ``RunOptions.is_remote``) are left to pyarrow.
* ``check_locations_used``: ``--data-dir`` / ``--benchmark-dir`` are refused when no trial would
  read them (instead of being silently ignored).
* ``check_trial_fits``: one trial's CPUs and GPUs fit on at least one alive node (Ray schedules a
  trial on one node; a trial that fits none waits forever). ``check_local_resources`` applies it
  to this machine before a local cluster starts, ``check_cluster_resources`` to a joined cluster
  right after ``ray.init``. ``RunOptions.autoscaling`` (``--autoscaling``) skips both: a cluster
  that grows may add a node that fits.

Imports neither torch nor Ray at module level (``study plots`` runs without them).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from study.runner import RunOptions
    from trainables.config import SearchConfig

# Datasets built in (no raw files: ``trainables.datasets.check_dataset_files`` needs none for
# them); a test checks that both lists agree.
FILELESS_DATASETS = ("digits", "synthetic")
# Search spaces judged by NAS-Bench-201, the only users of ``benchmark_dir``
# (``trainables.search``: other spaces open no benchmark).
BENCHMARK_SPACES = ("nb201",)
_PROBE_PREFIX = ".study-write-check-"


def check_results_location(results: str) -> None:
    """A local ``--results`` can be a folder this process writes; URIs are not checked here."""
    if "://" in results:  # RunOptions.is_remote: pyarrow resolves it
        return
    _check_writable_folder(results, "--results", "the results")


def check_out_folder(path: str) -> None:
    """``study plots --out`` can be a folder this process writes."""
    _check_writable_folder(path, "--out", "the figures")


def _check_writable_folder(path: str, option: str, what: str) -> None:
    """``path`` is or can become a folder where a file can be written: tried by creating the
    missing folders and a probe file in it; the probe and the created folders are removed again,
    whether the check passes or not."""
    folder = Path(path).expanduser()
    fix = f"give {option} a folder (new or existing) for {what}"
    created: list[Path] = []
    try:
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"{option} {path}: is a file, not a folder; {fix}")
        for parent in folder.parents:
            if parent.exists():
                if not parent.is_dir():
                    raise ValueError(
                        f"{option} {path}: is under {parent}, which is a file, so no folder can "
                        f"be made there; {fix}"
                    )
                break
        missing = [p for p in (folder, *folder.parents) if not p.exists()]
        for directory in reversed(missing):  # outermost first
            directory.mkdir()
            created.append(directory)
        descriptor, probe = tempfile.mkstemp(prefix=_PROBE_PREFIX, dir=folder)
        os.close(descriptor)
        os.remove(probe)
    except OSError as err:
        reason = err.strerror or str(err)
        raise ValueError(
            f"{option} {path}: cannot create or write a folder there ({reason}); {fix} that "
            "this user can write"
        ) from err
    finally:
        for directory in reversed(created):  # innermost first
            with contextlib.suppress(OSError):  # something else wrote into it meanwhile: keep it
                directory.rmdir()


def check_locations_used(
    configs: Sequence[SearchConfig],
    *,
    data_dir: str | None,
    benchmark_dir: str | None,
    source: str = "the grid",
) -> None:
    """Refuse a given ``--data-dir`` when no trial's dataset reads files, and a given
    ``--benchmark-dir`` when no trial's search space is judged by NAS-Bench-201: either would be
    silently ignored. ``source`` names where the trials come from (the grid, the spec)."""
    if data_dir is not None and configs:
        datasets = sorted({c.dataset for c in configs})
        if all(name in FILELESS_DATASETS for name in datasets):
            raise ValueError(
                f"--data-dir {data_dir}: no trial of {source} reads dataset files (its "
                f"dataset(s) {', '.join(datasets)} are built in and need none), so it would be "
                "ignored; drop --data-dir"
            )
    if benchmark_dir is not None and configs:
        spaces = sorted({c.space for c in configs})
        if not any(space in BENCHMARK_SPACES for space in spaces):
            raise ValueError(
                f"--benchmark-dir {benchmark_dir}: no trial of {source} uses NAS-Bench-201 (its "
                f"search space(s) {', '.join(spaces)}; only space "
                f"{' / '.join(repr(s) for s in BENCHMARK_SPACES)} is looked up there), so it "
                "would be ignored; drop --benchmark-dir"
            )


def check_trial_fits(
    options: RunOptions, nodes: Iterable[Mapping[str, Any]], *, local: bool = False
) -> None:
    """One trial (``options.cpus_per_trial`` CPUs, ``options.gpus_per_trial`` GPUs) fits on at
    least one alive node of ``nodes`` (``ray.nodes()`` entries: ``Alive``, ``Resources`` with
    ``CPU`` / ``GPU``, ``NodeManagerAddress``); else ``ValueError`` naming the request, the
    largest node and the fix. ``local``: ``nodes`` is this machine, before its local cluster
    starts. Nothing is checked with ``options.autoscaling``."""
    if options.autoscaling:
        return
    need = {"CPU": float(options.cpus_per_trial), "GPU": float(options.gpus_per_trial)}
    offers = [
        (_node_name(node, local), {k: float((node.get("Resources") or {}).get(k, 0)) for k in need})
        for node in nodes
        if node.get("Alive", True)
    ]
    if any(all(have[k] >= need[k] for k in need) for _, have in offers):
        return
    request = (
        f"--cpus-per-trial {need['CPU']:g} --gpus-per-trial {need['GPU']:g}: one trial needs "
        f"{_count(need['CPU'], 'CPU')} and {_count(need['GPU'], 'GPU')} on one node"
    )
    wait = "Tune would wait for it forever"
    grow = (
        "or run on a larger cluster with --address"
        if local
        else "or pass --autoscaling when the cluster can grow to such nodes"
    )
    if not offers:
        raise ValueError(
            f"{request}, but the cluster has no alive node; {wait}: start nodes, {grow}"
        )
    order = ("GPU", "CPU") if need["GPU"] > 0 else ("CPU", "GPU")
    name, largest = max(offers, key=lambda offer: tuple(offer[1][k] for k in order))
    fixes = [
        f"--{kind.lower()}s-per-trial {largest[kind]:g} or less"
        if largest[kind] > 0 or kind == "CPU"
        else "--gpus-per-trial 0 (CPU-only trials)"
        for kind in ("CPU", "GPU")
        if largest[kind] < need[kind]
    ]
    where = name if local else f"the largest alive node, {name},"
    raise ValueError(
        f"{request}, but {where} has {_count(largest['CPU'], 'CPU')} and "
        f"{_count(largest['GPU'], 'GPU')}; {wait}. Use {' and '.join(fixes)}, {grow}"
    )


def check_local_resources(options: RunOptions) -> None:
    """Before a local cluster starts (no ``--address``): one trial fits on this machine, whose
    CPUs are ``os.cpu_count()`` (``study.runner.ray_init_kwargs`` gives the local cluster that
    many) and whose GPUs are those torch sees (as Ray does: ``CUDA_VISIBLE_DEVICES`` counts).
    Torch is imported only when the trials ask for GPUs."""
    if options.autoscaling or options.address:
        return
    gpus = 0
    if options.gpus_per_trial > 0:
        import torch

        gpus = torch.cuda.device_count()
    machine = {"Alive": True, "Resources": {"CPU": float(os.cpu_count() or 1), "GPU": gpus}}
    check_trial_fits(options, [machine], local=True)


def check_cluster_resources(options: RunOptions) -> None:
    """Right after ``ray.init``: one trial fits on at least one alive node of the cluster Ray
    is connected to (``ray.nodes()``); see ``check_trial_fits``."""
    if options.autoscaling:
        return
    import ray

    check_trial_fits(options, ray.nodes(), local=not options.address)


def _node_name(node: Mapping[str, Any], local: bool) -> str:
    if local:
        return "this machine"
    return f"node {node.get('NodeManagerAddress') or node.get('NodeID') or '?'}"


def _count(value: float, unit: str) -> str:
    return f"{value:g} {unit}" + ("" if value == 1 else "s")
