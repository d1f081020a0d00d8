"""The paper's tables from a results frame: stability (mean ± std over seeds), ablations, collapse.

Everything is built by one generic builder, :func:`summary_table`: rows are any config axes (or
derived labels from ``analysis.frame``: ``method``, ``data_mode``, ``lr``, ``optimizer``),
columns are dataset × metric, and each cell aggregates one value per trial — by default the
trial's final epoch — over the trials in that row (the seeds):

* mean, and the **sample** standard deviation (``ddof=1``, as the paper's "± std" over 5 seeds);
  a cell with one trial shows the mean alone (its std is undefined), a cell with no value
  "n/a";
* a row never averages two different searches: any config field (other than the seed, the
  dataset and file locations) that still varies inside the asked-for rows becomes an extra row
  column (``add_varying=True``).

On top of it:

* :func:`main_table` — paper Table 1: one row per method, NAS-Bench-201 valid / test accuracy of
  the final derived architecture per dataset, the number of seeds, and the benchmark's
  ``Optimal`` row. Valid columns read "n/a" when only the shipped test-accuracy table is there.
  ``with_reported=True`` adds the rows the paper's Table 1 prints (``analysis.reported``), each
  named ``"<method> (reported)"``.
* :func:`ablation_table` — paper Tables 4 and 5: rows are the values of one axis (``data_mode``,
  ``lr``, ``activation``, ``optimizer`` or any config field) per method. Which trials enter is
  decided per method as a *one-factor slice*: among that method's trials, the group that agrees on
  every other config field and covers the most values of the axis (ties: more trials, then the
  first in sort order). Methods whose slice holds a single value of the axis are left out (unless
  no method has two). The fields held fixed are written into the table's notes. On a run of the
  ``paper`` grid this picks exactly Table 4 and Tables 5(a), (b), (c). The title names the axis
  ("Ablation: learning rate") and adds "(paper Table 5a)" only when every trial shown has the
  settings that paper table states (``PAPER_ABLATIONS``); otherwise a note says which differs.
* :func:`collapse_table` — the collapse indicators of ``analysis.collapse`` (skip / pooling / none
  counts, the ``collapsed`` and ``skip_dominant`` criteria) aggregated the same way, with each
  criterion's base rate over all NAS-Bench-201 cells in the notes.
* :func:`tuning_table` and :func:`importance_table` — ``study tune``'s results: per tuned cell the
  best objective, its hyperparameters and the top-k mean ± sample std (samples from
  ``analysis.tuning``), and the Optuna hyperparameter importances of the tuning sidecars. Rows of
  ``study tune`` never enter the paper tables (their sampled hyperparameters would split every
  row into one per sample).

A :class:`Table` keeps the tidy numbers (``stats``) and renders as Markdown, LaTeX or CSV.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import pandas as pd

from analysis.collapse import CRITERIA, collapse_indicators, nb201_base_rates
from analysis.frame import bench_column, covered_fields, varying_fields, with_labels
from analysis.reported import REPORTED_SUFFIX, SOURCE, reported_rows
from analysis.store import TUNING_FILE
from analysis.tuning import (
    MIN,
    TUNE_SAMPLE,
    Tuning,
    sidecar_rank,
    tuned_params,
    tuning_mask,
    tuning_samples,
    uses_test_split,
)
from search_spaces.benchmark import BENCH_DATASETS as NB201_DATASETS
from search_spaces.benchmark import Benchmark, BenchmarkRecordError, open_benchmark

DATASET_TITLES = {
    "cifar10": "CIFAR-10",
    "cifar100": "CIFAR-100",
    "imagenet16-120": "ImageNet16-120",
    "imagenet": "ImageNet-1k",
}
BENCH_METRICS = ("valid", "test")  # NAS-Bench-201 accuracy of the derived cell
ABLATION_AXES = {  # axis -> what the table's title calls it ("Ablation: learning rate")
    "data_mode": "data mode",
    "lr": "learning rate",
    "activation": "α activation",
    "optimizer": "α optimizer",
}


@dataclass(frozen=True)
class PaperAblation:
    """The defining settings of one of the paper's ablation tables, as its text states them.

    An ablation table calls itself this paper table only when every trial it shows has them:
    ``axis`` values among ``values``, methods among ``methods`` (``None`` = any; the
    ``data_mode`` table has no method column), datasets among ``datasets``, every field of
    ``fixed`` at one of its allowed values, and the fields of ``per_method`` / ``per_value`` for
    that trial's method / axis value. Numbers compare with a relative tolerance of 1e-9.
    """

    label: str  # "Table 4"
    axis: str
    values: tuple[str, ...]
    datasets: tuple[str, ...]
    fixed: dict[str, tuple[object, ...]]
    methods: tuple[str, ...] | None = None
    per_method: dict[str, dict[str, tuple[object, ...]]] = field(default_factory=dict)
    per_value: dict[str, dict[str, tuple[object, ...]]] = field(default_factory=dict)


# What every ablation of the paper shares (§5.1.1, §5.3): NAS-Bench-201, 50 epochs, batch 64,
# the whole search data (no fraction, no step cap), w SGD with momentum 0.9; C=16 and 5 cells per
# stage are NAS-Bench-201's supernet (the text does not restate them).
_ABLATION_COMMON: dict[str, tuple[object, ...]] = {
    "space": ("nb201",), "epochs": (50,), "batch_size": (64,), "channels": (16,), "depth": (5,),
    "data_fraction": (1.0,), "steps_per_epoch": (0,), "w_optimizer": ("sgd",),
    "w_momentum": (0.9,),
}
_SGD_BOTH_0005: dict[str, tuple[object, ...]] = {
    "w_lr": (0.005,), "arch_optimizer": ("sgd",), "arch_lr": (0.005,)}
# Table 5 pairs DARTS with softmax and Single-DARTS with sigmoid outside its activation rows (its
# DARTS "0.005" / "SGD" rows repeat DARTS-softmax's number, Single-DARTS's Single-DARTS-sigmoid's).
_TABLE5_METHODS: dict[str, dict[str, tuple[object, ...]]] = {
    "DARTS": {"activation": ("softmax",)}, "Single-DARTS": {"activation": ("sigmoid",)}}
PAPER_ABLATIONS: tuple[PaperAblation, ...] = (
    # Table 4: "w and α are optimized with the SGD optimizer", one learning rate (its digits are
    # lost in the text; 0.005, since Table 4's bi-level row equals Table 5's DARTS 0.005 row),
    # softmax (Table 4's single-level row equals Table 5's Single-DARTS softmax row).
    PaperAblation(
        "Table 4", "data_mode",
        values=("different subsets, different batches", "same subset, different batches",
                "same subset, same batch"),
        datasets=NB201_DATASETS,
        fixed={**_ABLATION_COMMON, **_SGD_BOTH_0005, "activation": ("softmax",),
               "order": ("first",)},
    ),
    # Table 5(a): "we use SGD as the optimizer and change the learning rate" (w and α).
    PaperAblation(
        "Table 5a", "lr", values=("0.001", "0.005", "0.025"), datasets=("cifar10", "cifar100"),
        fixed={**_ABLATION_COMMON, "arch_optimizer": ("sgd",)},
        methods=("DARTS", "Single-DARTS"), per_method=_TABLE5_METHODS,
    ),
    # Table 5(b): softmax / sigmoid / sigmoid* at the SGD 0.005 reference.
    PaperAblation(
        "Table 5b", "activation", values=("softmax", "sigmoid", "sigmoid*"),
        datasets=("cifar10", "cifar100"), fixed={**_ABLATION_COMMON, **_SGD_BOTH_0005},
        methods=("DARTS", "Single-DARTS"),
    ),
    # Table 5(c): α SGD (momentum 0.9, lr 0.005) vs Adam (betas (0.5, 0.999); its lr is lost in
    # the text, so not checked); w SGD 0.005.
    PaperAblation(
        "Table 5c", "optimizer", values=("SGD", "Adam"), datasets=("cifar10", "cifar100"),
        fixed={**_ABLATION_COMMON, "w_lr": (0.005,)},
        methods=("DARTS", "Single-DARTS"), per_method=_TABLE5_METHODS,
        per_value={"SGD": {"arch_lr": (0.005,), "arch_momentum": (0.9,)},
                   "Adam": {"arch_beta1": (0.5,), "arch_beta2": (0.999,)}},
    ),
)


# Display order of known values (others sort after them, in their natural order).
_VALUE_ORDER = {
    "method": ("DARTS", "DARTS (2nd order)", "DARTS (same subset)", "Single-DARTS"),
    "activation": ("softmax", "sigmoid", "sigmoid*"),
    "optimizer": ("SGD", "Adam"),
}
OPTIMAL = "Optimal"
DEFAULT_TOP_K = 3  # top-k of a tuning table when neither the caller nor the sidecar says
TUNING_ROWS = ("experiment", "cell", "method", "objective", "complete", "best hyperparameters")
IMPORTANCE_ROWS = ("experiment", "cell", "hyperparameter")
TEST_SPLIT_NOTE = (
    "tuned on the NAS-Bench-201 test split: these numbers are optimistic, not a held-out estimate"
)
STAT_COLUMNS = ("dataset", "metric", "mean", "std", "n", "trials")


@dataclass(frozen=True)
class Table:
    """A built table.

    Attributes:
        title: one line saying what the numbers are.
        row_columns: the columns that label a row (asked-for axes, then varying fields).
        stats: tidy numbers, one row per table row × dataset × metric: the row columns (as
            display strings), ``dataset``, ``metric``, ``mean``, ``std`` (sample, NaN below two
            values), ``n`` (trials with a value) and ``trials`` (trials in the row). Optimal rows
            have NA ``n`` and ``trials``.
        notes: lines printed under the table (sources, fixed fields, n/a reasons).
        count_column: title of the display column counting ``trials`` per row (the seeds of a
            paper table); None = no such column (the tuning tables say their counts in their
            row columns).
    """

    title: str
    row_columns: tuple[str, ...]
    stats: pd.DataFrame
    notes: tuple[str, ...] = ()
    count_column: str | None = "seeds"

    # ------------------------------------------------------------------ layout
    def columns(self) -> list[tuple[str, str]]:
        """(dataset, metric) pairs in display order."""
        pairs = self.stats[["dataset", "metric"]].drop_duplicates()
        return [(str(d), str(m)) for d, m in pairs.itertuples(index=False)]

    def cells(self) -> pd.DataFrame:
        """The display grid: one row per table row, one string cell per (dataset, metric),
        "mean ± std" (see the module docstring), and the ``count_column`` (``seeds``)."""
        counts = [self.count_column] if self.count_column else []
        if self.stats.empty:
            return pd.DataFrame(columns=[*self.row_columns, *counts])
        keys = list(self.row_columns)
        rows: list[dict[str, str]] = []
        for key, group in self.stats.groupby(keys, sort=False, dropna=False):
            key = key if isinstance(key, tuple) else (key,)
            row = dict(zip(keys, (str(k) for k in key), strict=True))
            by_col = {(d, m): r for d, m, r in zip(group.dataset, group.metric, group.itertuples(),
                                                   strict=True)}
            for dataset, metric in self.columns():
                found = by_col.get((dataset, metric))
                row[_column_title(dataset, metric)] = "" if found is None else _format_cell(found)
            if self.count_column:
                row[self.count_column] = _seeds(group["trials"])
            rows.append(row)
        return pd.DataFrame(rows)

    # ------------------------------------------------------------------ rendering
    def to_markdown(self) -> str:
        """GitHub Markdown: the title in bold, the table, the notes as a list."""
        grid = self.cells()
        header = list(grid.columns)
        lines = [f"**{self.title}**", ""]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join("---" for _ in header) + "|")
        for values in grid.itertuples(index=False):
            lines.append("| " + " | ".join(str(v).replace("|", "\\|") for v in values) + " |")
        if grid.empty:
            lines.append("| " + " | ".join("" for _ in header) + " |")
        lines += ["", *[f"- {note}" for note in self.notes]] if self.notes else []
        return "\n".join(lines) + "\n"

    def to_latex(self) -> str:
        """A booktabs ``table`` environment (needs ``\\usepackage{booktabs}``)."""
        grid = self.cells()
        align = "l" * len(self.row_columns) + "c" * (len(grid.columns) - len(self.row_columns))
        lines = [
            "\\begin{table}[t]",
            "\\centering",
            f"\\caption{{{_latex(self.title)}}}",
            f"\\begin{{tabular}}{{{align}}}",
            "\\toprule",
            " & ".join(_latex(c) for c in grid.columns) + " \\\\",
            "\\midrule",
        ]
        previous = ""
        for values in grid.itertuples(index=False):
            first = str(values[0])
            if first == OPTIMAL or (first.endswith(REPORTED_SUFFIX)
                                    and not previous.endswith(REPORTED_SUFFIX)):
                lines.append("\\midrule")
            previous = first
            lines.append(" & ".join(_latex(str(v)) for v in values) + " \\\\")
        lines += ["\\bottomrule", "\\end{tabular}"]
        lines += [f"% {note}" for note in self.notes]
        lines.append("\\end{table}")
        return "\n".join(lines) + "\n"

    def to_csv(self) -> str:
        """The tidy numbers (``stats``) as CSV, full precision, for further processing."""
        return str(self.stats.to_csv(index=False))

    def render(self, fmt: str = "markdown") -> str:
        """``fmt``: ``markdown`` | ``latex`` | ``csv``."""
        renderers = {"markdown": self.to_markdown, "latex": self.to_latex, "csv": self.to_csv}
        if fmt not in renderers:
            raise ValueError(f"unknown table format {fmt!r}; choose one of {sorted(renderers)}")
        return renderers[fmt]()


# --------------------------------------------------------------------------- the builder
def final_epochs(df: pd.DataFrame) -> pd.DataFrame:
    """Each trial's last reported epoch (one row per experiment × trial)."""
    if df.empty or "epoch" not in df:
        return df
    keys = df[["experiment", "trial_id", "epoch"]]  # sort the keys only, not the whole frame
    last = keys.sort_values(["experiment", "trial_id", "epoch"], kind="stable").drop_duplicates(
        ["experiment", "trial_id"], keep="last"
    )
    return df.loc[last.index]


def summary_table(
    df: pd.DataFrame,
    rows: Sequence[str] = ("method",),
    metrics: Sequence[str] = ("test",),
    *,
    datasets: Sequence[str] | None = None,
    add_varying: bool = True,
    title: str | None = None,
    notes: Sequence[str] = (),
) -> Table:
    """Aggregate one value per trial over the trials of each row (see the module docstring).

    Args:
        df: a results frame (``load_results``; every epoch or ``final_only``) or any frame with
            one row per trial and the config columns (e.g. ``collapse_indicators``).
        rows: row axes: config fields or derived labels (``method``, ``data_mode``, ``lr``,
            ``optimizer``).
        metrics: ``valid`` / ``test`` (NAS-Bench-201 accuracy of the derived cell, the column
            judging each dataset: ``analysis.frame.bench_column``) or any numeric column.
        datasets: the column datasets, in order (default: those present, the benchmark's first).
        add_varying: add every config field that still varies inside a row as a row column.
    """
    trials = with_labels(final_epochs(df))
    row_columns = list(rows)
    for name in row_columns:
        if name not in trials:
            raise ValueError(f"unknown row axis {name!r}; use a config column or one of "
                             f"method, data_mode, lr, optimizer")
    if add_varying:
        row_columns += varying_fields(trials, list(rows))
    present = _ordered_datasets(trials)
    chosen = list(datasets) if datasets is not None else present
    long = [_metric_values(trials, row_columns, d, m) for d in chosen for m in metrics]
    stats = _aggregate(pd.concat(long, ignore_index=True), row_columns, chosen, list(metrics))
    return Table(
        title=title or f"{', '.join(metrics)} by {', '.join(rows)} (mean ± sample std)",
        row_columns=tuple(row_columns),
        stats=stats,
        notes=tuple(notes),
    )


def _ordered_datasets(trials: pd.DataFrame) -> list[str]:
    present = [str(d) for d in trials["dataset"].dropna().unique()] if "dataset" in trials else []
    known = [d for d in NB201_DATASETS if d in present]
    return known + sorted(d for d in present if d not in known)


def _metric_values(trials: pd.DataFrame, row_columns: list[str], dataset: str, metric: str
                   ) -> pd.DataFrame:
    """One value per trial of ``dataset`` for ``metric``, with the row columns."""
    column = bench_column(dataset, metric) if metric in BENCH_METRICS else metric
    if column not in trials:
        raise ValueError(f"unknown metric {metric!r}: no column {column!r} in the results; "
                         f"use valid, test or one of {sorted(map(str, trials.columns))}")
    part = trials.loc[trials["dataset"] == dataset, row_columns].copy()
    values = trials.loc[trials["dataset"] == dataset, column]
    part["value"] = pd.to_numeric(values.astype("Float64"), errors="coerce").to_numpy(
        dtype=float, na_value=np.nan)
    part["dataset"] = dataset
    part["metric"] = metric
    return part


def _aggregate(long: pd.DataFrame, row_columns: list[str], datasets: list[str],
               metrics: list[str]) -> pd.DataFrame:
    """Group the per-trial values into mean / sample std / n / trials per row × column."""
    stat_names = list(STAT_COLUMNS)
    if long.empty:
        return pd.DataFrame(columns=[*row_columns, *stat_names])
    grouped = long.groupby([*row_columns, "dataset", "metric"], sort=False, dropna=False)["value"]
    stats = grouped.agg(mean="mean", std=lambda v: v.std(ddof=1), n="count", trials="size")
    stats = stats.reset_index()
    stats["std"] = stats["std"].where(stats["n"] >= 2)
    order = _sort_keys(stats, row_columns)
    order["_dataset"] = stats["dataset"].map({d: i for i, d in enumerate(datasets)})
    order["_metric"] = stats["metric"].map({m: i for i, m in enumerate(metrics)})
    stats = stats.iloc[np.lexsort([order[c] for c in reversed(order.columns)])]
    for name in row_columns:
        stats[name] = [display_value(v) for v in stats[name]]
    stats["n"] = stats["n"].astype("Int64")
    stats["trials"] = stats["trials"].astype("Int64")
    return stats[[*row_columns, *stat_names]].reset_index(drop=True)


def _sort_keys(stats: pd.DataFrame, row_columns: list[str]) -> pd.DataFrame:
    """Integer sort keys per row column: known values first in paper order, then natural order
    (numbers numerically), missing last."""
    keys = pd.DataFrame(index=stats.index)
    for name in row_columns:
        values = stats[name]
        preferred = _VALUE_ORDER.get(name, ())
        distinct = [v for v in pd.unique(values) if not pd.isna(v)]
        rest = sorted((v for v in distinct if v not in preferred), key=_natural)
        ranking = {v: i for i, v in enumerate([*[p for p in preferred if p in distinct], *rest])}
        keys[name] = [ranking.get(v, len(ranking)) if not pd.isna(v) else len(ranking) + 1
                      for v in values]
    return keys


def _natural(value: object) -> tuple[int, float, str]:
    try:
        return (0, float(value), "")  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return (1, 0.0, str(value))


def display_value(value: object) -> str:
    """A table cell's text for a label value: 'n/a' when missing, floats shortest."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):  # type: ignore[arg-type]
        return "n/a"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _format_cell(row: object, decimals: int = 2) -> str:
    mean, std, n = row.mean, row.std, row.n  # type: ignore[attr-defined]
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "n/a"
    if pd.isna(std) or (not pd.isna(n) and n < 2):  # a reported row (n NA) keeps its std
        return f"{mean:.{decimals}f}"
    return f"{mean:.{decimals}f} ± {std:.{decimals}f}"


def _seeds(trials: pd.Series) -> str:
    counts = sorted({int(t) for t in trials.dropna()})
    if not counts:
        return ""
    return str(counts[0]) if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"


def _column_title(dataset: str, metric: str) -> str:
    if not dataset:  # a column of one quantity, not per dataset (the tuning tables)
        return metric
    if metric in BENCH_METRICS and dataset not in NB201_DATASETS:  # judged on CIFAR-10
        return f"{dataset}: CIFAR-10 {metric}"
    return f"{DATASET_TITLES.get(dataset, dataset)} {metric}"


def _latex(text: str) -> str:
    for char, escaped in (("\\", "\\textbackslash{}"), ("&", "\\&"), ("%", "\\%"), ("_", "\\_"),
                          ("#", "\\#"), ("$", "\\$"), ("{", "\\{"), ("}", "\\}")):
        text = text.replace(char, escaped)
    return text.replace("±", "$\\pm$").replace("α", "$\\alpha$").replace("–", "--")


# --------------------------------------------------------------------------- paper tables
def main_table(
    df: pd.DataFrame,
    *,
    benchmark: Benchmark | None = None,
    benchmark_dir: str | os.PathLike[str] | None = None,
    with_reported: bool = False,
) -> Table:
    """Paper Table 1: NAS-Bench-201 valid / test accuracy (%) of each trial's final derived cell,
    mean ± sample std over seeds, one row per method, and the benchmark's ``Optimal`` row (the
    best cell per column). ``with_reported``: also the rows the paper's Table 1 prints
    (``analysis.reported``), named ``"<method> (reported)"``, after ours, for the columns this
    table has. ``benchmark`` (or ``benchmark_dir``, the NATS-Bench folder) gives the
    optimum; by default the one ``search_spaces.benchmark.open_benchmark`` finds. Test optima come
    from the shipped table at once; valid optima need the NATS-Bench folder, whose first scan
    reads all 15,625 records (minutes); the optima are then cached in the user's cache directory
    (``search_spaces.benchmark_cache``), so later calls, in any process, take milliseconds."""
    bench = benchmark if benchmark is not None else open_benchmark(benchmark_dir)
    table = summary_table(
        df,
        ("method",),
        BENCH_METRICS,
        title="NAS-Bench-201 accuracy (%) of the final derived architecture, mean ± sample std "
        "over seeds",
    )
    optimal_rows, unknown, damaged = [], [], []
    for dataset, metric in table.columns():
        try:
            value, _ = bench.optimum(bench_column(dataset, metric).removeprefix("bench_"))
        except BenchmarkRecordError as error:  # an incomplete NATS-Bench folder
            value = math.nan
            damaged.append(str(error))
        except ValueError:  # the shipped table knows test accuracies only
            if bench.source != "table":  # a NATS-Bench folder that is not the benchmark
                raise
            value = math.nan
            unknown.append(metric)
        optimal_rows.append({**{c: "" for c in table.row_columns}, table.row_columns[0]: OPTIMAL,
                             "dataset": dataset, "metric": metric, "mean": value,
                             "std": math.nan, "n": pd.NA, "trials": pd.NA})
    cited = _reported_rows(table) if with_reported else []
    stats = pd.concat([table.stats, pd.DataFrame(cited), pd.DataFrame(optimal_rows)],
                      ignore_index=True)
    stats["n"] = stats["n"].astype("Int64")
    stats["trials"] = stats["trials"].astype("Int64")
    notes = [f"Optimal: the best of the 15,625 NAS-Bench-201 cells per column (source: "
             f"{bench.source})."]
    if unknown:
        notes.append("valid columns are n/a: only the shipped test-accuracy table is available; "
                     "pass the NATS-Bench NATS-tss-v1_0-3ffb9-simple folder for them.")
    if damaged:
        notes.append(f"some Optimal values are n/a: {damaged[0]}")
    if any(d not in NB201_DATASETS for d, _ in table.columns()):
        notes.append("searches on other datasets are judged by the cell's CIFAR-10 accuracy.")
    if with_reported:
        notes.append(f"rows marked{REPORTED_SUFFIX}: mean ± std as printed in {SOURCE} "
                     "(analysis/reported.py), not computed from these results; their seeds "
                     "column is empty.")
        if not cited:
            notes.append("no reported rows shown: the paper reports CIFAR-10, CIFAR-100 and "
                         "ImageNet16-120 only, none of which these results searched.")
    return Table(table.title, table.row_columns, stats, tuple(notes))


def _reported_rows(table: Table) -> list[dict[str, object]]:
    """Paper Table 1's rows (``analysis.reported``) for the (dataset, metric) columns of
    ``table``, in its stats layout (counts NA)."""
    shown = set(table.columns())
    first, rest = table.row_columns[0], table.row_columns[1:]
    return [
        {first: row["method"], **{c: "" for c in rest}, "dataset": row["dataset"],
         "metric": row["metric"], "mean": row["mean"], "std": row["std"], "n": pd.NA,
         "trials": pd.NA}
        for row in reported_rows() if (row["dataset"], row["metric"]) in shown
    ]


def ablation_table(df: pd.DataFrame, axis: str, metrics: Sequence[str] = ("test",)) -> Table:
    """Paper Tables 4 / 5: rows are ``axis`` values per method, over each method's one-factor
    slice (module docstring); ``axis='data_mode'`` replaces the method (Table 4's rows are the
    data modes)."""
    trials = with_labels(final_epochs(df))
    if axis not in trials:
        raise ValueError(f"unknown ablation axis {axis!r}: no such column in the results; use one "
                         f"of {sorted(ABLATION_AXES)} or a config column")
    rows = (axis,) if axis == "data_mode" else ("method", axis)
    chosen, notes = [], []
    groups = [("all", trials)] if axis == "data_mode" else trials.groupby("method", sort=True)
    for method, sub in groups:
        part, fixed = _one_factor_slice(sub, axis, rows)
        chosen.append((part, fixed, method))
    if any(part[axis].nunique(dropna=False) > 1 for part, _, _ in chosen):
        # a method whose slice holds one axis value is not part of this ablation
        chosen = [c for c in chosen if c[0][axis].nunique(dropna=False) > 1]
    for _, fixed, method in chosen:
        if fixed:
            companion_only = " varies with " in fixed.split(",")[0]
            if axis == "data_mode":
                notes.append(fixed if companion_only else f"fixed: {fixed}")
            else:
                notes.append(f"{method}: {fixed if companion_only else 'fixed ' + fixed}")
    selected = pd.concat([part for part, _, _ in chosen]) if chosen else trials
    paper, why_not = paper_ablation_match(selected, axis)
    name = f"Ablation: {ABLATION_AXES.get(axis, axis)}"
    if paper is not None:
        name += f" (paper {paper.label})"
        notes.append(f"settings match paper {paper.label} (analysis.tables.PAPER_ABLATIONS).")
    elif why_not:
        notes.append(why_not)
    table = summary_table(selected, rows, metrics, add_varying=False,
                          title=f"{name}: NAS-Bench-201 accuracy (%), mean ± sample std")
    return Table(table.title, table.row_columns, table.stats, tuple(notes))


def paper_ablation_match(trials: pd.DataFrame, axis: str
                         ) -> tuple[PaperAblation | None, str | None]:
    """The paper table (``PAPER_ABLATIONS``) whose defining settings every trial of ``trials``
    (with labels, ``with_labels``) has, else None and why not (the first setting that differs;
    None when the paper has no ablation over ``axis``)."""
    specs = [spec for spec in PAPER_ABLATIONS if spec.axis == axis]
    if not specs or trials.empty:
        return None, None
    reasons = []
    for spec in specs:
        reason = _paper_mismatch(trials, spec)
        if reason is None:
            return spec, None
        reasons.append(f"not paper {spec.label}'s settings: {reason}.")
    return None, reasons[0]


def _paper_mismatch(trials: pd.DataFrame, spec: PaperAblation) -> str | None:
    """The first setting of ``spec`` some trial does not have (as ``field=value (paper:
    allowed)``), or None when every trial has them all."""
    checks: list[tuple[str, tuple[object, ...], pd.Series]] = [
        (spec.axis, spec.values, pd.Series(True, index=trials.index)),
        ("dataset", spec.datasets, pd.Series(True, index=trials.index)),
    ]
    if spec.methods is not None:
        checks.append(("method", spec.methods, pd.Series(True, index=trials.index)))
    checks += [(name, allowed, pd.Series(True, index=trials.index))
               for name, allowed in spec.fixed.items()]
    for column, extra in (("method", spec.per_method), (spec.axis, spec.per_value)):
        for key, settings in extra.items():
            where = trials[column] == key if column in trials else pd.Series(
                False, index=trials.index)
            checks += [(name, allowed, where) for name, allowed in settings.items()]
    for name, allowed, where in checks:
        if name not in trials:
            return f"no {name} column"
        for value in trials.loc[where.fillna(False).astype(bool), name].unique():
            if not any(_same_setting(value, a) for a in allowed):
                paper = " or ".join(display_value(a) for a in allowed)
                return f"{name}={display_value(value)} (paper: {paper})"
    return None


def _same_setting(value: object, allowed: object) -> bool:
    if value is None or (not isinstance(value, str) and pd.isna(value)):  # type: ignore[arg-type]
        return False
    if isinstance(allowed, int | float) and not isinstance(allowed, bool):
        try:
            return math.isclose(float(value), float(allowed), rel_tol=1e-9)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return False
    return str(value) == str(allowed)


MAX_COMPANIONS = 2  # fields an ablation lets vary along with its axis (``_one_factor_slice``)


def _one_factor_slice(sub: pd.DataFrame, axis: str, rows: tuple[str, ...]
                      ) -> tuple[pd.DataFrame, str]:
    """The trials of ``sub`` that differ in ``axis`` only, covering the most axis values (ties:
    fewer companions, then more trials), and the note describing what else they share.

    Every other varying field is held fixed, except up to ``MAX_COMPANIONS`` *companions*: fields
    that take one value per axis value inside the slice (a grid that sets them from the axis,
    e.g. w's final lr scaled with the lr, α weight decay 0 under sigmoid); a field of another
    ablation axis (``ABLATION_AXES``, the method) is never one. Where an axis value
    comes with several values of a companion, the one no other axis value has is kept (then the
    most trials). The note names the fixed fields and each companion's value per axis value."""
    others = varying_fields(sub, rows, within_groups=False)
    if not others:
        return sub, ""
    axes_fields = covered_fields([*ABLATION_AXES, "method"])  # never a companion of another axis
    candidates = [f for f in others if f not in axes_fields]
    best: tuple[tuple[int, int, int], pd.DataFrame, str] = ((-1, 0, -1), sub.iloc[:0], "")
    for size in range(min(MAX_COMPANIONS, len(candidates)) + 1):
        for companions in combinations(candidates, size):
            held = [f for f in others if f not in companions]
            groups = sub.groupby(held, sort=True, dropna=False) if held else [((), sub)]
            for key, part in groups:
                part = _one_companion_value_per_axis_value(part, axis, list(companions))
                score = (part[axis].nunique(dropna=False), -size, len(part))
                if score > best[0]:
                    key_values = key if isinstance(key, tuple) else (key,)
                    note = ", ".join(f"{f}={display_value(v)}"
                                     for f, v in zip(held, key_values, strict=True))
                    for name in companions:
                        pairs = sorted(part[[axis, name]].drop_duplicates().itertuples(
                            index=False), key=lambda pair: _natural(pair[0]))
                        values = "; ".join(f"{display_value(a)}: {display_value(v)}" for a, v in pairs)
                        note += f"{', ' if note else ''}{name} varies with {axis} ({values})"
                    best = (score, part, note)
    return best[1], best[2]


def _one_companion_value_per_axis_value(part: pd.DataFrame, axis: str, companions: list[str]
                                        ) -> pd.DataFrame:
    """``part`` keeping, per axis value, the trials of one combination of ``companions``: one no
    other axis value has, if any; then the one with the most trials; then the first."""
    if not companions:
        return part
    combos = part[[axis, *companions]].astype("string").fillna("<NA>").agg("|".join, axis=1)
    combo_only = part[companions].astype("string").fillna("<NA>").agg("|".join, axis=1)
    keep = pd.Series(False, index=part.index)
    axis_values = part[axis].astype("string").fillna("<NA>")
    for value in axis_values.unique():
        mine = axis_values == value
        elsewhere = set(combo_only[~mine])
        counts = combos[mine].value_counts(sort=False)
        shared = {c: combo_only[mine & (combos == c)].iloc[0] in elsewhere for c in counts.index}
        chosen = min(counts.index, key=lambda c: (shared[c], -counts[c]))
        keep |= mine & (combos == chosen)
    return part[keep]


COLLAPSE_METRICS = ("n_skip", "n_pool", "n_none", "n_param_free", "collapsed", "skip_dominant",
                    "collapse_epoch", "final_bench_acc")


def collapse_table(df: pd.DataFrame, rows: Sequence[str] = ("method",)) -> Table:
    """Collapse indicators (``analysis.collapse``) per row: skip connections, poolings, ``none``
    ops and all parameter-free ops in the final genotype, the fraction of trials meeting each
    collapse criterion (``collapsed``, ``skip_dominant``), the collapse epoch and the final
    accuracy; the notes give each criterion's base rate over all NAS-Bench-201 cells."""
    indicators = collapse_indicators(df)
    if not indicators.empty:
        for name in CRITERIA:
            indicators[name] = indicators[name].astype("Float64")
    rates = nb201_base_rates()
    return summary_table(
        indicators,
        rows,
        COLLAPSE_METRICS,
        title="Collapse: skip / pooling / none / all parameter-free ops in the final genotype, "
        "fraction collapsed and skip-dominant, collapse epoch, final NAS-Bench-201 accuracy (%); "
        "mean ± sample std",
        notes=(
            "n_skip, n_pool (average or max), n_none = ops of the final genotype (NAS-Bench-201: "
            "6 edges; DARTS: the normal cell's 8); n_param_free = their sum.",
            "collapsed = parameter-free ops (none, skip, pooling) hold more than half of the "
            "cell's edges (the paper's 'non-learnable operations dominate the architecture'; it "
            "states no threshold); skip_dominant = skip connections alone hold more than half; "
            "collapse epoch = first epoch from which the genotype stays collapsed (n counts "
            "collapsed trials only).",
            f"base rates over all 15,625 NAS-Bench-201 cells: collapsed "
            f"{100 * rates['collapsed']:.1f} %, skip_dominant {100 * rates['skip_dominant']:.1f} "
            "% (a random cell is 'collapsed' more often than not).",
        ),
    )


def paper_tables(
    df: pd.DataFrame,
    names: Sequence[str] | None = None,
    benchmark_dir: str | os.PathLike[str] | None = None,
    tuning: Tuning | None = None,
    with_reported: bool = False,
) -> list[Table]:
    """The tables ``study tables`` prints: ``names`` from ``main``, the ablation axes
    (``data_mode``, ``lr``, ``activation``, ``optimizer``), ``collapse`` and ``tuning`` (the
    tuning table, then the importance table; ``tuning`` = the sidecars, ``store.read_tuning``);
    ``None`` = the main table, every ablation whose one-factor slice holds two or more values of
    its axis (for some method), collapse, and the tuning tables when ``df`` has rows of ``study
    tune`` — only those when every row is one. The paper tables never include rows of ``study
    tune`` (their sampled hyperparameters would split every row into one per sample).
    ``with_reported``: the main table also shows the paper's Table 1 rows (``main_table``)."""
    tuned = tuning_mask(df)
    searches = df[~tuned]
    final = final_epochs(searches)  # main and ablation tables need each trial's last epoch only

    def build(name: str) -> list[Table]:
        if name == "tuning":
            return [tuning_table(df, tuning), importance_table(tuning)]
        if name == "main":
            return [main_table(final, benchmark_dir=benchmark_dir, with_reported=with_reported)]
        if name == "collapse":
            return [collapse_table(searches)]  # the collapse epoch needs every epoch
        return [ablation_table(final, name)]

    if names is not None:
        return [table for name in names for table in build(name)]
    tuning_tables = build("tuning") if tuned.any() else []
    if tuned.any() and searches.empty:
        return tuning_tables
    present = with_labels(searches.iloc[:0]).columns  # an axis missing from the results is skipped
    ablations = [table for axis in ABLATION_AXES if axis in present for table in build(axis)]
    return [*build("main"), *[t for t in ablations if _is_ablation(t)], *build("collapse"),
            *tuning_tables]


def _is_ablation(table: Table) -> bool:
    """Some row group (method) of an ablation table shows two or more values of its axis."""
    axis, groups = table.row_columns[-1], list(table.row_columns[:-1])
    if table.stats.empty:
        return False
    if not groups:
        return table.stats[axis].nunique() > 1
    return bool((table.stats.groupby(groups)[axis].nunique() > 1).any())


# --------------------------------------------------------------------------- tuning tables
def tuning_table(df: pd.DataFrame, tuning: Tuning | None = None, top_k: int | None = None
                 ) -> Table:
    """``study tune``'s result: one row per experiment × tuned cell (``analysis.tuning``).

    Row columns: experiment, cell, the method label (``analysis.frame``; ``n/a`` when it cannot
    be derived), the objective (record column, which epoch, direction), complete samples /
    requested (the sidecar's ``samples``; complete alone without a sidecar) and the best sample's
    hyperparameters (``tuned_params``; numbers to 3 significant digits). Columns: ``best`` (the
    best objective of a complete sample; ties: the lower sample number) and ``top-k``: mean ±
    sample std (ddof=1) of the k best objectives (``top_k``, else the sidecar's ``top_k``, else
    ``DEFAULT_TOP_K``; fewer when fewer samples have a value), in the objective's unit (% for the
    benchmark accuracies). Samples without a value (NaN, e.g. diverged) are left out and counted
    in the notes; so are samples with rows of two trials. ``stats`` (CSV): per row ``best`` and
    ``top-k`` with ``n`` = values used and ``trials`` = complete samples. Rows of ``study run``
    in ``df`` are ignored."""
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k={top_k} must be >= 1")
    samples = tuning_samples(df, tuning)
    params = tuned_params(df, tuning)
    stats_rows: list[dict[str, object]] = []
    notes: list[str] = []
    used_test = False
    for (experiment, study), cell in sorted(
        samples.groupby(["experiment", "tune_study"], sort=True), key=lambda item: (
            str(item[0][0]), sidecar_rank(tuning, str(item[0][0]), str(item[0][1])))
    ):
        payload = (tuning or {}).get(str(experiment)) or {}
        k = top_k or int(payload.get("top_k") or DEFAULT_TOP_K)
        names = params.get((str(experiment), str(study)), [])
        rows, cell_notes = _tuning_row(cell, names, k, payload.get("samples"))
        stats_rows += rows
        notes += [f"{experiment} / {cell['tune_cell'].iloc[0]}: {note}" for note in cell_notes]
        used_test = used_test or any(uses_test_split(o) for o in cell["objective"].unique())
    head = ("complete = samples whose search reached its last epoch or diverged, of those "
            "requested; best = the best objective of a complete sample; top-k = mean ± sample "
            "std (n - 1) of the k best objectives.")
    notes = [head, *notes] if stats_rows else ["no tuning samples (rows of study tune) here."]
    if used_test:
        notes.append(TEST_SPLIT_NOTE)
    stats = pd.DataFrame(stats_rows, columns=[*TUNING_ROWS, *STAT_COLUMNS])
    return Table(
        title="Tuning: best objective, its hyperparameters and the top-k mean ± sample std per "
        "tuned cell",
        row_columns=TUNING_ROWS,
        stats=typed_stats(stats),
        notes=tuple(notes),
        count_column=None,
    )


def _tuning_row(cell: pd.DataFrame, names: list[str], k: int, requested: object
                ) -> tuple[list[dict[str, object]], list[str]]:
    """The two stats rows (best, top-k) of one cell's samples, and the cell's notes."""
    complete = cell[cell["complete"].astype(bool)]
    valued = complete[complete["value"].notna()]
    direction = str(cell["tune_direction"].iloc[0])
    ranked = valued.sort_values(["value", TUNE_SAMPLE], ascending=[direction == MIN, True],
                                kind="stable")
    best = ranked.iloc[0] if len(ranked) else None
    top = ranked["value"].to_numpy(dtype=float)[:k]
    objectives = ", ".join(str(o) for o in cell["objective"].unique())
    methods = [str(m) for m in cell["method"].dropna().unique()]
    labels = {
        "experiment": str(cell["experiment"].iloc[0]),
        "cell": str(cell["tune_cell"].iloc[0]),
        "method": " / ".join(methods) if methods else "n/a",
        "objective": f"{objectives} ({cell['tune_epoch'].iloc[0]} epoch, {direction})",
        "complete": f"{len(complete)}/{requested}" if requested else str(len(complete)),
        "best hyperparameters": "n/a" if best is None else ", ".join(
            f"{name}={_compact(best[name])}" for name in names),
    }
    std = float(np.std(top, ddof=1)) if len(top) >= 2 else math.nan
    rows: list[dict[str, object]] = [
        {**labels, "dataset": "", "metric": "best",
         "mean": math.nan if best is None else float(best["value"]), "std": math.nan,
         "n": int(best is not None), "trials": len(complete)},
        {**labels, "dataset": "", "metric": f"top-{k}",
         "mean": float(top.mean()) if len(top) else math.nan, "std": std, "n": len(top),
         "trials": len(complete)},
    ]
    notes = []
    if len(valued) < len(complete):
        notes.append(f"{len(complete) - len(valued)} of {len(complete)} complete samples have no "
                     f"objective value (NaN, e.g. diverged): left out of best and top-{k}.")
    if 0 < len(top) < k:
        notes.append(f"top-{k} over {len(top)} samples only.")
    restarted = int((cell["trial_ids"] > 1).sum())
    if restarted:
        notes.append(f"{restarted} sample(s) have rows of several trials (an abandoned trial "
                     "after a driver crash): each counts once, by the trial reaching the "
                     "furthest epoch.")
    return rows, notes


def importance_table(tuning: Tuning | None) -> Table:
    """Optuna's hyperparameter importances of every tuned cell (the sidecars' ``importance``):
    rows experiment × cell × hyperparameter, most important first, one column ``importance``
    (normalised by Optuna: a cell's values sum to 1). A cell without importances shows one
    ``n/a`` row and its sidecar's ``importance_note`` in the notes; the notes name the
    evaluator (e.g. fanova)."""
    rows: list[dict[str, object]] = []
    notes: list[str] = []
    evaluators: set[str] = set()
    for experiment, payload in sorted((tuning or {}).items()):
        for label, info in (payload.get("cells") or {}).items():
            importance = info.get("importance") if isinstance(info, dict) else None
            values = importance.get("values") if isinstance(importance, dict) else None
            base = {"experiment": str(experiment), "cell": str(label), "dataset": "",
                    "metric": "importance", "std": math.nan, "trials": pd.NA}
            if not values:
                why = (info.get("importance_note") if isinstance(info, dict) else None) or (
                    "not computed")
                rows.append({**base, "hyperparameter": "n/a", "mean": math.nan, "n": 0})
                notes.append(f"{experiment} / {label}: no importance: {why}")
                continue
            assert isinstance(importance, dict)
            evaluators.add(str(importance.get("evaluator") or "unknown"))
            for name, value in sorted(values.items(), key=lambda item: -float(item[1])):
                rows.append({**base, "hyperparameter": str(name), "mean": float(value), "n": 1})
    if evaluators:
        notes.insert(0, f"importance: Optuna's {', '.join(sorted(evaluators))} evaluator, "
                     "normalised so that a cell's importances sum to 1.")
    if not tuning:
        notes.append(f"no tuning sidecar ({TUNING_FILE}) in these results: no importances.")
    stats = pd.DataFrame(rows, columns=[*IMPORTANCE_ROWS, *STAT_COLUMNS])
    return Table(
        title="Tuning: hyperparameter importance per tuned cell (Optuna, normalised to sum to 1)",
        row_columns=IMPORTANCE_ROWS,
        stats=typed_stats(stats),
        notes=tuple(notes),
        count_column=None,
    )


def typed_stats(stats: pd.DataFrame) -> pd.DataFrame:
    """``Table.stats`` with its dtypes: mean and std float, the counts nullable ints."""
    stats["mean"] = stats["mean"].astype(float)
    stats["std"] = stats["std"].astype(float)
    stats["n"] = stats["n"].astype("Int64")
    stats["trials"] = stats["trials"].astype("Int64")
    return stats


def _compact(value: object) -> str:
    """A hyperparameter value for a table cell: numbers to 3 significant digits (0.0123),
    integers and text as they are, ``n/a`` for null."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):  # type: ignore[arg-type]
        return "n/a"
    if isinstance(value, bool | np.bool_ | str):
        return str(value)
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return f"{float(value):.3g}"
    return str(value)
