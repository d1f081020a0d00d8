"""``study tune``'s analysis (``analysis.tuning``, the tuning tables and figure) on results written
through the real writer, with a tuning sidecar written by the store; every expected number is
computed here by hand from the values written (sample std: n - 1 in the denominator)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from builders import TrialSpec, record, tuning_context, write_study
from matplotlib.collections import PathCollection

from analysis import store
from analysis.figures import tuning_figure
from analysis.results import load_results
from analysis.tables import TEST_SPLIT_NOTE, importance_table, paper_tables, tuning_table
from analysis.tuning import objective_value, tuning_samples
from study.cli import main
from trainables.config import SearchConfig

NAN = math.nan
EXP = "tune_a"
C10_TEST, C10_VALID = "bench_cifar10_test", "bench_cifar10_valid"
SINGLE_CELL, BI_CELL = "level=single", "level=bi"
SINGLE = SearchConfig(level="single", dataset="cifar10", epochs=2, w_lr_min=1e-4)
BI = SearchConfig(level="bi", dataset="cifar10", epochs=3, w_lr_min=1e-4)
# Single cell: objective bench_cifar10_test at the final epoch, max. Per sample: its trials,
# each (trial_id, w_lr, w_optimizer, per-epoch objective values, status of the last epoch).
SINGLE_SAMPLES = {
    0: [("s0", 0.001, "sgd", [88.0, 85.0], "ok")],  # final 85, not the epoch-1 88
    1: [("s1", 0.012345, "adam", [88.0, 91.3], "ok")],  # the best
    2: [("s2", 0.05, "sgd", [NAN], "diverged")],  # complete, no value
    3: [("s3a", 0.003, "adam", [70.0], "ok"),  # abandoned by a crashed driver ...
        ("s3b", 0.003, "adam", [75.0, 89.0], "ok")],  # ... and the trial that completed
    4: [("s4a", 0.02, "sgd", [95.0], "ok"),  # still running: incomplete, never counted;
        ("s4b", 0.02, "sgd", [96.0], "ok")],  # two trials at epoch 1: the later one counts
}
# Bi cell: objective bench_cifar10_valid, the best epoch, max; 3 epochs.
BI_SAMPLES = {
    0: [("b0", 0.001, "sgd", [60.0, 72.0, 65.0], "ok")],  # best epoch 72 (final 65)
    1: [("b1", 0.004, "sgd", [70.0, 68.0, 69.0], "ok")],  # 70
    2: [("b2", 0.0002, "sgd", [50.0, NAN, 55.0], "ok")],  # 55 (NaN epoch skipped)
}
SINGLE_VALUES = [85.0, 91.3, 89.0]  # complete samples with a value (s0, s1, s3)
BI_VALUES = [72.0, 70.0, 55.0]
SIDECAR = {
    "experiment": EXP,
    "spec": "examples/tune_a.toml",
    "objective": "benchmark:test",
    "epoch": "final",
    "direction": "max",
    "uses_test_split": True,
    "sampler": "tpe",
    "seed": 0,
    "samples": 5,
    "top_k": 3,
    "params": {"w_lr": {"low": 0.0001, "high": 0.1, "log": True},
               "w_optimizer": {"choices": ["sgd", "adam"]}},
    "cells": {
        SINGLE_CELL: {"study": f"{EXP}:{SINGLE_CELL}", "objective_column": C10_TEST,
                      "complete": 4, "best": {"sample": 1, "value": 91.3, "params": {}},
                      "importance": {"evaluator": "fanova",
                                     "values": {"w_optimizer": 0.3, "w_lr": 0.7}},
                      "importance_note": None},
        BI_CELL: {"study": f"{EXP}:{BI_CELL}", "objective_column": C10_VALID, "complete": 3,
                  "best": {"sample": 0, "value": 72.0, "params": {}}, "importance": None,
                  "importance_note": "needs at least 2 complete samples"},
    },
    "updated_at": "2026-11-28T21:00:00+00:00",
}


def mean_std(values: list[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def cell_trials(cell: str, config: SearchConfig, samples: dict, column: str, epoch: str
                ) -> list[TrialSpec]:
    trials = []
    for sample, runs in samples.items():
        context = tuning_context(EXP, cell, sample, objective=column, epoch=epoch)
        for trial_id, w_lr, w_optimizer, values, status in runs:
            key = column.removeprefix("bench_")
            records = [record(k, bench={key: v}) for k, v in enumerate(values, start=1)]
            records[-1]["status"] = status
            trials.append(TrialSpec(trial_id, config.replace(w_lr=w_lr, w_optimizer=w_optimizer),
                                    records, extra=context))
    return trials


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    results = tmp_path_factory.mktemp("results")
    parquet = results / "parquet"
    trials = cell_trials(SINGLE_CELL, SINGLE, SINGLE_SAMPLES, C10_TEST, "final")
    trials += cell_trials(BI_CELL, BI, BI_SAMPLES, C10_VALID, "best")
    for trial in trials:  # one flush each, in order: the later trial of a sample reports later
        write_study(parquet, EXP, [trial])
    plain = [  # an ordinary study run next to it
        TrialSpec(f"{config.level}-{seed}", config.replace(seed=seed),
                  [record(k, bench={"cifar10_test": 90.0 + seed + k}) for k in (1, 2)])
        for config in (SINGLE, BI.replace(epochs=2)) for seed in (0, 1)
    ]
    write_study(parquet, "plain", plain)
    fs, folders = store.experiment_folders(parquet, [EXP])
    store.write_tuning(fs, folders[EXP], SIDECAR)
    return results


@pytest.fixture(scope="module")
def df(root) -> pd.DataFrame:
    return load_results(root, alphas=False)


@pytest.fixture(scope="module")
def tuning(root) -> dict:
    return store.read_tuning(root)


def stat(table, cell: str, metric: str) -> pd.Series:
    rows = table.stats[(table.stats["cell"] == cell) & (table.stats["metric"] == metric)]
    assert len(rows) == 1, table.stats
    return rows.iloc[0]


# ---------------------------------------------------------------------- samples
def test_samples_final_vs_best_epoch_restarts_and_completeness(df, tuning) -> None:
    samples = tuning_samples(df, tuning)
    assert len(samples) == len(SINGLE_SAMPLES) + len(BI_SAMPLES)  # s3 and s4 counted once
    by = samples.set_index(["tune_cell", "tune_sample"])
    assert by.loc[(SINGLE_CELL, 0), "value"] == 85.0  # final epoch, not the max 88
    assert by.loc[(BI_CELL, 0), "value"] == 72.0  # best epoch, not the final 65
    assert by.loc[(BI_CELL, 2), "value"] == 55.0
    assert math.isnan(by.loc[(SINGLE_CELL, 2), "value"]) and by.loc[(SINGLE_CELL, 2), "complete"]
    s3 = by.loc[(SINGLE_CELL, 3)]
    assert (s3["trial_id"], s3["trial_ids"], s3["value"], s3["complete"]) == ("s3b", 2, 89.0, True)
    s4 = by.loc[(SINGLE_CELL, 4)]
    assert (s4["trial_id"], s4["complete"], s4["value"]) == ("s4b", False, 96.0)
    assert by.loc[(SINGLE_CELL, 1), "w_lr"] == 0.012345
    assert by.loc[(SINGLE_CELL, 1), "w_optimizer"] == "adam"
    assert set(by["method"]) == {"Single-DARTS", "DARTS"}
    assert set(by["objective"]) == {C10_TEST, C10_VALID}
    # Without a sidecar the tuned hyperparameters are the config fields varying in a cell.
    bare = tuning_samples(df)
    assert {"w_lr", "w_optimizer"} <= set(bare.columns) and "seed" not in bare.columns
    assert bare["value"].equals(samples["value"])


def test_objective_value_min_and_non_finite() -> None:
    rows = pd.DataFrame({"valid_loss": [0.9, math.inf, 0.4, NAN]})
    assert objective_value(rows, "valid_loss", "best", "min") == 0.4
    assert objective_value(rows, "valid_loss", "best", "max") == 0.9
    assert math.isnan(objective_value(rows, "valid_loss", "final", "min"))
    with pytest.raises(ValueError, match="epoch"):
        objective_value(rows, "valid_loss", "last", "min")


# ---------------------------------------------------------------------- tables
def test_tuning_table_best_and_top_k_by_hand(df, tuning) -> None:
    table = tuning_table(df, tuning)
    best = stat(table, SINGLE_CELL, "best")
    assert best["mean"] == 91.3 and best["n"] == 1 and best["trials"] == 4
    assert best["best hyperparameters"] == "w_lr=0.0123, w_optimizer=adam"
    assert best["complete"] == "4/5" and best["method"] == "Single-DARTS"
    assert best["objective"] == f"{C10_TEST} (final epoch, max)"
    top = stat(table, SINGLE_CELL, "top-3")
    mean, std = mean_std(SINGLE_VALUES)
    assert top["mean"] == pytest.approx(mean) and top["std"] == pytest.approx(std)
    assert top["n"] == 3
    bi_top = stat(table, BI_CELL, "top-3")
    mean, std = mean_std(BI_VALUES)
    assert bi_top["mean"] == pytest.approx(mean) and bi_top["std"] == pytest.approx(std)
    assert stat(table, BI_CELL, "best")["best hyperparameters"] == "w_lr=0.001, w_optimizer=sgd"
    assert stat(table, BI_CELL, "best")["complete"] == "3/5"
    two = tuning_table(df, tuning, top_k=2)  # the caller's k beats the sidecar's
    assert stat(two, SINGLE_CELL, "top-2")["mean"] == pytest.approx((91.3 + 89.0) / 2)
    markdown = table.to_markdown()
    mean, std = mean_std(SINGLE_VALUES)
    assert (f"| {EXP} | {SINGLE_CELL} | Single-DARTS | {C10_TEST} (final epoch, max) | 4/5 | "
            f"w_lr=0.0123, w_optimizer=adam | 91.30 | {mean:.2f} ± {std:.2f} |") in markdown
    assert "seeds" not in markdown
    assert "top-3" in table.to_csv() and "\\pm" in table.to_latex()


def test_tuning_table_notes_nan_restarts_and_test_split(df, tuning) -> None:
    notes = tuning_table(df, tuning).notes
    assert f"{EXP} / {SINGLE_CELL}: 1 of 4 complete samples have no objective value (NaN, e.g. " \
           "diverged): left out of best and top-3." in notes
    assert any(note.startswith(f"{EXP} / {SINGLE_CELL}: 2 sample(s) have rows of several")
               for note in notes)
    assert notes[-1] == TEST_SPLIT_NOTE
    valid_only = tuning_table(df[df["tune_cell"] == BI_CELL], tuning)
    assert TEST_SPLIT_NOTE not in valid_only.notes
    assert list(valid_only.stats["cell"].unique()) == [BI_CELL]
    bare = tuning_table(df[df["experiment"] == "plain"], tuning)
    assert bare.stats.empty and "no tuning samples" in bare.to_markdown()


def test_importance_table_values_sum_to_one_and_notes(tuning) -> None:
    table = importance_table(tuning)
    single = table.stats[table.stats["cell"] == SINGLE_CELL]
    assert list(single["hyperparameter"]) == ["w_lr", "w_optimizer"]  # most important first
    assert list(single["mean"]) == [0.7, 0.3]
    assert table.stats.groupby("cell")["mean"].sum()[SINGLE_CELL] == pytest.approx(1.0)
    bi = table.stats[table.stats["cell"] == BI_CELL]
    assert list(bi["hyperparameter"]) == ["n/a"] and math.isnan(bi["mean"].iloc[0])
    assert f"{EXP} / {BI_CELL}: no importance: needs at least 2 complete samples" in table.notes
    assert "fanova" in table.notes[0]
    assert "| tune_a | level=single | w_lr | 0.70 |" in table.to_markdown()
    assert importance_table(None).stats.empty


def test_paper_tables_leave_tuning_rows_out_and_append_the_tuning_tables(df, tuning) -> None:
    tables = paper_tables(df, None, tuning=tuning)
    main_table, *_, tuned, importance = tables
    assert main_table.row_columns == ("method",)  # no w_lr / w_optimizer rows of the samples
    assert set(main_table.stats["trials"].dropna()) == {2}  # the plain study's two seeds
    assert tuned.title.startswith("Tuning: best") and importance.title.startswith("Tuning: hyp")
    only = paper_tables(df[df["experiment"] == EXP], None, tuning=tuning)
    assert [t.title for t in only] == [tuned.title, importance.title]
    plain = paper_tables(df[df["experiment"] == "plain"], None, tuning=tuning)
    assert not any(t.title.startswith("Tuning") for t in plain)
    assert len(paper_tables(df, ["tuning"], tuning=tuning)) == 2


def test_study_tables_tuning_prints_both_tables(root, capsys) -> None:
    assert main(["tables", str(root), "--table", "tuning"]) == 0
    out = capsys.readouterr().out
    assert "**Tuning: best objective" in out and "**Tuning: hyperparameter importance" in out
    assert "| tune_a | level=single | w_lr | 0.70 |" in out and TEST_SPLIT_NOTE in out
    assert "NAS-Bench-201 accuracy" not in out


# ---------------------------------------------------------------------- figure
def series(ax) -> dict[str, np.ndarray]:
    return {c.get_label(): c.get_offsets() for c in ax.collections if isinstance(c, PathCollection)}


def test_tuning_figure_axes_series_and_labels(df, tuning) -> None:
    fig = tuning_figure(df, tuning)
    title = " ".join(fig.get_suptitle().split())
    assert f"{C10_TEST} / {C10_VALID} (NAS-Bench-201 test split)" in title
    assert "1 without a value (NaN, e.g. diverged) not drawn" in title
    lr_ax, opt_ax = fig.axes
    assert lr_ax.get_xscale() == "log" and opt_ax.get_xscale() == "linear"
    assert "w_lr" in lr_ax.get_xlabel() and "log scale" in lr_ax.get_xlabel()
    assert C10_TEST in lr_ax.get_ylabel()
    points = series(lr_ax)
    assert set(points) == {SINGLE_CELL, BI_CELL}  # one series per cell
    single = sorted(map(tuple, points[SINGLE_CELL]))
    assert single == [(0.001, 85.0), (0.003, 89.0), (0.012345, 91.3)]
    assert sorted(points[BI_CELL][:, 1]) == sorted(BI_VALUES)
    assert [t.get_text() for t in opt_ax.get_xticklabels()] == ["sgd", "adam"]
    by_choice = series(opt_ax)[SINGLE_CELL]
    assert sorted(np.round(by_choice[:, 0]).tolist()) == [0.0, 1.0, 1.0]  # sgd, adam, adam
    colours = {tuple(c.get_facecolor()[0]) for c in lr_ax.collections}
    assert len(colours) == 2
    bare = tuning_figure(df)  # no sidecar: varying fields, linear axes
    assert all(ax.get_xscale() == "linear" for ax in bare.axes)


def test_study_plots_writes_only_the_tuning_figure_for_tuning_rows(root, df, tuning, tmp_path,
                                                                  capsys) -> None:
    empty = tuning_figure(df[df["experiment"] == "plain"], tuning)
    assert any(t.get_text().startswith("no data: ") for ax in empty.axes for t in ax.texts)
    out = tmp_path / "figures"
    assert main(["plots", str(root), "--out", str(out), "--experiment", EXP]) == 0
    assert capsys.readouterr().out == f"tuning: {out / 'tuning.png'}\n"  # no paper figure
    assert (out / "tuning.png").read_bytes()[:4] == b"\x89PNG"
