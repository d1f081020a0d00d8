"""The grid cost estimate (``study.cost``) and its lines in ``study run --dry-run``.

Expected numbers are worked out by hand in the comments; no Ray, no GPU, no dataset files.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest

from study.cli import EXIT_BAD_INPUT, main
from study.cost import (
    DATASET_SHAPES,
    DEFAULT_CALIBRATION,
    Calibration,
    CalibrationKey,
    CostEstimate,
    Placement,
    TrialCost,
    epoch_steps,
    estimate_cost,
    format_estimate,
    load_calibration,
    makespan,
    pool_sizes,
    trial_cost,
)
from trainables.config import DATASETS, SearchConfig
from trainables.datasets import load_digits, load_split_file, load_synthetic, official_splits_dir

NB201 = SearchConfig(space="nb201", dataset="cifar10", channels=16, depth=5, batch_size=64)

ENTRY: dict[str, Any] = {
    "space": "nb201",
    "level": "single",
    "order": "first",
    "image_side": 32,
    "batch_size": 64,
    "channels": 16,
    "depth": 5,
    "step_seconds": 0.1,
    "eval_seconds_per_image": 1e-4,
    "epoch_overhead_seconds": 2.0,
    "scales_with_batch": False,
}
CALIBRATION: dict[str, Any] = {
    "format": 1,
    "device": "Test GPU",
    "source": "made up for tests",
    "torch": "2.11.0",
    "exec_path": "cuda_graph",
    "entries": [ENTRY],
    "packing": {"1": 1.0, "4": 3.1, "8": 3.5},
}


def _calibration(tmp_path: Path, data: dict[str, Any] | None = None) -> Calibration:
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(CALIBRATION if data is None else data))
    return load_calibration(path)


def _with_entries(*entries: dict[str, Any]) -> dict[str, Any]:
    return {**CALIBRATION, "entries": [{**ENTRY, **e} for e in entries]}


# ------------------------------------------------------------------------------ dataset sizes


def test_every_dataset_has_sizes() -> None:
    assert set(DATASET_SHAPES) == set(DATASETS)


def test_sizes_match_the_official_split_files() -> None:
    splits = official_splits_dir()
    cifar10 = load_split_file(splits / "cifar-split.txt")
    assert (len(cifar10["train"]), len(cifar10["valid"])) == (25_000, 25_000)
    assert DATASET_SHAPES["cifar10"].train == DATASET_SHAPES["cifar10"].held_out == 25_000
    cifar100 = load_split_file(splits / "cifar100-test-split.txt")
    assert DATASET_SHAPES["cifar100"].held_out == len(cifar100["xvalid"]) == 5_000
    imagenet16 = load_split_file(splits / "imagenet-16-120-test-split.txt")
    assert DATASET_SHAPES["imagenet16-120"].held_out == len(imagenet16["xvalid"]) == 3_000
    assert DATASET_SHAPES["imagenet16-120"].image_side == 16


def test_offline_sizes_match_their_loaders() -> None:
    for name, loader in (("digits", load_digits), ("synthetic", load_synthetic)):
        data = loader()
        shape = DATASET_SHAPES[name]
        assert (len(data.train), len(data.held_out)) == (shape.train, shape.held_out)
        assert data.train.images.shape[-1] == shape.image_side == 32


def test_imagenet_holds_out_one_file_in_40() -> None:
    shape = DATASET_SHAPES["imagenet"]
    assert shape.train + shape.held_out == 1_281_167
    assert shape.held_out == 32_030  # ceil(1,281,167 / 40)
    assert shape.image_side == 224


@pytest.mark.parametrize(
    ("dataset", "batch_size", "cap", "steps"),
    [
        ("cifar10", 64, 0, 391),  # ceil(25,000 / 64) = ceil(390.6)
        ("cifar100", 64, 0, 782),  # ceil(50,000 / 64) = ceil(781.25)
        ("imagenet16-120", 64, 0, 2371),  # ceil(151,700 / 64) = ceil(2370.3)
        ("digits", 64, 0, 15),  # ceil(901 / 64)
        ("synthetic", 16, 0, 40),  # 640 / 16
        ("cifar10", 64, 10, 10),  # the cap wins when smaller
        ("digits", 64, 100, 15),  # ... and is ignored when larger than a full pass
    ],
)
def test_steps_per_epoch(dataset: str, batch_size: int, cap: int, steps: int) -> None:
    config = NB201.replace(dataset=dataset, batch_size=batch_size, steps_per_epoch=cap)
    assert epoch_steps(config) == steps


def test_imagenet_steps_per_epoch() -> None:
    config = SearchConfig(
        space="darts", dataset="imagenet", stem="imagenet", batch_size=360, depth=8
    )
    assert epoch_steps(config) == 3470  # ceil(1,249,137 / 360) = ceil(3469.8)


# ------------------------------------------------------------------------------ one trial


def test_one_trial_costs_steps_plus_evaluation_plus_overhead(tmp_path) -> None:
    calibration = _calibration(tmp_path)
    cost = trial_cost(NB201.replace(dataset="cifar100", epochs=3), calibration)
    assert cost is not None
    assert cost.step_seconds == pytest.approx(3 * 782 * 0.1)  # 234.6
    assert cost.eval_seconds == pytest.approx(3 * 5_000 * 1e-4)  # 1.5: the xvalid 5,000
    assert cost.overhead_seconds == pytest.approx(3 * 2.0)
    assert cost.seconds == pytest.approx(242.1)


def test_unmeasured_parts_stay_out_and_are_named(tmp_path) -> None:
    data = _with_entries({"eval_seconds_per_image": None, "epoch_overhead_seconds": None})
    calibration = _calibration(tmp_path, data)
    cost = trial_cost(NB201.replace(epochs=2), calibration)
    assert cost is not None and cost.eval_seconds is None and cost.overhead_seconds is None
    assert cost.seconds == pytest.approx(2 * 391 * 0.1)
    text = "\n".join(format_estimate(estimate_cost([NB201], calibration, 1.0), [1]))
    assert "evaluation and per-epoch overhead not included" in text
    assert " = " not in text  # no total of parts when only steps are known


def test_bi_level_uses_its_own_entry_for_both_data_modes(tmp_path) -> None:
    calibration = _calibration(tmp_path, _with_entries({}, {"level": "bi", "step_seconds": 0.2}))
    bi = NB201.replace(level="bi", epochs=1)
    for arch_data in ("split", "same"):
        cost = trial_cost(bi.replace(arch_data=arch_data), calibration)
        assert cost is not None and cost.step_seconds == pytest.approx(391 * 0.2)


def test_batch_scaling_only_where_the_entry_allows_it(tmp_path) -> None:
    big = NB201.replace(batch_size=128, epochs=1)  # ceil(25,000 / 128) = 196 steps
    fixed = _calibration(tmp_path, CALIBRATION)
    assert trial_cost(big, fixed) is None
    scaling = _calibration(tmp_path, _with_entries({"scales_with_batch": True}))
    cost = trial_cost(big, scaling)
    assert cost is not None and cost.step_seconds == pytest.approx(196 * 0.1 * 128 / 64)
    # only the batch size scales: other channels or depth are a different network
    assert trial_cost(big.replace(channels=32), scaling) is None
    assert trial_cost(big.replace(depth=3), scaling) is None
    # an exact entry wins over scaling; among scalable entries the nearest batch is used
    both = _calibration(
        tmp_path,
        _with_entries(
            {"scales_with_batch": True},
            {"batch_size": 256, "step_seconds": 0.3, "scales_with_batch": True},
        ),
    )
    assert both.entry_for(CalibrationKey.of(NB201)) == (both.entries[0], 0.1)
    assert both.entry_for(CalibrationKey.of(NB201.replace(batch_size=200)))[1] == pytest.approx(
        0.3 * 200 / 256
    )


def test_uncalibrated_trials_are_excluded_and_listed(tmp_path) -> None:
    calibration = _calibration(tmp_path)
    configs = [NB201.replace(epochs=1), NB201.replace(dataset="imagenet16-120", epochs=1)]
    estimate = estimate_cost(configs, calibration, 1.0)
    assert [t.config for t in estimate.trials] == configs[:1]
    assert estimate.excluded == (configs[1],)
    text = "\n".join(format_estimate(estimate, [1]))
    assert "1 of 2 trials, 1 epoch;" in text
    assert "1 trial (nb201 space, imagenet16-120) has no calibration entry: not included" in text
    assert "nb201 single/first 16px batch 64 C=16 depth 5" in text
    nothing = estimate_cost(configs[1:], calibration, 1.0)
    assert "no trial has a calibration entry" in "\n".join(format_estimate(nothing, [1]))


# ------------------------------------------------------------------------------ packing, wall


def test_packing_is_interpolated_and_flat_beyond_the_last_k(tmp_path) -> None:
    calibration = _calibration(tmp_path)  # packing 1: 1.0, 4: 3.1, 8: 3.5
    assert calibration.packing_factor(1) == 1.0
    assert calibration.packing_factor(2) == pytest.approx(1 + (3.1 - 1) / 3)  # 1.7
    assert calibration.packing_factor(4) == pytest.approx(3.1)
    assert calibration.packing_factor(6) == pytest.approx(3.3)
    assert calibration.packing_factor(16) == pytest.approx(3.5)
    assert calibration.slowdown(4) == pytest.approx(4 / 3.1)
    alone = _calibration(tmp_path, {**CALIBRATION, "packing": {"1": 1.0}})
    assert alone.slowdown(4) == pytest.approx(4.0)  # no measured gain: four times slower


@pytest.mark.parametrize(
    ("gpus_per_trial", "per_gpu"), [(0.0, 1), (0.25, 4), (0.3, 3), (0.5, 2), (1.0, 1), (2.0, 1)]
)
def test_searches_per_gpu(gpus_per_trial: float, per_gpu: int) -> None:
    assert Placement.of(gpus_per_trial).per_gpu == per_gpu


def test_list_scheduling_makespan() -> None:
    # 3 trials on 2 slots: 3 -> A, 2 -> B, 2 -> B (free at 2) -> B ends at 4
    assert makespan([2.0, 3.0, 2.0], 2) == 4.0
    # longest first, not optimal: 5->A, 4->B, 3->B(7), 3->A(8), 3->B(10); the best split is 9
    assert makespan([3.0, 3.0, 5.0, 3.0, 4.0], 2) == 10.0
    assert makespan([1.0, 7.0], 8) == 7.0
    assert makespan([], 4) == 0.0


def test_wall_time_packs_k_searches_per_gpu(tmp_path) -> None:
    calibration = _calibration(tmp_path, {**CALIBRATION, "packing": {"1": 1.0, "4": 3.2}})
    trials = tuple(TrialCost(NB201, 1, s, None, None) for s in (7200.0, 3600.0, 3600.0))

    def estimate(gpus_per_trial: float) -> CostEstimate:
        return CostEstimate(calibration, Placement.of(gpus_per_trial), trials, ())

    assert estimate(0.25).gpu_hours == pytest.approx(4.0)  # solo times, unpacked
    # 4 slots on 1 GPU, each trial 4 / 3.2 = 1.25 times slower: the 2-hour one ends last
    assert estimate(0.25).wall_hours(1) == pytest.approx(2.5)
    # 2 slots: packing(2) = 1 + 2.2 / 3; 7200 s on A, both 3600 s on B: 7200 s × 2 / packing
    assert estimate(0.5).wall_hours(1) == pytest.approx(2 * 2 / (1 + 2.2 / 3))
    assert estimate(0.0).wall_hours(1) == pytest.approx(4.0)  # CPU trials: 1 per GPU
    assert estimate(0.0).wall_hours(2) == pytest.approx(2.0)
    assert estimate(2.0).wall_hours(4) == pytest.approx(2.0)  # 2 GPUs per trial: 2 slots
    with pytest.raises(ValueError, match="fewer than --gpus-per-trial"):
        estimate(2.0).wall_hours(1)
    with pytest.raises(ValueError, match="--gpus 0"):
        estimate(1.0).wall_hours(0)


# ------------------------------------------------------------------------------ validation


def _broken(change: Any) -> dict[str, Any]:
    data = copy.deepcopy(CALIBRATION)
    change(data)
    return data


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda d: d.pop("packing"), "packing"),
        (lambda d: d.update(format=2), "format=2"),
        (lambda d: d.update(device=""), "device"),
        (lambda d: d.update(entries=[]), "entries"),
        (lambda d: d.update(note="x"), "'note'"),
        (lambda d: d["entries"][0].pop("step_seconds"), "entries[0] lacks key(s) ['step_seconds']"),
        (lambda d: d["entries"][0].update(step_seconds=-1), "entries[0].step_seconds=-1"),
        (lambda d: d["entries"][0].update(step_seconds="0.1"), "entries[0].step_seconds"),
        (lambda d: d["entries"][0].update(batch_size=True), "entries[0].batch_size=True"),
        (lambda d: d["entries"][0].update(space="nb-201"), "entries[0].space='nb-201'"),
        (lambda d: d["entries"][0].update(eval_seconds_per_image=-1.0), "eval_seconds_per_image"),
        (lambda d: d["entries"][0].update(scales_with_batch="no"), "entries[0].scales_with_batch"),
        (lambda d: d["entries"].append(dict(d["entries"][0])), "entries[0] and entries[1]"),
        (lambda d: d.update(packing={"4": 3.0}), '"1": 1.0'),
        (lambda d: d["packing"].update({"2": 2.5}), 'packing["2"]=2.5'),
        (lambda d: d["packing"].update({"two": 1.5}), "packing key 'two'"),
    ],
)
def test_invalid_calibration_names_the_key(tmp_path, change: Any, named: str) -> None:
    with pytest.raises(ValueError, match="calibration file") as error:
        _calibration(tmp_path, _broken(change))
    assert named in str(error.value)


def test_unreadable_calibration_files(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no-such\.json"):
        load_calibration(tmp_path / "no-such.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=r"bad\.json is not valid JSON"):
        load_calibration(bad)


def test_shipped_calibration_holds_the_h200_measurements() -> None:
    """The shipped table is the GPU suite's run on an H200 (docs/benchmarks.md)."""
    calibration = load_calibration(DEFAULT_CALIBRATION)
    assert calibration.device == "NVIDIA H200" and calibration.exec_path == "cuda_graph"
    steps = {e.key.describe(): e.step_seconds for e in calibration.entries}
    assert steps == {
        "nb201 single/first 32px batch 64 C=16 depth 5": 0.02733,
        "nb201 bi/first 32px batch 64 C=16 depth 5": 0.04635,
        "nb201 single/first 16px batch 64 C=16 depth 5": 0.01626,
        "nb201 bi/first 16px batch 64 C=16 depth 5": 0.02698,
        "nb201 single/first 32px batch 256 C=16 depth 5": 0.0767,
        "darts single/first 32px batch 64 C=16 depth 8": 0.1459,
        "darts bi/first 32px batch 64 C=16 depth 8": 0.9624,
        "darts single/first 224px batch 360 C=16 depth 8": 0.6965,
    }
    assert all(e.eval_seconds_per_image is not None for e in calibration.entries)
    assert calibration.packing == ((1, 1.0), (2, 0.927), (4, 0.935), (8, 0.936))


# ------------------------------------------------------------------------------ the CLI


EAGER_CALIBRATION = Path(__file__).parent / "data" / "eager_h200_calibration.json"


def test_paper_dry_run_prints_the_estimate(capsys) -> None:
    # The eager-path H200 table (step times only, no ImageNet16-120 entry), so that the
    # expected figures can be worked out by hand below.
    args = ["run", "paper", "--dry-run", "--gpus", "8", "--calibration", str(EAGER_CALIBRATION)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "186 trials in experiment 'paper'" in out
    assert "Estimated cost on NVIDIA H200 (calibration: " in out and "eager path" in out
    # by hand, epochs 50 each: NB201 bi 40 × cifar10 (391 steps) + 40 × cifar100 (782) at
    # 0.216 s; single 30 + 30 at 0.126 s; DARTS bi 3 × 391 at 0.732, single 3 × 391 at 0.434;
    # ImageNet at 0.59 s: 9 searches on all data (3470 steps) and 6 on half of it (1735 steps):
    # 2,025,198.9 s = 562.6 GPU-hours; 25 ImageNet16-120 trials left out
    seconds = 50 * (
        40 * (391 + 782) * 0.216 + 30 * (391 + 782) * 0.126 + 3 * 391 * (0.732 + 0.434)
        + (9 * 3470 + 6 * 1735) * 0.59
    )
    assert round(seconds / 3600, 1) == 562.6
    assert "161 of 186 trials, 8,050 epochs; 562.6 GPU-hours of search steps" in out
    # 8 GPUs: at least 562.6 / 8 = 70.3 h (each full ImageNet search 28.4 h); longest-first gives
    wall = next(line for line in out.splitlines() if "wall time" in line)
    assert "wall time with 8 GPUs, 1 trial per GPU" in wall and wall.endswith(": 70.7 h")
    assert "with 1 GPU" not in out
    assert "evaluation and per-epoch overhead not included" in out
    assert "25 trials (nb201 space, imagenet16-120) have no calibration entry" in out


def test_dry_run_defaults_to_1_and_8_gpus_and_packs_by_gpus_per_trial(capsys) -> None:
    assert main(["run", "table1", "--dry-run", "--gpus-per-trial", "0.25"]) == 0
    wall = next(line for line in capsys.readouterr().out.splitlines() if "wall time" in line)
    assert "with 1 GPU, 4 trials per GPU (--gpus-per-trial 0.25): " in wall
    assert ";  with 8 GPUs: " in wall


def test_dry_run_with_another_calibration(tmp_path, capsys) -> None:
    path = tmp_path / "cal.json"
    path.write_text(json.dumps(CALIBRATION))
    assert main(["run", "smoke", "--dry-run", "--calibration", str(path)]) == 0
    out = capsys.readouterr().out
    assert "Estimated cost on Test GPU (calibration: made up for tests, cuda_graph path)" in out
    assert "no trial has a calibration entry" in out  # smoke: C=8, 1 cell per stage
    assert "4 × nb201 single/first 32px batch 64 C=8 depth 1" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dry-run", "--gpus", "0"], "--gpus 0"),
        (["--dry-run", "--gpus", "-2"], "--gpus -2"),
        (["--dry-run", "--gpus", "1", "--gpus-per-trial", "2"], "fewer than --gpus-per-trial"),
        (["--dry-run", "--calibration", "BROKEN"], "entries[0].step_seconds"),
        (["--dry-run", "--calibration", "NOT_JSON"], "not valid JSON"),
        (["--dry-run", "--calibration", "MISSING"], "does not exist"),
        (["--gpus", "8"], "--dry-run"),
    ],
)
def test_bad_estimate_options_exit_2_before_anything(tmp_path, capsys, args, message) -> None:
    files = {
        "BROKEN": json.dumps(_broken(lambda d: d["entries"][0].update(step_seconds=0))),
        "NOT_JSON": "{",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    args = [str(tmp_path / a) if a in (*files, "MISSING") else a for a in args]
    results = tmp_path / "results"
    assert main(["run", "paper", *args, "--results", str(results)]) == EXIT_BAD_INPUT
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""
    assert not results.exists()


def test_help_documents_the_estimate_options(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--gpus N" in text and "--calibration FILE" in text
    assert "default: 1 and 8" in text and "gpu_calibration.json" in text


def test_estimate_is_finite_for_every_registered_grid() -> None:
    from study.grids import GRIDS, build_grid

    calibration = load_calibration()
    for name in GRIDS:
        estimate = estimate_cost(build_grid(name), calibration, 0.25)
        assert math.isfinite(estimate.wall_hours(8)) and estimate.gpu_hours >= 0


def test_shipped_calibration_estimates_the_paper_grid(capsys) -> None:
    """With the shipped (fast-path) table every paper trial has an entry, evaluation included;
    the figures docs/benchmarks.md and the README quote."""
    assert main(["run", "paper", "--dry-run", "--gpus-per-trial", "1"]) == 0
    out = capsys.readouterr().out
    assert "186 trials, 9,300 epochs; 483.1 GPU-hours of search steps + 6.8 of evaluation" in out
    assert "= 490.0 GPU-hours" in out
    assert "with 1 GPU, 1 trial per GPU (--gpus-per-trial 1): 490.0 h;  with 8 GPUs: 67.8 h" in out
    assert "no calibration entry" not in out


def test_shipped_calibration_estimates_the_nb201_searches_of_the_paper_grid() -> None:
    from study.cost import format_estimate
    from study.grids import build_grid

    nb201 = [c for c in build_grid("paper") if c.space == "nb201"]
    lines = format_estimate(estimate_cost(nb201, load_calibration(), 1.0), [1, 8])
    text = "\n".join(lines)
    assert len(nb201) == 165 and "= 63.9 GPU-hours" in text
    assert "63.9 h;  with 8 GPUs: 8.1 h" in text


def test_data_fraction_and_train_pool_scale_the_pools() -> None:
    """Half the data is half the steps and half the evaluation; the full CIFAR-10 pool doubles
    the steps; CIFAR-100's pool has nothing to add."""
    full = SearchConfig(dataset="cifar10", batch_size=64)
    assert pool_sizes(full) == (25_000, 25_000)
    assert pool_sizes(full.replace(data_fraction=0.5)) == (12_500, 12_500)
    assert epoch_steps(full.replace(data_fraction=0.5)) == math.ceil(12_500 / 64)
    assert pool_sizes(full.replace(train_pool="full")) == (50_000, 25_000)
    assert pool_sizes(SearchConfig(dataset="cifar100", data_fraction=0.1)) == (5_000, 500)
