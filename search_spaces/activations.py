"""α activations (softmax / sigmoid / sigmoid*) and α initialisation.

The mixed edge output is ``Σ_op act(α)[op] · op(x)``. ``softmax`` makes ops compete (weights sum to
1 per edge); ``sigmoid`` weighs each op independently. ``sigmoid*`` is the same function as
``sigmoid`` with a different starting point (Single-DARTS §5.3; the paper's exact value is lost):
our reading is α₀ = logit(1/|ops|), so σ(α₀) equals softmax's uniform start 1/|ops|, while plain
sigmoid starts at α₀ = 0 (σ = 0.5). α₀ stays a knob (``alpha_init``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

ACTIVATION_FUNCTIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "softmax": lambda a: torch.softmax(a, dim=-1),
    "sigmoid": torch.sigmoid,
    "sigmoid*": torch.sigmoid,
}
ACTIVATIONS: tuple[str, ...] = tuple(ACTIVATION_FUNCTIONS)
ALPHA_INIT_STD = 1e-3  # reference: α = 1e-3 · randn


def check_activation(name: str) -> None:
    """Raise ``ValueError`` naming the valid activations when ``name`` is not one."""
    if name not in ACTIVATION_FUNCTIONS:
        raise ValueError(f"unknown activation {name!r}; valid: {', '.join(ACTIVATIONS)}")


def activate(name: str, alpha: torch.Tensor) -> torch.Tensor:
    """Apply activation ``name`` over the op axis (last) of ``alpha``."""
    check_activation(name)
    return ACTIVATION_FUNCTIONS[name](alpha)


def default_alpha_init(name: str, num_ops: int) -> float:
    """Mean of the α initialisation for an activation: 0, or logit(1/|ops|) for ``sigmoid*``."""
    check_activation(name)
    if name == "sigmoid*":
        p = 1.0 / num_ops
        return math.log(p / (1.0 - p))
    return 0.0


def init_alpha(shape: tuple[int, ...], mean: float, std: float = ALPHA_INIT_STD) -> torch.Tensor:
    """``mean + std · randn(shape)`` from torch's current RNG (seeded by the caller)."""
    return mean + std * torch.randn(shape)
