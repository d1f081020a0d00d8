"""``study.compaction``: merging an experiment's part files into one, read back with
``analysis.results.load_results`` (real files written through the real writer; no Ray cluster)."""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "analysis"))  # the shared results builders

from builders import FakeTrial, record

from analysis.results import load_results
from analysis.store import SEARCH, results_schema
from study import compaction
from study.cli import EXIT_BAD_INPUT, main
from study.compaction import CompactionReport, compact_experiment, compact_results
from study.results import ParquetResultsWriter
from trainables.config import SearchConfig

ROWS = 7  # rows the ``study`` fixture writes, in FLUSHES part files
FLUSHES = 6


def _write(root: Path | str, experiment: str = "exp") -> ParquetResultsWriter:
    """Two trials, one flush per checkpoint: t1 epochs 1-3, t2 epochs 1-2, then t2 crashes and
    re-reports epoch 2 as attempt 1 with other numbers (the row ``load_results`` must keep)."""
    writer = ParquetResultsWriter(root, experiment)
    writer.setup()
    t1 = FakeTrial("t1", SearchConfig(seed=1).to_dict())
    t2 = FakeTrial("t2", SearchConfig(seed=2).to_dict())
    for epoch in (1, 2, 3):
        writer.on_trial_result(0, [], t1, record(epoch))
        writer.on_checkpoint(0, [], t1, None)
    writer.on_trial_result(0, [], t2, record(1))
    writer.on_trial_result(0, [], t2, record(2, valid_acc=10.0))
    writer.on_checkpoint(0, [], t2, None)
    t2.num_failures = 1
    writer.on_trial_result(0, [], t2, record(2, valid_acc=90.0))
    writer.on_checkpoint(0, [], t2, None)
    writer.on_trial_result(0, [], t2, record(3, valid_acc=91.0))
    writer.on_trial_complete(0, [], t2)
    return writer  # on_experiment_end (which compacts) is left to the test


@pytest.fixture
def study(tmp_path) -> Path:
    root = tmp_path / "results" / "parquet"
    _write(root)
    assert len(_parts(root)) == FLUSHES
    return root


def _parts(root: Path, experiment: str = "exp") -> list[Path]:
    return sorted((root / f"experiment={experiment}").glob("part-*.parquet"))


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _raw(paths: list[Path]) -> pa.Table:
    return pa.concat_tables(pq.read_table(p, partitioning=None) for p in paths)


def _rows(table: pa.Table) -> list[dict]:
    """The table's rows, NaN made comparable (Arrow's ``equals`` finds NaN != NaN)."""
    return [{k: "NaN" if v != v else v for k, v in row.items()} for row in table.to_pylist()]


def test_compaction_merges_every_row_into_one_file_and_reads_identically(study) -> None:
    before, before_final = load_results(study), load_results(study, final_only=True)
    inputs = _parts(study)
    raw = _raw(inputs)
    assert raw.num_rows == ROWS
    assert before.query("trial_id == 't2' and epoch == 2").valid_acc.tolist() == [90.0]
    assert before.query("trial_id == 't2' and epoch == 2").attempt.tolist() == [1]

    report = compact_experiment(study, "exp")

    (output,) = _parts(study)
    assert report == CompactionReport("exp", FLUSHES, ROWS, str(output).replace("\\", "/"))
    assert output.name.startswith("part-") and "-compacted-" in output.name
    assert pq.read_schema(output).equals(results_schema())
    merged = pq.read_table(output, partitioning=None)
    assert merged.num_rows == ROWS and _rows(merged) == _rows(raw)  # every row as is, in file order
    assert not [p for p in output.parent.iterdir() if p.name.endswith(".tmp")]
    assert (output.parent / "_metadata.json").is_file()  # the sidecar stays
    pd.testing.assert_frame_equal(load_results(study), before)
    pd.testing.assert_frame_equal(load_results(study, final_only=True), before_final)


def test_a_crash_between_writing_and_deleting_still_reads_identically(study) -> None:
    before = load_results(study)
    inputs = _parts(study)
    fs, folder = pafs.LocalFileSystem(), str(study / "experiment=exp")
    paths = [str(p) for p in inputs]
    output, rows = compaction._write_merged(fs, folder, paths, SEARCH)  # no delete
    assert rows == ROWS and len(_parts(study)) == FLUSHES + 1
    assert _raw(_parts(study)).num_rows == 2 * ROWS  # every row twice, as identical copies
    pd.testing.assert_frame_equal(load_results(study), before)

    report = compact_experiment(study, "exp")  # the next compaction merges the leftovers
    assert (report.files, report.rows) == (FLUSHES + 1, 2 * ROWS)
    assert len(_parts(study)) == 1 and output not in {str(p) for p in _parts(study)}
    pd.testing.assert_frame_equal(load_results(study), before)


def test_a_crash_while_writing_leaves_the_inputs_untouched(study, monkeypatch) -> None:
    snapshot = _snapshot(study / "experiment=exp")

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(compaction, "_read_small", crash)
    with pytest.raises(OSError, match="disk full"):
        compact_experiment(study, "exp")
    assert _snapshot(study / "experiment=exp") == snapshot  # no temp file either


def test_files_written_during_a_compaction_are_left_alone(study, monkeypatch) -> None:
    before = len(load_results(study))
    late_writer = ParquetResultsWriter(study, "exp")
    read, lock, written = compaction._read_small, threading.Lock(), []

    def write_a_part_meanwhile(fs, path, schema):  # runs in the read-ahead threads
        with lock:
            if not written:  # one new part file while the merged one is being written
                written.append(late_writer.flush())
        return read(fs, path, schema)

    trial = FakeTrial("t3", SearchConfig(seed=3).to_dict())
    late_writer.on_trial_result(0, [], trial, record(1))
    monkeypatch.setattr(compaction, "_read_small", write_a_part_meanwhile)
    report = compact_experiment(study, "exp")
    assert report.files == FLUSHES
    parts = _parts(study)
    assert len(parts) == 2 and sum("-compacted-" in p.name for p in parts) == 1
    assert written[0] in {str(p) for p in parts}
    assert len(load_results(study)) == before + 1


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(b"this is not parquet", id="not-parquet"),
        pytest.param(pa.table({"x": [1, 2]}), id="foreign-schema"),
        pytest.param("other-experiment", id="rows-of-another-experiment"),
    ],
)
def test_a_bad_part_file_raises_naming_it_and_nothing_is_written_or_deleted(
    study, tmp_path, bad
) -> None:
    path = study / "experiment=exp" / "part-zz-bad.parquet"
    if isinstance(bad, bytes):
        path.write_bytes(bad)
    elif isinstance(bad, pa.Table):
        pq.write_table(bad, path)
    else:
        _write(tmp_path / "elsewhere", "other")
        path.write_bytes(_parts(tmp_path / "elsewhere", "other")[0].read_bytes())
    snapshot = _snapshot(study / "experiment=exp")
    with pytest.raises(ValueError, match=r"part-zz-bad\.parquet"):
        compact_experiment(study, "exp")
    assert _snapshot(study / "experiment=exp") == snapshot


def test_min_files(study) -> None:
    snapshot = _snapshot(study / "experiment=exp")
    assert compact_experiment(study, "exp", min_files=FLUSHES + 1) == CompactionReport(
        "exp", 0, 0, None
    )
    assert _snapshot(study / "experiment=exp") == snapshot
    compact_experiment(study, "exp", min_files=FLUSHES)
    (output,) = _parts(study)
    assert compact_experiment(study, "exp").output is None  # one file: nothing to do
    assert _parts(study) == [output]
    with pytest.raises(ValueError, match="min_files"):
        compact_experiment(study, "exp", min_files=0)


@pytest.mark.parametrize("streamed", [False, True], ids=["read-ahead", "streamed"])
def test_small_output_row_groups_still_keep_every_row(study, monkeypatch, streamed) -> None:
    before = load_results(study)
    monkeypatch.setattr(compaction, "ROW_GROUP_ROWS", 3)
    if streamed:  # every input counts as large: read one row group at a time
        monkeypatch.setattr(compaction, "READ_AHEAD_BYTES", 0)
    compact_experiment(study, "exp")
    (output,) = _parts(study)
    metadata = pq.ParquetFile(output).metadata
    sizes = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
    assert sum(sizes) == ROWS and len(sizes) > 1 and max(sizes) <= 3
    pd.testing.assert_frame_equal(load_results(study), before)
    compact_experiment(study, "exp", min_files=1)  # a multi-row-group input, streamed or not
    pd.testing.assert_frame_equal(load_results(study), before)


def test_uri_roots_and_the_results_folder_of_study_run(study) -> None:
    before = load_results(study)
    results = study.parent  # holds parquet/
    (report,) = compact_results(results.as_uri())
    assert report.files == FLUSHES and report.output and report.output.endswith(".parquet")
    assert len(_parts(study)) == 1
    pd.testing.assert_frame_equal(load_results(study), before)
    assert compact_experiment(study.as_uri(), "exp").output is None
    with pytest.raises(FileNotFoundError, match="nope"):
        compact_experiment(study.as_uri(), "nope")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        compact_results(results / "nowhere")


def test_cli_compact(study, capsys) -> None:
    results = study.parent
    _write(study, "second")
    assert main(["compact", str(results), "--experiment", "exp"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith(f"exp: {FLUSHES} part files -> ")
    assert out[0].endswith(f" ({ROWS} rows)") and "-compacted-" in out[0]
    assert len(_parts(study, "second")) == FLUSHES  # not asked for

    assert main(["compact", str(results)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0] == "exp: nothing to compact (fewer than 2 part files)"
    assert out[1].startswith(f"second: {FLUSHES} part files -> ")
    assert len(_parts(study)) == len(_parts(study, "second")) == 1


def test_cli_compact_bad_input_exits_2_naming_it(study, tmp_path, capsys) -> None:
    assert main(["compact", str(tmp_path / "nowhere")]) == EXIT_BAD_INPUT
    assert str(tmp_path / "nowhere") in capsys.readouterr().err
    assert main(["compact", str(study.parent), "--experiment", "nope"]) == EXIT_BAD_INPUT
    assert "nope" in capsys.readouterr().err
    bad = study / "experiment=exp" / "part-bad.parquet"
    bad.write_bytes(b"not parquet at all")
    assert main(["compact", str(study.parent)]) == EXIT_BAD_INPUT
    assert "part-bad.parquet" in capsys.readouterr().err
    assert len(_parts(study)) == FLUSHES + 1  # nothing merged or deleted


def test_experiment_end_compacts_and_never_raises(tmp_path, caplog) -> None:
    root = tmp_path / "parquet"
    writer = _write(root)
    trial = FakeTrial("t1", SearchConfig(seed=1).to_dict())
    writer.on_trial_result(0, [], trial, record(4))  # still buffered: the end flushes it first
    before_parts = _parts(root)
    writer.on_experiment_end([])
    (output,) = _parts(root)
    assert "-compacted-" in output.name and output not in before_parts
    assert pq.read_metadata(output).num_rows == ROWS + 1
    assert len(load_results(root)) == 6 + 1  # t1 epochs 1-4, t2 epochs 1-3

    (root / "experiment=exp" / "part-bad.parquet").write_bytes(b"junk")
    writer.on_trial_result(0, [], trial, record(5))
    with caplog.at_level(logging.ERROR, logger="study.results"):
        writer.on_experiment_end([])  # logged, not raised
    assert "could not compact" in caplog.text and "part-bad.parquet" in caplog.text
    assert len(_parts(root)) == 3  # the compacted file, the new flush and the bad file


def test_part_files_from_before_exec_path_compact_and_read_as_null(study) -> None:
    """Files written before the ``exec_path`` record field (an experiment resumed after the
    upgrade) are not foreign: they compact, and their rows read with exec_path null."""
    old = _parts(study)[:3]
    for path in old:
        table = pq.read_table(path)
        pq.write_table(table.drop_columns(["exec_path"]), path)
    before = load_results(study)
    assert before["exec_path"].isna().sum() > 0 and before["exec_path"].notna().sum() > 0
    report = compact_experiment(study, "exp")
    assert report.files == FLUSHES
    (merged,) = _parts(study)
    assert pq.read_schema(merged).equals(results_schema())
    pd.testing.assert_frame_equal(load_results(study), before)
