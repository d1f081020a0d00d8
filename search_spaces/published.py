"""The published DARTS-space genotypes, as named references (plain data, no torch).

Each is the cell its paper's reference code prints (sources named below), so a user can train
them next to a search's own cells (``study evaluate --genotype DARTS_V2``) and compare in one
table. ``PUBLISHED`` maps the names to ``DartsGenotype`` objects; ``published_genotype`` looks a
name up case-insensitively and says which names exist.
"""

from __future__ import annotations

from search_spaces.genotypes import DartsGenotype

Genes = tuple[tuple[str, int], ...]


def _genotype(normal: Genes, reduce: Genes) -> DartsGenotype:
    return DartsGenotype(normal, (2, 3, 4, 5), reduce, (2, 3, 4, 5))


# fmt: off
# DARTS (first order) and DARTS (second order): Liu et al., "DARTS: Differentiable Architecture
# Search" (ICLR 2019), the genotypes of its reference code.
DARTS_V1 = _genotype(
    normal=(
        ("sep_conv_3x3", 1), ("sep_conv_3x3", 0),
        ("skip_connect", 0), ("sep_conv_3x3", 1),
        ("skip_connect", 0), ("sep_conv_3x3", 1),
        ("sep_conv_3x3", 0), ("skip_connect", 2),
    ),
    reduce=(
        ("max_pool_3x3", 0), ("max_pool_3x3", 1),
        ("skip_connect", 2), ("max_pool_3x3", 0),
        ("max_pool_3x3", 0), ("skip_connect", 2),
        ("skip_connect", 2), ("avg_pool_3x3", 0),
    ),
)
DARTS_V2 = _genotype(
    normal=(
        ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
        ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
        ("sep_conv_3x3", 1), ("skip_connect", 0),
        ("skip_connect", 0), ("dil_conv_3x3", 2),
    ),
    reduce=(
        ("max_pool_3x3", 0), ("max_pool_3x3", 1),
        ("skip_connect", 2), ("max_pool_3x3", 1),
        ("max_pool_3x3", 0), ("skip_connect", 2),
        ("skip_connect", 2), ("max_pool_3x3", 1),
    ),
)
# Xu et al., "PC-DARTS: Partial Channel Connections for Memory-Efficient Architecture Search"
# (ICLR 2020), the CIFAR-10 cell of its reference code (PC_DARTS_cifar).
PC_DARTS = _genotype(
    normal=(
        ("sep_conv_3x3", 1), ("skip_connect", 0),
        ("sep_conv_3x3", 0), ("dil_conv_3x3", 1),
        ("sep_conv_5x5", 0), ("sep_conv_3x3", 1),
        ("avg_pool_3x3", 0), ("dil_conv_3x3", 1),
    ),
    reduce=(
        ("sep_conv_5x5", 1), ("max_pool_3x3", 0),
        ("sep_conv_5x5", 1), ("sep_conv_5x5", 2),
        ("sep_conv_3x3", 0), ("sep_conv_3x3", 3),
        ("sep_conv_3x3", 1), ("sep_conv_3x3", 2),
    ),
)
# Chen et al., "Progressive Differentiable Architecture Search: Bridging the Depth Gap between
# Search and Evaluation" (ICCV 2019), the cell of its reference code (PDARTS).
P_DARTS = _genotype(
    normal=(
        ("skip_connect", 0), ("dil_conv_3x3", 1),
        ("skip_connect", 0), ("sep_conv_3x3", 1),
        ("sep_conv_3x3", 1), ("sep_conv_3x3", 3),
        ("sep_conv_3x3", 0), ("dil_conv_5x5", 4),
    ),
    reduce=(
        ("avg_pool_3x3", 0), ("sep_conv_5x5", 1),
        ("sep_conv_3x3", 0), ("dil_conv_5x5", 2),
        ("max_pool_3x3", 0), ("dil_conv_3x3", 1),
        ("dil_conv_3x3", 1), ("dil_conv_5x5", 3),
    ),
)
# fmt: on

PUBLISHED: dict[str, DartsGenotype] = {
    "DARTS_V1": DARTS_V1,
    "DARTS_V2": DARTS_V2,
    "PC_DARTS": PC_DARTS,
    "P_DARTS": P_DARTS,
}


def published_name(name: str) -> str:
    """The ``PUBLISHED`` key that ``name`` spells (any case, '-' or '_'); ``KeyError`` listing
    the names otherwise."""
    key = name.strip().upper().replace("-", "_")
    if key not in PUBLISHED:
        raise KeyError(f"no published genotype {name!r}; known: {', '.join(PUBLISHED)}")
    return key


def published_genotype(name: str) -> DartsGenotype:
    """The published genotype called ``name`` (``published_name``'s spellings)."""
    return PUBLISHED[published_name(name)]
