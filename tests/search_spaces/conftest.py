"""Shared checks for the supernet tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from search_spaces.supernet import SuperNet


def _check_gradients(model: SuperNet, activation: str) -> None:
    """After a backward pass: every weight and α has a finite gradient; every op with an
    output moves α; ``none`` (op 0) gets a gradient only through softmax's coupling."""
    for p in model.weights():
        assert p.grad is not None and torch.isfinite(p.grad).all()
    for alpha in model.alphas():
        grad = alpha.grad
        assert grad is not None and torch.isfinite(grad).all()
        assert (grad[:, 1:] != 0).all()
        if activation == "softmax":
            assert (grad[:, 0] != 0).all()
        else:
            assert (grad[:, 0] == 0).all()  # sigmoid: `none` contributes exactly zero


@pytest.fixture
def check_gradients() -> Callable[[SuperNet, str], None]:
    return _check_gradients
