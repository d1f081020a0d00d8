"""Properties of the TOML readers on arbitrary documents: a grid file (through ``build_grid``)
gives valid, distinct SearchConfigs that are what its tables say, and a tuning spec a checked
``TuneSpec``, or each refuses with a ``ValueError`` naming the file and the table or key, never
another exception. Documents are generated as dicts of the files' shape (wrong types, unknown
keys, bad names, huge numbers, unicode) and written with a small TOML writer, or as raw bytes.
Plain examples pin each bug the properties found."""

from __future__ import annotations

import datetime as dt
import math
import re
import tomllib
from collections.abc import Iterator
from itertools import product
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from analysis.store import check_experiment_name
from study.grid_files import TABLES
from study.grids import build_grid
from study.tune_spec import DIRECTIONS, EPOCHS, NOT_TUNABLE, SAMPLERS, load_tune_spec
from trainables.config import FIELD_CHOICES, FIELD_TYPES, SearchConfig, config_key

FIELDS = SearchConfig.field_names()
# The choice fields the documents set, with their allowed values.
CHOICES = {
    name: FIELD_CHOICES[name]
    for name in ("space", "dataset", "level", "activation", "w_optimizer", "arch_optimizer")
}
# The fields the documents set: a few of each kind keep valid documents frequent.
DOC_FIELDS = (*CHOICES, "seed", "epochs", "depth", "w_lr", "w_lr_min", "alpha_init", "w_nesterov",
              "data_dir", "arch_weight_decay")  # fmt: skip
EDGE_INTS = (2**31, 2**32 - 1, 2**32, 2**63 - 1, 2**63, -(2**63) - 1, 10**400)
MESSAGE_PLACES = r"\[(base|axes|fixed|tune|tune\.params)\]|\[\[cells\]\]|top-level|TOML|UTF-8"


# ------------------------------------------------------------------------------ TOML writer
def _string(text: str) -> str:
    """A TOML basic string: quote, backslash and control characters escaped."""
    out = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _string(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(map(_value, value)) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items())
        return "{ " + items + " }" if items else "{}"
    raise TypeError(f"no TOML for {value!r}")


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def toml_text(doc: dict[str, Any]) -> str:
    """``doc`` as TOML: scalars and arrays first, then a ``[table]`` per dict and a
    ``[[table]]`` per entry of a non-empty list of dicts (nested values inline)."""
    lines = [
        f"{_key(k)} = {_value(v)}"
        for k, v in doc.items()
        if not isinstance(v, dict) and not _is_table_array(v)
    ]
    for key, value in doc.items():
        entries = [value] if isinstance(value, dict) else value if _is_table_array(value) else []
        header = f"[{_key(key)}]" if isinstance(value, dict) else f"[[{_key(key)}]]"
        for entry in entries:
            lines += ["", header, *(f"{_key(k)} = {_value(v)}" for k, v in entry.items())]
    return "\n".join(lines) + "\n"


def _same(a: Any, b: Any) -> bool:
    """Equal, with nan equal to nan (the writer's round trip)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return set(a) == set(b) and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


# ------------------------------------------------------------------------------ strategies
TOML_SCALARS = st.one_of(
    st.booleans(),
    st.integers(),
    st.sampled_from(EDGE_INTS),
    st.floats(),  # nan, inf, -0.0, huge and tiny included
    st.text(max_size=8),
    st.dates(),
)
TOML_VALUES = st.recursive(
    TOML_SCALARS,
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=5), children, max_size=2),
    max_leaves=5,
)
GOOD_NAMES = st.sampled_from(["lr-ablation", "x", "ünï ✓"])
BAD_NAMES = st.sampled_from(["", "a/b", "a=b", "..", "."]) | st.text(max_size=6)
# Tuned fields: numeric ones for ranges, the others for choices.
TUNABLE = ("w_lr", "arch_lr", "seed", "depth", "alpha_init", "arch_weight_decay", "w_optimizer",
           "activation", "w_nesterov")  # fmt: skip
OBJECTIVES = ["valid_acc", "valid_loss", "benchmark:test"]
BAD_OBJECTIVES = ["benchmark:valid", "benchmark:x", "epoch", "accuracy"]
# How odd a document's values are: "tame" (each valid on its own), "rough" (of the field's type,
# near its range) or "wild" (one value in four anything at all, tables of the wrong type, unknown
# keys). Tame and rough documents still break cross-field rules now and then.
MODES = st.sampled_from(["tame", "tame", "rough", "wild"])
MOSTLY = st.sampled_from([True, True, True, True, True, True, False])  # True six times in seven
RARELY = MOSTLY.map(lambda often: not often)


def field_values(name: str, mode: str) -> st.SearchStrategy[Any]:
    """Values for field ``name`` in a ``mode`` document (not yet wild: see ``_value``)."""
    if name in CHOICES:
        allowed = CHOICES[name]
        tame = [v for v in allowed if v != "imagenet"]  # imagenet needs DARTS and its stem
        return st.sampled_from(tame if mode == "tame" else allowed)
    base = FIELD_TYPES[name].base
    if base is bool:
        return st.booleans()
    if base is str:
        return st.text(max_size=6)
    if base is int:
        return st.integers(3, 6) if mode == "tame" else st.integers(0, 6)
    if mode == "tame":
        return st.sampled_from([0.005, 0.01, 0.025, 0.1])
    return st.sampled_from([0.0, -0.0, 1e-3, 0.005, 0.025, 0.5, 1, 2]) | st.floats(0, 1)


def _pick(draw: st.DrawFn, mode: str, usual: st.SearchStrategy[Any], odd: Any = TOML_VALUES) -> Any:
    """A ``usual`` value, or in a wild document one time in four an ``odd`` one."""
    return draw(odd if mode == "wild" and draw(RARELY) else usual)


def _field_names(draw: st.DrawFn, mode: str, most: int = 3) -> list[str]:
    """Some of ``DOC_FIELDS``: at least one unless wild."""
    least = 0 if mode == "wild" else 1
    return draw(st.lists(st.sampled_from(DOC_FIELDS), unique=True, min_size=least, max_size=most))


@st.composite
def field_tables(draw: st.DrawFn, mode: str) -> dict[str, Any]:
    """``[base]`` / ``[fixed]`` / a ``[[cells]]`` entry (wild: maybe empty, an unknown key)."""
    table = {n: _pick(draw, mode, field_values(n, mode)) for n in _field_names(draw, mode)}
    if mode == "wild" and draw(RARELY):
        table[draw(st.text(max_size=6))] = draw(TOML_VALUES)
    return table


@st.composite
def axes_tables(draw: st.DrawFn, mode: str) -> dict[str, Any]:
    """``[axes]``: each key a list of values (wild: maybe scalars, empty or nested lists)."""
    lists = {n: st.lists(field_values(n, mode), min_size=1, max_size=3) for n in DOC_FIELDS}
    return {n: _pick(draw, mode, lists[n]) for n in _field_names(draw, mode)}


@st.composite
def grid_docs(draw: st.DrawFn, cells: bool = False) -> dict[str, Any]:
    """A grid file (``cells``: or a tuning spec's head): name, description, [base], [axes] or
    [[cells]], [fixed]; when wild, tables of the wrong type and unknown top-level keys too."""
    mode = draw(MODES)
    doc: dict[str, Any] = {}
    if draw(st.booleans()):
        doc["name"] = _pick(draw, mode, GOOD_NAMES, BAD_NAMES | TOML_VALUES)
    if draw(RARELY):
        doc["description"] = _pick(draw, mode, st.text(max_size=8))
    use_cells = cells and draw(st.booleans())
    for table in TABLES:
        if table == "axes" and use_cells:
            distinct = None if mode == "wild" else (lambda e: tuple(sorted(e.items())))
            entries = st.lists(field_tables(mode), min_size=1, max_size=3, unique_by=distinct)
            doc["cells"] = _pick(draw, mode, entries)
        elif draw(st.sampled_from([True, True, False])):
            usual = axes_tables(mode) if table == "axes" else field_tables(mode)
            doc[table] = _pick(draw, mode, usual)
    if mode == "wild" and draw(RARELY):
        doc[draw(st.sampled_from(["title", "bases", "cells", "ünï"]))] = draw(TOML_VALUES)
    return doc


@st.composite
def param_specs(draw: st.DrawFn, name: str, mode: str) -> Any:
    """A ``[tune.params]`` entry for ``name``: a range (of a numeric field; unless wild with
    low < high) or choices (unless wild, distinct)."""
    if name not in FIELD_TYPES:  # a wild document's unknown field
        return {"low": 0, "high": 1}
    numeric = FIELD_TYPES[name].base in (int, float)
    values = field_values(name, mode)
    if draw(st.booleans()) and (numeric or mode == "wild"):
        bounds = draw(st.lists(values, min_size=2, max_size=2, unique=mode != "wild"))
        spec = dict(zip(("low", "high"), bounds if mode == "wild" else sorted(bounds), strict=True))
        if draw(st.booleans()):
            spec["log"] = draw(st.booleans())
    else:
        unique = mode != "wild"
        spec = {"choices": draw(st.lists(values, min_size=1, max_size=3, unique=unique))}
    return _pick(draw, mode, st.just(spec))


@st.composite
def tune_docs(draw: st.DrawFn) -> dict[str, Any]:
    """A tuning spec: a grid head plus ``[tune]`` and ``[tune.params]`` (unless wild, its tuned
    fields are not cell or [fixed] keys)."""
    doc = draw(grid_docs(cells=True))
    mode = draw(MODES)
    tune: dict[str, Any] = {}
    if draw(MOSTLY):
        tune["samples"] = _pick(draw, mode, st.integers(3 if mode == "tame" else 1, 4))
    if draw(MOSTLY):
        objectives = st.sampled_from(OBJECTIVES if mode == "tame" else OBJECTIVES + BAD_OBJECTIVES)
        tune["objective"] = _pick(draw, mode, objectives)
    optional = {
        "epoch": st.sampled_from([*EPOCHS, "last"]),
        "direction": st.sampled_from([*DIRECTIONS, "up"]),
        "sampler": st.sampled_from([*SAMPLERS, "grid"]),
        "seed": st.integers(0, 9) | st.sampled_from(EDGE_INTS),
        "top_k": st.integers(1, 3) if mode == "tame" else st.integers(0, 4),
        "early_stopping": st.booleans(),
    }
    for key, values in optional.items():
        if draw(RARELY):
            tune[key] = _pick(draw, mode, values)
    taken: set[str] = set()
    for table in ("axes", "fixed"):
        taken |= set(doc[table]) if isinstance(doc.get(table), dict) else set()
    for entry in doc.get("cells", []) if isinstance(doc.get("cells"), list) else []:
        taken |= set(entry) if isinstance(entry, dict) else set()
    free = [n for n in TUNABLE if n not in taken] if mode != "wild" else list(TUNABLE)
    tuned = st.sampled_from(free or ["arch_lr"])
    names = draw(st.lists(tuned, unique=True, min_size=1, max_size=2))
    if mode == "wild" and draw(st.booleans()):
        names.append(draw(st.sampled_from([*DOC_FIELDS, "lr"])))
    tune["params"] = {name: draw(param_specs(name, mode)) for name in names}
    doc["tune"] = _pick(draw, mode, st.just(tune))
    return doc


TOMLISH = "[]{}=\"'#.,-+_ \n\tabcdeilnprstwxy0123456789ü"
TABLE_HEADERS = ["[base]", "[axes]", "[fixed]"]
ODD_HEADERS = ["", "# comment", "[tune]", "[[cells]]", "[bases]"]
TOP_LINES = ['name = "g"', 'description = "d"', "# comment"]
ODD_TOP_LINES = ['name = ""', "seed = 1", "name = 3"]
LINES = [
    "seed = 1", "seed = [0, 1]", "seed = -1", 'level = ["single", "bi"]', 'level = "bi"',
    "epochs = 2", 'dataset = "cifar10"', "w_lr = [0.1, 1e400]", "w_lr = nan", "depth = []",
    "alpha_init = [0.0, -0.0]", "seed = 99999999999999999999", "w_lr = 1" + "0" * 400,
    "seed = [[1]]", 'name = "g"',
]  # fmt: skip
# A file's shape: a few top-level lines, then headers each followed by a few key lines.
SECTIONS = st.tuples(
    MOSTLY.flatmap(lambda usual: st.sampled_from(TABLE_HEADERS if usual else ODD_HEADERS)),
    st.lists(st.sampled_from(LINES), min_size=1, max_size=2, unique_by=lambda x: x.split(" = ")[0]),
)


def _file_bytes(top: list[str], sections: list[tuple[str, list[str]]]) -> bytes:
    return "\n".join([*top, *("\n".join([header, *lines]) for header, lines in sections)]).encode()


FILE_SHAPES = st.builds(
    _file_bytes,
    st.lists(
        MOSTLY.flatmap(lambda usual: st.sampled_from(TOP_LINES if usual else ODD_TOP_LINES)),
        max_size=2,
        unique_by=lambda line: line.split(" = ")[0],
    ),
    st.lists(SECTIONS, min_size=1, max_size=3, unique_by=lambda section: section[0]),
)


ODD_BYTES = st.one_of(
    st.text(alphabet=TOMLISH, max_size=80).map(str.encode),
    st.text(max_size=40).map(str.encode),
    st.binary(max_size=60),
)
RAW_TEXTS = FILE_SHAPES | ODD_BYTES  # half of them in a file's shape


# ------------------------------------------------------------------------------ oracles
@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A folder for the generated files, with a $TORCH_HOME that holds no NATS-Bench folder."""
    folder = tmp_path_factory.mktemp("toml-properties")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TORCH_HOME", str(folder / "torch"))
        yield folder


def _write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def _doc_text(doc: dict[str, Any]) -> bytes:
    """``doc`` as TOML bytes, after checking that the writer reads back as ``doc``."""
    text = toml_text(doc)
    assert _same(tomllib.loads(text), doc), text
    return text.encode()


def check_refusal(err: Exception, path: Path) -> None:
    """A refusal names the file first, then the table, key or reading problem."""
    message = str(err)
    assert isinstance(err, ValueError), message  # the file exists: never FileNotFoundError
    assert message.startswith(f"{path}: "), message
    assert re.search(MESSAGE_PLACES, message), message
    assert "Exceeds the limit" not in message.split(": unreadable TOML value: ")[0]


def _equal(value: Any, given: Any) -> bool:
    """A config's value equals the file's (a float field holds an int as float)."""
    return value == (float(given) if isinstance(value, float) else given)


def check_config(config: SearchConfig) -> None:
    assert isinstance(config, SearchConfig)
    assert SearchConfig.from_dict(config.to_dict()) == config
    for name, (base, _) in FIELD_TYPES.items():
        value = getattr(config, name)
        assert value is None or type(value) is base, name
        if isinstance(value, float):
            assert math.isfinite(value) and not (value == 0 and math.copysign(1, value) < 0)


def check_grid(doc: dict[str, Any], configs: list[SearchConfig]) -> None:
    """The configs of a file that loaded: what its tables say, each combination once."""
    base, axes, fixed = (doc.get(table, {}) for table in TABLES)
    assert base or axes or fixed, "a file that sets no field must be refused"
    if "name" in doc:
        check_experiment_name(doc["name"])
    keys = [config_key(c) for c in configs]
    assert len(set(keys)) == len(keys) >= 1
    for config in configs:
        check_config(config)
        assert all(_equal(getattr(config, k), v) for k, v in fixed.items())
        kept = {k: v for k, v in base.items() if k not in axes and k not in fixed}
        assert all(_equal(getattr(config, k), v) for k, v in kept.items())
        for key, values in axes.items():
            if key not in fixed:
                assert any(_equal(getattr(config, key), v) for v in values), key
    varied = [key for key in axes if key not in fixed]
    combos = {
        tuple(value for key, value in zip(axes, values, strict=True) if key in varied)
        for values in product(*axes.values())
    }
    assert len(configs) == len(combos)


# ------------------------------------------------------------------------------ properties
@given(doc=grid_docs())
@example(doc={})  # was one default search
@example(doc={"name": "x"})  # was one default search
@example(doc={"base": {}, "axes": {}})  # was one default search
@example(doc={"axes": {"alpha_init": [0.0, -0.0]}})  # was two trials of one search
@example(doc={"base": {"w_lr": 10**400}})  # was OverflowError
@example(doc={"base": {"seed": 2**63}})  # was accepted: beyond the results' int64 column
@example(doc={"name": "a/b", "base": {"seed": 1}})  # was accepted: not a usable experiment name
def test_grid_file_gives_valid_configs_or_names_file_and_table(
    files: Path, doc: dict[str, Any]
) -> None:
    path = _write(files, "grid.toml", _doc_text(doc))
    try:
        configs = build_grid(str(path))
    except (ValueError, FileNotFoundError) as err:
        event("refused")
        check_refusal(err, path)
        return
    event("valid")
    check_grid(doc, configs)


@settings(max_examples=150)
@given(data=RAW_TEXTS)
@example(data=b"")  # was one default search
@example(data=b"# only a comment\n\n  \t\n")  # was one default search
@example(data=b'name = "\xff"\n')  # was UnicodeDecodeError, no file named
@example(data=b"[base]\nseed = " + b"1" * 5000 + b"\n")  # was ValueError, no file named
@example(data=b"[axes]\nseed = " + b"[" * 2000 + b"]" * 2000 + b"\n")  # was RecursionError
def test_any_bytes_as_a_grid_file(files: Path, data: bytes) -> None:
    path = _write(files, "raw.toml", data)
    try:
        configs = build_grid(str(path))
    except (ValueError, FileNotFoundError) as err:
        event("refused")
        check_refusal(err, path)
        return
    event("valid")
    check_grid(tomllib.loads(data.decode()), configs)


TUNE = {"samples": 2, "objective": "valid_acc", "params": {"w_lr": {"low": 1e-3, "high": 0.1}}}


@settings(max_examples=60)
@given(doc=tune_docs())
@example(doc={"tune": {**TUNE, "seed": 2**32}})  # was accepted: Optuna's samplers refuse it
@example(  # was OverflowError
    doc={"tune": {**TUNE, "params": {"w_lr": {"low": 1e-3, "high": 10**400}}}}
)
@example(doc={"tune": {**TUNE, "params": {"seed": {"low": 0, "high": 10**400}}}})  # OverflowError
@example(  # was two cells under one label (one Optuna study, one results label)
    doc={"cells": [{"data_dir": "x, seed=1"}, {"data_dir": "x", "seed": 1}], "tune": TUNE}
)
@example(doc={"cells": [{"alpha_init": 0.0}, {"alpha_init": -0.0}], "tune": TUNE})
def test_tune_spec_is_checked_or_names_file_and_table(files: Path, doc: dict[str, Any]) -> None:
    path = _write(files, "spec.toml", _doc_text(doc))
    try:
        spec = load_tune_spec(path)
    except (ValueError, FileNotFoundError) as err:
        event("refused")
        check_refusal(err, path)
        return
    event("valid")
    check_experiment_name(spec.name)
    assert spec.cells
    assert len({c.label for c in spec.cells}) == len(spec.cells)
    assert len({config_key(c.config) for c in spec.cells}) == len(spec.cells)
    assert 1 <= spec.top_k <= spec.samples
    assert 0 <= spec.seed < 2**32  # numpy's legacy seeding, under Optuna's samplers
    assert (spec.epoch, spec.direction, spec.sampler) in product(EPOCHS, DIRECTIONS, SAMPLERS)
    fixed = doc.get("fixed", {})
    cell_keys = {k for entry in doc.get("cells", [doc.get("axes", {})]) for k in entry}
    for cell in spec.cells:
        check_config(cell.config)
    for param in spec.params:
        assert param.name not in {*NOT_TUNABLE, *fixed, *cell_keys}
        if param.choices is None:
            assert param.low is not None and param.high is not None and param.low < param.high
            values: tuple[Any, ...] = (param.low, param.high)
        else:
            values = param.choices
        for cell in spec.cells:  # every bound or choice is a valid sample in every cell
            for value in values:
                check_config(spec.sample_config(cell, {param.name: value}))


# ------------------------------------------------------------------------------ pinned bugs
def _spec_text(tune_lines: str, params: str, head: str = "") -> str:
    tune = f'[tune]\nsamples = 2\nobjective = "valid_acc"\n{tune_lines}'
    return f"{head}{tune}[tune.params]\n{params}"


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        (_spec_text("seed = 4294967296\n", "w_lr = { low = 1e-3, high = 0.1 }\n"),
         ["[tune] seed", "<= 4294967295", "4294967296"]),
        (_spec_text("", "w_lr = { low = 1e-3, high = 1" + "0" * 400 + " }\n"),
         ["[tune.params] w_lr", "high must be a finite number"]),
        (_spec_text("", "seed = { low = 0, high = 1" + "0" * 400 + " }\n"),
         ["[tune.params] seed", "bound", "out of range"]),
        (_spec_text("", "w_lr = { low = 1e-3, high = 0.1 }\n",
                    '[[cells]]\ndata_dir = "x, seed=1"\n[[cells]]\ndata_dir = "x"\nseed = 1\n'),
         ["[[cells]]", "labelled 'data_dir=x, seed=1'"]),
        (_spec_text("", "w_lr = { low = 1e-3, high = 0.1 }\n",
                    "[[cells]]\nalpha_init = 0.0\n[[cells]]\nalpha_init = -0.0\n"),
         ["[[cells]]", "same search"]),
    ],
    ids=["sampler-seed-2**32", "float-bound-overflow", "int-bound-overflow", "label-clash",
         "minus-zero-cell"],
)  # fmt: skip
def test_tune_spec_bugs_are_value_errors_naming_file_and_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, parts: list[str]
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    path = _write(tmp_path, "spec.toml", text.encode())
    with pytest.raises(ValueError) as info:
        load_tune_spec(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    for part in parts:
        assert part in message


def test_sampler_seed_at_its_limit_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    text = _spec_text("seed = 4294967295\n", "w_lr = { low = 1e-3, high = 0.1 }\n")
    assert load_tune_spec(_write(tmp_path, "spec.toml", text.encode())).seed == 2**32 - 1


def test_writer_round_trips_odd_values() -> None:
    doc = {
        "name": 'q"\\\x00\x7f ü',
        "base": {"w_lr": -0.0, "seed": 10**30, "d": dt.date(2020, 1, 2), "e": {}, "": [[], [1]]},
        "cells": [{"a": 1}, {"b": {"c": math.inf}}],
    }
    assert _same(tomllib.loads(toml_text(doc)), doc)
