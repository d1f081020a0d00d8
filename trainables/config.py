"""``SearchConfig``: everything one architecture search consumes, validated on construction.

Every axis of the study is a field (docs/architecture.md); a config travels as a flat dict (Ray
Tune's ``param_space`` and every Parquet row) and is rebuilt with ``SearchConfig.from_dict``. Any
unknown key, wrong type or impossible value raises ``ValueError`` naming the field and what is
allowed. Float fields hold floats (an int given for one is converted; -0.0 becomes 0.0, so equal
configs print and hash alike) and int fields fit a signed 64-bit integer (the results' int64
columns).

Defaults are the reference DARTS-V1 protocol on NAS-Bench-201: w with SGD lr 0.025, momentum 0.9,
nesterov, weight decay 5e-4, cosine to 0.001, batch 64, 50 epochs, clip 5; α with Adam lr 3e-4,
betas (0.5, 0.999), weight decay 1e-3 (coupled L2). Single-DARTS uses w lr 0.005.

This module is plain data and imports no torch (``analysis`` and the ``study`` CLI read it on
machines without torch): the allowed values of each axis are listed here, and the registries that
implement them (``search_spaces.SPACES``, ``search_spaces.darts.STEMS``,
``search_spaces.activations.ACTIVATION_FUNCTIONS``, ``trainables.datasets``,
``trainables.optim``, ``trainables.strategies.STRATEGIES``) are tested to match them exactly.
Field types are read once from the annotations (``FIELD_TYPES``), never parsed from text.
"""

from __future__ import annotations

import hashlib
import json
import math
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any, NamedTuple, Self, TypeVar, overload

from search_spaces.benchmark import BENCH_DATASETS

# Allowed values of each axis (names are part of the product: keep them stable). Each list has a
# registry that implements it; tests/trainables/test_config.py checks that both sides agree.
SPACES = ("nb201", "darts")  # search_spaces.SPACES
DATASETS = (*BENCH_DATASETS, "imagenet", "digits", "synthetic")  # trainables.datasets
# Datasets whose search split holds out *test* images, so their train half is the whole training
# set (their readers set SearchDataset.held_out_from_train=False); the others carve it out of it.
HELD_OUT_FROM_TEST = ("cifar100", "imagenet16-120")
ACTIVATIONS = ("softmax", "sigmoid", "sigmoid*")  # search_spaces.activations
STEMS = ("cifar", "imagenet")  # search_spaces.darts
LEVELS = ("single", "bi")
ARCH_DATA = ("split", "same")
ORDERS = ("first", "second")  # (level, order) pairs: trainables.strategies.STRATEGIES
OPTIMIZERS = ("sgd", "adam")  # trainables.optim
TRAIN_POOLS = ("split", "full")  # single-level training pool: the search split's train half, or all
GENOTYPE_NONE = ("include", "exclude")  # NB201 derivation: ``none`` in the argmax or not
DEFAULT_DEPTH = {"nb201": 5, "darts": 8}  # nb201: cells per stage; darts: cells in all

FIELD_CHOICES: dict[str, tuple[str, ...]] = {  # the allowed values of every choice field
    "space": SPACES,
    "dataset": DATASETS,
    "level": LEVELS,
    "arch_data": ARCH_DATA,
    "order": ORDERS,
    "activation": ACTIVATIONS,
    "w_optimizer": OPTIMIZERS,
    "arch_optimizer": OPTIMIZERS,
    "stem": STEMS,
    "train_pool": TRAIN_POOLS,
    "genotype_none": GENOTYPE_NONE,
}


FlatConfigT = TypeVar("FlatConfigT", bound="FlatConfig")


class FlatConfig:
    """The flat-dict round trip of a frozen config dataclass (``SearchConfig``, ``EvalConfig``):
    a config travels as a flat dict (Ray Tune's trial configs, every Parquet row)."""

    def to_dict(self) -> dict[str, Any]:
        """Flat dict of every field (what Ray Tune and Parquet carry)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Self:
        """Build from a flat dict; unknown keys raise ``ValueError`` listing the valid ones (as
        does anything but a mapping)."""
        name = cls.__name__
        if not isinstance(values, Mapping):
            raise ValueError(
                f"a {name} is built from a mapping of field names to values, got "
                f"{type(values).__name__} {shown(values)}"
            )
        known = cls.field_names()
        unknown = [key for key in values if key not in known]
        if unknown:
            raise ValueError(
                f"unknown {name} field(s) {shown_keys(unknown)}; valid fields: {list(known)}"
            )
        return cls(**values)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))  # type: ignore[arg-type]

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` applied and validated (unknown names raise)."""
        return self.from_dict({**self.to_dict(), **changes})


@dataclass(frozen=True)
class SearchConfig(FlatConfig):
    """One search. Units: learning rates per step, epochs, images, steps; α values unitless.

    Fields by group:
      space / dataset / data_dir / benchmark_dir — what is searched, on which data; ``data_dir``
        holds the raw dataset files (unused by ``digits`` and ``synthetic``); ``benchmark_dir``
        is the NATS-Bench ``NATS-tss-v1_0-3ffb9-simple`` folder ("" = look in $TORCH_HOME, else
        use the shipped test-accuracy table).
      level / arch_data / order — the update strategy. ``single``: w and α step together on one
        batch. ``bi``: w on a training batch, then α on an arch batch from the held-out split
        (``split``, classic DARTS) or from the training pool (``same``: a different batch);
        ``order`` ``second`` is unrolled DARTS. ``arch_data`` and ``order`` must keep their
        defaults for ``single``, so each search has one spelling.
      activation / alpha_init / alpha_init_std — α activation; ``alpha_init`` None = 0, or
        logit(1/|ops|) for ``sigmoid*``.
      w_* / arch_* — optimizer name, lr, momentum (SGD), betas (Adam), weight decay (coupled L2);
        w lr follows a per-epoch cosine from ``w_lr`` to ``w_lr_min``; ``grad_clip`` bounds the
        global norm of the w gradient (0 = off).
      epochs / batch_size / seed / steps_per_epoch — ``steps_per_epoch`` 0 = one pass over the
        training pool (ceil(pool / batch)); >0 caps it, for quick runs.
      channels / depth / stem — supernet size: C; NB201 cells per stage (5) or DARTS cells in
        all (8), None = the space default; DARTS stem: ``imagenet`` (x8 downsampling) goes with
        ``dataset='imagenet'`` and only with it, which in turn needs ``space='darts'``.
      probe_every — the gradient-correlation probe samples one step in every ``probe_every``
        (0 = off). ``unroll_r`` — finite-difference radius of second-order DARTS.
      data_fraction / data_fraction_seed — search on a deterministic, class-balanced fraction of
        the training pool (and of the held-out split), drawn with ``data_fraction_seed``, not the
        search seed, so every seed of a study sees the same images; 1 = all (the default).
      train_pool — single-level only: ``split`` trains on the train half of the search split (the
        reference protocol; the other half is unused), ``full`` on the whole training set.
      genotype_none — NB201 only: the derived cell's argmax ``include``-s the ``none`` op (the
        NB201 reference) or ``exclude``-s it (DARTS's rule). Under sigmoid, ``none``'s α gets no
        loss gradient and moves only through α weight decay.
    """

    space: str = "nb201"
    dataset: str = "digits"
    data_dir: str = ""
    benchmark_dir: str = ""
    level: str = "single"
    arch_data: str = "split"
    order: str = "first"
    activation: str = "softmax"
    alpha_init: float | None = None
    alpha_init_std: float = 1e-3
    w_optimizer: str = "sgd"
    w_lr: float = 0.025
    w_lr_min: float = 0.001
    w_momentum: float = 0.9
    w_nesterov: bool = True
    w_beta1: float = 0.9
    w_beta2: float = 0.999
    w_weight_decay: float = 5e-4
    arch_optimizer: str = "adam"
    arch_lr: float = 3e-4
    arch_momentum: float = 0.9
    arch_beta1: float = 0.5
    arch_beta2: float = 0.999
    arch_weight_decay: float = 1e-3
    grad_clip: float = 5.0
    epochs: int = 50
    batch_size: int = 64
    seed: int = 0
    steps_per_epoch: int = 0
    channels: int = 16
    depth: int | None = None
    stem: str = "cifar"
    probe_every: int = 10
    unroll_r: float = 0.01
    data_fraction: float = 1.0
    data_fraction_seed: int = 0
    train_pool: str = "split"
    genotype_none: str = "include"

    def __post_init__(self) -> None:
        for f in fields(self):
            object.__setattr__(self, f.name, _checked_value(f.name, getattr(self, f.name)))
        for name, allowed in FIELD_CHOICES.items():
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(
                    f"{name}={shown(value)} is not allowed; choose one of {list(allowed)}"
                )
        self._check_values()
        if self.depth is None:
            object.__setattr__(self, "depth", DEFAULT_DEPTH[self.space])

    def _check_values(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{f.name}={value!r} must be a finite number")
        positive = ("w_lr", "arch_lr", "epochs", "batch_size", "channels", "unroll_r")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}={getattr(self, name)!r} must be > 0")
        non_negative = (
            "w_lr_min",
            "w_momentum",
            "arch_momentum",
            "w_weight_decay",
            "arch_weight_decay",
            "grad_clip",
            "seed",
            "steps_per_epoch",
            "probe_every",
            "alpha_init_std",
            "data_fraction_seed",
        )
        for name in non_negative:
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name}={getattr(self, name)!r} must be >= 0")
        for name in ("w_beta1", "w_beta2", "arch_beta1", "arch_beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)!r} must be in [0, 1)")
        if self.w_momentum >= 1 or self.arch_momentum >= 1:
            raise ValueError("w_momentum and arch_momentum must be < 1")
        if not 0 < self.data_fraction <= 1:
            raise ValueError(f"data_fraction={self.data_fraction!r} must be in (0, 1]")
        if self.train_pool != "split" and self.level != "single":
            raise ValueError(
                f"train_pool={self.train_pool!r} applies to level='single' only (bi-level takes "
                "its α batches from the other half of the split); leave it at 'split'"
            )
        if self.train_pool == "full" and self.dataset in HELD_OUT_FROM_TEST:
            raise ValueError(
                f"train_pool='full' changes nothing for dataset={self.dataset!r}: its search "
                "split holds out test images, so the train half already is the whole training "
                "set; leave train_pool at 'split'"
            )
        if self.genotype_none != "include" and self.space != "nb201":
            raise ValueError(
                f"genotype_none={self.genotype_none!r} applies to space='nb201' only (the DARTS "
                "derivation always excludes 'none'); leave it at 'include'"
            )
        if self.w_lr_min > self.w_lr:
            raise ValueError(f"w_lr_min={self.w_lr_min} must not exceed w_lr={self.w_lr}")
        if self.depth is not None and self.depth < (1 if self.space == "nb201" else 3):
            raise ValueError(f"depth={self.depth} is too small for space {self.space!r}")
        if self.level == "single" and (self.arch_data, self.order) != ("split", "first"):
            raise ValueError(
                "arch_data and order only apply to level='bi'; for level='single' leave them at "
                f"'split' and 'first' (got arch_data={self.arch_data!r}, order={self.order!r})"
            )
        if self.stem == "imagenet" and self.space != "darts":
            raise ValueError("stem='imagenet' exists only for space='darts'")
        if self.stem == "imagenet" and self.dataset != "imagenet":
            raise ValueError(
                "stem='imagenet' downsamples 224-pixel input x8 and needs dataset='imagenet' "
                f"(got dataset={self.dataset!r}); use stem='cifar' for the other datasets"
            )
        if self.dataset == "imagenet" and (self.space, self.stem) != ("darts", "imagenet"):
            raise ValueError(
                "dataset='imagenet' (224-pixel ImageNet-1k) needs space='darts' and "
                f"stem='imagenet' (got space={self.space!r}, stem={self.stem!r})"
            )


# Unit and meaning of every field (docs/results.md is generated from these; a test checks that
# every field has one). Learning rates are per step, α values unitless.
FIELD_DOCS: dict[str, tuple[str, str]] = {
    "space": ("", f"search space: {' | '.join(SPACES)}"),
    "dataset": ("", f"search data: {' | '.join(DATASETS)}"),
    "data_dir": ("path", "folder of the raw dataset files ('' = unused or default)"),
    "benchmark_dir": ("path", "NATS-Bench fast-mode folder ('' = $TORCH_HOME, else the shipped test table)"),
    "level": ("", "update strategy: 'single' (w and α on one batch) | 'bi' (w, then α)"),
    "arch_data": ("", "bi-level α batches: 'split' (held-out split) | 'same' (training pool)"),
    "order": ("", "bi-level α gradient: 'first' | 'second' (unrolled)"),
    "activation": ("", f"α activation: {' | '.join(ACTIVATIONS)}"),
    "alpha_init": ("", "mean of α at start; null = 0, or logit(1/|ops|) for sigmoid*"),
    "alpha_init_std": ("", "std of the α initialisation noise"),
    "w_optimizer": ("", f"w optimizer: {' | '.join(OPTIMIZERS)}"),
    "w_lr": ("per step", "w learning rate at the start of the cosine schedule"),
    "w_lr_min": ("per step", "w learning rate at the end of the cosine schedule"),
    "w_momentum": ("", "w SGD momentum"),
    "w_nesterov": ("", "w SGD uses Nesterov momentum"),
    "w_beta1": ("", "w Adam beta1"),
    "w_beta2": ("", "w Adam beta2"),
    "w_weight_decay": ("", "w weight decay (coupled L2)"),
    "arch_optimizer": ("", f"α optimizer: {' | '.join(OPTIMIZERS)}"),
    "arch_lr": ("per step", "α learning rate (constant)"),
    "arch_momentum": ("", "α SGD momentum"),
    "arch_beta1": ("", "α Adam beta1"),
    "arch_beta2": ("", "α Adam beta2"),
    "arch_weight_decay": ("", "α weight decay (coupled L2)"),
    "grad_clip": ("", "bound on the global norm of the w gradient (0 = off)"),
    "epochs": ("epochs", "length of the search"),
    "batch_size": ("images", "images per w batch (and per α batch)"),
    "seed": ("", "random seed of the search (a repeat)"),
    "steps_per_epoch": ("steps", "cap on w steps per epoch (0 = one pass over the training pool)"),
    "channels": ("", "supernet width C (channels of the first stage)"),
    "depth": ("cells", "NB201 cells per stage, or DARTS cells in all"),
    "stem": ("", f"DARTS stem: {' | '.join(STEMS)} (imagenet: x8 downsampling, 224-px input)"),
    "probe_every": ("steps", "gradient-correlation probe samples one step in this many (0 = off)"),
    "unroll_r": ("", "finite-difference radius of second-order DARTS"),
    "data_fraction": ("", "fraction of the training pool searched on (class-balanced; 1 = all)"),
    "data_fraction_seed": ("", "seed of the data_fraction subset (independent of the search seed)"),
    "train_pool": ("", f"single-level training pool: {' | '.join(TRAIN_POOLS)} (split = the train half)"),
    "genotype_none": ("", f"NB201 derivation: {' | '.join(GENOTYPE_NONE)} the 'none' op in the argmax"),
}
# Fields added after the first experiments: a trial config or a result file without them means
# their default (what every search did before they existed). Every other field must be present
# in a trial's config (``config_from_trial``).
ADDED_FIELDS = ("data_fraction", "data_fraction_seed", "train_pool", "genotype_none")
if tuple(FIELD_DOCS) != SearchConfig.field_names():
    raise RuntimeError("trainables.config: FIELD_DOCS must list every SearchConfig field in order")


class FieldType(NamedTuple):
    """A field's value type (``str``, ``int``, ``float`` or ``bool``) and whether None is allowed."""

    base: type
    nullable: bool


def field_types(cls: type) -> dict[str, FieldType]:
    """Every field's ``FieldType`` of the config dataclass ``cls``, from its evaluated
    annotations (``typing.get_type_hints``): str, int, float or bool, optionally ``| None``."""
    found: dict[str, FieldType] = {}
    for name, hint in typing.get_type_hints(cls).items():
        args = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        bases = [a for a in args if a is not type(None)]
        if len(bases) != 1 or bases[0] not in (str, int, float, bool):
            raise TypeError(f"{cls.__name__}.{name}: unsupported annotation {hint!r}")
        found[name] = FieldType(bases[0], len(bases) < len(args))
    return found


FIELD_TYPES: dict[str, FieldType] = field_types(SearchConfig)
# Each field's declared default (``depth`` is None here: filled per space in __post_init__).
FIELD_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(SearchConfig)}


INT_MIN, INT_MAX = -(2**63), 2**63 - 1  # int fields: the results' int64 columns
_SHOWN_CHARS = 120  # longest value repr an error message prints


def shown(value: Any) -> str:
    """``repr(value)`` for an error message, shortened when long; an int too large for ``repr``
    (Python's 4300-digit limit) is named by its size."""
    try:
        text = repr(value)
    except ValueError:
        return f"<{value.bit_length()}-bit int>" if isinstance(value, int) else "<unprintable>"
    return text if len(text) <= _SHOWN_CHARS else f"{text[: _SHOWN_CHARS - 3]}..."


def shown_keys(keys: Iterable[Any]) -> str:
    """Keys of any type as a sorted list for a message (mixed types cannot be compared)."""
    return "[" + ", ".join(sorted(map(shown, keys))) + "]"


def _checked_value(name: str, value: Any) -> Any:
    return checked_value(name, value, FIELD_TYPES[name])


def checked_value(name: str, value: Any, kind: FieldType) -> Any:
    """``value`` as a field ``name`` of type ``kind`` holds it: its type checked, an int of a
    float field converted to float (-0.0 to 0.0), an int of an int field within
    ``INT_MIN``..``INT_MAX``; else ``ValueError`` naming the field."""
    base, nullable = kind
    if value is None and nullable:
        return value
    allowed: tuple[type, ...] = (float, int) if base is float else (base,)
    wrong_bool = isinstance(value, bool) and base is not bool
    if wrong_bool or not isinstance(value, allowed):
        expected = base.__name__ + (" | None" if nullable else "")
        raise ValueError(
            f"{name}={shown(value)} has type {type(value).__name__}; expected {expected}"
        )
    if base is float and isinstance(value, int | float):
        try:
            return float(value) + 0.0
        except OverflowError:
            raise ValueError(
                f"{name}={shown(value)} is too large for a float; expected a finite number"
            ) from None
    if isinstance(value, int) and base is int and not INT_MIN <= value <= INT_MAX:
        raise ValueError(
            f"{name}={shown(value)} is out of range: an integer from -2**63 to 2**63 - 1 (the "
            "results store it as int64)"
        )
    return value


@overload
def config_from_trial(values: Mapping[str, Any]) -> SearchConfig: ...


@overload
def config_from_trial(values: Mapping[str, Any], cls: type[FlatConfigT]) -> FlatConfigT: ...


def config_from_trial(values: Mapping[str, Any], cls: type[FlatConfig] = SearchConfig) -> Any:
    """The config (a ``SearchConfig``, or ``cls``: an ``EvalConfig``) of a trial's config dict,
    which must name every field except, for a search, the ``ADDED_FIELDS``: a trial whose config
    lost its grid entry (e.g. Tune restoring a damaged experiment state with an empty config)
    must fail, never run a default search or evaluation."""
    name = cls.__name__
    if not isinstance(values, Mapping):
        raise ValueError(
            f"trial config is {type(values).__name__} {shown(values)}, not a mapping of "
            f"{name} fields: a trial runs only what its grid entry names; if the experiment "
            "state is damaged, rerun as a new experiment (another --name)"
        )
    optional = ADDED_FIELDS if cls is SearchConfig else ()
    missing = [n for n in cls.field_names() if n not in values and n not in optional]
    if missing:
        got = shown_keys(values) if values else "none"
        raise ValueError(
            f"trial config lacks {name} field(s) {missing} (got {got}):"
            " a trial runs only what its grid entry names, never a default one; if the "
            "experiment state is damaged, rerun as a new experiment (another --name)"
        )
    return cls.from_dict(values)


def config_key(config: SearchConfig) -> str:
    """Stable 12-hex id of a search: sha1 of the sorted JSON of ``to_dict``. Float fields hold
    floats (``w_lr=1`` is stored as 1.0, -0.0 as 0.0), so equal configs get one key and unequal
    ones different keys."""
    text = json.dumps(config.to_dict(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def dedupe(configs: Iterable[SearchConfig]) -> list[SearchConfig]:
    """Drop repeated configs (equal ``config_key``), keeping the first occurrence's position."""
    seen: dict[str, SearchConfig] = {}
    for config in configs:
        seen.setdefault(config_key(config), config)
    return list(seen.values())
