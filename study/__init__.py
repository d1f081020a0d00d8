"""Studies on Ray Tune: grids of searches, the Tuner, the Parquet results writer, compaction,
hyperparameter tuning with Optuna (``study tune``), the GPU cost estimate and the ``study``
command.

Public surface (each name loads its module on first use; grids need only the torch-free config,
running needs the ``search`` and ``study`` extras)::

    from study import build_grid, RunOptions, run_experiment
    configs = build_grid("smoke")
    run_experiment(configs, RunOptions(results="results"), "smoke")

    from study import load_tune_spec, run_tuning, default_storage
    spec = load_tune_spec("examples/tune_smoke.toml")
    options = RunOptions(results="results")
    run_tuning(spec, options, spec.name, default_storage(options, None))
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from study.compaction import CompactionReport, compact_experiment, compact_results
    from study.cost import estimate_cost, load_calibration
    from study.execute import run_experiment
    from study.grid_files import load_grid_file
    from study.grids import GRIDS, Grid, build_grid, describe_grids
    from study.results import ParquetResultsWriter
    from study.runner import RunOptions, build_tuner
    from study.tune_execute import default_storage, run_tuning
    from study.tune_search import CellStudies
    from study.tune_spec import TuneSpec, load_tune_spec

_EXPORTS = {
    "GRIDS": "study.grids",
    "Grid": "study.grids",
    "build_grid": "study.grids",
    "describe_grids": "study.grids",
    "load_grid_file": "study.grid_files",
    "RunOptions": "study.runner",
    "build_tuner": "study.runner",
    "run_experiment": "study.execute",
    "ParquetResultsWriter": "study.results",
    "compact_experiment": "study.compaction",
    "compact_results": "study.compaction",
    "CompactionReport": "study.compaction",
    "estimate_cost": "study.cost",
    "load_calibration": "study.cost",
    "load_tune_spec": "study.tune_spec",
    "TuneSpec": "study.tune_spec",
    "CellStudies": "study.tune_search",
    "run_tuning": "study.tune_execute",
    "default_storage": "study.tune_execute",
}
__all__ = [
    "GRIDS",
    "CellStudies",
    "CompactionReport",
    "Grid",
    "ParquetResultsWriter",
    "RunOptions",
    "TuneSpec",
    "build_grid",
    "build_tuner",
    "compact_experiment",
    "compact_results",
    "default_storage",
    "describe_grids",
    "estimate_cost",
    "load_calibration",
    "load_grid_file",
    "load_tune_spec",
    "run_experiment",
    "run_tuning",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'study' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
