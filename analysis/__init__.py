"""Analysis of study results: Parquet -> pandas -> the paper's tables and figures.

Imports neither torch nor Ray, so results from a cluster are analysed on a laptop with the base
install (pandas, pyarrow, matplotlib)::

    from analysis import load_results, main_table, ablation_table
    df = load_results("results", alphas=False)
    print(main_table(df).to_markdown())

``study tune``'s results: ``tuning_samples`` (one row per Optuna sample), ``tuning_table`` and
``importance_table`` (with the sidecars of ``analysis.store.read_tuning``), ``tuning_figure``.

The names below are the public surface; each loads its module on first use (figures need
matplotlib, the store only pyarrow). The results format itself lives in ``analysis.store``.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from analysis.alphas import alpha_long
    from analysis.collapse import collapse_by_epoch, collapse_indicators, nb201_base_rates
    from analysis.evaluation import evaluation_table
    from analysis.figures import save_figures, tuning_figure
    from analysis.frame import bench_column, config_columns, with_labels
    from analysis.reported import reported_rows
    from analysis.results import load_evaluations, load_results
    from analysis.store import EVALUATION, SEARCH, experiment_folders, results_schema
    from analysis.tables import (
        Table,
        ablation_table,
        collapse_table,
        final_epochs,
        importance_table,
        main_table,
        paper_tables,
        summary_table,
        tuning_table,
    )
    from analysis.tuning import tuning_samples

_EXPORTS = {
    "load_results": "analysis.results",
    "load_evaluations": "analysis.results",
    "evaluation_table": "analysis.evaluation",
    "EVALUATION": "analysis.store",
    "results_schema": "analysis.store",
    "experiment_folders": "analysis.store",
    "SEARCH": "analysis.store",
    "Table": "analysis.tables",
    "main_table": "analysis.tables",
    "ablation_table": "analysis.tables",
    "summary_table": "analysis.tables",
    "collapse_table": "analysis.tables",
    "paper_tables": "analysis.tables",
    "final_epochs": "analysis.tables",
    "collapse_indicators": "analysis.collapse",
    "collapse_by_epoch": "analysis.collapse",
    "nb201_base_rates": "analysis.collapse",
    "reported_rows": "analysis.reported",
    "alpha_long": "analysis.alphas",
    "with_labels": "analysis.frame",
    "bench_column": "analysis.frame",
    "config_columns": "analysis.frame",
    "save_figures": "analysis.figures",
    "tuning_figure": "analysis.figures",
    "tuning_table": "analysis.tables",
    "importance_table": "analysis.tables",
    "tuning_samples": "analysis.tuning",
}
__all__ = [
    "EVALUATION",
    "SEARCH",
    "Table",
    "ablation_table",
    "alpha_long",
    "bench_column",
    "collapse_by_epoch",
    "collapse_indicators",
    "collapse_table",
    "config_columns",
    "evaluation_table",
    "experiment_folders",
    "final_epochs",
    "importance_table",
    "load_evaluations",
    "load_results",
    "main_table",
    "nb201_base_rates",
    "paper_tables",
    "reported_rows",
    "results_schema",
    "save_figures",
    "summary_table",
    "tuning_figure",
    "tuning_samples",
    "tuning_table",
    "with_labels",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'analysis' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
