"""Tests of the grid warnings (``study.checks``): the sigmoid ``none`` warning."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from study.checks import MAX_NAMED, sigmoid_none_warning
from trainables.config import SearchConfig

REPO = Path(__file__).resolve().parents[2]
BAD = {"space": "nb201", "activation": "sigmoid", "arch_weight_decay": 1e-3}


@pytest.mark.parametrize("activation", ["sigmoid", "sigmoid*"])
def test_the_bad_combination_is_named_explained_and_fixed(activation: str) -> None:
    config = SearchConfig(**{**BAD, "activation": activation, "level": "bi", "seed": 3})
    message = sigmoid_none_warning([config])
    assert message is not None
    assert "1 NAS-Bench-201 trial " in message
    assert f"level=bi activation={activation} seed=3" in message
    assert "no loss gradient" in message and "weight decay" in message and "argmax" in message
    assert "arch_weight_decay = 0" in message and "genotype_none = 'exclude'" in message


@pytest.mark.parametrize(
    "change",
    [
        {"activation": "softmax"},
        {"arch_weight_decay": 0.0},
        {"genotype_none": "exclude"},
        {"space": "darts"},
    ],
)
def test_no_warning_when_any_part_is_missing(change: dict[str, object]) -> None:
    assert sigmoid_none_warning([SearchConfig(**{**BAD, **change})]) is None


def test_no_configs_no_warning() -> None:
    assert sigmoid_none_warning([]) is None


def test_only_affected_trials_are_counted_and_named() -> None:
    configs = [
        SearchConfig(**BAD, seed=0),
        SearchConfig(**{**BAD, "activation": "softmax"}, seed=1),
        SearchConfig(**BAD, seed=2),
    ]
    message = sigmoid_none_warning(configs)
    assert message is not None
    assert "2 NAS-Bench-201 trials" in message
    assert "seed=0" in message and "seed=2" in message
    assert "seed=1" not in message and "softmax" not in message


def test_names_are_capped() -> None:
    configs = [SearchConfig(**BAD, seed=s) for s in range(MAX_NAMED + 7)]
    message = sigmoid_none_warning(configs)
    assert message is not None
    assert f"{MAX_NAMED + 7} NAS-Bench-201 trials" in message
    named = [s for s in range(MAX_NAMED + 7) if f"seed={s})" in message or f"seed={s};" in message]
    assert named == list(range(MAX_NAMED))
    assert "and 7 more" in message


def test_fields_that_differ_are_named() -> None:
    configs = [SearchConfig(**BAD, arch_lr=lr) for lr in (1e-3, 3e-4)]
    message = sigmoid_none_warning(configs)
    assert message is not None
    assert "arch_lr=0.001" in message and "arch_lr=0.0003" in message
    assert "w_lr=" not in message  # the same in every affected trial


def test_imports_no_torch() -> None:
    code = "import sys, study.checks; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
