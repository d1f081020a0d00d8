"""The NB201 ``none`` derivation rule (``genotype_none``): why it matters and both rules.

Under sigmoid / sigmoid* each op's weight is its own α's sigmoid, so ``none`` (whose output is
exactly zero) gets exactly zero loss gradient; under softmax the normalisation couples it to the
other ops. With ``include`` such a frozen ``none`` still takes part in the argmax.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from search_spaces import build_supernet
from search_spaces.genotypes import (
    NB201_EDGES,
    NB201_GENOTYPE_NONE,
    NB201_OPS,
    nb201_from_string,
    nb201_genotype,
    nb201_to_string,
)
from search_spaces.nb201 import NB201SuperNet
from trainables.config import GENOTYPE_NONE

NONE = NB201_OPS.index("none")


def _one_step_alpha_grad(activation: str) -> torch.Tensor:
    """α gradient of one forward/backward of a small supernet on a random 32x32 batch."""
    torch.manual_seed(0)
    model = build_supernet(
        "nb201",
        num_classes=10,
        channels=4,
        depth=1,
        activation=activation,
        alpha_init=None,
        alpha_init_std=1e-3,
    )
    x = torch.randn(8, 3, 32, 32)
    y = torch.randint(0, 10, (8,))
    F.cross_entropy(model(x), y).backward()
    (alpha,) = model.alphas()
    assert alpha.grad is not None
    return alpha.grad


@pytest.mark.parametrize("activation", ["sigmoid", "sigmoid*"])
def test_sigmoid_none_alpha_gets_exactly_zero_loss_gradient(activation: str) -> None:
    grad = _one_step_alpha_grad(activation)
    assert (grad[:, NONE] == 0).all()  # exactly zero on every edge
    others = torch.cat([grad[:, :NONE], grad[:, NONE + 1 :]], dim=1)
    assert (others != 0).all()


def test_softmax_couples_none_to_the_other_ops() -> None:
    grad = _one_step_alpha_grad("softmax")
    assert (grad[:, NONE] != 0).all()


# --------------------------------------------------------------------------- the two rules
def _none_leads_edge(edge: int) -> tuple[torch.Tensor, list[str], list[str]]:
    """Weights with ``none`` largest on ``edge`` (nor_conv_3x3 runner-up there); other edges
    led by skip_connect. Returns the weights and the ops each rule should pick."""
    w = torch.full((len(NB201_EDGES), len(NB201_OPS)), 0.1)
    w[:, NB201_OPS.index("skip_connect")] = 0.5
    w[edge, NONE] = 0.9
    w[edge, NB201_OPS.index("nor_conv_3x3")] = 0.7
    include = ["skip_connect"] * len(NB201_EDGES)
    exclude = list(include)
    include[edge] = "none"
    exclude[edge] = "nor_conv_3x3"
    return w, include, exclude


@pytest.mark.parametrize("edge", [0, 3, 5])
def test_include_picks_none_exclude_picks_the_runner_up(edge: int) -> None:
    w, include, exclude = _none_leads_edge(edge)
    assert nb201_genotype(w) == nb201_to_string(include)  # default is the reference rule
    assert nb201_genotype(w, none="include") == nb201_to_string(include)
    got = nb201_genotype(w, none="exclude")
    assert got == nb201_to_string(exclude)
    assert "none" not in nb201_from_string(got)
    assert got.count("|") == nb201_to_string(exclude).count("|")  # the NB201 string format


def test_exclude_does_not_change_the_weights() -> None:
    w, _, _ = _none_leads_edge(2)
    before = w.clone()
    nb201_genotype(w, none="exclude")
    assert torch.equal(w, before)


def test_the_rules_agree_when_none_never_leads() -> None:
    w = torch.rand(len(NB201_EDGES), len(NB201_OPS))
    w[:, NONE] = -1.0
    assert nb201_genotype(w, none="include") == nb201_genotype(w, none="exclude")


def test_unknown_rule_is_rejected() -> None:
    w = torch.rand(len(NB201_EDGES), len(NB201_OPS))
    with pytest.raises(ValueError, match=r"genotype_none='drop'.*include.*exclude"):
        nb201_genotype(w, none="drop")


def test_rules_match_the_config_axis() -> None:
    assert NB201_GENOTYPE_NONE == GENOTYPE_NONE


@pytest.mark.parametrize("rule", ["include", "exclude"])
def test_supernet_genotype_uses_its_rule(rule: str) -> None:
    model = NB201SuperNet(channels=4, depth=1, activation="sigmoid", genotype_none=rule)
    assert model.genotype_none == rule
    w, include, exclude = _none_leads_edge(1)
    with torch.no_grad():
        model.alphas()[0].copy_(w)  # sigmoid is monotone: the argmax is the α argmax
    expected = include if rule == "include" else exclude
    assert model.genotype() == nb201_to_string(expected)


def test_supernet_default_rule_is_include() -> None:
    assert NB201SuperNet(channels=4, depth=1).genotype_none == "include"


# --------------------------------------------------------------------------- build_supernet
_SMALL = {"num_classes": 10, "channels": 4, "alpha_init": None, "alpha_init_std": 1e-3}


def test_build_supernet_passes_the_rule_to_nb201() -> None:
    model = build_supernet(
        "nb201", depth=1, activation="sigmoid", genotype_none="exclude", **_SMALL
    )
    assert isinstance(model, NB201SuperNet)
    assert model.genotype_none == "exclude"
    default = build_supernet("nb201", depth=1, activation="softmax", **_SMALL)
    assert default.genotype_none == "include"  # type: ignore[attr-defined]


def test_build_supernet_rejects_exclude_for_darts() -> None:
    with pytest.raises(ValueError, match=r"genotype_none='exclude'.*nb201"):
        build_supernet("darts", depth=3, activation="softmax", genotype_none="exclude", **_SMALL)


def test_build_supernet_rejects_an_unknown_rule_for_nb201() -> None:
    with pytest.raises(ValueError, match="genotype_none='drop'"):
        build_supernet("nb201", depth=1, activation="softmax", genotype_none="drop", **_SMALL)
