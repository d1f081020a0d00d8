"""What every supernet offers the search loop: weights, α, activated α and the genotype.

Supernets never pick a device or build optimizers; the search loop does. α tensors are registered
as parameters named ``alpha_<cell type>`` so that one ``state_dict`` checkpoints both, and
``weights()`` / ``alphas()`` split them for the two optimizers.
"""

from __future__ import annotations

import torch
from torch import nn

from search_spaces.activations import activate, check_activation, default_alpha_init, init_alpha

ALPHA_PREFIX = "alpha_"


class SuperNet(nn.Module):
    """Base class: owns the α parameters (one tensor per cell type) and their activation."""

    ops: tuple[str, ...] = ()

    def __init__(
        self,
        cell_types: tuple[str, ...],
        num_edges: int,
        activation: str,
        alpha_init: float | None,
        alpha_init_std: float,
    ) -> None:
        super().__init__()
        check_activation(activation)
        self.activation = activation
        mean = default_alpha_init(activation, len(self.ops)) if alpha_init is None else alpha_init
        self.cell_types = cell_types
        for cell in cell_types:
            alpha = init_alpha((num_edges, len(self.ops)), mean, alpha_init_std)
            self.register_parameter(ALPHA_PREFIX + cell, nn.Parameter(alpha))

    def alphas(self) -> list[nn.Parameter]:
        """Architecture parameters, one (edges, ops) tensor per cell type."""
        return [getattr(self, ALPHA_PREFIX + cell) for cell in self.cell_types]

    def weights(self) -> list[nn.Parameter]:
        """Every parameter that is not α (the network weights)."""
        return [p for name, p in self.named_parameters() if not name.startswith(ALPHA_PREFIX)]

    def activated(self) -> dict[str, torch.Tensor]:
        """Activated α per cell type, e.g. ``{"normal": (edges, ops)}`` (with autograd)."""
        return {
            cell: activate(self.activation, a)
            for cell, a in zip(self.cell_types, self.alphas(), strict=True)
        }

    def genotype(self) -> str:
        """The derived architecture as a string (space-specific)."""
        raise NotImplementedError
