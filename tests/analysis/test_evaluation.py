"""The DARTS-space evaluation table (``analysis.evaluation``) from hand-built frames and from
real Parquet experiments, checked against hand arithmetic (sample std, n - 1)."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest

from analysis import store
from analysis.evaluation import (
    ARCHITECTURE,
    FLOPS,
    NO_SEARCH,
    PARAMS,
    RUNS,
    SEARCHES,
    TOP1,
    evaluation_table,
    evaluation_tables,
)
from analysis.tables import Table
from search_spaces.published import published_genotype
from trainables import records as R
from trainables.config import SearchConfig
from trainables.eval_config import PRESETS

GENOTYPES = {name: published_genotype(name).to_string()
             for name in ("DARTS_V1", "DARTS_V2", "PC_DARTS", "P_DARTS")}
SIZES = {"DARTS_V1": (540_000_000, 3_300_000), "PC_DARTS": (557_000_000, 3_600_000),
         "P_DARTS": (532_000_000, 3_400_000)}  # multiply-adds, parameters (made up)
T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def sample_mean_std(values: list[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


# --------------------------------------------------------------------------- builders
def eval_rows(
    arch: str,
    seed: int,
    top1: float,
    *,
    experiment: str = "eval",
    genotype: str | None = None,
    source: tuple[str, str] = ("", ""),
    preset: str = "cifar10",
    epochs: int = 3,
    last_epoch: int | None = None,
    status: str = R.STATUS_OK,
    params: int = 3_300_000,
    multiply_adds: int = 528_000_000,
    **settings: Any,
) -> list[dict[str, Any]]:
    """The epoch rows of one evaluation run, with every ``store.EVALUATION`` column: epochs
    1..``last_epoch`` (default ``epochs``), ``top1`` at the last one, ``status`` there."""
    last = epochs if last_epoch is None else last_epoch
    config = {**PRESETS[preset], "epochs": epochs, "seed": seed, "arch": arch,
              "genotype": genotype or GENOTYPES.get(arch, GENOTYPES["DARTS_V1"]),
              "source_experiment": source[0], "source_trial_id": source[1], "data_dir": "",
              "workers": 1, "steps_per_epoch": 0, **settings}
    rows = []
    for epoch in range(1, last + 1):
        final = epoch == last
        record = {
            R.EPOCH: epoch, R.STATUS: status if final else R.STATUS_OK, R.STEPS: 10,
            R.EPOCH_LR: 0.025, R.DROP_PATH_PROB: 0.1, R.TRAIN_LOSS: 1.0, R.TRAIN_ACC: 60.0,
            R.TEST_LOSS: 0.5, R.TEST_ACC: top1 if final else top1 - 30.0, R.TEST_TOP5: 99.0,
            R.PARAMS: params, R.MULTIPLY_ADDS: multiply_adds,
            R.INPUT_SIZE: 224 if config["dataset"] == "imagenet" else 32,
            R.IMAGES_PER_SEC: 1000.0, R.TRAIN_SECONDS: 10.0, R.EPOCH_SECONDS: 11.0,
        }
        rows.append({"experiment": experiment, "trial_id": f"{arch}-{seed}-{top1}",
                     "attempt": 0, "reported_at": T0 + dt.timedelta(seconds=epoch),
                     **config, **record})
    assert all(set(row) == set(store.EVALUATION.schema().names) for row in rows)
    return rows


def search_rows(experiment: str, trial_id: str, config: SearchConfig, genotype: str,
                epochs: int = 2) -> list[dict[str, Any]]:
    """A search trial's epoch rows: its config, a throw-away genotype, ``genotype`` last."""
    return [
        {"experiment": experiment, "trial_id": trial_id, "attempt": 0,
         "reported_at": T0 + dt.timedelta(seconds=epoch), **config.to_dict(), R.EPOCH: epoch,
         R.STATUS: R.STATUS_OK,
         R.GENOTYPE: genotype if epoch == epochs else GENOTYPES["DARTS_V2"]}
        for epoch in range(1, epochs + 1)
    ]


DARTS_CFG = SearchConfig(space="darts", level="bi", activation="softmax")
SINGLE_CFG = SearchConfig(space="darts", level="single", activation="sigmoid")
# The search trials (experiment "search") and the genotype each found.
SEARCH_TRIALS = {
    "t1": (DARTS_CFG.replace(seed=0), "DARTS_V1"),
    "t2": (DARTS_CFG.replace(seed=1), "PC_DARTS"),
    "t3": (SINGLE_CFG.replace(seed=0), "P_DARTS"),
    "t4": (SINGLE_CFG.replace(seed=0, data_fraction=0.5), "DARTS_V1"),
}


def searches_frame(trials: dict[str, tuple[SearchConfig, str]] = SEARCH_TRIALS,
                   experiment: str = "search") -> pd.DataFrame:
    return pd.DataFrame([row for trial, (config, name) in trials.items()
                         for row in search_rows(experiment, trial, config, GENOTYPES[name])])


def sourced(trial: str, seed: int, top1: float, experiment: str = "search",
            **kw: Any) -> list[dict[str, Any]]:
    """An evaluation run of search trial ``trial``'s final genotype."""
    name = SEARCH_TRIALS[trial][1]
    multiply_adds, params = SIZES[name]
    return eval_rows(f"{experiment}/{trial}", seed, top1, genotype=GENOTYPES[name],
                     source=(experiment, trial), multiply_adds=multiply_adds, params=params,
                     **kw)


def cell(table: Table, metric: str, **labels: str) -> pd.Series:
    stats = table.stats
    where = stats["metric"] == metric
    for name, value in labels.items():
        where &= stats[name] == value
    found = stats[where]
    assert len(found) == 1, (labels, metric, stats)
    return found.iloc[0]


# --------------------------------------------------------------------------- by architecture
def test_by_architecture_mean_std_over_seeds_and_units() -> None:
    v2 = [97.0, 97.2, 97.5]
    rows = [r for seed, top1 in enumerate(v2) for r in eval_rows(
        "DARTS_V2", seed, top1, multiply_adds=574_000_000, params=3_349_000)]
    rows += sourced("t1", 0, 96.8) + sourced("t1", 1, 97.1)
    table = evaluation_table(pd.DataFrame(rows))

    assert table.row_columns == (ARCHITECTURE,)
    assert table.count_column == RUNS
    mean, std = sample_mean_std(v2)
    top1 = cell(table, TOP1, architecture="DARTS_V2")
    assert top1["mean"] == pytest.approx(mean) and top1["std"] == pytest.approx(std)
    assert (top1["dataset"], top1["n"], top1["trials"]) == ("cifar10", 3, 3)
    assert cell(table, FLOPS, architecture="DARTS_V2")["mean"] == pytest.approx(574.0)
    assert cell(table, PARAMS, architecture="DARTS_V2")["mean"] == pytest.approx(3.349)
    mean, std = sample_mean_std([96.8, 97.1])
    found = cell(table, TOP1, architecture="search/t1")
    assert found["mean"] == pytest.approx(mean) and found["std"] == pytest.approx(std)
    grid = table.cells()
    assert list(grid.columns) == [ARCHITECTURE, f"CIFAR-10 {FLOPS}", f"CIFAR-10 {PARAMS}",
                                  f"CIFAR-10 {TOP1}", RUNS]
    assert list(grid[ARCHITECTURE]) == ["DARTS_V2", "search/t1"]  # given by hand first
    assert grid.iloc[0].tolist() == ["DARTS_V2", "574.00", "3.35", "97.23 ± 0.25", "3"]
    assert "multiply-adds per image at 32 pixels / 10^6" in table.to_markdown()


def test_a_setting_varying_inside_an_architecture_splits_its_row() -> None:
    rows = eval_rows("DARTS_V2", 0, 97.0) + eval_rows("DARTS_V2", 1, 96.0, epochs=2)
    table = evaluation_table(pd.DataFrame(rows))
    assert table.row_columns == (ARCHITECTURE, "epochs")
    assert sorted(table.stats["epochs"].unique()) == ["2", "3"]


# --------------------------------------------------------------------------- by search
@pytest.fixture
def joined() -> Table:
    rows = eval_rows("DARTS_V2", 0, 97.3) + eval_rows("DARTS_V2", 1, 97.1)
    rows += sourced("t1", 0, 96.0) + sourced("t2", 0, 95.0) + sourced("t2", 1, 95.6)
    rows += sourced("t3", 0, 97.4) + sourced("t4", 0, 97.0)
    return evaluation_table(pd.DataFrame(rows), searches_frame())


def test_join_groups_by_method_activation_and_data_fraction(joined: Table) -> None:
    assert joined.row_columns == ("method", "activation", "data_fraction", SEARCHES)
    grid = joined.cells()
    assert grid[["method", "activation", "data_fraction", SEARCHES, RUNS]].values.tolist() == [
        ["DARTS_V2", NO_SEARCH, NO_SEARCH, NO_SEARCH, "2"],  # the published cell, first
        ["DARTS", "softmax", "1", "2", "3"],  # two search seeds, one of them trained twice
        ["Single-DARTS", "sigmoid", "0.5", "1", "1"],
        ["Single-DARTS", "sigmoid", "1", "1", "1"],
    ]
    mean, std = sample_mean_std([96.0, 95.0, 95.6])
    darts = cell(joined, TOP1, method="DARTS")
    assert darts["mean"] == pytest.approx(mean) and darts["std"] == pytest.approx(std)
    assert cell(joined, TOP1, method="Single-DARTS", data_fraction="1")["mean"] == 97.4
    assert cell(joined, TOP1, method="Single-DARTS", data_fraction="0.5")["mean"] == 97.0
    assert math.isnan(cell(joined, TOP1, method="Single-DARTS", data_fraction="1")["std"])
    mean, std = sample_mean_std([540.0, 557.0, 557.0])  # t1's genotype once, t2's twice
    flops = cell(joined, FLOPS, method="DARTS")
    assert flops["mean"] == pytest.approx(mean) and flops["std"] == pytest.approx(std)
    assert cell(joined, PARAMS, method="DARTS")["mean"] == pytest.approx((3.3 + 3.6 + 3.6) / 3)
    print(joined.to_markdown())
    mean, std = sample_mean_std([97.3, 97.1])
    v2 = cell(joined, TOP1, method="DARTS_V2")
    assert v2["mean"] == pytest.approx(mean) and v2["std"] == pytest.approx(std)
    text = joined.to_markdown()
    assert "given by hand" in text and "search seeds" in text
    assert "another genotype" not in text  # the search's final genotype, not an earlier one


def test_a_search_setting_varying_inside_a_group_becomes_a_column() -> None:
    trials = {**SEARCH_TRIALS, "t5": (DARTS_CFG.replace(seed=2, epochs=25), "DARTS_V1")}
    rows = sourced("t1", 0, 96.0) + eval_rows("search/t5", 0, 94.0, source=("search", "t5"))
    table = evaluation_table(pd.DataFrame(rows), searches_frame(trials))
    assert table.row_columns == ("method", "activation", "data_fraction", "search epochs",
                                 SEARCHES)
    assert sorted(table.stats["search epochs"].unique()) == ["25", "50"]


def test_genotype_other_than_the_search_result_is_noted() -> None:
    rows = eval_rows("search/t1", 0, 96.0, genotype=GENOTYPES["P_DARTS"],
                     source=("search", "t1"))
    table = evaluation_table(pd.DataFrame(rows), searches_frame())
    assert any("another genotype" in note and "search/t1" in note for note in table.notes)


def test_search_trials_finding_one_genotype_are_noted() -> None:
    trials = {**SEARCH_TRIALS, "t5": (DARTS_CFG.replace(seed=2), "DARTS_V1")}
    rows = sourced("t1", 0, 96.0) + eval_rows("search/t5", 0, 96.2, genotype=GENOTYPES[
        "DARTS_V1"], source=("search", "t5"))
    table = evaluation_table(pd.DataFrame(rows), searches_frame(trials))
    assert any("2 search trials found 1 distinct genotype" in note for note in table.notes)


# --------------------------------------------------------------------------- left out
def test_diverged_and_unfinished_runs_are_left_out_and_noted() -> None:
    rows = eval_rows("DARTS_V2", 0, 97.0) + eval_rows("DARTS_V2", 1, 96.0)
    rows += eval_rows("DARTS_V2", 2, 10.0, epochs=5, last_epoch=2, status=R.STATUS_DIVERGED)
    rows += eval_rows("DARTS_V2", 3, 50.0, epochs=5, last_epoch=3)
    for searches in (None, searches_frame()):
        table = evaluation_table(pd.DataFrame(rows), searches)
        mean, std = sample_mean_std([97.0, 96.0])
        found = cell(table, TOP1)
        assert found["mean"] == pytest.approx(mean) and found["std"] == pytest.approx(std)
        assert found["trials"] == 2
        diverged = [n for n in table.notes if "diverged" in n]
        unfinished = [n for n in table.notes if "not reached their last epoch" in n]
        assert len(diverged) == 1 and diverged[0].startswith("1 run(s)")
        assert "seed 2, epoch 2" in diverged[0]
        assert len(unfinished) == 1 and unfinished[0].startswith("1 run(s)")
        assert "seed 3, epoch 3/5" in unfinished[0]


@pytest.mark.parametrize("with_searches", [False, True])
def test_all_runs_unfinished_gives_an_empty_table_with_the_note(with_searches: bool) -> None:
    rows = eval_rows("DARTS_V2", 0, 50.0, epochs=5, last_epoch=3)
    rows += sourced("t1", 0, 40.0, epochs=5, last_epoch=2)
    table = evaluation_table(pd.DataFrame(rows), searches_frame() if with_searches else None)
    assert table.stats.empty
    assert "2 run(s) have not reached their last epoch" in table.to_markdown()


# --------------------------------------------------------------------------- refusals
def test_missing_source_trial_raises_naming_it() -> None:
    rows = sourced("t1", 0, 96.0) + sourced("t2", 0, 95.0)
    searches = searches_frame({"t1": SEARCH_TRIALS["t1"]})
    with pytest.raises(ValueError, match=r"\('search', 't2'\).*load_results"):
        evaluation_table(pd.DataFrame(rows), searches)


def test_empty_or_incomplete_frames_raise() -> None:
    frame = pd.DataFrame(eval_rows("DARTS_V2", 0, 97.0))
    with pytest.raises(ValueError, match="no rows"):
        evaluation_table(frame.iloc[:0])
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['multiply_adds'\]"):
        evaluation_table(frame.drop(columns=["multiply_adds"]))
    with pytest.raises(ValueError, match=r"searches frame lacks.*'level'"):
        evaluation_table(frame, searches_frame().drop(columns=["level"]))


# --------------------------------------------------------------------------- from Parquet
def write_experiment(root: Path, name: str, rows: list[dict[str, Any]],
                     fmt: store.ResultFormat) -> None:
    fs, base = store.resolve_location(root)
    folder = store.experiment_dir(base, name)
    fs.create_dir(folder, recursive=True)
    store.record_run(fs, folder, name, {"started_at": T0.isoformat()}, fmt=fmt)
    pq.write_table(store.rows_to_table(rows, fmt.schema()),
                   f"{folder}/{store.new_part_name()}")


def test_evaluation_tables_from_parquet(tmp_path: Path) -> None:
    write_experiment(tmp_path, "search", searches_frame().to_dict("records"), store.SEARCH)
    cifar = eval_rows("DARTS_V2", 0, 97.3, experiment="c10")
    cifar += eval_rows("DARTS_V2", 1, 97.0, experiment="c10")
    cifar += sourced("t1", 0, 96.0, experiment="search") + sourced("t3", 0, 97.4)
    for row in cifar:
        row["experiment"] = "c10"
    write_experiment(tmp_path, "c10", cifar, store.EVALUATION)
    imagenet = [r for seed, top1 in enumerate([75.0, 74.0]) for r in eval_rows(
        "gone/t9", seed, top1, experiment="in1k", source=("gone", "t9"), preset="imagenet",
        multiply_adds=595_000_000, params=5_300_000)]
    write_experiment(tmp_path, "in1k", imagenet, store.EVALUATION)

    c10, in1k = evaluation_tables(tmp_path)
    print(c10.to_markdown())
    print(in1k.to_markdown())
    assert c10.row_columns == ("method", "activation", "data_fraction", SEARCHES)
    assert list(c10.cells()["method"]) == ["DARTS_V2", "DARTS", "Single-DARTS"]
    assert cell(c10, TOP1, method="DARTS", activation="softmax")["mean"] == 96.0
    assert cell(c10, TOP1, method="Single-DARTS", activation="sigmoid")["mean"] == 97.4
    mean, std = sample_mean_std([97.3, 97.0])
    v2 = cell(c10, TOP1, method="DARTS_V2")
    assert v2["mean"] == pytest.approx(mean) and v2["std"] == pytest.approx(std)

    # The ImageNet evaluations came from a search experiment that is not under the root.
    assert in1k.row_columns == (ARCHITECTURE,)
    assert set(in1k.stats["dataset"]) == {"imagenet"}
    assert cell(in1k, FLOPS)["mean"] == pytest.approx(595.0)
    assert cell(in1k, TOP1)["mean"] == pytest.approx(74.5)
    assert any("'gone' is not under the root" in note for note in in1k.notes)
    assert "ImageNet-1k Top-1/%" in in1k.to_markdown()
    assert "224 pixels" in in1k.to_markdown()
