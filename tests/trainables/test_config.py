"""SearchConfig: validation of every field, flat-dict round trip, defaults."""

from __future__ import annotations

import math

import pytest

from trainables.config import DEFAULT_DEPTH, SearchConfig

# One invalid value per field (wrong type or impossible value), with the text the error must name.
INVALID: dict[str, list[object]] = {
    "space": ["nb301", 1],
    "dataset": ["imagenet1k", None],
    "data_dir": [3],
    "benchmark_dir": [None],
    "level": ["tri", "Single"],
    "arch_data": ["other"],
    "order": ["third"],
    "activation": ["relu", "Softmax"],
    "alpha_init": ["0", math.inf, math.nan],
    "alpha_init_std": [-1.0, "x"],
    "w_optimizer": ["adamw"],
    "w_lr": [-0.1, 0.0, math.nan, math.inf, "0.1"],
    "w_lr_min": [-1e-3],
    "w_momentum": [-0.5, 1.0],
    "w_nesterov": ["yes", 1],
    "w_beta1": [1.0, -0.1],
    "w_beta2": [1.5],
    "w_weight_decay": [-1.0],
    "arch_optimizer": ["rmsprop"],
    "arch_lr": [0.0, -3e-4],
    "arch_momentum": [2.0],
    "arch_beta1": [1.0],
    "arch_beta2": [-0.1],
    "arch_weight_decay": [-1e-3],
    "grad_clip": [-5.0, math.inf],
    "epochs": [0, 1.5, True],
    "batch_size": [0, -64, 64.0],
    "seed": [-1, "0"],
    "steps_per_epoch": [-1],
    "channels": [0],
    "depth": [0, 2.5],
    "stem": ["resnet"],
    "probe_every": [-1],
    "unroll_r": [0.0],
    "data_fraction": [0.0, -0.5, 1.5, float("nan"), "half"],
    "data_fraction_seed": [-1, 0.5],
    "train_pool": ["train", ""],
    "genotype_none": ["drop", None],
}


def test_every_field_has_invalid_cases() -> None:
    assert set(INVALID) == set(SearchConfig.field_names())


@pytest.mark.parametrize(
    ("name", "value"), [(n, v) for n, values in INVALID.items() for v in values]
)
def test_invalid_field_raises_naming_it(name: str, value: object) -> None:
    with pytest.raises(ValueError, match=name):
        SearchConfig.from_dict({name: value})


@pytest.mark.parametrize("name", ["level", "activation", "dataset", "w_optimizer", "space"])
def test_choice_errors_list_allowed_values(name: str) -> None:
    with pytest.raises(ValueError) as err:
        SearchConfig.from_dict({name: "bogus"})
    allowed = {
        "level": "'single', 'bi'",
        "activation": "'softmax', 'sigmoid', 'sigmoid*'",
        "dataset": "'cifar10', 'cifar100', 'imagenet16-120', 'imagenet', 'digits', 'synthetic'",
        "w_optimizer": "'sgd', 'adam'",
        "space": "'nb201', 'darts'",
    }[name]
    assert allowed in str(err.value)


def test_unknown_key_lists_valid_fields() -> None:
    with pytest.raises(ValueError, match=r"unknown SearchConfig field.*'lr'.*valid fields.*w_lr"):
        SearchConfig.from_dict({"lr": 0.1})


def test_cross_field_rules() -> None:
    with pytest.raises(ValueError, match="w_lr_min"):
        SearchConfig(w_lr=0.001, w_lr_min=0.01)
    with pytest.raises(ValueError, match="only apply to level='bi'"):
        SearchConfig(level="single", arch_data="same")
    with pytest.raises(ValueError, match="only apply to level='bi'"):
        SearchConfig(level="single", order="second")
    with pytest.raises(ValueError, match="stem='imagenet'"):
        SearchConfig(space="nb201", stem="imagenet")
    with pytest.raises(ValueError, match="depth"):
        SearchConfig(space="darts", depth=2)
    SearchConfig(level="bi", arch_data="same", order="second")  # valid for bi


def test_round_trip_and_defaults() -> None:
    config = SearchConfig(level="bi", activation="sigmoid*", seed=3, alpha_init=-1)
    flat = config.to_dict()
    assert set(flat) == set(SearchConfig.field_names())
    assert SearchConfig.from_dict(flat) == config
    assert flat["alpha_init"] == -1.0 and isinstance(flat["alpha_init"], float)
    for space, depth in DEFAULT_DEPTH.items():
        assert SearchConfig(space=space).depth == depth
    assert SearchConfig(space="darts", depth=6).depth == 6


def test_replace_validates() -> None:
    config = SearchConfig()
    assert config.replace(seed=4).seed == 4
    with pytest.raises(ValueError, match="w_lr"):
        config.replace(w_lr=-1.0)
    with pytest.raises(ValueError, match="unknown"):
        config.replace(nonsense=1)


def test_frozen() -> None:
    with pytest.raises(AttributeError):
        SearchConfig().seed = 1  # type: ignore[misc]


# ---------------------------------------------------------------------- registries vs plain data
def test_allowed_values_match_every_registry_exactly() -> None:
    """``trainables.config`` lists each axis' values as plain data (no torch); the registries
    that implement them must hold exactly those names, so adding an op, a space, a dataset or an
    optimizer on one side only fails here."""
    import search_spaces
    from search_spaces.activations import ACTIVATION_FUNCTIONS
    from search_spaces.darts import STEMS
    from trainables import config as C
    from trainables.datasets import DATASET_NAMES
    from trainables.optim import OPTIMIZER_FACTORIES
    from trainables.strategies import STRATEGIES

    assert tuple(search_spaces.SPACES) == C.SPACES
    assert tuple(ACTIVATION_FUNCTIONS) == C.ACTIVATIONS
    assert STEMS == C.STEMS
    assert DATASET_NAMES == C.DATASETS
    assert tuple(OPTIMIZER_FACTORIES) == C.OPTIMIZERS
    valid_pairs = set()
    for level in C.LEVELS:
        for order in C.ORDERS:
            try:
                SearchConfig(level=level, order=order)
            except ValueError:
                continue
            valid_pairs.add((level, order))
    assert set(STRATEGIES) == valid_pairs


def test_config_and_records_import_no_torch() -> None:
    """The plain-data modules load on a machine without torch (checked in a fresh process)."""
    import subprocess
    import sys

    code = (
        "import sys; import trainables.config, trainables.records, analysis.store; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'ray')); "
        "print(bad); raise SystemExit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_field_types_come_from_the_annotations() -> None:
    from trainables.config import FIELD_DOCS, FIELD_TYPES, FieldType

    assert tuple(FIELD_TYPES) == SearchConfig.field_names() == tuple(FIELD_DOCS)
    assert FIELD_TYPES["depth"] == FieldType(int, True)
    assert FIELD_TYPES["alpha_init"] == FieldType(float, True)
    assert FIELD_TYPES["w_nesterov"] == FieldType(bool, False)
    assert FIELD_TYPES["space"] == FieldType(str, False)
    with pytest.raises(ValueError, match=r"depth=2.5 has type float; expected int \| None"):
        SearchConfig(depth=2.5)  # type: ignore[arg-type]


def test_new_fields_keep_their_meaning_only_where_they_apply() -> None:
    """train_pool only for single level, genotype_none only for NB201 (each search, one
    spelling); the defaults are what every search before them did."""
    default = SearchConfig()
    assert (default.data_fraction, default.train_pool, default.genotype_none) == (
        1.0, "split", "include")
    with pytest.raises(ValueError, match="train_pool='full' applies to level='single'"):
        SearchConfig(level="bi", train_pool="full")
    with pytest.raises(ValueError, match="genotype_none='exclude' applies to space='nb201'"):
        SearchConfig(space="darts", dataset="cifar10", genotype_none="exclude")
    with pytest.raises(ValueError, match="train_pool='full' changes nothing"):
        SearchConfig(dataset="cifar100", train_pool="full")
    assert SearchConfig(train_pool="full", genotype_none="exclude", data_fraction=0.5)


def test_a_trial_config_must_name_every_field_but_the_added_ones() -> None:
    """Trials of experiments started before a field existed lack it and get its default; any
    other missing field is an error naming it."""
    from trainables.config import ADDED_FIELDS, config_from_trial

    full = SearchConfig(level="bi", seed=3).to_dict()
    older = {k: v for k, v in full.items() if k not in ADDED_FIELDS}
    assert config_from_trial(older) == SearchConfig(level="bi", seed=3)
    with pytest.raises(ValueError, match=r"lacks SearchConfig field\(s\) \['level'\]"):
        config_from_trial({k: v for k, v in full.items() if k != "level"})
    with pytest.raises(ValueError, match="got none"):
        config_from_trial({})
