"""Search spaces: supernets, α activations, genotypes and the NAS-Bench-201 lookup.

``build_supernet`` is the registry entry point used by the search loop. The supernet modules
(torch) are imported on first use, so ``search_spaces.genotypes`` and ``search_spaces.benchmark``
load without torch: ``analysis`` reads genotypes and the benchmark on machines without it.
Public surface: ``SPACES``, ``build_supernet``, and (loaded on first use) ``open_benchmark``,
``Benchmark``, ``TableBenchmark``, ``NatsBenchmark``, ``BenchmarkRecordError``,
``DartsGenotype``, ``nb201_to_string``, ``nb201_from_string``, ``NB201_OPS``, ``DARTS_OPS``.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from search_spaces.benchmark import (
        Benchmark,
        BenchmarkRecordError,
        NatsBenchmark,
        TableBenchmark,
        open_benchmark,
    )
    from search_spaces.genotypes import (
        DARTS_OPS,
        NB201_OPS,
        DartsGenotype,
        nb201_from_string,
        nb201_to_string,
    )
    from search_spaces.supernet import SuperNet

_EXPORTS = {
    **dict.fromkeys(
        ("open_benchmark", "Benchmark", "TableBenchmark", "NatsBenchmark", "BenchmarkRecordError"),
        "search_spaces.benchmark",
    ),
    **dict.fromkeys(
        ("DartsGenotype", "nb201_to_string", "nb201_from_string", "NB201_OPS", "DARTS_OPS"),
        "search_spaces.genotypes",
    ),
}
__all__ = [
    "DARTS_OPS",
    "NB201_OPS",
    "SPACES",
    "Benchmark",
    "BenchmarkRecordError",
    "DartsGenotype",
    "NatsBenchmark",
    "TableBenchmark",
    "build_supernet",
    "nb201_from_string",
    "nb201_to_string",
    "open_benchmark",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'search_spaces' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)


def _nb201(
    num_classes: int, channels: int, depth: int, stem: str, genotype_none: str, **alpha: object
) -> SuperNet:
    from search_spaces.nb201 import NB201SuperNet

    if stem != "cifar":
        raise ValueError(f"the nb201 space has only the 'cifar' stem, got stem={stem!r}")
    return NB201SuperNet(
        num_classes, channels, depth, genotype_none=genotype_none, **alpha  # type: ignore[arg-type]
    )


def _darts(
    num_classes: int, channels: int, depth: int, stem: str, genotype_none: str, **alpha: object
) -> SuperNet:
    from search_spaces.darts import DartsSuperNet

    if genotype_none != "include":
        raise ValueError(
            f"genotype_none={genotype_none!r} applies to the nb201 space only (the DARTS "
            "derivation always excludes 'none'); leave it at 'include'"
        )
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
    genotype_none: str = "include",
) -> SuperNet:
    """Build the supernet of ``space``. ``depth``: NB201 cells per stage, or DARTS cells in all.

    ``genotype_none``: NB201 derivation rule, ``include`` (``none`` in each edge's argmax, the
    reference) or ``exclude`` (as DARTS); the DARTS space accepts only ``include`` (its
    derivation already excludes ``none``).
    """
    if space not in SPACES:
        raise ValueError(f"unknown search space {space!r}; valid: {', '.join(SPACES)}")
    return SPACES[space](
        num_classes,
        channels,
        depth,
        stem,
        genotype_none,
        activation=activation,
        alpha_init=alpha_init,
        alpha_init_std=alpha_init_std,
    )

