"""Search spaces: supernets, α activations, genotypes and the NAS-Bench-201 lookup.

``build_supernet`` is the registry entry point used by the search loop. The supernet modules
(torch) are imported on first use, so ``search_spaces.genotypes`` and ``search_spaces.benchmark``
load without torch: ``analysis`` reads genotypes and the benchmark on machines without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from search_spaces.supernet import SuperNet

__all__ = ["SPACES", "build_supernet"]

def _nb201(num_classes: int, channels: int, depth: int, stem: str, **alpha: object) -> SuperNet:
    from search_spaces.nb201 import NB201SuperNet

    if stem != "cifar":
        raise ValueError(f"the nb201 space has only the 'cifar' stem, got stem={stem!r}")
    return NB201SuperNet(num_classes, channels, depth, **alpha)  # type: ignore[arg-type]


def _darts(num_classes: int, channels: int, depth: int, stem: str, **alpha: object) -> SuperNet:
    from search_spaces.darts import DartsSuperNet

    return DartsSuperNet(num_classes, channels, depth, stem, **alpha)  # type: ignore[arg-type]


SPACES: dict[str, Callable[..., SuperNet]] = {"nb201": _nb201, "darts": _darts}


def build_supernet(
    space: str,
    *,
    num_classes: int,
    channels: int,
    depth: int,
    activation: str,
    alpha_init: float | None,
    alpha_init_std: float,
    stem: str = "cifar",
) -> SuperNet:
    """Build the supernet of ``space``. ``depth``: NB201 cells per stage, or DARTS cells in all."""
    if space not in SPACES:
        raise ValueError(f"unknown search space {space!r}; valid: {', '.join(SPACES)}")
    return SPACES[space](
        num_classes,
        channels,
        depth,
        stem,
        activation=activation,
        alpha_init=alpha_init,
        alpha_init_std=alpha_init_std,
    )

