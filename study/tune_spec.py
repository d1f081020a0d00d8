"""Tuning specs (``study tune SPEC``): which cells to compare, which fields to tune, for what.

A spec is a TOML file with the grid files' ``name``, ``description``, ``[base]``, ``[axes]`` and
``[fixed]`` (``study.grid_files``, same checks and messages) plus a ``[tune]`` table::

    name = "tune-smoke"                  # optional; the experiment name (default: file stem)
    description = "..."                  # optional
    [base]                               # SearchConfig fields shared by every cell
    dataset = "digits"
    [axes]                               # the cells to compare: the cartesian product
    level = ["single", "bi"]
    [fixed]                              # optional; applied after base and axes
    [tune]
    samples = 4                          # completed samples per cell (int >= 1), required
    objective = "benchmark:test"         # required, see below
    epoch = "final"                      # "final" (default) | "best": which epoch's value counts
    direction = "max"                    # "max" | "min"; default: the objective's known direction
    sampler = "tpe"                      # "tpe" (default) | "random"
    seed = 0                             # sampler seed (int, 0 to 2**32 - 1), default 0
    top_k = 3                            # tables: mean ± std over the best k samples (default
                                         # min(3, samples); at most samples)
    early_stopping = false               # ASHA on the epoch records, default false
    [tune.params]                        # at least one; each key a SearchConfig field
    w_lr = { low = 1e-4, high = 0.1, log = true }   # float field: float range (log-uniform)
    depth = { low = 1, high = 5 }                   # int field: int range
    w_optimizer = { choices = ["sgd", "adam"] }     # any field: categorical

Instead of ``[axes]`` a spec may list its cells one by one, each a partial SearchConfig (for cells
that are not a product, e.g. DARTS = bi + softmax vs Single-DARTS = single + sigmoid)::

    [[cells]]
    level = "bi"
    activation = "softmax"
    [[cells]]
    level = "single"
    activation = "sigmoid"

A cell is ``{**base, **axes_combination_or_cells_entry, **fixed, **overrides}`` (``overrides``:
the command line's ``--data-dir``, ``--benchmark-dir``, ...); its label is its values
``"key=value, key=value"`` in the file's order (``"all"`` without axes or cells), which is the
``tune_cell`` column of the results. A sample is the cell with the tuned values applied
(``TuneSpec.sample_config``).

The objective is a numeric record column (``trainables.records.RECORD_FIELDS``, e.g.
``valid_acc``, ``bench_cifar10_test``), or ``benchmark:valid`` / ``benchmark:test``: the
NAS-Bench-201 accuracy that judges the cell's own dataset (``trainables.records.bench_field``),
so each cell may get another column. Benchmark columns need ``space = "nb201"``; validation
accuracies need the NATS-Bench folder (the shipped table holds test accuracies only).

Everything is checked before anything runs: a bad spec raises ``ValueError`` naming the file,
the table and the key (a missing file: ``FileNotFoundError``). See examples/tune_smoke.toml and
examples/tune_table5.toml. Plain data: no torch, Ray or Optuna.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import product
from typing import Any

from search_spaces.benchmark import TEST_COLUMNS, VALID_COLUMNS, default_benchmark_dir
from study.grid_files import (
    TOP_KEYS,
    Tables,
    build_config,
    check_field_names,
    check_layout,
    check_name,
    check_value,
    parse_tables,
    read_toml,
)
from trainables.config import FIELD_TYPES, SearchConfig, config_key
from trainables.records import BENCH, EPOCH, FIELDS, METRIC_DIRECTIONS, RECORD_FIELDS, bench_field

SPEC_TOP_KEYS = (*TOP_KEYS, "cells", "tune")
TUNE_KEYS = (
    "samples",
    "objective",
    "epoch",
    "direction",
    "sampler",
    "seed",
    "top_k",
    "early_stopping",
    "params",
)
EPOCHS = ("final", "best")
DIRECTIONS = ("max", "min")
SAMPLERS = ("tpe", "random")
DEFAULT_TOP_K = 3
BENCHMARK_PREFIX = "benchmark:"  # "benchmark:valid" | "benchmark:test": the cell's own dataset
BENCHMARK_SPLITS = ("valid", "test")
RANGE_KEYS = ("low", "high", "log")
SAMPLER_SEED_MAX = 2**32 - 1  # Optuna's samplers seed numpy's legacy RandomState
# Fields that say what is searched, not how: compare them as cells ([axes]), never tune them.
NOT_TUNABLE = ("space", "dataset", "data_dir", "benchmark_dir")
NO_CELLS_LABEL = "all"
AXES, CELLS = "[axes]", "[[cells]]"  # the two ways to list cells, as messages name them
_TEST_BENCH = frozenset(BENCH[c] for c in TEST_COLUMNS)
_VALID_BENCH = frozenset(BENCH[c] for c in VALID_COLUMNS)


@dataclass(frozen=True)
class ParamRange:
    """One tuned SearchConfig field: a range ``[low, high]`` (log-uniform when ``log``) or a list
    of ``choices``, exactly one of the two. Ranges of int fields hold ints."""

    name: str
    low: float | None
    high: float | None
    log: bool
    choices: tuple | None

    def __post_init__(self) -> None:
        is_range = self.low is not None and self.high is not None
        if is_range == (self.choices is not None):
            raise ValueError(f"ParamRange {self.name}: give either low and high, or choices")

    @property
    def kind(self) -> str:
        """``"categorical"`` for choices, else ``"int"`` or ``"float"`` after the field's type."""
        if self.choices is not None:
            return "categorical"
        return "int" if FIELD_TYPES[self.name].base is int else "float"


@dataclass(frozen=True)
class Cell:
    """One compared setting: its label (``"key=value, ..."``, ``"all"`` for a single cell), its
    SearchConfig before tuning and the record column its samples are judged by."""

    label: str
    config: SearchConfig
    objective_column: str


@dataclass(frozen=True)
class TuneSpec:
    """A checked tuning spec (format: module docstring)."""

    name: str
    description: str
    path: str
    cells: tuple[Cell, ...]
    params: tuple[ParamRange, ...]
    samples: int
    objective: str
    epoch: str
    direction: str
    sampler: str
    seed: int
    top_k: int
    early_stopping: bool

    @property
    def uses_test_split(self) -> bool:
        """True when some cell is judged by a NAS-Bench-201 test accuracy (tuning on the test
        split: its tables must say so)."""
        return any(cell.objective_column in _TEST_BENCH for cell in self.cells)

    def sample_config(self, cell: Cell, values: Mapping[str, Any]) -> SearchConfig:
        """``cell``'s config with the sampled ``values`` (tuned field -> value) applied and
        validated; ``ValueError`` for a key that is not tuned, or a combination of values that
        breaks a cross-field rule (e.g. w_lr below w_lr_min when both are tuned)."""
        tuned = {p.name for p in self.params}
        unknown = sorted(set(values) - tuned)
        if unknown:
            raise ValueError(f"{unknown} are not tuned in {self.path}; tuned: {sorted(tuned)}")
        return cell.config.replace(**values)


def load_tune_spec(
    path: str | os.PathLike, *, overrides: Mapping[str, Any] | None = None
) -> TuneSpec:
    """The checked ``TuneSpec`` of a TOML file (format: module docstring). ``overrides`` (e.g.
    ``{"data_dir": ..., "benchmark_dir": ...}`` from the command line) apply to every cell after
    ``[fixed]``, before the checks, so that they count (the NATS-Bench folder for valid
    objectives) and cannot clash with a tuned field."""
    where, doc = read_toml(path, "tune spec")
    check_layout(where, doc, SPEC_TOP_KEYS)
    tune = _tune_table(where, doc)
    tables = parse_tables(where, doc)
    cell_table, entries = _cell_entries(where, doc, tables)
    extra = _check_overrides(where, dict(overrides or {}))
    configs = _cell_configs(where, tables, cell_table, entries, extra)
    labeled = list(zip(map(_label, entries), configs, strict=True))
    params = _params(where, tune["params"], entries, cell_table, tables, extra, labeled)
    samples = _int(where, "samples", tune, minimum=1, default=None)
    objective, columns, direction = _objective(where, tune, labeled)
    cells = tuple(
        Cell(label, config, column)
        for (label, config), column in zip(labeled, columns, strict=True)
    )
    return TuneSpec(
        name=check_name(where, doc),
        description=doc.get("description", ""),
        path=where,
        cells=cells,
        params=params,
        samples=samples,
        objective=objective,
        epoch=_choice(where, "epoch", tune, EPOCHS, "final"),
        direction=direction,
        sampler=_choice(where, "sampler", tune, SAMPLERS, "tpe"),
        seed=_int(where, "seed", tune, minimum=0, default=0, maximum=SAMPLER_SEED_MAX),
        top_k=_top_k(where, tune, samples),
        early_stopping=_bool(where, "early_stopping", tune, default=False),
    )


# ------------------------------------------------------------------------------ layout
def _tune_table(where: str, doc: dict[str, Any]) -> dict[str, Any]:
    """The ``[tune]`` table with known keys and a non-empty ``[tune.params]`` table."""
    tune = doc.get("tune")
    if tune is None:
        raise ValueError(
            f"{where}: [tune] missing; a tune spec needs [tune] with samples, objective and "
            "[tune.params] (see study.tune_spec)"
        )
    if not isinstance(tune, dict):
        raise ValueError(f"{where}: [tune] must be a table, got {tune!r}")
    unknown = sorted(set(tune) - set(TUNE_KEYS))
    if unknown:
        raise ValueError(f"{where}: [tune] unknown key(s) {unknown}; allowed: {list(TUNE_KEYS)}")
    params = tune.get("params")
    if not isinstance(params, dict) or not params:
        got = "missing" if params is None else f"got {params!r}"
        raise ValueError(
            f"{where}: [tune.params] must be a table with at least one tuned SearchConfig field, "
            f"e.g. w_lr = {{ low = 1e-3, high = 0.1, log = true }} ({got})"
        )
    return tune


def _cell_entries(
    where: str, doc: dict[str, Any], tables: Tables
) -> tuple[str, list[dict[str, Any]]]:
    """``(table, entries)``: what sets each cell apart, from ``[axes]`` (its combinations in
    product order, first axis slowest; one empty entry without axes) or from ``[[cells]]`` (its
    entries in file order)."""
    if "cells" not in doc:
        axes = tables.axes
        return AXES, [dict(zip(axes, combo, strict=True)) for combo in product(*axes.values())]
    cells = doc["cells"]
    if tables.axes:
        raise ValueError(
            f"{where}: {CELLS} and [axes] both given; list the cells either as a product "
            f"([axes]) or one by one ({CELLS}), not both"
        )
    if not isinstance(cells, list) or not cells or not all(isinstance(c, dict) for c in cells):
        raise ValueError(
            f"{where}: {CELLS} must be a non-empty array of tables ({CELLS} headers), got {cells!r}"
        )
    for number, entry in enumerate(cells, start=1):
        table = f"{CELLS} #{number}"
        if not entry:
            raise ValueError(
                f"{where}: {table}: empty; give the fields that set this cell apart from [base]"
            )
        check_field_names(where, table, entry)
        for key, value in entry.items():
            check_value(where, table, key, value)
    return CELLS, [dict(entry) for entry in cells]


def _check_overrides(where: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """``overrides`` if each key is a SearchConfig field with a valid value on its own."""
    check_field_names(where, "override", overrides)
    for key, value in overrides.items():
        check_value(where, "override", key, value)
    return overrides


def _cell_configs(
    where: str,
    tables: Tables,
    cell_table: str,
    entries: list[dict[str, Any]],
    overrides: dict[str, Any],
) -> list[SearchConfig]:
    """Each cell's SearchConfig (grid files' combination errors); two cells that are the same
    search (e.g. a [fixed] key overriding an axis) raise ``ValueError`` naming both."""
    configs: list[SearchConfig] = []
    seen: dict[str, str] = {}  # config_key -> label of the first cell with that search
    labels: set[str] = set()
    for number, entry in enumerate(entries, start=1):
        source = f"{CELLS} #{number}" if cell_table == CELLS else AXES
        config = build_config(where, tables, entry, source, overrides)
        label, key = _label(entry), config_key(config)
        if label in labels and key not in seen:
            raise ValueError(
                f"{where}: {cell_table}: two different cells are labelled {label!r} (#{number} "
                "and an earlier one): a label names a cell's study and results; a value holding "
                "', ' or '=' reads like another key"
            )
        labels.add(label)
        if key in seen:
            raise ValueError(
                f"{where}: {cell_table}: cells {seen[key]!r} and {label!r} (#{number}) are the "
                "same search after [base], [fixed] and overrides; make them differ (is a [fixed] "
                "key also a cell key?)"
            )
        seen[key] = label
        configs.append(config)
    return configs


def _label(entry: Mapping[str, Any]) -> str:
    """``"key=value, key=value"`` (values as written in TOML, strings unquoted); ``"all"`` for
    the one cell of a spec without axes or cells."""
    if not entry:
        return NO_CELLS_LABEL
    return ", ".join(f"{key}={_show(value)}" for key, value in entry.items())


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# ------------------------------------------------------------------------------ [tune] scalars
def _int(
    where: str,
    key: str,
    tune: dict[str, Any],
    *,
    minimum: int,
    default: int | None,
    maximum: int | None = None,
) -> int:
    """``tune[key]`` as an int from ``minimum`` to ``maximum`` (None = no bound; ``default`` when
    absent; None = required)."""
    wanted = f"an integer >= {minimum}" + (f" and <= {maximum}" if maximum is not None else "")
    if key not in tune:
        if default is None:
            raise ValueError(f"{where}: [tune] {key}: required ({wanted})")
        return default
    value = tune[key]
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < minimum
        or (maximum is not None and value > maximum)
    ):
        raise ValueError(f"{where}: [tune] {key}: must be {wanted}, got {value!r}")
    return value


def _choice(
    where: str, key: str, tune: dict[str, Any], allowed: tuple[str, ...], default: str
) -> str:
    value = tune.get(key, default)
    if value not in allowed:
        raise ValueError(
            f"{where}: [tune] {key}: {value!r} is not allowed; choose one of {list(allowed)}"
        )
    return str(value)


def _bool(where: str, key: str, tune: dict[str, Any], *, default: bool) -> bool:
    value = tune.get(key, default)
    if not isinstance(value, bool):
        raise ValueError(f"{where}: [tune] {key}: must be true or false, got {value!r}")
    return value


def _top_k(where: str, tune: dict[str, Any], samples: int) -> int:
    """``top_k`` (default ``min(3, samples)``); more than ``samples`` cannot be averaged."""
    top_k = _int(where, "top_k", tune, minimum=1, default=min(DEFAULT_TOP_K, samples))
    if top_k > samples:
        raise ValueError(
            f"{where}: [tune] top_k: {top_k} exceeds samples={samples}; the tables average the "
            "best top_k samples of each cell"
        )
    return top_k


# ------------------------------------------------------------------------------ objective
def _objective(
    where: str, tune: dict[str, Any], labeled: list[tuple[str, SearchConfig]]
) -> tuple[str, list[str], str]:
    """``(objective, each cell's column, direction)``, every cell able to produce its column."""
    objective = tune.get("objective")
    if not isinstance(objective, str):
        got = "missing" if objective is None else f"got {objective!r}"
        raise ValueError(
            f"{where}: [tune] objective: required: a numeric record column (e.g. valid_acc) or "
            f"'benchmark:valid' / 'benchmark:test' ({got})"
        )
    columns = [_column(where, objective, config) for _, config in labeled]
    for (label, config), column in zip(labeled, columns, strict=True):
        _check_producible(f"{where}: [tune] objective: {objective!r}", label, config, column)
    return objective, columns, _direction(where, tune, objective, columns)


def _column(where: str, objective: str, config: SearchConfig) -> str:
    """The record column ``objective`` names for a cell with ``config``."""
    if objective.startswith(BENCHMARK_PREFIX):
        split = objective[len(BENCHMARK_PREFIX) :]
        if split not in BENCHMARK_SPLITS:
            raise ValueError(
                f"{where}: [tune] objective: {objective!r}: the benchmark split must be one of "
                f"{list(BENCHMARK_SPLITS)} ('benchmark:valid' or 'benchmark:test')"
            )
        return bench_field(config.dataset, split)
    numeric = [c for c in RECORD_FIELDS if FIELDS[c].kind in ("int", "float") and c != EPOCH]
    if objective not in numeric:
        why = "not numeric" if objective in RECORD_FIELDS else "not a record column"
        raise ValueError(
            f"{where}: [tune] objective: {objective!r} is {why}; choose 'benchmark:valid', "
            f"'benchmark:test' or a numeric record column: {numeric}"
        )
    return objective


def _check_producible(table: str, label: str, config: SearchConfig, column: str) -> None:
    """Benchmark columns need an NB201 cell; validation ones also the NATS-Bench folder.
    ``table`` starts the message (file, table, key), ``label`` names the cell."""
    if column not in _TEST_BENCH | _VALID_BENCH:
        return
    if config.space != "nb201":
        raise ValueError(
            f"{table} is a NAS-Bench-201 accuracy and needs space='nb201', but cell {label!r} "
            f"has space={config.space!r}; use a record column such as valid_acc"
        )
    if column in _VALID_BENCH and not config.benchmark_dir and default_benchmark_dir() is None:
        raise ValueError(
            f"{table} ({column} in cell {label!r}) is a NAS-Bench-201 validation accuracy, which "
            "the shipped table lacks: valid accuracies need the NATS-Bench folder via "
            "benchmark_dir in [base] or --benchmark-dir, or use benchmark:test"
        )


def _direction(where: str, tune: dict[str, Any], objective: str, columns: list[str]) -> str:
    """The given direction, else the objective's known one (every cell's column agrees)."""
    if "direction" in tune:
        return _choice(where, "direction", tune, DIRECTIONS, "max")
    known = {METRIC_DIRECTIONS.get(column) for column in columns}
    if len(known) != 1 or None in known:
        raise ValueError(
            f"{where}: [tune] direction: required for objective {objective!r}, whose direction "
            f"is not known; give direction = 'max' or 'min'"
        )
    return str(known.pop())


# ------------------------------------------------------------------------------ [tune.params]
def _params(
    where: str,
    raw: dict[str, Any],
    entries: list[dict[str, Any]],
    cell_table: str,
    tables: Tables,
    overrides: dict[str, Any],
    labeled: list[tuple[str, SearchConfig]],
) -> tuple[ParamRange, ...]:
    """Every ``[tune.params]`` entry as a ``ParamRange`` whose bounds or choices are valid in
    every cell (checked through ``SearchConfig.replace``)."""
    check_field_names(where, "[tune.params]", raw)
    cell_keys = {key for entry in entries for key in entry}
    params = []
    for name, spec in raw.items():
        _check_not_fixed(where, name, cell_keys, cell_table, tables, overrides)
        param = _param(where, name, spec)
        _check_in_cells(where, param, labeled)
        params.append(param)
    return tuple(params)


def _check_not_fixed(
    where: str,
    name: str,
    cell_keys: set[str],
    cell_table: str,
    tables: Tables,
    overrides: dict[str, Any],
) -> None:
    """A tuned field is set by the sampler only: not a cell key, [fixed] key or override."""
    table = f"{where}: [tune.params] {name}"
    if name in NOT_TUNABLE:
        raise ValueError(
            f"{table}: says what is searched, not how; compare its values as cells ([axes])"
        )
    if name in cell_keys:
        raise ValueError(
            f"{table}: also a key of {cell_table}; a field is either compared across cells or "
            "tuned, not both (ambiguous)"
        )
    if name in tables.fixed:
        raise ValueError(
            f"{table}: also a [fixed] key, which would override every sample (ambiguous); "
            "remove one of them"
        )
    if name in overrides:
        raise ValueError(f"{table}: tuned, so it cannot also be overridden ({name}=...)")


def _param(where: str, name: str, spec: Any) -> ParamRange:
    """``spec`` (``{low, high[, log]}`` or ``{choices}``) as a ``ParamRange`` of field ``name``."""
    table = f"{where}: [tune.params] {name}"
    shape = "{ low = ..., high = ... [, log = true] } or { choices = [...] }"
    if not isinstance(spec, dict):
        raise ValueError(f"{table}: must be a table {shape}, got {spec!r}")
    unknown = sorted(set(spec) - {*RANGE_KEYS, "choices"})
    if unknown:
        raise ValueError(f"{table}: unknown key(s) {unknown}; give {shape}")
    if "choices" in spec:
        if set(spec) & set(RANGE_KEYS):
            raise ValueError(f"{table}: give either choices or low/high/log, not both")
        return _categorical(table, name, spec["choices"])
    if "low" not in spec or "high" not in spec:
        raise ValueError(f"{table}: a range needs both low and high; give {shape}")
    return _range(table, name, spec["low"], spec["high"], spec.get("log", False))


def _categorical(table: str, name: str, choices: Any) -> ParamRange:
    if not isinstance(choices, list) or not choices:
        raise ValueError(f"{table}: choices must be a non-empty list, got {choices!r}")
    for value in choices:
        if choices.count(value) > 1:
            raise ValueError(f"{table}: choices repeat {value!r}")
    return ParamRange(name, None, None, False, tuple(choices))


def _range(table: str, name: str, low: Any, high: Any, log: Any) -> ParamRange:
    """A numeric range of the field's own type: ints for int fields, numbers for float ones."""
    base = FIELD_TYPES[name].base
    if base not in (int, float):
        raise ValueError(
            f"{table}: a range needs a numeric field, but {name} is a {base.__name__} field; "
            "give choices = [...]"
        )
    low, high = _bound(table, name, "low", low), _bound(table, name, "high", high)
    if not isinstance(log, bool):
        raise ValueError(f"{table}: log must be true or false, got {log!r}")
    if not low < high:
        raise ValueError(f"{table}: low={low!r} must be below high={high!r}")
    if log and low <= 0:
        raise ValueError(f"{table}: log = true needs low > 0 (log scale), got low={low!r}")
    return ParamRange(name, low, high, log, None)


def _bound(table: str, name: str, bound: str, value: Any) -> float:
    """``value`` as a bound of field ``name``: an int for int fields, a float for float ones."""
    base = FIELD_TYPES[name].base
    numeric = isinstance(value, int) or (base is float and isinstance(value, float))
    number = None if isinstance(value, bool) or not numeric else _as_field_number(value, base)
    if number is None or (isinstance(number, float) and not math.isfinite(number)):
        kind = "an integer" if base is int else "a finite number"
        raise ValueError(
            f"{table}: {bound} must be {kind} ({name} is a {base.__name__} field), got {value!r}"
        )
    return number


def _as_field_number(value: float, base: type) -> float | None:
    """``value`` as a number of a ``base`` (int or float) field; None for an int too large for a
    float (an int field's range is checked against the field later, in every cell)."""
    if base is int:
        return value
    try:
        return float(value)
    except OverflowError:
        return None


def _check_in_cells(where: str, param: ParamRange, labeled: list[tuple[str, SearchConfig]]) -> None:
    """Each bound or choice is a valid value of the field in every cell."""
    values: tuple[Any, ...]
    if param.choices is not None:
        values, what = param.choices, "choice"
    else:
        values, what = (param.low, param.high), "bound"
    for label, config in labeled:
        for value in values:
            try:
                config.replace(**{param.name: value})
            except ValueError as err:
                raise ValueError(
                    f"{where}: [tune.params] {param.name}: {what} {value!r} is invalid in cell "
                    f"{label!r}: {err}"
                ) from err
