"""Properties of ``SearchConfig.from_dict`` and ``config_from_trial`` on arbitrary dicts: every
input gives a valid config that round-trips, or a ``ValueError`` naming a field, never another
exception. Plain examples pin each bug the properties found."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import pytest
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from trainables.config import (
    ADDED_FIELDS,
    FIELD_CHOICES,
    FIELD_TYPES,
    HELD_OUT_FROM_TEST,
    SearchConfig,
    config_from_trial,
    config_key,
    dedupe,
)

FIELDS = SearchConfig.field_names()
CHOICES = FIELD_CHOICES
INT64 = (-(2**63), 2**63 - 1)
# Numbers at the edges: int64 and float limits, beyond float precision. (Ints beyond repr's
# 4300-digit limit are pinned below only: Hypothesis cannot print them.)
EDGE_INTS = (2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**53 + 1, 10**400, -(10**400))

# ------------------------------------------------------------------------------ strategies
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(EDGE_INTS),
    st.floats(),  # nan, inf, -0.0, huge and tiny included
    st.text(max_size=10),
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=6,
)


def plausible(name: str) -> st.SearchStrategy[Any]:
    """Values of field ``name``'s own type, near its valid range (valid often, not always)."""
    if name in CHOICES:
        return st.sampled_from(CHOICES[name])
    base = FIELD_TYPES[name].base
    if base is bool:
        return st.booleans()
    if base is str:
        return st.text(max_size=8)
    if base is int:
        return st.integers(-1, 9) | st.just(INT64[1])
    return st.floats(0, 1) | st.sampled_from([0.0, -0.0, 1e-3, 0.025, 0.5, 0.9, 1, 2, 1e308])


@st.composite
def config_dicts(draw: st.DrawFn, wild: bool = True) -> dict[Any, Any]:
    """A dict of some fields. Half the time (when ``wild``) any value may be arbitrary and an
    unknown key may join; otherwise every value is ``plausible``."""
    wild = wild and draw(st.booleans())
    names = draw(st.lists(st.sampled_from(FIELDS), unique=True, max_size=6))
    values: dict[Any, Any] = {}
    for name in names:
        arbitrary = wild and draw(st.booleans())
        values[name] = draw(JSON_VALUES if arbitrary else plausible(name))
    if wild and draw(st.booleans()):
        keys = st.text(max_size=6) | st.integers() | st.sampled_from([None, 1.5, (1, 2)])
        extra = draw(st.dictionaries(keys, JSON_VALUES, min_size=1, max_size=2))
        values.update({k: v for k, v in extra.items() if k not in FIELDS})
    return values


# ------------------------------------------------------------------------------ oracle
def check_invariants(config: SearchConfig) -> None:
    """What every SearchConfig promises (module docstring and ``__post_init__``)."""
    for name, (base, nullable) in FIELD_TYPES.items():
        value = getattr(config, name)
        if value is None:
            assert nullable and name == "alpha_init", name
            continue
        assert type(value) is base, (name, value)  # float fields hold floats, no bool as int
        if isinstance(value, float):
            assert math.isfinite(value), name
            assert value != 0 or math.copysign(1.0, value) == 1.0, name  # no -0.0
        if isinstance(value, int):
            assert INT64[0] <= value <= INT64[1], name
    for name, allowed in CHOICES.items():
        assert getattr(config, name) in allowed, name
    for name in ("w_lr", "arch_lr", "epochs", "batch_size", "channels", "unroll_r"):
        assert getattr(config, name) > 0, name
    for name in (
        "w_lr_min", "w_momentum", "arch_momentum", "w_weight_decay", "arch_weight_decay",
        "grad_clip", "seed", "steps_per_epoch", "probe_every", "alpha_init_std",
        "data_fraction_seed",
    ):  # fmt: skip
        assert getattr(config, name) >= 0, name
    for name in ("w_beta1", "w_beta2", "arch_beta1", "arch_beta2"):
        assert 0 <= getattr(config, name) < 1, name
    assert config.w_momentum < 1 and config.arch_momentum < 1
    assert 0 < config.data_fraction <= 1
    assert config.w_lr_min <= config.w_lr
    assert config.depth is not None and config.depth >= (1 if config.space == "nb201" else 3)
    if config.level == "single":
        assert (config.arch_data, config.order) == ("split", "first")
    else:
        assert config.train_pool == "split"
    if config.train_pool == "full":
        assert config.dataset not in HELD_OUT_FROM_TEST
    if config.space != "nb201":
        assert config.genotype_none == "include"
    assert (config.stem == "imagenet") == (config.dataset == "imagenet")
    if config.dataset == "imagenet":
        assert config.space == "darts"
    # round trips: the flat dict, its JSON (Ray Tune / Parquet), replace(); one stable key
    flat = config.to_dict()
    assert SearchConfig.from_dict(flat) == config
    again = SearchConfig.from_dict(json.loads(json.dumps(flat)))
    assert again == config and config_key(again) == config_key(config)
    assert config.replace() == config
    assert re.fullmatch(r"[0-9a-f]{12}", config_key(config))


def check_refusal(err: ValueError, values: dict[Any, Any]) -> None:
    """A refusal names a given field (or the unknown key) in a short, printable message."""
    message = str(err)
    assert "Exceeds the limit" not in message
    if "unknown SearchConfig field" in message:
        assert any(k not in FIELDS for k in values)
        return
    named = [k for k in values if isinstance(k, str) and re.search(rf"\b{re.escape(k)}\b", message)]
    assert named, (message, sorted(map(str, values)))


def matches_input(config: SearchConfig, values: dict[str, Any]) -> None:
    """Every given value is kept (an int of a float field as that float), the rest default."""
    defaults = SearchConfig()
    for name in FIELDS:
        if name in values:
            given = values[name]
            if FIELD_TYPES[name].base is float and given is not None:
                given = float(given)
            assert getattr(config, name) == given, name
        elif name != "depth":
            assert getattr(config, name) == getattr(defaults, name), name


# ------------------------------------------------------------------------------ properties
@settings(max_examples=150)
@given(values=config_dicts())
@example(values={"alpha_init": 10**400})  # was OverflowError in float()
@example(values={"w_lr": 10**400})  # was accepted, then OverflowError in config_key
@example(values={"seed": 2**63})  # was accepted: beyond the results' int64 column
@example(values={1: 2, "x": 3})  # was TypeError sorting the unknown keys
@example(values={"space": "darts", "depth": 2})  # a cross-field refusal
def test_from_dict_gives_a_valid_config_or_a_clear_value_error(values: dict[Any, Any]) -> None:
    try:
        config = SearchConfig.from_dict(values)
    except ValueError as err:
        event("refused")
        check_refusal(err, values)
        return
    event("valid")
    check_invariants(config)
    matches_input(config, values)


CHANGES = st.sampled_from(FIELDS).flatmap(lambda n: st.tuples(st.just(n), plausible(n)))


@given(values=config_dicts(wild=False), change=CHANGES)
@example(values={"alpha_init": 0.0}, change=("alpha_init", -0.0))  # was two keys, equal configs
@example(  # was one key for unequal configs (an int above 2**53 in a float field)
    values={"w_lr": 2**60, "w_lr_min": 0.0}, change=("w_lr", 2**60 + 1)
)
@example(values={"grad_clip": 5.0}, change=("grad_clip", 5))
def test_equal_configs_and_only_they_share_a_key(
    values: dict[str, Any], change: tuple[str, Any]
) -> None:
    try:
        first = SearchConfig.from_dict(values)
        second = first.replace(**dict([change]))
    except ValueError:
        return
    event("equal" if first == second else "different")
    check_invariants(second)
    assert (first == second) == (config_key(first) == config_key(second))
    assert (first == second) == (str(first) == str(second))
    assert len(dedupe([first, second])) == (1 if first == second else 2)


@settings(max_examples=60)
@given(
    base=config_dicts(wild=False),
    drop=st.lists(st.sampled_from(FIELDS), unique=True, max_size=3),
    extra=config_dicts(),
)
@example(base={}, drop=[], extra={1: 2, "a": 3})  # was TypeError sorting the given keys
def test_config_from_trial_needs_every_field_but_the_added_ones(
    base: dict[Any, Any], drop: list[str], extra: dict[Any, Any]
) -> None:
    try:
        full = SearchConfig.from_dict(base).to_dict()
    except ValueError:
        full = SearchConfig().to_dict()
    values = {k: v for k, v in {**full, **extra}.items() if k not in drop}
    missing = [n for n in FIELDS if n not in values and n not in ADDED_FIELDS]
    try:
        config = config_from_trial(values)
    except ValueError as err:
        event("refused: missing fields" if missing else "refused")
        if missing:
            assert f"lacks SearchConfig field(s) {missing}" in str(err)
        else:
            with pytest.raises(ValueError):
                SearchConfig.from_dict(values)
        return
    event("valid")
    assert not missing
    check_invariants(config)
    assert config == SearchConfig.from_dict(values)


# ------------------------------------------------------------------------------ pinned bugs
@pytest.mark.parametrize(
    ("values", "text"),
    [
        ({"alpha_init": 10**400}, "alpha_init=1000"),
        ({"w_lr": 10**400}, "w_lr=1000"),
        ({"seed": 2**63}, "seed=9223372036854775808 is out of range"),
        ({"channels": -(2**63) - 1}, "channels=-9223372036854775809 is out of range"),
        ({"epochs": -(10**5000)}, "epochs=<16610-bit int> is out of range"),
        ({"data_dir": 10**5000}, "data_dir=<16610-bit int> has type int"),
        ({"data_dir": ["x"] * 200}, "data_dir=['x', 'x'"),
        ({1: 2, "x": 3}, "unknown SearchConfig field(s) ['x', 1]"),
    ],
)
def test_out_of_range_and_odd_inputs_are_value_errors_naming_the_field(
    values: dict[Any, Any], text: str
) -> None:
    with pytest.raises(ValueError) as info:
        SearchConfig.from_dict(values)
    assert text in str(info.value)
    assert len(str(info.value)) < 1000


def test_int64_edges_are_valid() -> None:
    assert SearchConfig(seed=2**63 - 1).seed == 2**63 - 1
    assert config_key(SearchConfig(data_fraction_seed=2**63 - 1))


@pytest.mark.parametrize("values", [None, [("seed", 1)], "seed", 3])
def test_from_dict_and_config_from_trial_refuse_a_non_mapping(values: Any) -> None:
    with pytest.raises(ValueError, match="mapping"):
        SearchConfig.from_dict(values)
    with pytest.raises(ValueError, match="not a mapping of SearchConfig fields"):
        config_from_trial(values)


def test_config_from_trial_lists_keys_of_any_type() -> None:
    with pytest.raises(ValueError, match=r"got \['a', 1\]"):
        config_from_trial({1: 2, "a": 3})  # type: ignore[dict-item]


def test_float_fields_hold_floats_so_equal_configs_share_one_key() -> None:
    config = SearchConfig(w_lr=1, grad_clip=5, alpha_init=-0.0)
    assert (type(config.w_lr), type(config.grad_clip)) == (float, float)
    assert config.alpha_init is not None and math.copysign(1.0, config.alpha_init) == 1.0
    assert config.to_dict()["w_lr"] == 1.0 and isinstance(config.to_dict()["w_lr"], float)
    zero = SearchConfig(alpha_init=0.0)
    assert config_key(SearchConfig(alpha_init=-0.0)) == config_key(zero)
    assert len(dedupe([SearchConfig(alpha_init=-0.0), zero])) == 1
    big, bigger = (SearchConfig(w_lr=v, w_lr_min=0.0) for v in (2**60, 2**60 + 1))
    assert big == bigger and config_key(big) == config_key(bigger)  # one float: one search
