"""What one trial consumes and runs: ``SearchConfig``, the datasets, the search loop, the record.

Public surface (each name loads its module on first use; ``SearchConfig`` and ``records`` are
plain data and import no torch, the search loop needs the ``search`` extra)::

    from trainables import SearchConfig, run_search, records
    config = SearchConfig(dataset="digits", level="single", activation="sigmoid", epochs=2)
    for record in run_search(config):
        print(record[records.EPOCH], record[records.GENOTYPE])
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trainables.config import SearchConfig, config_key, dedupe
    from trainables.datasets import load_dataset
    from trainables.search import Search, run_search
    from trainables.tune_trainable import search_trainable

_EXPORTS = {
    "SearchConfig": "trainables.config",
    "config_key": "trainables.config",
    "dedupe": "trainables.config",
    "Search": "trainables.search",
    "run_search": "trainables.search",
    "load_dataset": "trainables.datasets",
    "search_trainable": "trainables.tune_trainable",
}
__all__ = [
    "Search",
    "SearchConfig",
    "config_key",
    "dedupe",
    "load_dataset",
    "records",
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
