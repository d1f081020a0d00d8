"""The search loop: contract over every axis, batches per step, reproducibility, resume,
divergence, and complete records."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
import torch
from strategy_axes import STRATEGY_AXES

from search_spaces.genotypes import nb201_from_string
from trainables import records as R
from trainables.config import SearchConfig
from trainables.datasets import load_dataset
from trainables.search import Search, run_search

TINY = {"channels": 4, "batch_size": 16, "steps_per_epoch": 3, "epochs": 3, "probe_every": 2}
TINY_DEPTH = {"nb201": 1, "darts": 3}


@pytest.fixture(scope="module")
def synthetic():
    return load_dataset("synthetic")


def tiny(
    space: str = "nb201",
    level: str = "single",
    arch_data: str = "split",
    order: str = "first",
    **overrides: Any,
) -> SearchConfig:
    return SearchConfig(
        space=space,
        dataset="synthetic",
        level=level,
        arch_data=arch_data,
        order=order,
        depth=TINY_DEPTH[space],
        **{**TINY, **overrides},
    )


def comparable(record: dict[str, Any]) -> dict[str, Any]:
    """A record without wall-clock fields, NaN replaced so that equal records compare equal."""
    return {
        k: ("nan" if isinstance(v, float) and math.isnan(v) else v)
        for k, v in record.items()
        if k not in R.TIMING_FIELDS
    }


@pytest.mark.parametrize(
    ("space", "activation", "axes"),
    list(itertools.product(["nb201", "darts"], ["softmax", "sigmoid", "sigmoid*"], STRATEGY_AXES)),
)
def test_every_weight_and_alpha_gets_a_finite_gradient(synthetic, space, activation, axes) -> None:
    level, arch_data, order = axes
    config = tiny(space, level, arch_data, order, activation=activation, steps_per_epoch=1)
    search = Search(config, dataset=synthetic)
    before = [a.detach().clone() for a in search.model.alphas()]
    w_batch = search.train.train_batch(torch.arange(16), search.generator)
    a_batch = search.held_out.train_batch(torch.arange(16), search.generator)
    search.strategy.step(w_batch, None if level == "single" else a_batch)
    for name, p in search.model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"
    for a, old in zip(search.model.alphas(), before, strict=True):
        assert a.grad.abs().sum() > 0
        assert not torch.equal(a.detach(), old), "α did not move"


class _ForwardRecorder:
    """Counts the distinct input batches the model sees inside each strategy step."""

    def __init__(self, search: Search) -> None:
        self.per_step: list[list[torch.Tensor]] = []
        self._current: list[torch.Tensor] | None = None
        search.model.register_forward_pre_hook(self._hook)
        step = search.strategy.step

        def recording_step(w_batch, arch_batch):
            self._current = []
            out = step(w_batch, arch_batch)
            self.per_step.append(self._current)
            self._current = None
            return out

        search.strategy.step = recording_step  # type: ignore[method-assign]

    def _hook(self, module, args) -> None:
        if self._current is not None and not any(torch.equal(args[0], x) for x in self._current):
            self._current.append(args[0].detach().clone())


@pytest.mark.parametrize("axes", STRATEGY_AXES)
def test_batches_consumed_per_step(synthetic, axes) -> None:
    """Single-level sees exactly one batch per step; bi-level two different ones."""
    level, arch_data, order = axes
    search = Search(tiny("nb201", level, arch_data, order, probe_every=0), dataset=synthetic)
    recorder = _ForwardRecorder(search)
    search.run_epoch()
    assert len(recorder.per_step) == TINY["steps_per_epoch"]
    expected = 1 if level == "single" else 2
    assert all(len(batches) == expected for batches in recorder.per_step)


@pytest.mark.parametrize("axes", STRATEGY_AXES)
def test_same_config_and_seed_give_same_records(synthetic, axes) -> None:
    config = tiny("nb201", *axes)
    first = [comparable(r) for r in run_search(config)]
    second = [comparable(r) for r in run_search(config)]
    assert first == second
    other_seed = comparable(next(run_search(config.replace(seed=1))))  # its first epoch suffices
    assert other_seed[R.TRAIN_LOSS] != first[0][R.TRAIN_LOSS]


@pytest.mark.parametrize(
    ("space", "axes"),
    [("nb201", a) for a in STRATEGY_AXES]
    + [pytest.param("darts", ("bi", "split", "first"), marks=pytest.mark.slow)],
)
def test_resume_from_checkpoint_is_bit_identical(tmp_path, space, axes) -> None:
    config = tiny(space, *axes, w_optimizer="sgd", arch_optimizer="adam")
    uninterrupted = [comparable(r) for r in run_search(config)]
    first = next(run_search(config, checkpoint_dir=tmp_path))
    assert comparable(first) == uninterrupted[0]
    resumed = [comparable(r) for r in run_search(config, checkpoint_dir=tmp_path, resume=True)]
    assert [r[R.EPOCH] for r in resumed] == [2, 3]
    assert resumed == uninterrupted[1:]


def test_resume_with_adam_for_weights(tmp_path) -> None:
    config = tiny(level="bi", w_optimizer="adam", arch_optimizer="sgd", arch_lr=0.01)
    uninterrupted = [comparable(r) for r in run_search(config)]
    list(itertools.islice(run_search(config, checkpoint_dir=tmp_path), 2))
    resumed = [comparable(r) for r in run_search(config, checkpoint_dir=tmp_path, resume=True)]
    assert resumed == uninterrupted[2:]


def test_checkpoint_of_another_config_is_refused(tmp_path) -> None:
    next(run_search(tiny(), checkpoint_dir=tmp_path))
    with pytest.raises(ValueError, match=r"another config.*seed"):
        next(run_search(tiny(seed=5), checkpoint_dir=tmp_path, resume=True))
    with pytest.raises(FileNotFoundError, match="no search checkpoint"):
        next(run_search(tiny(), checkpoint_dir=tmp_path / "empty", resume=True))


def test_non_finite_loss_ends_search_as_diverged() -> None:
    config = tiny(w_lr=1e12, w_lr_min=0.0, grad_clip=0.0, epochs=5, steps_per_epoch=4)
    records = list(run_search(config))  # must not raise
    assert records[-1][R.STATUS] == R.STATUS_DIVERGED
    assert all(r[R.STATUS] == R.STATUS_OK for r in records[:-1])
    assert len(records) < config.epochs


def test_records_are_complete(synthetic) -> None:
    config = tiny(level="bi", epochs=2)
    records = list(run_search(config))
    assert [r[R.EPOCH] for r in records] == [1, 2]
    for record in records:
        assert tuple(record) == R.RECORD_FIELDS
        assert record[R.STATUS] == R.STATUS_OK
        assert record[R.STEPS] == TINY["steps_per_epoch"]
        for name in (
            R.TRAIN_LOSS,
            R.TRAIN_ACC,
            R.ARCH_LOSS,
            R.VALID_LOSS,
            R.VALID_ACC,
            R.GRAD_INNER,
            R.GRAD_COSINE,
            R.IMAGES_PER_SEC,
            R.TRAIN_SECONDS,
            R.EPOCH_SECONDS,
            R.W_LR,
        ):
            assert math.isfinite(record[name]), name
        assert 0 <= record[R.VALID_ACC] <= 100 and -1 <= record[R.GRAD_COSINE] <= 1 + 1e-6
        alpha = torch.tensor(record[R.ALPHA["normal"]])
        assert alpha.shape == (6, 5) and torch.allclose(alpha.sum(-1), torch.ones(6))
        assert torch.tensor(record[R.ALPHA_GRAD["normal"]]).shape == (6, 5)
        assert record[R.ALPHA["reduce"]] is None and record[R.ALPHA_GRAD["reduce"]] is None
        nb201_from_string(record[R.GENOTYPE])
        assert math.isfinite(record[R.BENCH["cifar10_test"]])  # shipped table: test columns
        assert math.isnan(record[R.BENCH["cifar10_valid"]])
        assert record[R.EXEC_PATH] == R.EXEC_EAGER  # CPU runs are always eager
    assert records[1][R.W_LR] < records[0][R.W_LR]  # cosine schedule per epoch


def test_single_level_probe_is_gradient_norm_squared(synthetic) -> None:
    record = next(run_search(tiny(epochs=1)))
    assert record[R.GRAD_COSINE] == pytest.approx(1.0, abs=1e-5)
    assert record[R.GRAD_INNER] > 0
    off = next(run_search(tiny(epochs=1, probe_every=0)))
    assert math.isnan(off[R.GRAD_INNER]) and math.isnan(off[R.GRAD_COSINE])


def test_probe_does_not_change_training(synthetic) -> None:
    """The probe's extra passes leave weights, BN statistics and data draws untouched."""
    with_probe = [comparable(r) for r in run_search(tiny(level="bi", probe_every=1))]
    without = [comparable(r) for r in run_search(tiny(level="bi", probe_every=0))]
    for a, b in zip(with_probe, without, strict=True):
        for key in (R.GRAD_INNER, R.GRAD_COSINE):
            a.pop(key), b.pop(key)
        assert a == b


def test_darts_records_have_reduce_alpha_and_no_benchmark() -> None:
    record = next(run_search(tiny("darts", epochs=1)))
    assert torch.tensor(record[R.ALPHA["reduce"]]).shape == (14, 8)
    assert record[R.GENOTYPE].startswith("Genotype(normal=[")
    assert all(math.isnan(record[name]) for name in R.BENCH.values())


def test_default_offline_dataset_runs_a_search() -> None:
    """The default config searches on the real digits shipped inside scikit-learn."""
    config = SearchConfig(channels=4, depth=1, batch_size=32, steps_per_epoch=2, epochs=1)
    assert config.dataset == "digits"
    (record,) = run_search(config)
    assert record[R.STATUS] == R.STATUS_OK and record[R.STEPS] == 2
    assert math.isfinite(record[R.VALID_ACC]) and math.isfinite(record[R.BENCH["cifar10_test"]])


def test_missing_dataset_folder_fails_before_any_work(tmp_path) -> None:
    from trainables.datasets import DatasetNotFoundError

    config = SearchConfig(dataset="cifar10", data_dir=str(tmp_path / "nowhere"), epochs=1)
    checkpoints = tmp_path / "ckpt"
    with pytest.raises(DatasetNotFoundError, match="nowhere"):
        next(run_search(config, checkpoint_dir=checkpoints))
    assert not checkpoints.exists()


def test_genotype_none_exclude_reaches_the_records(synthetic) -> None:
    """The search's derived cell follows ``genotype_none``: with ``none`` pushed to the top of
    every edge, ``include`` derives it everywhere and ``exclude`` never; training is the same."""
    records = {}
    for rule in ("include", "exclude"):
        search = Search(tiny("nb201", epochs=1, probe_every=0, genotype_none=rule),
                        dataset=synthetic)
        with torch.no_grad():
            search.model.alphas()[0][:, 0] += 10.0  # column 0 = none (NB201_OPS order)
        records[rule] = search.run_epoch()
    assert set(records["include"][R.GENOTYPE].replace("|", " ").split()) <= {
        "+"} | {f"none~{i}" for i in range(3)}
    assert "none" not in records["exclude"][R.GENOTYPE]
    assert records["include"][R.TRAIN_LOSS] == records["exclude"][R.TRAIN_LOSS]
