"""Batch plans of the three data modes."""

from __future__ import annotations

import torch

from trainables.sampling import IndexStream, epoch_plan, steps_per_epoch


def _plan(level: str, arch_data: str, cap: int = 0, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return list(epoch_plan(100, 30, 16, level=level, arch_data=arch_data, generator=g, cap=cap))


def test_w_batches_cover_the_pool_once_per_epoch() -> None:
    plan = _plan("bi", "split")
    assert len(plan) == steps_per_epoch(100, 16) == 7
    w = torch.cat([w_idx for w_idx, _ in plan])
    assert sorted(w.tolist()) == list(range(100))
    assert [len(w_idx) for w_idx, _ in plan] == [16] * 6 + [4]


def test_single_level_draws_no_arch_batch() -> None:
    assert all(a is None for _, a in _plan("single", "split"))


def test_split_draws_full_arch_batches_from_held_out() -> None:
    plan = _plan("bi", "split")
    arch = [a for _, a in plan]
    assert all(len(a) == 16 and int(a.max()) < 30 for a in arch)
    # successive permutations: the first 30 α indices are a permutation of the held-out split
    assert sorted(torch.cat(arch)[:30].tolist()) == list(range(30))


def test_same_draws_a_different_batch_from_the_training_pool() -> None:
    plan = _plan("bi", "same")
    for w_idx, a_idx in plan:
        assert len(a_idx) == 16 and int(a_idx.max()) < 100
        assert not torch.equal(w_idx, a_idx[: len(w_idx)])
    arch = torch.cat([a for _, a in plan])
    assert len(set(arch[:100].tolist())) == 100  # an independent permutation of the pool


def test_cap_and_determinism() -> None:
    assert len(_plan("single", "split", cap=3)) == 3
    assert steps_per_epoch(100, 16, cap=50) == 7
    a, b = _plan("bi", "same", seed=4), _plan("bi", "same", seed=4)
    assert all(
        torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(a, b, strict=True)
    )
    c = _plan("bi", "same", seed=5)
    assert not torch.equal(a[0][0], c[0][0])


def test_index_stream_yields_full_batches_when_split_is_smaller_than_a_batch() -> None:
    stream = IndexStream(5, 8, torch.Generator().manual_seed(0))
    batch = stream.next()
    assert len(batch) == 8 and set(batch.tolist()) == set(range(5))
