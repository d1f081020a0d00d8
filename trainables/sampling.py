"""Which images each step of an epoch uses: the batch plan of the three data modes.

- w batches: a fresh permutation of the training pool each epoch, cut into ``batch_size`` chunks
  (the last one may be smaller), ceil(pool / batch) steps, or fewer when capped.
- α batches, only for ``level='bi'``: ``split`` draws them from the held-out split (classic DARTS,
  the "different subsets + different batches" mode); ``same`` draws them from the training pool
  through an independent permutation (the "same subset + different batches" mode), so the α
  batch is a different random sample of the same images. Both streams run over successive
  permutations and always yield full batches.
- ``level='single'`` uses the w batch for α ("same subset + same batch") and draws nothing more.

All randomness comes from the CPU ``torch.Generator`` passed in, whose state the checkpoint keeps.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch


class IndexStream:
    """Endless stream of full batches over successive random permutations of ``range(n)``."""

    def __init__(self, n: int, batch_size: int, generator: torch.Generator) -> None:
        if n <= 0:
            raise ValueError("cannot draw batches from an empty split")
        self.n, self.batch_size, self.generator = n, batch_size, generator
        self._buffer = torch.empty(0, dtype=torch.long)

    def next(self) -> torch.Tensor:
        while self._buffer.numel() < self.batch_size:
            perm = torch.randperm(self.n, generator=self.generator)
            self._buffer = torch.cat([self._buffer, perm])
        batch, self._buffer = self._buffer[: self.batch_size], self._buffer[self.batch_size :]
        return batch


def steps_per_epoch(pool_size: int, batch_size: int, cap: int = 0) -> int:
    """Steps of one epoch: ceil(pool / batch), or ``cap`` when 0 < cap < that."""
    full = math.ceil(pool_size / batch_size)
    return min(full, cap) if cap > 0 else full


def epoch_plan(
    train_size: int,
    held_out_size: int,
    batch_size: int,
    *,
    level: str,
    arch_data: str,
    generator: torch.Generator,
    cap: int = 0,
) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """Yield ``(w_indices, arch_indices)`` per step; arch indices are None for single-level.

    ``arch_indices`` index the held-out split for ``split`` and the training pool for ``same``.
    The w permutation is drawn first, then α batches lazily, one per step, so the generator's
    draws are a fixed function of the plan.
    """
    order = torch.randperm(train_size, generator=generator)
    arch: IndexStream | None = None
    if level == "bi":
        arch_pool = held_out_size if arch_data == "split" else train_size
        arch = IndexStream(arch_pool, batch_size, generator)
    for step in range(steps_per_epoch(train_size, batch_size, cap)):
        w_idx = order[step * batch_size : (step + 1) * batch_size]
        yield w_idx, (arch.next() if arch is not None else None)
