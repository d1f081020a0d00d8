"""Training a genotype from scratch: schedules, cutout, drop-path and the auxiliary loss by their
effect, checkpoints that resume bit for bit, and data parallel with 2 gloo processes on the CPU."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from trainables import records as R
from trainables.data_parallel import run_data_parallel
from trainables.datasets import load_evaluation_dataset
from trainables.eval_config import EvalConfig, preset_config
from trainables.evaluation import (
    Evaluation,
    apply_cutout,
    drop_path_prob,
    epoch_lr,
    network_cost,
    run_evaluation,
)

TINY = preset_config(
    "cifar10", "DARTS_V2", dataset="digits", layers=3, init_channels=4, epochs=2,
    batch_size=32, steps_per_epoch=2, cutout=8,
)
TIMING = (R.IMAGES_PER_SEC, R.TRAIN_SECONDS, R.EPOCH_SECONDS)


@pytest.fixture(scope="module")
def digits():
    return load_evaluation_dataset("digits")


def _values(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in TIMING}


# ---------------------------------------------------------------------- schedules
def test_cosine_schedule_starts_at_lr_and_ends_near_lr_min() -> None:
    c = preset_config("cifar10", "DARTS_V2")
    assert epoch_lr(c, 0) == 0.025
    assert epoch_lr(c, 300) == pytest.approx(0.0125)
    assert 0 < epoch_lr(c, 599) < 1e-6


def test_linear_schedule_warms_up_for_5_epochs_then_decays_to_zero() -> None:
    c = preset_config("imagenet", "DARTS_V2")
    assert [epoch_lr(c, e) for e in range(6)] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5, 0.5])
    assert epoch_lr(c, 249) == pytest.approx(0.5 / 245)
    assert epoch_lr(c, 127) == pytest.approx(0.5 * (1 - 122 / 245))


def test_drop_path_probability_ramps_linearly_from_zero() -> None:
    c = preset_config("cifar10", "DARTS_V2")
    assert drop_path_prob(c, 0) == 0
    assert drop_path_prob(c, 300) == pytest.approx(0.15)
    assert drop_path_prob(c, 599) == pytest.approx(0.3 * 599 / 600)


# ---------------------------------------------------------------------- augmentation
def test_cutout_zeroes_one_clipped_square_per_image() -> None:
    images = torch.ones(64, 3, 32, 32)
    out = apply_cutout(images, 16, torch.Generator().manual_seed(0))
    zero = out[:, 0] == 0
    assert torch.equal(zero, (out == 0).all(dim=1))  # every channel of a pixel, or none
    for mask in zero:
        rows, cols = mask.any(dim=1).nonzero().flatten(), mask.any(dim=0).nonzero().flatten()
        height, width = len(rows), len(cols)
        assert 8 <= height <= 16 and 8 <= width <= 16  # clipped at a border, never larger
        assert int(mask.sum()) == height * width  # one filled rectangle
        assert rows.max() - rows.min() + 1 == height and cols.max() - cols.min() + 1 == width
    assert (zero.sum(dim=(1, 2)) == 256).any()  # most squares lie inside the image


def test_drop_path_changes_training_from_the_second_epoch_as_its_ramp_says(digits) -> None:
    without = run_evaluation(TINY.replace(drop_path=0.0), dataset=digits)
    with_drop = run_evaluation(TINY.replace(drop_path=0.5), dataset=digits)
    assert _values(without[0]) == _values(with_drop[0])  # epoch 1 uses probability 0
    assert with_drop[1][R.DROP_PATH_PROB] == 0.25
    assert with_drop[1][R.TRAIN_LOSS] != without[1][R.TRAIN_LOSS]


def test_the_auxiliary_loss_trains_the_cells_below_its_head_but_not_the_classifier(digits) -> None:
    """One step with and without the auxiliary head (no clipping, which would couple them):
    the classifier gets the same gradient, the stem a different one; the reported loss is the
    main head's in both. The auxiliary head is not counted in the parameters."""
    one_step = TINY.replace(epochs=1, steps_per_epoch=1, grad_clip=0.0)
    models, records = {}, {}
    for weight in (0.0, 0.4):
        evaluation = Evaluation(one_step.replace(auxiliary_weight=weight), dataset=digits)
        records[weight] = evaluation.run_epoch()
        models[weight] = evaluation.model.state_dict()
    assert torch.equal(models[0.0]["classifier.weight"], models[0.4]["classifier.weight"])
    assert not torch.equal(models[0.0]["stem.0.weight"], models[0.4]["stem.0.weight"])
    assert records[0.0][R.TRAIN_LOSS] == records[0.4][R.TRAIN_LOSS]
    assert records[0.0][R.PARAMS] == records[0.4][R.PARAMS]


# ---------------------------------------------------------------------- records, checkpoints
def test_a_record_per_epoch_with_the_networks_size_and_its_test_accuracy(digits) -> None:
    records = run_evaluation(TINY, dataset=digits)
    assert [r[R.EPOCH] for r in records] == [1, 2]
    assert tuple(records[0]) == R.EVAL_RECORD_FIELDS
    params, macs, side = network_cost(TINY)
    assert (records[0][R.PARAMS], records[0][R.MULTIPLY_ADDS], records[0][R.INPUT_SIZE]) == (
        params, macs, side
    )
    assert records[0][R.STEPS] == 2 and records[0][R.STATUS] == R.STATUS_OK
    # top-1 is a whole number of the 896 held-out digits, top-5 at least top-1
    assert (records[1][R.TEST_ACC] * 896 / 100) == pytest.approx(
        round(records[1][R.TEST_ACC] * 896 / 100)
    )
    assert records[1][R.TEST_TOP5] >= records[1][R.TEST_ACC]


def test_a_restored_checkpoint_continues_bit_for_bit(tmp_path, digits) -> None:
    uninterrupted = run_evaluation(TINY, dataset=digits)
    first = Evaluation(TINY, dataset=digits)
    first.run_epoch()
    first.save(tmp_path)
    resumed = Evaluation(TINY, dataset=digits)
    resumed.restore(tmp_path)
    assert resumed.epoch == 1
    assert _values(resumed.run_epoch()) == _values(uninterrupted[1])
    assert resumed.done


def test_a_diverging_training_ends_with_a_diverged_record(digits) -> None:
    records = run_evaluation(TINY.replace(lr=1e30, grad_clip=0.0, epochs=3), dataset=digits)
    assert [r[R.STATUS] for r in records] == [R.STATUS_DIVERGED]  # the training ended there
    assert not math.isfinite(records[0][R.TRAIN_LOSS])


# ---------------------------------------------------------------------- data parallel
def _data_parallel(config: EvalConfig, folder: Path, restore_from: Path | None = None):
    """Run ``config`` with its worker processes; returns the records and checkpoints a folder
    per epoch."""
    records: list[dict[str, Any]] = []

    def report(record, evaluation, state) -> None:
        records.append(record)
        evaluation.save(folder / f"epoch{evaluation.epoch}", state)

    def restore(evaluation) -> None:
        if restore_from is not None:
            evaluation.restore(restore_from)

    run_data_parallel(config, use_cuda=False, threads=2, report=report, restore=restore)
    return records


def test_two_gloo_processes_share_the_batch_and_the_test_set_and_resume(tmp_path, digits) -> None:
    config = TINY.replace(workers=2)
    records = _data_parallel(config, tmp_path / "run")
    assert [r[R.EPOCH] for r in records] == [1, 2]
    assert records[0][R.STEPS] == 2

    # Sharded testing counts every test image once, with rank 0's weights and BN statistics:
    # the same numbers as one process testing the saved weights.
    single = Evaluation(config.replace(workers=1), dataset=digits)
    single.model.load_state_dict(
        torch.load(tmp_path / "run" / "epoch2" / "evaluation.pt", weights_only=True)["model"]
    )
    alone = single._test()
    assert records[1][R.TEST_ACC] == alone["acc"]
    assert records[1][R.TEST_LOSS] == pytest.approx(alone["loss"], rel=1e-5)

    # Resuming from epoch 1's checkpoint continues as the uninterrupted run did.
    resumed = _data_parallel(config, tmp_path / "resumed", restore_from=tmp_path / "run" / "epoch1")
    assert [r[R.EPOCH] for r in resumed] == [2]
    assert _values(resumed[0]) == _values(records[1])

    # A checkpoint is for its number of processes.
    one = Evaluation(config.replace(workers=1), dataset=digits)
    with pytest.raises(ValueError, match="resume with workers=2"):
        one.restore(tmp_path / "run" / "epoch1")


# ---------------------------------------------------------------------- ImageNet
def _imagenet_folder(root: Path, per_class: dict[str, int]) -> None:
    """``root/imagenet/{train,val}/<wnid>/`` with small random JPEGs (streamed, resized to 224)."""
    import numpy as np
    from PIL import Image

    for part, count in per_class.items():
        for c, wnid in enumerate(("n01", "n02", "n03")):
            folder = root / "imagenet" / part / wnid
            folder.mkdir(parents=True)
            for k in range(count):
                pixels = np.random.default_rng(100 * c + k).integers(0, 256, (20, 24, 3))
                Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{k}.JPEG")


def test_the_imagenet_network_trains_on_streamed_files_and_tests_on_val(tmp_path) -> None:
    _imagenet_folder(tmp_path, {"train": 4, "val": 2})
    config = preset_config(
        "imagenet", "DARTS_V2", data_dir=str(tmp_path), layers=3, init_channels=4, epochs=2,
        warmup_epochs=1, batch_size=4, steps_per_epoch=1,
    )
    records = run_evaluation(config)
    assert [r[R.EPOCH_LR] for r in records] == [0.5, 0.5]  # warm-up epoch 1 of 1, then decay
    last = records[-1]
    assert last[R.INPUT_SIZE] == 224 and last[R.STEPS] == 1
    assert round(last[R.TEST_ACC] * 6 / 100, 6) in {0, 1, 2, 3, 4, 5, 6}  # of the 6 val images
    assert last[R.TEST_TOP5] == 100.0  # 3 classes: the top 5 always hold the label
    assert math.isfinite(last[R.TRAIN_LOSS])
