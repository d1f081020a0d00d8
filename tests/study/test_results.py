"""``study.results.ParquetResultsWriter`` on a real local Ray cluster, read back with
``analysis.results.load_results``."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from ray import tune

from analysis.results import load_results
from analysis.store import results_schema
from study.results import ParquetResultsWriter
from trainables import records as R
from trainables.config import SearchConfig
from trainables.search import run_search
from trainables.tune_trainable import FAIL_ONCE_AT_EPOCH, search_trainable

BASE = SearchConfig(
    dataset="synthetic", channels=4, depth=1, batch_size=16, steps_per_epoch=2, probe_every=0
)


def _fit(tmp_path, param_space: dict, writer: ParquetResultsWriter, max_failures: int = 0):
    return tune.Tuner(
        tune.with_resources(search_trainable, {"cpu": 1}),
        param_space=param_space,
        run_config=tune.RunConfig(
            storage_path=str(tmp_path / "ray"),
            name="run",
            verbose=0,
            callbacks=[writer],
            failure_config=tune.FailureConfig(max_failures=max_failures),
        ),
    ).fit()


def _plain(value):
    """A DataFrame cell as a plain Python value (numpy scalars unwrapped, missing -> None)."""
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    return value.item() if hasattr(value, "item") else value


def _raw(folder: Path) -> pa.Table:
    parts = sorted(folder.glob("part-*.parquet"))
    assert parts
    for part in parts:
        assert pq.read_schema(part).equals(results_schema()), part
    return pa.concat_tables(pq.read_table(part, partitioning=None) for part in parts)


def test_schema_has_every_config_and_record_field_once() -> None:
    schema = results_schema()
    assert schema.names[:4] == ["experiment", "trial_id", "attempt", "reported_at"]
    assert len(set(schema.names)) == len(schema.names)
    assert set(SearchConfig.field_names()) <= set(schema.names)
    assert set(R.RECORD_FIELDS) <= set(schema.names)
    assert not set(R.RECORD_FIELDS) & set(SearchConfig.field_names())
    assert schema.field("alpha_init").type == pa.float64() and schema.field("alpha_init").nullable
    assert schema.field("depth").type == pa.int64()
    assert schema.field(R.ALPHA["reduce"]).type == pa.list_(pa.list_(pa.float64()))
    assert schema.field(R.BENCH["cifar10_test"]).type == pa.float64()
    assert schema.field(R.EPOCH).type == pa.int64()


def test_writer_records_every_epoch_of_every_trial(ray_local, tmp_path) -> None:
    root = tmp_path / "results"
    space = {**BASE.replace(epochs=2).to_dict(), "seed": tune.grid_search([0, 1])}
    results = _fit(tmp_path, space, ParquetResultsWriter(root, "exp"))
    assert not results.errors
    folder = root / "experiment=exp"
    assert sorted(p.name for p in root.iterdir()) == ["experiment=exp"]
    raw = _raw(folder)
    assert raw.num_rows == 4  # 2 trials x 2 epochs, no extra rows
    frame = load_results(root)
    assert len(frame) == 4
    assert sorted(frame.seed.tolist()) == [0, 0, 1, 1]
    for _, trial in frame.groupby("trial_id"):
        assert trial.epoch.tolist() == [1, 2]
        assert (trial.attempt == 0).all()
    assert (frame.status == R.STATUS_OK).all()
    assert (frame.experiment == "exp").all()
    assert (frame.depth == 1).all() and frame.alpha_init.isna().all()
    assert (frame.w_lr == BASE.w_lr).all() and frame.epoch_w_lr.notna().all()
    assert frame[R.ALPHA["reduce"]].isna().all()  # nb201 has no reduce cell
    assert len(frame[R.ALPHA["normal"]].iloc[0]) == 6  # edges x ops nested lists
    assert FAIL_ONCE_AT_EPOCH not in frame.columns
    row = frame.iloc[0]
    config = SearchConfig.from_dict({n: _plain(row[n]) for n in SearchConfig.field_names()})
    assert config.replace(seed=0) == BASE.replace(epochs=2)

    metadata = json.loads((folder / "_metadata.json").read_text())
    expected = {
        "experiment",
        "created_at",
        "versions",
        "git_revision",
        "metric_directions",
        "columns",
        "runs",
    }
    assert expected <= set(metadata)
    assert metadata["experiment"] == "exp"
    assert metadata["columns"] == results_schema().names
    assert metadata["metric_directions"] == R.METRIC_DIRECTIONS
    assert set(metadata["versions"]) >= {"python", "torch", "ray", "pyarrow", "pandas", "numpy"}
    assert len(metadata["runs"]) == 1

    # A second writer start on the same experiment keeps created_at and appends a run.
    ParquetResultsWriter(root, "exp").setup()
    again = json.loads((folder / "_metadata.json").read_text())
    assert again["created_at"] == metadata["created_at"] and len(again["runs"]) == 2


@pytest.mark.slow
def test_restarted_trial_last_attempt_wins(ray_local, tmp_path) -> None:
    config = BASE.replace(level="bi", epochs=3)
    undisturbed = list(run_search(config))
    root = tmp_path / "results"
    space = {**config.to_dict(), FAIL_ONCE_AT_EPOCH: 1}
    results = _fit(tmp_path, space, ParquetResultsWriter(root, "fault"), max_failures=2)
    assert not results.errors
    raw = _raw(root / "experiment=fault").to_pandas()
    # The first attempt (attempt 0) reported epoch 1 and crashed; Trial.num_failures made the
    # restarted attempt's rows attempt 1.
    assert set(raw.attempt) == {0, 1}
    assert raw[raw.attempt == 0].epoch.max() == 1
    assert FAIL_ONCE_AT_EPOCH not in raw.columns

    frame = load_results(root)
    assert frame.epoch.tolist() == [1, 2, 3]
    assert frame.attempt.tolist() == [0, 1, 1]
    final = load_results(root, final_only=True).iloc[0]
    expected = undisturbed[-1]
    for name in (R.TRAIN_LOSS, R.VALID_LOSS, R.GENOTYPE, R.STEPS, R.W_LR):
        assert final[name] == expected[name], name
    assert final[R.ALPHA["normal"]] == expected[R.ALPHA["normal"]]


def test_flush_every_and_malformed_results_become_nulls(tmp_path) -> None:
    class FakeTrial:
        def __init__(self) -> None:
            self.trial_id = "t1"
            self.num_failures = 0
            self.config = {**BASE.to_dict(), FAIL_ONCE_AT_EPOCH: 1}

    writer = ParquetResultsWriter(tmp_path, "unit", flush_every=2)
    trial = FakeTrial()
    writer.on_trial_result(0, [trial], trial, {R.EPOCH: 1, R.TRAIN_LOSS: "oops"})
    assert not list((tmp_path / "experiment=unit").glob("part-*"))
    writer.on_trial_result(0, [trial], trial, {R.EPOCH: 2, R.TRAIN_LOSS: 1.5, "extra": 1})
    (part,) = (tmp_path / "experiment=unit").glob("part-*.parquet")
    table = pq.read_table(part, partitioning=None)
    assert table.schema.equals(results_schema())
    assert table.column(R.TRAIN_LOSS).to_pylist() == [None, 1.5]
    assert table.column(R.GENOTYPE).to_pylist() == [None, None]
    assert writer.flush() is None  # nothing buffered
    assert not [p for p in (tmp_path / "experiment=unit").iterdir() if p.suffix == ".tmp"]


@pytest.mark.parametrize("name", ["", "a/b", "..", "x=y"])
def test_experiment_name_must_stay_inside_root(tmp_path, name) -> None:
    with pytest.raises(ValueError, match="experiment"):
        ParquetResultsWriter(tmp_path, name)


def test_writer_and_reader_work_through_a_filesystem_uri(tmp_path) -> None:
    """Locations are resolved by pyarrow (here file://; s3:// goes the same way)."""

    class FakeTrial:
        trial_id, num_failures, config = "t9", 0, BASE.to_dict()

    uri = (tmp_path / "store").as_uri()
    writer = ParquetResultsWriter(uri, "uri", flush_every=1)
    trial = FakeTrial()
    for epoch in (1, 2):
        writer.on_trial_result(0, [trial], trial, {R.EPOCH: epoch, R.TRAIN_LOSS: 0.5 * epoch})
    writer.on_experiment_end([trial])
    assert (tmp_path / "store" / "experiment=uri" / "_metadata.json").is_file()
    frame = load_results(uri, experiments=["uri"])
    assert frame[R.EPOCH].tolist() == [1, 2] and frame[R.TRAIN_LOSS].tolist() == [0.5, 1.0]
    restored = pickle.loads(pickle.dumps(writer))  # Tune pickles callbacks with its state
    restored.on_trial_result(0, [trial], trial, {R.EPOCH: 3, R.TRAIN_LOSS: 1.5})
    assert load_results(uri, experiments=["uri"])[R.EPOCH].tolist() == [1, 2, 3]


def test_a_restored_writer_writes_where_the_current_command_says(tmp_path) -> None:
    """Tuner.restore unpickles the first run's writer (its saved root: folder A). When the
    rerun's command built its writer on folder B (a copied or moved folder), the restored one
    writes into B and leaves A alone."""
    import pickle

    class OneTrial:
        trial_id = "t1"
        num_failures = 1
        config = BASE.to_dict()

    first = ParquetResultsWriter(tmp_path / "A", "k")
    saved = pickle.dumps(first)  # what Tune keeps in the experiment's tuner.pkl
    ParquetResultsWriter(tmp_path / "B", "k")  # the rerun's command, on the copy
    restored = pickle.loads(saved)
    assert restored.root == str(tmp_path / "B")
    restored.setup()
    restored.on_trial_result(0, [], OneTrial(), {R.EPOCH: 2, R.TRAIN_LOSS: 1.0})
    restored.on_trial_complete(0, [], OneTrial())
    assert len(list((tmp_path / "B" / "experiment=k").glob("part-*.parquet"))) == 1
    assert not list(tmp_path.glob("A/experiment=k/part-*"))
