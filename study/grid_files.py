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
with repeated trials dropped. A file must set at least one field in ``[base]``, ``[axes]`` or
``[fixed]``: an empty one (or one with only comments, ``name`` or ``description``) defines no
trials and is refused rather than run as a default search; one search alone is a ``[base]``
(e.g. ``seed = 0`` for the defaults). ``name``, when given, must be a usable experiment name
(non-empty, no ``/``, ``\\`` or ``=``). Everything is validated before any trial starts; every
error is a ``ValueError`` naming the file, the table and the key (a missing file:
``FileNotFoundError``). See examples/lr_ablation.toml.

The reading and checking of ``name``, ``[base]``, ``[axes]`` and ``[fixed]`` are public helpers
(``read_toml``, ``check_layout``, ``check_name``, ``parse_tables``, ``build_config``), shared
with the tuning specs of ``study.tune_spec``, so both file kinds accept the same tables with the
same messages.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Mapping
from itertools import product
from pathlib import Path
from typing import Any, NamedTuple

from analysis.store import check_experiment_name
from trainables.config import SearchConfig, dedupe

TABLES = ("base", "axes", "fixed")
TOP_KEYS = ("name", "description", *TABLES)


class Tables(NamedTuple):
    """The checked ``[base]``, ``[axes]`` and ``[fixed]`` tables of a file (empty when absent)."""

    base: dict[str, Any]
    axes: dict[str, list[Any]]
    fixed: dict[str, Any]


def load_grid_file(path: str | os.PathLike) -> list[SearchConfig]:
    """The SearchConfigs a TOML grid file describes (format: module docstring)."""
    where, doc = read_toml(path, "grid file")
    check_layout(where, doc, TOP_KEYS)
    if "name" in doc:
        check_name(where, doc)
    tables = parse_tables(where, doc)
    if not any(tables):
        raise ValueError(
            f"{where}: the grid file defines no trials: it sets no SearchConfig field; give "
            "[base] (one search: e.g. [base] seed = 0 runs the defaults once), [axes] (each key a "
            "list of values: their product) and/or [fixed] (see study.grid_files)"
        )
    combos = (dict(zip(tables.axes, c, strict=True)) for c in product(*tables.axes.values()))
    return dedupe(build_config(where, tables, chosen) for chosen in combos)


def read_toml(path: str | os.PathLike, what: str) -> tuple[str, dict[str, Any]]:
    """``(path as str, parsed document)``; ``what`` names the file kind in the missing-file
    error (``FileNotFoundError``); a syntax error is a ``ValueError`` naming file and line, as is
    text that is not UTF-8, an integer literal too long to read, or nesting too deep to read."""
    where = os.fspath(path)
    if not os.path.isfile(where):
        raise FileNotFoundError(f"{what} {where!r} does not exist")
    try:
        with open(where, "rb") as fh:
            return where, tomllib.load(fh)
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{where}: TOML syntax error: {err}") from err
    except UnicodeDecodeError as err:
        raise ValueError(f"{where}: not UTF-8 text (TOML files are UTF-8): {err}") from err
    except ValueError as err:  # e.g. an integer literal over Python's 4300-digit limit
        raise ValueError(f"{where}: unreadable TOML value: {err}") from err
    except RecursionError:
        raise ValueError(
            f"{where}: TOML arrays or inline tables nested too deeply to read"
        ) from None


def check_layout(where: str, doc: dict[str, Any], allowed: Iterable[str]) -> None:
    """Top-level keys are among ``allowed``; ``name`` and ``description`` are strings; each of
    ``[base]``, ``[axes]``, ``[fixed]`` is a table whose keys are SearchConfig fields."""
    allowed = tuple(allowed)
    unknown = sorted(set(doc) - set(allowed))
    if unknown:
        raise ValueError(f"{where}: unknown top-level key(s) {unknown}; allowed: {list(allowed)}")
    for key in ("name", "description"):
        if key in doc and not isinstance(doc[key], str):
            raise ValueError(f"{where}: top-level {key}: must be a string, got {doc[key]!r}")
    for table in TABLES:
        values = doc.get(table, {})
        if not isinstance(values, dict):
            raise ValueError(f"{where}: [{table}] must be a table, got {values!r}")
        check_field_names(where, f"[{table}]", values)


def check_name(where: str, doc: dict[str, Any]) -> str:
    """The top-level ``name`` (else the file's stem) if it is a usable experiment name (it names
    the experiment's folder), else ``ValueError`` naming the file and the key."""
    given = "name" in doc
    name = doc["name"] if given else Path(where).stem
    try:
        return check_experiment_name(name)
    except ValueError as err:
        what = "top-level name" if given else "top-level name (default: the file's stem)"
        raise ValueError(f"{where}: {what}: {err}; it names the experiment's folder") from err


def check_field_names(where: str, table: str, values: Mapping[str, Any]) -> None:
    """Every key of ``values`` (from ``table``, e.g. ``[base]``) is a SearchConfig field."""
    known = SearchConfig.field_names()
    for key in values:
        if key not in known:
            raise ValueError(
                f"{where}: {table} {key}: unknown SearchConfig field; valid fields: {list(known)}"
            )


def parse_tables(where: str, doc: dict[str, Any]) -> Tables:
    """The ``[base]``, ``[axes]`` and ``[fixed]`` tables of a ``check_layout``-ed document, each
    value checked on its own (``check_value``), each axis a non-empty list."""
    base, axes, fixed = (doc.get(t, {}) for t in TABLES)
    for table, values in (("base", base), ("fixed", fixed)):
        for key, value in values.items():
            check_value(where, f"[{table}]", key, value)
    for key, values in axes.items():
        if not isinstance(values, list):
            raise ValueError(f"{where}: [axes] {key}: must be a list of values, got {values!r}")
        if not values:
            raise ValueError(
                f"{where}: [axes] {key}: empty list makes an empty product (no trials)"
            )
        for value in values:
            check_value(where, "[axes]", key, value)
    return Tables(base, axes, fixed)


def build_config(
    where: str,
    tables: Tables,
    chosen: Mapping[str, Any],
    source: str = "[axes]",
    overrides: Mapping[str, Any] | None = None,
) -> SearchConfig:
    """``{**base, **chosen, **fixed, **overrides}`` as a SearchConfig; an invalid one raises a
    ``ValueError`` naming the file and the ``chosen`` values (taken from ``source``, e.g.
    ``[axes]``), since the same value may be fine in another combination."""
    extra = dict(overrides or {})
    try:
        return SearchConfig.from_dict({**tables.base, **chosen, **tables.fixed, **extra})
    except ValueError as err:
        shown = ", ".join(f"{k}={v!r}" for k, v in chosen.items()) or "(no axes)"
        context = "[base] and [fixed]"
        if extra:
            given = ", ".join(f"{k}={v!r}" for k, v in extra.items())
            context = f"[base], [fixed] and the overrides {given}"
        raise ValueError(
            f"{where}: the combination {source} {shown} with {context} is invalid: {err}"
        ) from err


def check_value(where: str, table: str, key: str, value: Any) -> None:
    """Check one value on its own (type, allowed names, range) against the defaults; errors
    that involve other fields wait for the whole combination (they may be fine there).
    ``table`` is how the message names where the value came from, e.g. ``[base]``."""
    try:
        SearchConfig.from_dict({key: value})
    except ValueError as err:
        text = str(err)
        if text.startswith(f"{key}="):
            raise ValueError(f"{where}: {table} {key}: {text[len(key) + 1 :]}") from err
