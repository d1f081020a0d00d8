"""EvalConfig: the paper's two protocols as presets, every value a knob, bad values refused."""

from __future__ import annotations

import pytest

from search_spaces.published import DARTS_V2, PUBLISHED
from trainables.eval_config import (
    EVAL_FIELD_DOCS,
    PAPER_SCALED_IMAGENET,
    PRESETS,
    EvalConfig,
    preset_config,
)


def test_the_cifar10_preset_is_the_papers_transfer_protocol() -> None:
    c = preset_config("cifar10", "DARTS_V2")
    assert (c.dataset, c.network, c.layers, c.init_channels) == ("cifar10", "cifar", 14, 36)
    assert (c.epochs, c.batch_size, c.lr, c.lr_min, c.schedule) == (600, 128, 0.025, 0.0, "cosine")
    assert (c.momentum, c.weight_decay, c.cutout, c.drop_path, c.auxiliary_weight) == (
        0.9, 3e-4, 16, 0.3, 0.4
    )


def test_the_imagenet_preset_is_the_papers_retraining_protocol() -> None:
    c = preset_config("imagenet", "DARTS_V2")
    assert (c.dataset, c.network, c.layers, c.init_channels) == ("imagenet", "imagenet", 14, 48)
    assert (c.epochs, c.batch_size, c.lr, c.momentum, c.weight_decay) == (250, 1024, 0.5, 0.9, 3e-5)
    assert (c.label_smoothing, c.schedule, c.warmup_epochs, c.auxiliary_weight) == (
        0.1, "linear", 5, 0.4
    )
    scaled = c.replace(**PAPER_SCALED_IMAGENET)
    assert (scaled.batch_size, scaled.lr) == (768, 0.375)


def test_every_preset_value_is_a_field_and_every_field_has_a_doc() -> None:
    for values in PRESETS.values():
        assert set(values) <= set(EvalConfig.field_names())
    assert tuple(EVAL_FIELD_DOCS) == EvalConfig.field_names()


def test_published_names_and_strings_become_the_same_canonical_genotype() -> None:
    by_name = preset_config("cifar10", "darts-v2")
    by_string = preset_config("cifar10", DARTS_V2.to_string().replace(", ", ","))
    assert by_name.genotype == by_string.genotype == DARTS_V2.to_string()
    assert set(PUBLISHED) == {"DARTS_V1", "DARTS_V2", "PC_DARTS", "P_DARTS"}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"genotype": ""}, "genotype is empty"),
        ({"genotype": "DARTS_V9"}, "neither a DARTS Genotype"),
        ({"genotype": "Genotype(normal=[(1, 2)])"}, "not a DARTS genotype"),
        ({"lr": -0.1}, "lr=-0.1 must be > 0"),
        ({"drop_path": 1.0}, r"drop_path=1.0 must be in \[0, 1\)"),
        ({"layers": 2}, "layers=2 is too small"),
        ({"batch_size": 96, "workers": 5}, "must divide evenly among workers=5"),
        ({"dataset": "cifar10", "network": "imagenet"}, "does not fit dataset"),
        ({"warmup_epochs": 600}, "must be fewer than epochs"),
        ({"schedule": "step"}, "schedule='step' is not allowed"),
        ({"epochs": 2.5}, "has type float; expected int"),
        ({"colour": 1}, r"unknown EvalConfig field\(s\) \['colour'\]"),
    ],
)
def test_bad_values_are_refused_naming_the_field(changes, message) -> None:
    values = {**PRESETS["cifar10"], "genotype": "DARTS_V2", **changes}
    with pytest.raises(ValueError, match=message):
        EvalConfig.from_dict(values)


def test_an_unknown_preset_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"choose one of \['cifar10', 'imagenet'\]"):
        preset_config("mnist", "DARTS_V2")


def test_a_trial_config_without_its_entry_never_runs_a_default_evaluation() -> None:
    from trainables.config import config_from_trial

    full = preset_config("cifar10", "DARTS_V2").to_dict()
    assert config_from_trial(full, EvalConfig) == EvalConfig.from_dict(full)
    with pytest.raises(ValueError, match=r"trial config lacks EvalConfig field\(s\) \['seed'\]"):
        config_from_trial({k: v for k, v in full.items() if k != "seed"}, EvalConfig)
