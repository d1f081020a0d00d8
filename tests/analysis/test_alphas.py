"""``analysis.alphas.alpha_long`` on results folders written through the real writer."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from builders import TrialSpec, record, write_study

from analysis.alphas import DARTS_EDGE_LABELS, NB201_EDGE_LABELS, alpha_long
from analysis.results import load_results
from search_spaces.genotypes import DARTS_OPS, NB201_OPS
from trainables.config import SearchConfig

COLUMNS = ["experiment", "trial_id", "epoch", "cell", "edge", "op"]


def grid(n_edges: int, n_ops: int, base: float) -> list[list[float]]:
    """A distinct value per edge × op: base + edge / 10 + op / 1000 (exact in float64)."""
    return [[base + e / 10 + o / 1000 for o in range(n_ops)] for e in range(n_edges)]


def nb201_record(epoch: int, base: float) -> dict:
    return record(epoch, alpha=grid(6, 5, base), alpha_grad=grid(6, 5, -base))


def darts_record(epoch: int, base: float) -> dict:
    values = record(epoch, alpha=grid(14, 8, base), alpha_grad=grid(14, 8, -base))
    values["alpha_reduce"] = grid(14, 8, base + 50)
    values["alpha_grad_reduce"] = grid(14, 8, -base - 50)
    return values


@pytest.fixture(scope="module")
def nb201_frame(tmp_path_factory) -> pd.DataFrame:
    root = tmp_path_factory.mktemp("nb201")
    trials = [
        TrialSpec(t, SearchConfig(seed=s), [nb201_record(e, 100 * s + e) for e in (1, 2, 3)])
        for t, s in (("a", 0), ("b", 1))
    ]
    write_study(root, "exp", trials)
    return load_results(root)


@pytest.fixture(scope="module")
def darts_frame(tmp_path_factory) -> pd.DataFrame:
    root = tmp_path_factory.mktemp("darts")
    config = SearchConfig(space="darts", seed=3)
    write_study(root, "dexp", [TrialSpec("d", config, [darts_record(e, e) for e in (1, 2)])])
    write_study(root, "nexp", [TrialSpec("n", SearchConfig(), [nb201_record(1, 7)])])
    return load_results(root)


def test_nb201_rows_labels_and_values_read_back_exactly(nb201_frame) -> None:
    long = alpha_long(nb201_frame)
    assert list(long.columns) == [*COLUMNS, "weight"]
    assert len(long) == 2 * 3 * 6 * 5  # trials × epochs × edges × ops; no NB201 reduce cell
    assert set(long["cell"]) == {"normal"}
    first = long[(long.trial_id == "a") & (long.epoch == 1)]
    assert list(pd.unique(first["edge"])) == ["1<-0", "2<-0", "2<-1", "3<-0", "3<-1", "3<-2"]
    assert list(first["op"][:5]) == list(NB201_OPS)
    for trial, seed in (("a", 0), ("b", 1)):
        for epoch in (1, 2, 3):
            rows = long[(long.trial_id == trial) & (long.epoch == epoch)]
            expected = np.array(grid(6, 5, 100 * seed + epoch)).reshape(-1)
            assert np.array_equal(rows["weight"].to_numpy(), expected)
    one = long[(long.trial_id == "b") & (long.epoch == 2) & (long.edge == "3<-1")]
    assert one.set_index("op")["weight"]["nor_conv_3x3"] == 102 + 4 / 10 + 3 / 1000


def test_dtypes_are_stable(nb201_frame) -> None:
    long = alpha_long(nb201_frame, columns=("seed",))
    for name in ("experiment", "trial_id", "cell", "edge", "op"):
        assert long[name].dtype == "string", name
    assert long["epoch"].dtype == np.int64
    assert long["weight"].dtype == np.float64
    assert list(long.drop_duplicates("trial_id")["seed"]) == [0, 1]
    empty = alpha_long(nb201_frame.iloc[:0], columns=("seed",))
    assert len(empty) == 0
    assert list(empty.columns) == [*COLUMNS, "weight", "seed"]
    assert empty["op"].dtype == "string"
    assert empty["epoch"].dtype == np.int64
    assert empty["weight"].dtype == np.float64


def test_alpha_grad_kind(nb201_frame) -> None:
    long = alpha_long(nb201_frame, kind="alpha_grad")
    assert list(long.columns) == [*COLUMNS, "grad"]
    rows = long[(long.trial_id == "a") & (long.epoch == 3)]
    assert np.array_equal(rows["grad"].to_numpy(), np.array(grid(6, 5, -3)).reshape(-1))
    with pytest.raises(ValueError, match="kind"):
        alpha_long(nb201_frame, kind="beta")


def test_darts_space_has_both_cells_in_order(darts_frame) -> None:
    long = alpha_long(darts_frame)
    darts = long[long.trial_id == "d"]
    assert len(darts) == 2 * 2 * 14 * 8  # epochs × cells × edges × ops
    assert len(long[long.trial_id == "n"]) == 6 * 5
    epoch = darts[darts.epoch == 2]
    assert list(epoch["cell"]) == ["normal"] * 14 * 8 + ["reduce"] * 14 * 8
    assert list(pd.unique(epoch["edge"])) == list(DARTS_EDGE_LABELS)
    assert list(DARTS_EDGE_LABELS[:3]) == ["2<-0", "2<-1", "3<-0"]
    assert DARTS_EDGE_LABELS[-1] == "5<-4"
    assert list(epoch["op"][:8]) == list(DARTS_OPS)
    reduce = epoch[epoch.cell == "reduce"]["weight"].to_numpy()
    assert np.array_equal(reduce, np.array(grid(14, 8, 52)).reshape(-1))
    grads = alpha_long(darts_frame, "alpha_grad")
    assert set(grads[grads.trial_id == "d"]["cell"]) == {"normal", "reduce"}
    assert set(long[long.trial_id == "n"]["edge"]) == set(NB201_EDGE_LABELS)


def test_missing_alpha_is_skipped(tmp_path) -> None:
    records = [nb201_record(e, e) for e in (1, 2, 3)]
    records[1]["alpha_normal"] = None
    write_study(tmp_path, "exp", [TrialSpec("a", SearchConfig(), records)])
    long = alpha_long(load_results(tmp_path))
    assert sorted(set(long["epoch"])) == [1, 3]
    assert len(long) == 2 * 6 * 5


@pytest.mark.parametrize(
    "bad",
    [grid(6, 4, 0.0), grid(5, 5, 0.0), [*grid(5, 5, 0.0), [0.1] * 4]],
    ids=["too few ops", "too few edges", "ragged"],
)
def test_wrong_shape_names_experiment_trial_and_epoch(tmp_path, bad) -> None:
    records = [nb201_record(e, e) for e in (1, 2)]
    records[1]["alpha_normal"] = bad
    good = TrialSpec("fine", SearchConfig(), [nb201_record(1, 0)])
    write_study(tmp_path, "exp", [good, TrialSpec("broken", SearchConfig(), records)])
    with pytest.raises(ValueError, match=r"experiment 'exp', trial 'broken', epoch 2") as info:
        alpha_long(load_results(tmp_path))
    assert "(6, 5)" in str(info.value)


def test_darts_alpha_in_nb201_row_is_a_shape_error(tmp_path) -> None:
    write_study(tmp_path, "exp", [TrialSpec("x", SearchConfig(), [darts_record(1, 0)])])
    with pytest.raises(ValueError, match="trial 'x'"):
        alpha_long(load_results(tmp_path))


def test_large_frame_is_fast() -> None:
    n = 20_000  # ~600k values
    rng = np.random.default_rng(0)
    values = rng.random((n, 6, 5))
    frame = pd.DataFrame(
        {
            "experiment": pd.array(["e"] * n, dtype="string"),
            "trial_id": pd.array([f"t{k // 50}" for k in range(n)], dtype="string"),
            "epoch": np.tile(np.arange(1, 51), n // 50),
            "space": pd.array(["nb201"] * n, dtype="string"),
            "alpha_normal": pd.Series(values.tolist(), dtype=object),
            "alpha_reduce": pd.Series([None] * n, dtype=object),
        }
    )
    start = time.perf_counter()
    long = alpha_long(frame)
    assert time.perf_counter() - start < 5.0
    assert np.array_equal(long["weight"].to_numpy(), values.reshape(-1))
