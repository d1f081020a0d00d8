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
* :func:`ablation_table` — paper Tables 4 and 5: rows are the values of one axis (``data_mode``,
  ``lr``, ``activation``, ``optimizer`` or any config field) per method. Which trials enter is
  decided per method as a *one-factor slice*: among that method's trials, the group that agrees on
  every other config field and covers the most values of the axis (ties: more trials, then the
  first in sort order). Methods whose slice holds a single value of the axis are left out (unless
  no method has two). The fields held fixed are written into the table's notes. On a run of the
  ``paper`` grid this picks exactly Table 4 and Tables 5(a), (b), (c).
* :func:`collapse_table` — the collapse indicators of ``analysis.collapse`` aggregated the same way.

A :class:`Table` keeps the tidy numbers (``stats``) and renders as Markdown, LaTeX or CSV.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.collapse import collapse_indicators
from analysis.frame import bench_column, varying_fields, with_labels
from search_spaces.benchmark import BENCH_DATASETS as NB201_DATASETS
from search_spaces.benchmark import Benchmark, BenchmarkRecordError, open_benchmark

DATASET_TITLES = {
    "cifar10": "CIFAR-10",
    "cifar100": "CIFAR-100",
    "imagenet16-120": "ImageNet16-120",
    "imagenet": "ImageNet-1k",
}
BENCH_METRICS = ("valid", "test")  # NAS-Bench-201 accuracy of the derived cell
ABLATION_AXES = {
    "data_mode": "Data modes (paper Table 4)",
    "lr": "Learning rate (paper Table 5a)",
    "activation": "α activation (paper Table 5b)",
    "optimizer": "α optimizer (paper Table 5c)",
}
# Display order of known values (others sort after them, in their natural order).
_VALUE_ORDER = {
    "method": ("DARTS", "DARTS (2nd order)", "DARTS (same subset)", "Single-DARTS"),
    "activation": ("softmax", "sigmoid", "sigmoid*"),
    "optimizer": ("SGD", "Adam"),
}
OPTIMAL = "Optimal"
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
    """

    title: str
    row_columns: tuple[str, ...]
    stats: pd.DataFrame
    notes: tuple[str, ...] = ()

    # ------------------------------------------------------------------ layout
    def columns(self) -> list[tuple[str, str]]:
        """(dataset, metric) pairs in display order."""
        pairs = self.stats[["dataset", "metric"]].drop_duplicates()
        return [(str(d), str(m)) for d, m in pairs.itertuples(index=False)]

    def cells(self) -> pd.DataFrame:
        """The display grid: one row per table row, one string cell per (dataset, metric),
        "mean ± std" (see the module docstring), and a ``seeds`` column."""
        if self.stats.empty:
            return pd.DataFrame(columns=[*self.row_columns, "seeds"])
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
            row["seeds"] = _seeds(group["trials"])
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
        for values in grid.itertuples(index=False):
            if values[0] == OPTIMAL:
                lines.append("\\midrule")
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
        stats[name] = [_display(v) for v in stats[name]]
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


def _display(value: object) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):  # type: ignore[arg-type]
        return "n/a"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _format_cell(row: object, decimals: int = 2) -> str:
    mean, std, n = row.mean, row.std, row.n  # type: ignore[attr-defined]
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "n/a"
    if pd.isna(n) or n < 2 or pd.isna(std):
        return f"{mean:.{decimals}f}"
    return f"{mean:.{decimals}f} ± {std:.{decimals}f}"


def _seeds(trials: pd.Series) -> str:
    counts = sorted({int(t) for t in trials.dropna()})
    if not counts:
        return ""
    return str(counts[0]) if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"


def _column_title(dataset: str, metric: str) -> str:
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
) -> Table:
    """Paper Table 1: NAS-Bench-201 valid / test accuracy (%) of each trial's final derived cell,
    mean ± sample std over seeds, one row per method, and the benchmark's ``Optimal`` row (the
    best cell per column). ``benchmark`` (or ``benchmark_dir``, the NATS-Bench folder) gives the
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
    stats = pd.concat([table.stats, pd.DataFrame(optimal_rows)], ignore_index=True)
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
    return Table(table.title, table.row_columns, stats, tuple(notes))


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
            notes.append(f"fixed: {fixed}" if axis == "data_mode" else f"{method}: fixed {fixed}")
    selected = pd.concat([part for part, _, _ in chosen]) if chosen else trials
    title = ABLATION_AXES.get(axis, f"Ablation over {axis}")
    table = summary_table(selected, rows, metrics, add_varying=False,
                          title=f"{title}: NAS-Bench-201 accuracy (%), mean ± sample std")
    return Table(table.title, table.row_columns, table.stats, tuple(notes))


def _one_factor_slice(sub: pd.DataFrame, axis: str, rows: tuple[str, ...]
                      ) -> tuple[pd.DataFrame, str]:
    """The group of ``sub`` agreeing on every other varying field with the most axis values."""
    others = varying_fields(sub, rows, within_groups=False)
    if not others:
        return sub, ""
    best_key, best_part, best_score = None, sub.iloc[:0], (-1, -1)
    for key, part in sub.groupby(others, sort=True, dropna=False):
        score = (part[axis].nunique(dropna=False), len(part))
        if score > best_score:
            best_key, best_part, best_score = key, part, score
    key_values = best_key if isinstance(best_key, tuple) else (best_key,)
    fixed = ", ".join(f"{f}={_display(v)}" for f, v in zip(others, key_values, strict=True))
    return best_part, fixed


def collapse_table(df: pd.DataFrame, rows: Sequence[str] = ("method",)) -> Table:
    """Collapse indicators (``analysis.collapse``) per row: parameter-free ops in the final
    genotype, the fraction of collapsed trials, the collapse epoch and the final accuracy."""
    indicators = collapse_indicators(df)
    if not indicators.empty:
        indicators["collapsed"] = indicators["collapsed"].astype("Float64")
    return summary_table(
        indicators,
        rows,
        ("n_param_free", "collapsed", "collapse_epoch", "final_bench_acc"),
        title="Collapse: parameter-free ops in the final genotype, fraction collapsed, "
        "collapse epoch, final NAS-Bench-201 accuracy (%); mean ± sample std",
        notes=("collapsed = parameter-free ops (none, skip, pooling) hold more than half of the "
               "cell's edges; collapse epoch = first epoch from which the genotype stays so "
               "(n counts collapsed trials only).",),
    )


def paper_tables(
    df: pd.DataFrame,
    names: Sequence[str] | None = None,
    benchmark_dir: str | os.PathLike[str] | None = None,
) -> list[Table]:
    """The tables ``study tables`` prints: ``names`` from ``main``, the ablation axes
    (``data_mode``, ``lr``, ``activation``, ``optimizer``) and ``collapse``; ``None`` = the main
    table, every ablation whose one-factor slice holds two or more values of its axis (for some
    method), and collapse."""
    final = final_epochs(df)  # main and ablation tables need each trial's last epoch only

    def build(name: str) -> Table:
        if name == "main":
            return main_table(final, benchmark_dir=benchmark_dir)
        if name == "collapse":
            return collapse_table(df)  # the collapse epoch needs every epoch
        return ablation_table(final, name)

    if names is not None:
        return [build(name) for name in names]
    present = with_labels(df.iloc[:0]).columns  # an axis missing from the results is skipped
    ablations = [build(axis) for axis in ABLATION_AXES if axis in present]
    return [build("main"), *[t for t in ablations if _is_ablation(t)], build("collapse")]


def _is_ablation(table: Table) -> bool:
    """Some row group (method) of an ablation table shows two or more values of its axis."""
    axis, groups = table.row_columns[-1], list(table.row_columns[:-1])
    if table.stats.empty:
        return False
    if not groups:
        return table.stats[axis].nunique() > 1
    return bool((table.stats.groupby(groups)[axis].nunique() > 1).any())
