"""The results store (``analysis.store``): the schema follows SearchConfig and the records,
docs/results.md is its current description and its recipes run, and the store's helpers keep
their promises (names, atomic writes, the sidecar, older files)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pytest
from builders import HEALTHY, TrialSpec, record, write_study

from analysis import store
from trainables import records as R
from trainables.config import FIELD_TYPES, SearchConfig

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "results.md"


def test_schema_is_keys_then_config_fields_then_record_fields() -> None:
    schema = store.results_schema()
    assert schema.names == [
        *store.KEY_COLUMNS, *SearchConfig.field_names(), *R.RECORD_FIELDS, *store.TUNING_COLUMNS
    ]
    expected = {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_()}
    for name, kind in FIELD_TYPES.items():
        assert schema.field(name).type == expected[kind.base], name
    assert schema.field(R.EPOCH).type == pa.int64()
    assert schema.field(R.ALPHA["normal"]).type == pa.list_(pa.list_(pa.float64()))
    assert schema.field(R.EXEC_PATH).type == pa.string()
    assert all(not schema.field(k).nullable for k in store.KEY_COLUMNS)
    groups = {c.name: c.group for c in store.SEARCH.columns}
    assert groups[R.EXEC_PATH] == "execution" and groups["w_lr"] == "config"


def test_an_older_schema_conforms_with_nulls() -> None:
    schema = store.results_schema()
    older = pa.schema([f for f in schema if f.name != R.EXEC_PATH])
    assert store.SEARCH.is_older(older) and store.SEARCH.is_readable(older)
    foreign = pa.schema([f for f in schema if f.name != R.EPOCH])  # not an added column
    assert not store.SEARCH.is_readable(foreign)
    table = pa.Table.from_pylist([], schema=older)
    assert store.SEARCH.conform(table).schema.equals(schema)


def test_docs_results_md_is_the_current_column_table(tmp_path: Path) -> None:
    copy = tmp_path / "results.md"
    shutil.copy(DOC, copy)
    assert not store.update_doc(copy), "docs/results.md is stale: python -m analysis.store docs/results.md"
    text = DOC.read_text()  # the generated column table; other tables (the sidecar's) follow it
    columns = text[text.index(store.DOC_START) : text.index(store.DOC_END)]
    documented = re.findall(r"^\| `([^`]+)` \| ([^|]+) \|", columns, flags=re.MULTILINE)
    schema = store.results_schema()
    assert [name for name, _ in documented] == schema.names
    for name, type_text in documented:
        assert type_text.removesuffix(", not null").strip() == str(schema.field(name).type), name


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "a\\b", "k=v"])
def test_bad_experiment_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="must be a non-empty name"):
        store.check_experiment_name(name)


def test_part_names_sort_by_time_and_are_recognised() -> None:
    first, second = store.new_part_name(), store.new_part_name(store.COMPACTED_TAG)
    assert store.is_part_file(first) and store.is_part_file(second)
    assert "-compacted-" in second and first < second
    assert not store.is_part_file(f".{first}.abcd1234.tmp")


def test_atomic_write_leaves_nothing_when_the_write_fails(tmp_path: Path) -> None:
    fs, base = store.resolve_location(tmp_path)

    def fail(tmp: str) -> None:
        Path(tmp).write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        store.atomic_write(fs, f"{base}/x.parquet", fail)
    assert list(tmp_path.iterdir()) == []


def test_the_sidecar_records_every_run_and_survives_a_damaged_file(tmp_path: Path, caplog) -> None:
    fs = pafs.LocalFileSystem()
    folder = str(tmp_path)
    store.record_run(fs, folder, "e", {"started_at": "t1", "git_revision": "abc"})
    store.record_run(fs, folder, "e", {"started_at": "t2"})
    meta = json.loads((tmp_path / store.METADATA_FILE).read_text())
    assert [r["started_at"] for r in meta["runs"]] == ["t1", "t2"]
    assert meta["kind"] == "search" and meta["columns"] == store.results_schema().names
    assert meta["created_at"] == "t1" and meta["git_revision"] == "abc"
    (tmp_path / store.METADATA_FILE).write_text("{not json")
    store.record_run(fs, folder, "e", {"started_at": "t3"})
    assert "unreadable" in caplog.text
    assert [r["started_at"] for r in json.loads((tmp_path / store.METADATA_FILE).read_text())["runs"]] == ["t3"]


# ---------------------------------------------------------------------- the doc's recipes
def _recipes() -> list[str]:
    section = DOC.read_text().split("## Three pandas recipes", 1)[1]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


def test_the_doc_has_three_recipes() -> None:
    assert len(_recipes()) == 3


@pytest.mark.parametrize("index", [0, 1, 2])
def test_each_recipe_runs_on_a_results_folder(index: int, tmp_path: Path, capsys) -> None:
    bench = {"cifar10_test": 90.0}
    trials = [
        TrialSpec(f"t{level}{seed}", SearchConfig(dataset="cifar10", level=level, seed=seed,
                                                   activation="sigmoid", epochs=2),
                  [record(e, genotype=HEALTHY, bench=bench) for e in (1, 2)])
        for level in ("single", "bi")
        for seed in (0, 1)
    ]
    trials.append(TrialSpec("tsingle0", trials[0].config, [record(2, bench={"cifar10_test": 91.0})],
                            attempt=1))  # epoch 2 re-reported after a crash
    write_study(tmp_path / "parquet", "recipes", trials)
    exec(_recipes()[index], {"RESULTS": str(tmp_path)})
    out = capsys.readouterr().out
    if index == 0:
        assert "Single-DARTS" in out and "90.5" in out  # (91 + 90) / 2: the re-report won
    elif index == 1:
        assert "tsingle0" in out
    else:
        assert "9 rows in the files, 8 results" in out


def test_an_older_file_reads_added_config_fields_as_their_defaults() -> None:
    """Config fields added later read as the default (what every older search did), so old and
    new rows of one search agree; other added columns read as null."""
    schema = store.results_schema()
    row = {name: None for name in schema.names}
    row.update(experiment="e", trial_id="t", attempt=0, epoch=1)
    older = pa.schema([f for f in schema if f.name not in store.ADDED_CONFIG_FIELDS])
    table = pa.Table.from_pylist([{k: row[k] for k in older.names}], schema=older)
    assert store.SEARCH.is_readable(older)
    read = store.SEARCH.conform(table).to_pylist()[0]
    assert {name: read[name] for name in store.ADDED_CONFIG_FIELDS} == {
        "data_fraction": 1.0, "data_fraction_seed": 0, "train_pool": "split",
        "genotype_none": "include",
    }
    assert read[R.EXEC_PATH] is None
