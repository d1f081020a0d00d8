"""Tests of the α activations and the α initialisation."""

from __future__ import annotations

import math

import pytest
import torch

from search_spaces import build_supernet
from search_spaces.activations import (
    ACTIVATIONS,
    activate,
    check_activation,
    default_alpha_init,
    init_alpha,
)
from search_spaces.darts import DartsSuperNet
from search_spaces.nb201 import NB201SuperNet


def test_activation_names() -> None:
    assert ACTIVATIONS == ("softmax", "sigmoid", "sigmoid*")


def test_softmax_rows_sum_to_one_over_last_axis() -> None:
    torch.manual_seed(0)
    alpha = 3 * torch.randn(14, 8)
    w = activate("softmax", alpha)
    torch.testing.assert_close(w.sum(dim=-1), torch.ones(14))
    assert (w > 0).all()
    # A constant shift of one row leaves it unchanged (softmax, not elementwise).
    shifted = alpha.clone()
    shifted[3] += 7.0
    torch.testing.assert_close(activate("softmax", shifted), w)
    # Ranking within a row is preserved.
    assert torch.equal(w.argmax(dim=-1), alpha.argmax(dim=-1))


@pytest.mark.parametrize("name", ["sigmoid", "sigmoid*"])
def test_sigmoid_is_elementwise_sigmoid(name: str) -> None:
    torch.manual_seed(0)
    alpha = 3 * torch.randn(6, 5)
    w = activate(name, alpha)
    torch.testing.assert_close(w, 1 / (1 + torch.exp(-alpha)), rtol=1e-6, atol=1e-7)
    # Elementwise: changing one entry changes only that output.
    bumped = alpha.clone()
    bumped[2, 3] += 1.0
    diff = activate(name, bumped) != w
    assert diff.sum() == 1 and diff[2, 3]
    # Rows do not sum to one.
    assert not torch.allclose(w.sum(dim=-1), torch.ones(6))


def test_activation_keeps_autograd() -> None:
    alpha = torch.zeros(6, 5, requires_grad=True)
    for name in ACTIVATIONS:
        activate(name, alpha)[0, 1].backward()
    assert alpha.grad is not None and alpha.grad[0, 1] > 0


@pytest.mark.parametrize("num_ops", [5, 8])
def test_default_alpha_init(num_ops: int) -> None:
    assert default_alpha_init("softmax", num_ops) == 0.0
    assert default_alpha_init("sigmoid", num_ops) == 0.0
    star = default_alpha_init("sigmoid*", num_ops)
    assert star == pytest.approx(math.log(1 / (num_ops - 1)), abs=1e-12)
    assert torch.sigmoid(torch.tensor(star, dtype=torch.float64)).item() == pytest.approx(
        1 / num_ops, abs=1e-12
    )
    # sigmoid* starts where softmax starts: each op weighted 1/|ops|.
    uniform = activate("softmax", torch.zeros(num_ops))
    torch.testing.assert_close(activate("sigmoid*", torch.full((num_ops,), star)), uniform)


def test_init_alpha_mean_and_std() -> None:
    torch.manual_seed(0)
    a = init_alpha((200, 50), -2.0, 0.5)
    assert a.shape == (200, 50)
    assert a.mean().item() == pytest.approx(-2.0, abs=0.02)
    assert a.std().item() == pytest.approx(0.5, rel=0.03)
    torch.manual_seed(0)
    torch.testing.assert_close(init_alpha((200, 50), -2.0, 0.5), a, rtol=0, atol=0)  # seeded


def test_nb201_sigmoid_star_alpha_init() -> None:
    torch.manual_seed(0)
    model = NB201SuperNet(channels=4, depth=1, activation="sigmoid*")
    alpha = model.alpha_normal.detach()
    assert alpha.mean().item() == pytest.approx(math.log(1 / 4), abs=1e-3)
    assert 0.5e-3 < alpha.std().item() < 1.6e-3
    torch.testing.assert_close(
        model.activated()["normal"].mean(), torch.tensor(0.2), atol=1e-3, rtol=0
    )


@pytest.mark.parametrize("activation", ["softmax", "sigmoid"])
def test_nb201_default_alpha_init_near_zero(activation: str) -> None:
    torch.manual_seed(0)
    model = NB201SuperNet(channels=4, depth=1, activation=activation)
    alpha = model.alpha_normal.detach()
    assert alpha.abs().max().item() < 1e-2
    assert 0.5e-3 < alpha.std().item() < 1.6e-3


def test_darts_sigmoid_star_alpha_init() -> None:
    torch.manual_seed(0)
    model = DartsSuperNet(channels=4, layers=3, activation="sigmoid*")
    for alpha in model.alphas():
        assert alpha.mean().item() == pytest.approx(math.log(1 / 7), abs=1e-3)
        assert 0.5e-3 < alpha.std().item() < 1.6e-3


def test_explicit_alpha_init_overrides() -> None:
    torch.manual_seed(0)
    model = NB201SuperNet(channels=4, depth=1, activation="sigmoid*", alpha_init=0.75)
    assert model.alpha_normal.mean().item() == pytest.approx(0.75, abs=1e-3)
    exact = NB201SuperNet(
        channels=4, depth=1, activation="softmax", alpha_init=-0.3, alpha_init_std=0.0
    )
    torch.testing.assert_close(exact.alpha_normal.detach(), torch.full((6, 5), -0.3))
    wide = NB201SuperNet(channels=4, depth=1, alpha_init_std=1.0)
    assert wide.alpha_normal.std().item() > 0.5
    darts = build_supernet(
        "darts",
        num_classes=10,
        channels=4,
        depth=3,
        activation="sigmoid",
        alpha_init=1.25,
        alpha_init_std=0.0,
    )
    for alpha in darts.alphas():
        torch.testing.assert_close(alpha.detach(), torch.full((14, 8), 1.25))


def test_unknown_activation_raises_listing_valid_names() -> None:
    valid = "softmax, sigmoid, sigmoid\\*"
    with pytest.raises(ValueError, match=f"unknown activation 'relu'; valid: {valid}"):
        check_activation("relu")
    with pytest.raises(ValueError, match=valid):
        activate("tanh", torch.zeros(3))
    with pytest.raises(ValueError, match=valid):
        default_alpha_init("Softmax", 5)
    with pytest.raises(ValueError, match=valid):
        NB201SuperNet(channels=4, depth=1, activation="sigmoid**")
    with pytest.raises(ValueError, match=valid):
        DartsSuperNet(channels=4, layers=3, activation="")
