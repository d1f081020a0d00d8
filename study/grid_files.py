"""TOML grid files: a user's own grid without touching code.

Format (every key under ``[base]``, ``[axes]`` and ``[fixed]`` is a ``SearchConfig`` field)::

    name = "lr-ablation"            # optional
    description = "..."              # optional
    [base]                           # defaults for every trial
    space = "nb201"
    dataset = "cifar10"
    epochs = 50
    [axes]                           # each key: a non-empty list; trials = cartesian product
    level = ["single", "bi"]
    w_lr = [0.001, 0.005, 0.025]
    seed = [0, 1, 2, 3, 4]
    [fixed]                          # optional; applied last, overriding base and axes
    batch_size = 64

A trial is ``{**base, **axes_combination, **fixed}``, in product order (first axis slowest),
with repeated trials dropped. Everything is validated before any trial starts; every error is a
``ValueError`` naming the file, the table and the key (a missing file: ``FileNotFoundError``).
See examples/lr_ablation.toml.
"""

from __future__ import annotations

import os
import tomllib
from itertools import product
from typing import Any

from trainables.config import SearchConfig, dedupe

TABLES = ("base", "axes", "fixed")
TOP_KEYS = ("name", "description", *TABLES)


def load_grid_file(path: str | os.PathLike) -> list[SearchConfig]:
    """The SearchConfigs a TOML grid file describes (format: module docstring)."""
    where = os.fspath(path)
    if not os.path.isfile(where):
        raise FileNotFoundError(f"grid file {where!r} does not exist")
    try:
        with open(where, "rb") as fh:
            doc = tomllib.load(fh)
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{where}: TOML syntax error: {err}") from err
    _check_layout(where, doc)
    base, axes, fixed = (doc.get(t, {}) for t in TABLES)
    for table, values in (("base", base), ("fixed", fixed)):
        for key, value in values.items():
            _check_value(where, table, key, value)
    for key, values in axes.items():
        if not isinstance(values, list):
            raise ValueError(f"{where}: [axes] {key}: must be a list of values, got {values!r}")
        if not values:
            raise ValueError(
                f"{where}: [axes] {key}: empty list makes an empty product (no trials)"
            )
        for value in values:
            _check_value(where, "axes", key, value)
    configs = []
    for combo in product(*axes.values()):
        chosen = dict(zip(axes, combo, strict=True))
        try:
            configs.append(SearchConfig.from_dict({**base, **chosen, **fixed}))
        except ValueError as err:
            shown = ", ".join(f"{k}={v!r}" for k, v in chosen.items()) or "(no axes)"
            raise ValueError(
                f"{where}: the combination [axes] {shown} with [base] and [fixed] is invalid: {err}"
            ) from err
    return dedupe(configs)


def _check_layout(where: str, doc: dict[str, Any]) -> None:
    unknown = sorted(set(doc) - set(TOP_KEYS))
    if unknown:
        raise ValueError(f"{where}: unknown top-level key(s) {unknown}; allowed: {list(TOP_KEYS)}")
    for key in ("name", "description"):
        if key in doc and not isinstance(doc[key], str):
            raise ValueError(f"{where}: top-level {key}: must be a string, got {doc[key]!r}")
    known = SearchConfig.field_names()
    for table in TABLES:
        values = doc.get(table, {})
        if not isinstance(values, dict):
            raise ValueError(f"{where}: [{table}] must be a table, got {values!r}")
        for key in values:
            if key not in known:
                raise ValueError(
                    f"{where}: [{table}] {key}: unknown SearchConfig field; valid fields: "
                    f"{list(known)}"
                )


def _check_value(where: str, table: str, key: str, value: Any) -> None:
    """Check one value on its own (type, allowed names, range) against the defaults; errors
    that involve other fields wait for the whole combination (they may be fine there)."""
    try:
        SearchConfig.from_dict({key: value})
    except ValueError as err:
        text = str(err)
        if text.startswith(f"{key}="):
            raise ValueError(f"{where}: [{table}] {key}: {text[len(key) + 1 :]}") from err
