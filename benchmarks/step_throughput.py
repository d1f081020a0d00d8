"""CPU throughput of one search step on the NAS-Bench-201 supernet: ours vs the reference.

What is measured
    Images per second of one search step (forward, backward, optimizer steps) on CPU for the
    NAS-Bench-201 search supernet (C=16, N=5, 10 classes, batch 64, 32x32 inputs), four variants:

    - ``ours single``: ``trainables.strategies.SingleLevel`` on ``NB201SuperNet`` — one forward
      and one backward on the batch, then both optimizers step.
    - ``ours bi-first``: ``trainables.strategies.BiLevelFirstOrder`` — w step on the w batch,
      then α step on a second (arch) batch.
    - ``ref DARTS-V1``: xautodl ``TinyNetworkDarts`` stepped as AutoDL-Projects'
      ``exps/NAS-Bench-201-algos/DARTS-V1.py`` ``search_func`` does: w_optimizer.zero_grad();
      forward on the base batch; CE; backward; clip_grad_norm_(network.parameters(), 5);
      w_optimizer.step(); a_optimizer.zero_grad(); forward on the arch batch; CE; backward;
      a_optimizer.step().
    - ``ref single``: the same reference network, one forward/backward on one batch, clip,
      then both optimizers step (the natural Single-DARTS step on the reference code).

    All use w = SGD(lr 0.025, momentum 0.9, nesterov, weight decay 5e-4) and
    α = Adam(lr 3e-4, betas (0.5, 0.999), weight decay 1e-3), gradient clip 5.
    "Images/s" is ``batch x steps / seconds``: it counts the w batch only, so a bi-level step
    (which also runs the arch batch) shows about half the images/s of a single-level step.
    Compare ours with the reference of the same kind (the ratios).

How
    Inputs are random tensors made once and shared by every variant, so only the step is timed
    (no data pipeline). Each variant has its own model and optimizers and gets ``--warmup``
    untimed steps. The machine is noisy, so the variants are interleaved step by step: each of
    ``--rounds`` rounds runs ``--steps`` passes, and each pass times one step of every variant,
    in an order that rotates from pass to pass and from round to round; so within a round every
    variant is timed for ``--steps`` steps spread over the same stretch of wall time. A
    variant's images/s in a round is ``batch x steps / (sum of its step times in the round)``.
    Reported per variant: median (and min-max) images/s over the rounds, and the median time of
    a single step over all timed steps. Ratios ours/reference (single vs ref single, bi-first
    vs ref DARTS-V1) are computed within each round, then summarised by median and min-max.

Run from the repository root: ``python benchmarks/step_throughput.py`` (defaults take several
minutes on 2 cores); ``--quick`` runs a tiny configuration to check that the script works;
``--profile`` additionally prints a torch.profiler table (self CPU time) of one step per variant.
Needs the reference package: ``pip install --no-deps xautodl`` (part of the README set-up).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

REPO_ROOT = Path(__file__).resolve().parents[1]
for _path in (REPO_ROOT, REPO_ROOT / "benchmarks"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from machine import cpu_model  # noqa: E402  (benchmarks/machine.py, on the path just set)

NUM_CLASSES = 10
IMAGE_SIZE = 32
GRAD_CLIP = 5.0
EXPECTED_WEIGHTS = 1_692_826  # NB201 supernet at C=16, N=5, 10 classes (the reference)
EXPECTED_ALPHAS = 30
W_SGD = {"lr": 0.025, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4}
A_ADAM = {"lr": 3e-4, "betas": (0.5, 0.999), "weight_decay": 1e-3}

FULL = {"channels": 16, "depth": 5, "batch": 64, "rounds": 5, "steps": 5, "warmup": 3}
QUICK = {"channels": 8, "depth": 1, "batch": 16, "rounds": 2, "steps": 2, "warmup": 1}

Batch = tuple[torch.Tensor, torch.Tensor]
StepFn = Callable[[], object]


@dataclass
class Variant:
    name: str
    step: StepFn
    weights: int
    alphas: int


# --------------------------------------------------------------------------- variants
def _require_xautodl() -> None:
    try:
        import xautodl  # noqa: F401
        from xautodl.models.cell_searchs.search_model_darts import (  # noqa: F401
            TinyNetworkDarts,
        )
    except ImportError as err:
        print(
            f"error: the reference package xautodl is not importable ({err}).\n"
            "Install it with:  pip install --no-deps xautodl\n"
            "(--no-deps: xautodl pins numpy<=1.19.5, which pip would try to build from source.)",
            file=sys.stderr,
        )
        raise SystemExit(2) from err


def _count(params: list[nn.Parameter]) -> int:
    return sum(p.numel() for p in params)


def _ours(kind: str, channels: int, depth: int, w_batch: Batch, a_batch: Batch) -> Variant:
    from search_spaces.nb201 import NB201SuperNet
    from trainables.strategies import BiLevelFirstOrder, SingleLevel

    model = NB201SuperNet(num_classes=NUM_CLASSES, channels=channels, depth=depth).train()
    w_opt = torch.optim.SGD(model.weights(), **W_SGD)
    a_opt = torch.optim.Adam(model.alphas(), **A_ADAM)
    if kind == "single":
        strategy = SingleLevel(model, w_opt, a_opt, GRAD_CLIP, 0.01)
        step: StepFn = lambda: strategy.step(w_batch, None)  # noqa: E731
        name = "ours single"
    else:
        strategy = BiLevelFirstOrder(model, w_opt, a_opt, GRAD_CLIP, 0.01)
        step = lambda: strategy.step(w_batch, a_batch)  # noqa: E731
        name = "ours bi-first"
    return Variant(name, step, _count(model.weights()), _count(model.alphas()))


def _reference(
    kind: str,
    channels: int,
    depth: int,
    w_batch: Batch,
    a_batch: Batch,
    device: torch.device | str = "cpu",
) -> Variant:
    """The reference variant (``ref single`` or ``ref DARTS-V1``) with its network on ``device``
    (the batches must already be there); benchmarks/gpu_suite.py times it on a GPU."""
    from xautodl.models.cell_operations import NAS_BENCH_201
    from xautodl.models.cell_searchs.search_model_darts import TinyNetworkDarts

    network = TinyNetworkDarts(
        C=channels,
        N=depth,
        max_nodes=4,
        num_classes=NUM_CLASSES,
        search_space=list(NAS_BENCH_201),
        affine=False,
        track_running_stats=True,
    ).train()
    network.to(device)
    w_opt = torch.optim.SGD(network.get_weights(), **W_SGD)
    a_opt = torch.optim.Adam(network.get_alphas(), **A_ADAM)
    (x, y), (xa, ya) = w_batch, a_batch

    def darts_v1_step() -> None:
        w_opt.zero_grad()
        _, logits = network(x)
        F.cross_entropy(logits, y).backward()
        nn.utils.clip_grad_norm_(network.parameters(), GRAD_CLIP)
        w_opt.step()
        a_opt.zero_grad()
        _, logits = network(xa)
        F.cross_entropy(logits, ya).backward()
        a_opt.step()

    def single_step() -> None:
        w_opt.zero_grad()
        a_opt.zero_grad()
        _, logits = network(x)
        F.cross_entropy(logits, y).backward()
        nn.utils.clip_grad_norm_(network.parameters(), GRAD_CLIP)
        w_opt.step()
        a_opt.step()

    step, name = (
        (single_step, "ref single") if kind == "single" else (darts_v1_step, "ref DARTS-V1")
    )
    return Variant(name, step, _count(network.get_weights()), _count(network.get_alphas()))


# --------------------------------------------------------------------------- reporting helpers
def machine_line(threads: int) -> str:
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"CPU: {cpu_model()}, {os.cpu_count()} logical cores; torch {torch.__version__}; "
        f"torch threads {threads}; Python {platform.python_version()}; {date}"
    )


def _fmt(v: float) -> str:
    return f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--rounds", type=int, help=f"interleaved rounds (default {FULL['rounds']})")
    p.add_argument("--steps", type=int, help=f"timed steps per variant per round ({FULL['steps']})")
    p.add_argument("--warmup", type=int, help=f"untimed steps per variant first ({FULL['warmup']})")
    p.add_argument("--batch", type=int, help=f"images per batch (default {FULL['batch']})")
    p.add_argument("--channels", type=int, help=f"supernet C (default {FULL['channels']})")
    p.add_argument("--depth", type=int, help=f"supernet N, cells per stage ({FULL['depth']})")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    p.add_argument("--seed", type=int, default=0, help="seed for models and inputs (default 0)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="tiny configuration (C=8, N=1, batch 16, 2 rounds x 2 steps) to check the script",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="after timing, profile one step of each variant (self CPU time, top 15 rows)",
    )
    args = p.parse_args(argv)
    base = QUICK if args.quick else FULL
    for key, value in base.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    for key in ("rounds", "steps", "batch", "channels", "depth", "threads"):
        if getattr(args, key) < 1:
            p.error(f"--{key} must be >= 1")
    if args.warmup < 0:
        p.error("--warmup must be >= 0")
    return args


# --------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    _require_xautodl()
    torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()

    gen = torch.Generator().manual_seed(args.seed)
    shape = (args.batch, 3, IMAGE_SIZE, IMAGE_SIZE)
    w_batch = (
        torch.randn(shape, generator=gen),
        torch.randint(0, NUM_CLASSES, (args.batch,), generator=gen),
    )
    a_batch = (
        torch.randn(shape, generator=gen),
        torch.randint(0, NUM_CLASSES, (args.batch,), generator=gen),
    )

    variants: list[Variant] = []
    for i, (build, kind) in enumerate(
        [(_ours, "single"), (_ours, "bi"), (_reference, "single"), (_reference, "bi")]
    ):
        torch.manual_seed(args.seed + i)
        variants.append(build(kind, args.channels, args.depth, w_batch, a_batch))
    ours_s, ours_b, ref_s, ref_b = variants

    print(machine_line(threads))
    print(
        f"config: C={args.channels} N={args.depth} classes={NUM_CLASSES} batch={args.batch} "
        f"input {IMAGE_SIZE}x{IMAGE_SIZE}; rounds={args.rounds} steps={args.steps} "
        f"warmup={args.warmup}"
    )
    for v in variants:
        print(f"  {v.name:<14} weights {v.weights:>10,}  alphas {v.alphas:>3}")
    counts = {(v.weights, v.alphas) for v in variants}
    if len(counts) != 1:
        print("error: ours and the reference differ in weight or α count", file=sys.stderr)
        return 1
    full_size = (args.channels, args.depth) == (FULL["channels"], FULL["depth"])
    if full_size and counts != {(EXPECTED_WEIGHTS, EXPECTED_ALPHAS)}:
        print(
            f"error: expected {EXPECTED_WEIGHTS:,} weights and {EXPECTED_ALPHAS} α at C=16, N=5",
            file=sys.stderr,
        )
        return 1
    print(
        "parameter counts match"
        + (f" ({EXPECTED_WEIGHTS:,} / {EXPECTED_ALPHAS})" if full_size else "")
    )

    for v in variants:
        for _ in range(args.warmup):
            v.step()

    ips: dict[str, list[float]] = {v.name: [] for v in variants}
    step_times: dict[str, list[float]] = {v.name: [] for v in variants}
    n = len(variants)
    start = time.perf_counter()
    for r in range(args.rounds):
        spent = dict.fromkeys(ips, 0.0)
        for k in range(args.steps):
            shift = (r + k) % n
            for v in variants[shift:] + variants[:shift]:
                t0 = time.perf_counter()
                v.step()
                elapsed = time.perf_counter() - t0
                spent[v.name] += elapsed
                step_times[v.name].append(elapsed)
        for name, seconds in spent.items():
            ips[name].append(args.batch * args.steps / seconds)
        line = "  ".join(f"{v.name} {_fmt(ips[v.name][-1])}" for v in variants)
        print(f"round {r + 1}/{args.rounds} (images/s): {line}", flush=True)
    timed = time.perf_counter() - start

    print()
    print("| variant | images/s (median of rounds) | min–max over rounds | s/step (median) |")
    print("|---|---:|---:|---:|")
    for v in variants:
        med = statistics.median(ips[v.name])
        lo, hi = min(ips[v.name]), max(ips[v.name])
        per_step = statistics.median(step_times[v.name])
        print(f"| {v.name} | {_fmt(med)} | {_fmt(lo)}–{_fmt(hi)} | {per_step:.3f} |")
    print()
    print("| ratio (per round, ours / reference) | median | min–max |")
    print("|---|---:|---:|")
    for ours, ref in ((ours_s, ref_s), (ours_b, ref_b)):
        ratios = [o / f for o, f in zip(ips[ours.name], ips[ref.name], strict=True)]
        print(
            f"| {ours.name} / {ref.name} | {statistics.median(ratios):.2f} | "
            f"{min(ratios):.2f}–{max(ratios):.2f} |"
        )
    print()
    print(f"timed section: {timed:.1f} s ({args.rounds} rounds x {args.steps} steps x 4 variants)")

    if args.profile:
        _profile(variants)
    return 0


def _profile(variants: list[Variant]) -> None:
    from torch.profiler import ProfilerActivity, profile

    for v in variants:
        v.step()  # one more warm step outside the profiler
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            v.step()
        print(f"\n### profile: one step of {v.name} (sorted by self CPU time)\n")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


if __name__ == "__main__":
    sys.exit(main())
