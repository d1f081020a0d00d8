"""``analysis.results.load_results`` on hand-written part files (no Ray, no torch)."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analysis.results import load_results

T0 = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)  # noqa: UP017 (Python 3.10)
SCHEMA = pa.schema(
    [
        ("experiment", pa.string()),
        ("trial_id", pa.string()),
        ("attempt", pa.int64()),
        ("reported_at", pa.timestamp("us", tz="UTC")),
        ("seed", pa.int64()),
        ("epoch", pa.int64()),
        ("train_loss", pa.float64()),
        ("genotype", pa.string()),
        ("alpha_normal", pa.list_(pa.list_(pa.float64()))),
    ]
)


def _row(experiment, trial, epoch, attempt=0, loss=None, seconds=0, seed=0):
    return {
        "experiment": experiment,
        "trial_id": trial,
        "attempt": attempt,
        "reported_at": T0 + dt.timedelta(seconds=seconds),
        "seed": seed,
        "epoch": epoch,
        "train_loss": float(epoch + 10 * attempt) if loss is None else loss,
        "genotype": f"g{epoch}",
        "alpha_normal": [[0.5, 0.5]],
    }


def _write(root: Path, experiment: str, name: str, rows: list[dict]) -> Path:
    folder = root / f"experiment={experiment}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"part-{name}.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), path)
    return path


@pytest.fixture
def study(tmp_path) -> Path:
    # Trial a: attempt 0 reports 1..3, crashes; attempt 1 re-reports 2..3, then 4.
    _write(tmp_path, "exp", "1", [_row("exp", "a", e, 0, seconds=e) for e in (1, 2, 3)])
    _write(tmp_path, "exp", "2", [_row("exp", "a", e, 1, seconds=10 + e) for e in (2, 3, 4)])
    # Trial b: a same-attempt re-report of epoch 2: the later report wins.
    _write(
        tmp_path,
        "exp",
        "3",
        [_row("exp", "b", 1), _row("exp", "b", 2, loss=7.0, seconds=1)],
    )
    _write(tmp_path, "exp", "4", [_row("exp", "b", 2, loss=8.0, seconds=2)])
    _write(tmp_path, "other", "1", [_row("other", "c", e) for e in (1, 2)])
    (tmp_path / "experiment=exp" / "_metadata.json").write_text("{}")
    return tmp_path


def test_last_attempt_wins_one_row_per_trial_epoch(study) -> None:
    frame = load_results(study)
    keys = list(zip(frame.experiment, frame.trial_id, frame.epoch, strict=True))
    assert keys == [
        ("exp", "a", 1),
        ("exp", "a", 2),
        ("exp", "a", 3),
        ("exp", "a", 4),
        ("exp", "b", 1),
        ("exp", "b", 2),
        ("other", "c", 1),
        ("other", "c", 2),
    ]
    trial_a = frame[frame.trial_id == "a"]
    assert trial_a.attempt.tolist() == [0, 1, 1, 1]
    assert trial_a.train_loss.tolist() == [1.0, 12.0, 13.0, 14.0]
    assert frame[frame.trial_id == "b"].train_loss.tolist() == [1.0, 8.0]
    assert frame.index.tolist() == list(range(len(frame)))
    assert frame.epoch.dtype == "int64" and frame.attempt.dtype == "int64"
    assert frame.seed.dtype == "Int64" and frame.train_loss.dtype == "float64"
    assert str(frame.reported_at.dtype) == "datetime64[us, UTC]"
    assert frame.alpha_normal.iloc[0] == [[0.5, 0.5]]


def test_final_only_keeps_each_trials_last_epoch(study) -> None:
    frame = load_results(study, final_only=True)
    assert list(zip(frame.trial_id, frame.epoch, strict=True)) == [("a", 4), ("b", 2), ("c", 2)]
    assert frame.train_loss.tolist() == [14.0, 8.0, 2.0]


def test_experiments_filter(study) -> None:
    frame = load_results(study, experiments=["other"])
    assert set(frame.experiment) == {"other"} and len(frame) == 2
    assert len(load_results(study, experiments="exp")) == 6
    with pytest.raises(FileNotFoundError, match="nope"):
        load_results(study, experiments=["nope"])


def test_corrupt_file_raises_naming_it_or_is_skipped_with_a_warning(study) -> None:
    bad = study / "experiment=exp" / "part-5.parquet"
    bad.write_bytes(b"this is not parquet")
    with pytest.raises(ValueError, match=r"part-5\.parquet"):
        load_results(study)
    with pytest.warns(UserWarning, match=r"part-5\.parquet"):
        frame = load_results(study, on_bad_file="skip")
    assert len(frame) == 8


def test_foreign_parquet_file_missing_keys_is_bad(study) -> None:
    foreign = study / "experiment=other" / "part-9.parquet"
    pq.write_table(pa.table({"x": [1, 2]}), foreign)
    with pytest.raises(ValueError, match=r"part-9\.parquet.*epoch"):
        load_results(study)
    with pytest.warns(UserWarning, match=r"part-9\.parquet"):
        assert len(load_results(study, on_bad_file="skip")) == 8


def test_file_of_another_experiment_is_bad(study) -> None:
    _write(study, "other", "7", [_row("exp", "a", 9)])
    with pytest.raises(ValueError, match=r"part-7\.parquet"):
        load_results(study)


def test_missing_or_empty_root_raises_naming_it(tmp_path) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(FileNotFoundError, match="missing"):
        load_results(missing)
    (tmp_path / "empty" / "experiment=exp").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="empty"):
        load_results(tmp_path / "empty")


def test_invalid_on_bad_file(study) -> None:
    with pytest.raises(ValueError, match="on_bad_file"):
        load_results(study, on_bad_file="ignore")  # type: ignore[arg-type]


def test_uri_root_goes_through_pyarrow_filesystems(study) -> None:
    frame = load_results(study.as_uri())
    assert len(frame) == 8


def test_analysis_imports_neither_ray_torch_nor_pyplot() -> None:
    """Every analysis module loads on a machine without Ray or torch, and leaves pyplot alone."""
    root = Path(__file__).resolve().parents[2]
    code = (
        "import sys, analysis.results, analysis.frame, analysis.collapse, analysis.tables, "
        "analysis.alphas, analysis.figures; "
        "bad = [m for m in ('ray', 'torch', 'matplotlib.pyplot') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True)


def test_alphas_false_leaves_out_the_alpha_lists_only(study) -> None:
    full = load_results(study)
    lean = load_results(study, alphas=False)
    assert "alpha_normal" in full and "alpha_normal" not in lean
    assert list(lean.columns) == [c for c in full.columns if c != "alpha_normal"]
    assert lean.train_loss.tolist() == full.train_loss.tolist()
    assert full.alpha_normal.iloc[0] == [[0.5, 0.5]]  # cells read as nested Python lists


def test_study_run_results_folder_resolves_to_its_parquet_subfolder(
    study, tmp_path_factory
) -> None:
    outer = tmp_path_factory.mktemp("results")
    shutil.copytree(study, outer / "parquet")
    assert len(load_results(outer)) == len(load_results(outer / "parquet")) == 8
