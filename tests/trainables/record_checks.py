"""Compare two runs' epoch records field by field within stated tolerances.

Used where two execution paths or devices compute the same search with different float
rounding (the CUDA-graph path against eager, a resumed run against an uninterrupted one on a
GPU). Tolerances:
- exact: epoch, status, steps, the epoch's w learning rate, the genotype (and so every
  benchmark accuracy, which is a lookup of the genotype);
- losses: relative ``rtol``; the probe (inner product, cosine): relative ``probe_rtol`` (it is
  the most sensitive number of a record: measured on the tiny test supernets, a 1e-7 nudge of
  one weight moves it by up to 4e-3 relative after 12 steps, the losses by ~1e-4);
- accuracies: at most ``images`` images apart, i.e. ``100 · images / n`` percentage points
  with n the images the accuracy counts (one flipped prediction out of n moves it by 100/n);
- activated α: absolute ``alpha_atol`` (Adam's normalised α steps turn rounding-level
  gradient differences into up to ~6e-6 after 12 steps; a wrong α update is off by the size of
  a step, 3e-4); mean α-gradients: the norm of the difference within
  ``grad_rtol`` of the norm (α-gradients are small sums of nearly cancelling terms, and the
  second-order ones hold a finite difference over a radius of 0.01 / ‖∇w‖; measured on the
  tiny bi-level test supernet, a 1e-7 nudge of one weight moves their epoch mean by 1.6%
  after 12 steps while the losses move by 4e-5; a wrong α gradient is off by ~100%).
Timing fields and ``exec_path`` are not compared.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from trainables import records as R

EXACT = (R.EPOCH, R.STATUS, R.STEPS, R.W_LR, R.GENOTYPE, *R.BENCH.values())
LOSSES = (R.TRAIN_LOSS, R.ARCH_LOSS, R.VALID_LOSS)
PROBE = (R.GRAD_INNER, R.GRAD_COSINE)


def _same(a: Any, b: Any) -> bool:
    nan = isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
    return nan or a == b


def _close(a: float, b: float, rtol: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= rtol * max(abs(a), abs(b), 1e-12)


def _lists(value: Any) -> torch.Tensor | None:
    return None if value is None else torch.tensor(value, dtype=torch.float64)


def assert_records_close(
    first: list[dict[str, Any]],
    second: list[dict[str, Any]],
    *,
    train_images: int,
    valid_images: int,
    rtol: float = 1e-4,
    probe_rtol: float = 1e-2,
    alpha_atol: float = 3e-5,
    grad_rtol: float = 5e-2,
    images: int = 2,
) -> None:
    """Assert two lists of epoch records describe the same search (module docstring)."""
    assert len(first) == len(second), f"{len(first)} records vs {len(second)}"
    for a, b in zip(first, second, strict=True):
        epoch = a[R.EPOCH]
        for name in EXACT:
            assert _same(a[name], b[name]), f"epoch {epoch} {name}: {a[name]!r} vs {b[name]!r}"
        for names, tol in ((LOSSES, rtol), (PROBE, probe_rtol)):
            for name in names:
                assert _close(a[name], b[name], tol), (
                    f"epoch {epoch} {name}: {a[name]} vs {b[name]} (rtol {tol})"
                )
        for name, n in ((R.TRAIN_ACC, train_images), (R.VALID_ACC, valid_images)):
            if math.isnan(a[name]) and math.isnan(b[name]):
                continue
            assert abs(a[name] - b[name]) <= 100.0 * images / n + 1e-9, (
                f"epoch {epoch} {name}: {a[name]} vs {b[name]} (more than {images} images apart)"
            )
        for name in R.ALPHA.values():
            x, y = _lists(a[name]), _lists(b[name])
            assert (x is None) == (y is None), f"epoch {epoch} {name}: one is None"
            if x is not None and y is not None:
                gap = float((x - y).abs().max())
                assert gap <= alpha_atol, f"epoch {epoch} {name}: max |Δ| {gap:.3g} > {alpha_atol}"
        for name in R.ALPHA_GRAD.values():
            x, y = _lists(a[name]), _lists(b[name])
            assert (x is None) == (y is None), f"epoch {epoch} {name}: one is None"
            if x is not None and y is not None:
                gap = float((x - y).norm())
                assert gap <= grad_rtol * float(x.norm()) + 1e-9, (
                    f"epoch {epoch} {name}: |Δ| {gap:.3g} vs |x| {float(x.norm()):.3g}"
                )
