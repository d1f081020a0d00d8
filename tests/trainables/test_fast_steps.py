"""The fast path's parts on the CPU (graph capture off): capturable optimizer updates equal
torch's, the epoch's draws give the eager batches, and whole searches give the eager records and
resume exactly. The same checks with CUDA graphs recorded are in test_gpu.py."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from record_checks import assert_records_close
from strategy_axes import STRATEGY_AXES

from trainables import records as R
from trainables.batching import DeviceSplit
from trainables.capturable_optim import CapturableUpdate, clip_grad_norm
from trainables.config import SearchConfig
from trainables.datasets import ImageSplit, SearchDataset, load_dataset
from trainables.fast_steps import FastSteps, draw_epoch
from trainables.sampling import epoch_plan
from trainables.search import Search, uses_fast_path


@pytest.fixture(scope="module")
def synthetic():
    return load_dataset("synthetic")


def _config(level: str, arch_data: str, order: str, **overrides: Any) -> SearchConfig:
    base = {
        "dataset": "synthetic",
        "channels": 8,  # at C=4 the tiny supernet amplifies float rounding ~100x per step
        "depth": 1,
        "w_lr": 0.005,
        "batch_size": 16,
        "steps_per_epoch": 5,
        "epochs": 2,
        "probe_every": 4,
    }
    return SearchConfig(level=level, arch_data=arch_data, order=order, **{**base, **overrides})


def _fast(search: Search) -> Search:
    """Put ``search`` on the fast path without capture (what CUDA runs, op by op)."""
    search.fast_steps = FastSteps(search, capture=False)
    return search


def _run(search: Search, epochs: int) -> list[dict[str, Any]]:
    return [search.run_epoch() for _ in range(epochs)]


# ---------------------------------------------------------------------- optimizer updates
OPTIMIZERS = {
    "sgd nesterov wd": lambda ps: torch.optim.SGD(
        ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4
    ),
    "sgd momentum": lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9),
    "sgd plain wd": lambda ps: torch.optim.SGD(ps, lr=0.05, weight_decay=1e-3),
    "adam wd": lambda ps: torch.optim.Adam(
        ps, lr=3e-3, betas=(0.5, 0.999), weight_decay=1e-3
    ),
    "adam": lambda ps: torch.optim.Adam(ps, lr=1e-2),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_capturable_update_follows_torch_optimizer(name: str) -> None:
    gen = torch.Generator().manual_seed(0)
    start = [torch.randn(5, 3, generator=gen), torch.randn(7, generator=gen)]
    grads = [[torch.randn(p.shape, generator=gen) for p in start] for _ in range(6)]
    ref_params = [torch.nn.Parameter(p.clone()) for p in start]
    our_params = [torch.nn.Parameter(p.clone()) for p in start]
    ref, ours = OPTIMIZERS[name](ref_params), OPTIMIZERS[name](our_params)
    update = CapturableUpdate(ours)
    for step, g in enumerate(grads):
        if step == 3:  # the schedule changes the lr between epochs
            for opt in (ref, ours):
                opt.param_groups[0]["lr"] *= 0.5
            update.load_lr()
        for p, gi in zip(ref_params, g, strict=True):
            p.grad = gi.clone()
        ref.step()
        with torch.no_grad():
            update.apply([gi.clone() for gi in g])
    for a, b in zip(ref_params, our_params, strict=True):
        torch.testing.assert_close(b.detach(), a.detach(), rtol=1e-6, atol=1e-7)
    # After sync, the state dict is torch's: an eager optimizer continues from it.
    update.sync()
    resumed = OPTIMIZERS[name]([torch.nn.Parameter(p.detach().clone()) for p in our_params])
    resumed.load_state_dict(ours.state_dict())
    assert resumed.state_dict()["state"].keys() == ref.state_dict()["state"].keys()
    for index, state in ref.state_dict()["state"].items():  # SGD without momentum has none
        for key, value in state.items():
            torch.testing.assert_close(resumed.state_dict()["state"][index][key], value)


def test_capturable_update_rejects_what_it_does_not_implement() -> None:
    p = [torch.nn.Parameter(torch.zeros(2))]
    with pytest.raises(ValueError, match="amsgrad"):
        CapturableUpdate(torch.optim.Adam(p, amsgrad=True))
    with pytest.raises(ValueError, match="RMSprop"):
        CapturableUpdate(torch.optim.RMSprop(p))


@pytest.mark.parametrize("max_norm", [0.1, 100.0])
def test_clip_grad_norm_equals_torch(max_norm: float) -> None:
    gen = torch.Generator().manual_seed(1)
    grads = [torch.randn(4, 4, generator=gen), torch.randn(9, generator=gen)]
    params = [torch.nn.Parameter(torch.zeros_like(g)) for g in grads]
    for p, g in zip(params, grads, strict=True):
        p.grad = g.clone()
    torch.nn.utils.clip_grad_norm_(params, max_norm)
    ours = [g.clone() for g in grads]
    clip_grad_norm(ours, max_norm)
    for p, g in zip(params, ours, strict=True):
        torch.testing.assert_close(g, p.grad, rtol=1e-6, atol=0)
    if max_norm == 100.0:  # under the bound: untouched
        assert all(torch.equal(a, b) for a, b in zip(ours, grads, strict=True))


# ---------------------------------------------------------------------- the epoch's draws
@pytest.mark.parametrize(("level", "arch_data"), [("single", "split"), ("bi", "split"), ("bi", "same")])
@pytest.mark.parametrize("cap", [5, 0])  # cap 0: a whole pass, whose last batch is short
def test_drawn_plan_gives_the_eager_batches(synthetic, level: str, arch_data: str, cap: int) -> None:
    config = _config(level, arch_data, "first", batch_size=48, steps_per_epoch=cap)
    train = DeviceSplit(synthetic.train, synthetic.mean, synthetic.std, 4, "cpu")
    held = DeviceSplit(synthetic.held_out, synthetic.mean, synthetic.std, 4, "cpu")
    arch = held if arch_data == "split" else train
    eager_gen = torch.Generator().manual_seed(7)
    eager = []
    plan = epoch_plan(
        len(train), len(held), 48, level=level, arch_data=arch_data, generator=eager_gen, cap=cap
    )
    for w_idx, a_idx in plan:  # the eager loop's order of draws
        w = train.train_batch(w_idx, eager_gen)
        eager.append((w, None if a_idx is None else arch.train_batch(a_idx, eager_gen)))
    fast_gen = torch.Generator().manual_seed(7)
    draws = draw_epoch(config, train, held, fast_gen)
    steps = [(row[:4], row[4:] if len(row) > 4 else None) for row in draws.full]
    if draws.tail_w is not None:
        steps.append((draws.tail_w, draws.tail_arch))
    assert len(steps) == len(eager) == (5 if cap else 14)  # 640 / 48 -> 13 full + 1 short
    assert (draws.tail_w is not None) == (cap == 0)
    for (w_rows, a_rows), (w, a) in zip(steps, eager, strict=True):
        x, y = train.augment(*w_rows)
        assert torch.equal(x, w[0]) and torch.equal(y, w[1])
        assert (a_rows is None) == (a is None)
        if a is not None and a_rows is not None:
            x, y = arch.augment(*a_rows)
            assert torch.equal(x, a[0]) and torch.equal(y, a[1])
    assert torch.equal(fast_gen.get_state(), eager_gen.get_state())


# ---------------------------------------------------------------------- whole searches
@pytest.mark.parametrize(("level", "arch_data", "order"), STRATEGY_AXES)
def test_fast_path_records_equal_eager_records(synthetic, level, arch_data, order) -> None:
    config = _config(level, arch_data, order)
    eager = _run(Search(config, dataset=synthetic), 2)
    fast = _run(_fast(Search(config, dataset=synthetic)), 2)
    assert_records_close(
        eager, fast, train_images=5 * 16, valid_images=len(synthetic.held_out), rtol=1e-4
    )
    assert {r[R.EXEC_PATH] for r in eager + fast} == {R.EXEC_EAGER}


def test_fast_path_with_a_short_last_batch_and_other_optimizers(synthetic) -> None:
    # 200 training images at batch 48: 4 whole batches and one of 8; w Adam, α SGD.
    small = SearchDataset(
        name="synthetic",
        train=ImageSplit(synthetic.train.images[:200], synthetic.train.labels[:200]),
        held_out=ImageSplit(synthetic.held_out.images[:96], synthetic.held_out.labels[:96]),
        num_classes=synthetic.num_classes,
        mean=synthetic.mean,
        std=synthetic.std,
        crop_padding=synthetic.crop_padding,
    )
    config = _config(
        "bi", "split", "first", batch_size=48, steps_per_epoch=0, epochs=1,
        w_optimizer="adam", w_lr=1e-3, w_lr_min=1e-4, arch_optimizer="sgd", arch_lr=1e-3,
    )
    eager = _run(Search(config, dataset=small), 1)
    fast = _run(_fast(Search(config, dataset=small)), 1)
    assert [r[R.STEPS] for r in fast] == [5]
    assert_records_close(eager, fast, train_images=200, valid_images=96, rtol=1e-4)


def test_fast_path_resumes_exactly(synthetic, tmp_path) -> None:
    config = _config("bi", "split", "first")
    straight = _run(_fast(Search(config, dataset=synthetic)), 2)
    first = _fast(Search(config, dataset=synthetic))
    head = _run(first, 1)
    first.save(tmp_path)
    resumed = Search(config, dataset=synthetic)
    resumed.restore(tmp_path)
    tail = _run(_fast(resumed), 1)
    drop = set(R.TIMING_FIELDS)
    assert [{k: v for k, v in r.items() if k not in drop} for r in head + tail] == [
        {k: v for k, v in r.items() if k not in drop} for r in straight
    ] or _nan_equal(head + tail, straight, drop)


def _nan_equal(a: list[dict[str, Any]], b: list[dict[str, Any]], drop: set[str]) -> bool:
    """Records equal field by field, NaN equal to NaN (the probe is NaN on unprobed epochs)."""
    def norm(r: dict[str, Any]) -> dict[str, Any]:
        return {k: ("nan" if v != v else v) for k, v in r.items() if k not in drop}

    return [norm(r) for r in a] == [norm(r) for r in b]


def test_checkpoints_move_between_paths(synthetic, tmp_path) -> None:
    """A fast-path checkpoint resumes on the eager path (and vice versa) with the same records
    as a run that never switched."""
    config = _config("single", "split", "first", epochs=3)
    straight = _run(Search(config, dataset=synthetic), 3)
    fast = _fast(Search(config, dataset=synthetic))
    head = _run(fast, 1)
    fast.save(tmp_path / "a")
    eager = Search(config, dataset=synthetic)
    eager.restore(tmp_path / "a")
    middle = _run(eager, 1)
    eager.save(tmp_path / "b")
    back = Search(config, dataset=synthetic)
    back.restore(tmp_path / "b")
    tail = _run(_fast(back), 1)
    assert_records_close(
        straight, head + middle + tail, train_images=80, valid_images=320, rtol=1e-4
    )


def test_cpu_searches_stay_eager(synthetic) -> None:
    config = _config("single", "split", "first")
    for fast in (None, True, False):
        search = Search(config, dataset=synthetic, fast=fast)
        assert search.exec_path == R.EXEC_EAGER and search.fast_steps is None
        assert not uses_fast_path(fast, torch.device("cpu"), synthetic)
    assert uses_fast_path(True, torch.device("cuda"), synthetic)
    assert not uses_fast_path(False, torch.device("cuda"), synthetic)


def test_fast_steps_refuse_capture_off_cuda(synthetic) -> None:
    search = Search(_config("single", "split", "first"), dataset=synthetic)
    with pytest.raises(ValueError, match="CUDA"):
        FastSteps(search, capture=True)
