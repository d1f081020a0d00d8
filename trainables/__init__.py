"""What one trial consumes and runs: ``SearchConfig``, the datasets, the search loop, the record.

Public surface (each name loads its module on first use; ``SearchConfig`` and ``records`` are
plain data and import no torch, the search loop needs the ``search`` extra)::

    from trainables import SearchConfig, run_search, records
    config = SearchConfig(dataset="digits", level="single", activation="sigmoid", epochs=2)
    for record in run_search(config):
        print(record[records.EPOCH], record[records.GENOTYPE])

A DARTS genotype trained from scratch (``EvalConfig``, its ``PRESETS``, ``run_evaluation``)::

    from trainables import preset_config, run_evaluation
    config = preset_config("cifar10", "DARTS_V2", dataset="digits", layers=3, epochs=2)
    print(run_evaluation(config)[-1][records.TEST_ACC])
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trainables.config import SearchConfig, config_key, dedupe
    from trainables.datasets import load_dataset, load_evaluation_dataset
    from trainables.eval_config import PRESETS, EvalConfig, preset_config
    from trainables.evaluation import Evaluation, run_evaluation
    from trainables.search import Search, run_search
    from trainables.tune_trainable import search_trainable

_EXPORTS = {
    "SearchConfig": "trainables.config",
    "config_key": "trainables.config",
    "dedupe": "trainables.config",
    "Search": "trainables.search",
    "run_search": "trainables.search",
    "load_dataset": "trainables.datasets",
    "load_evaluation_dataset": "trainables.datasets",
    "EvalConfig": "trainables.eval_config",
    "PRESETS": "trainables.eval_config",
    "preset_config": "trainables.eval_config",
    "Evaluation": "trainables.evaluation",
    "run_evaluation": "trainables.evaluation",
    "search_trainable": "trainables.tune_trainable",
}
__all__ = [
    "PRESETS",
    "EvalConfig",
    "Evaluation",
    "Search",
    "SearchConfig",
    "config_key",
    "dedupe",
    "load_dataset",
    "load_evaluation_dataset",
    "preset_config",
    "records",
    "run_evaluation",
    "run_search",
    "search_trainable",
]


def __getattr__(name: str) -> Any:
    if name == "records":
        return import_module("trainables.records")
    if name not in _EXPORTS:
        raise AttributeError(f"module 'trainables' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
