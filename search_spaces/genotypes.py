"""Genotypes of both search spaces: derivation from α and the string forms.

NAS-Bench-201 cells are written as the benchmark writes them,
``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` (edge ``i<-j`` writes ``op~j`` in the group of node i).
DARTS genotypes are written in the original DARTS repository's ``Genotype(...)`` form, so that a
string can be pasted into any DARTS-family retraining script.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:  # derivation takes tensors; the string forms need no torch (analysis uses them)
    import torch

NB201_OPS: tuple[str, ...] = (
    "none",
    "skip_connect",
    "nor_conv_1x1",
    "nor_conv_3x3",
    "avg_pool_3x3",
)
NB201_NODES = 4
# Edge order of the reference implementation: 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2.
NB201_EDGES: tuple[tuple[int, int], ...] = tuple(
    (i, j) for i in range(1, NB201_NODES) for j in range(i)
)

DARTS_OPS: tuple[str, ...] = (
    "none",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
    "avg_pool_3x3",
    "max_pool_3x3",
)
DARTS_STEPS = 4  # intermediate nodes per cell
DARTS_EDGES = sum(2 + i for i in range(DARTS_STEPS))  # 14
PARAMETER_FREE_OPS = frozenset({"none", "skip_connect", "avg_pool_3x3", "max_pool_3x3"})
# NAS-Bench-201 derivation rules for the ``none`` op: ``include`` = argmax over all five ops
# (the NB201 reference), ``exclude`` = argmax over the other four (DARTS's rule).
NB201_GENOTYPE_NONE: tuple[str, ...] = ("include", "exclude")

_NB201_FORMAT = "|op~0|+|op~0|op~1|+|op~0|op~1|op~2|"


# --------------------------------------------------------------------------- NAS-Bench-201
def nb201_to_string(ops: Sequence[str]) -> str:
    """Write one op per edge (in ``NB201_EDGES`` order) as a NAS-Bench-201 arch string."""
    if len(ops) != len(NB201_EDGES):
        raise ValueError(f"a NAS-Bench-201 cell has {len(NB201_EDGES)} edges, got {len(ops)} ops")
    for op in ops:
        _check_op(op, NB201_OPS, "NAS-Bench-201")
    groups = []
    for i in range(1, NB201_NODES):
        parts = [f"{ops[NB201_EDGES.index((i, j))]}~{j}" for j in range(i)]
        groups.append("|" + "|".join(parts) + "|")
    return "+".join(groups)


def nb201_from_string(arch: str) -> tuple[str, ...]:
    """Parse a NAS-Bench-201 arch string into one op per edge (``NB201_EDGES`` order).

    Raises ``ValueError`` naming the problem when ``arch`` is not a valid cell.
    """
    if not isinstance(arch, str):
        raise ValueError(f"arch must be a string like {_NB201_FORMAT!r}, got {type(arch).__name__}")
    groups = arch.split("+")
    if len(groups) != NB201_NODES - 1:
        raise ValueError(
            f"not a NAS-Bench-201 cell: {arch!r} has {len(groups)} '+'-separated node groups, "
            f"expected {NB201_NODES - 1} (format {_NB201_FORMAT})"
        )
    by_edge: dict[tuple[int, int], str] = {}
    for i, group in enumerate(groups, start=1):
        if not (group.startswith("|") and group.endswith("|")):
            raise ValueError(f"not a NAS-Bench-201 cell: group {group!r} of {arch!r} must be |...|")
        items = group[1:-1].split("|")
        if len(items) != i:
            raise ValueError(
                f"not a NAS-Bench-201 cell: node {i} of {arch!r} needs {i} inputs, got {len(items)}"
            )
        for j, item in enumerate(items):
            op, sep, src = item.partition("~")
            if not sep or src != str(j):
                raise ValueError(
                    f"not a NAS-Bench-201 cell: {item!r} in {arch!r} should read 'op~{j}'"
                )
            _check_op(op, NB201_OPS, "NAS-Bench-201")
            by_edge[(i, j)] = op
    return tuple(by_edge[e] for e in NB201_EDGES)


def nb201_genotype(weights: torch.Tensor, none: str = "include") -> str:
    """Derive the NAS-Bench-201 cell from activated α of shape (6, 5): argmax per edge.

    ``none``: ``include`` (default, the reference implementation) lets the ``none`` op take part
    in the argmax; ``exclude`` takes the argmax over the other four ops, as DARTS does. Ties go
    to the lower op index.
    """
    check_genotype_none(none)
    if tuple(weights.shape) != (len(NB201_EDGES), len(NB201_OPS)):
        raise ValueError(f"NAS-Bench-201 α must have shape (6, 5), got {tuple(weights.shape)}")
    w = weights.detach()
    if none == "exclude":
        w = w.clone().float()
        w[:, NB201_OPS.index("none")] = float("-inf")
    best = w.argmax(dim=-1).tolist()
    return nb201_to_string([NB201_OPS[k] for k in best])


def check_genotype_none(none: str) -> None:
    """Raise ``ValueError`` unless ``none`` is a NAS-Bench-201 derivation rule."""
    if none not in NB201_GENOTYPE_NONE:
        raise ValueError(
            f"genotype_none={none!r} is not a NAS-Bench-201 derivation rule; choose one of "
            f"{list(NB201_GENOTYPE_NONE)} ('include': 'none' takes part in the argmax, as in the "
            "NB201 reference; 'exclude': argmax over the other ops, as in DARTS)"
        )

# --------------------------------------------------------------------------- DARTS
class DartsGenotype(NamedTuple):
    """A DARTS cell pair: per cell 2 (op, input node) genes per intermediate node."""

    normal: tuple[tuple[str, int], ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[tuple[str, int], ...]
    reduce_concat: tuple[int, ...]

    def to_string(self) -> str:
        """The original DARTS repository's ``Genotype(...)`` repr (lists, not tuples)."""

        def genes(cell: tuple[tuple[str, int], ...]) -> str:
            return "[" + ", ".join(f"({op!r}, {j})" for op, j in cell) + "]"

        return (
            f"Genotype(normal={genes(self.normal)}, normal_concat={list(self.normal_concat)}, "
            f"reduce={genes(self.reduce)}, reduce_concat={list(self.reduce_concat)})"
        )

    @classmethod
    def from_string(cls, text: str) -> DartsGenotype:
        """Parse ``to_string()`` output (or a DARTS repo genotype line); literals only."""
        try:
            call = ast.parse(text.strip(), mode="eval").body
            if not (isinstance(call, ast.Call) and getattr(call.func, "id", None) == "Genotype"):
                raise ValueError("expected Genotype(...)")
            kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
            cells = {
                name: tuple((str(op), int(j)) for op, j in kwargs[name])
                for name in ("normal", "reduce")
            }
            concats = {
                name: tuple(int(n) for n in kwargs[name])
                for name in ("normal_concat", "reduce_concat")
            }
        except (SyntaxError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"not a DARTS genotype string: {text!r} ({exc})") from exc
        for name, cell in cells.items():
            for op, j in cell:
                _check_op(op, DARTS_OPS, "DARTS")
                if op == "none":
                    raise ValueError(f"DARTS genotype {name} cell may not use 'none'")
                if j < 0:
                    raise ValueError(f"DARTS genotype {name} cell has a negative input node {j}")
        return cls(
            cells["normal"], concats["normal_concat"], cells["reduce"], concats["reduce_concat"]
        )


def darts_cell_genes(
    weights: torch.Tensor, steps: int = DARTS_STEPS
) -> tuple[tuple[str, int], ...]:
    """Derive one DARTS cell from activated α of shape (14, 8).

    For each intermediate node, keep the 2 incoming edges whose strongest non-``none`` op weighs
    most; on each kept edge the op is the argmax excluding ``none`` (original DARTS ``_parse``).
    Ties go to the lower input index.
    """
    n_edges = sum(2 + i for i in range(steps))
    if tuple(weights.shape) != (n_edges, len(DARTS_OPS)):
        raise ValueError(
            f"DARTS α must have shape ({n_edges}, {len(DARTS_OPS)}), got {tuple(weights.shape)}"
        )
    w = weights.detach().clone().float()
    w[:, DARTS_OPS.index("none")] = float("-inf")
    genes: list[tuple[str, int]] = []
    start = 0
    for i in range(steps):
        block = w[start : start + 2 + i]
        strength = block.max(dim=-1).values.tolist()
        keep = sorted(range(2 + i), key=lambda j: -strength[j])[:2]
        for j in keep:
            genes.append((DARTS_OPS[int(block[j].argmax())], j))
        start += 2 + i
    return tuple(genes)


def darts_genotype(
    normal: torch.Tensor, reduce: torch.Tensor, steps: int = DARTS_STEPS, multiplier: int = 4
) -> DartsGenotype:
    """Derive the DARTS genotype from activated normal and reduction α."""
    concat = tuple(range(2 + steps - multiplier, steps + 2))
    return DartsGenotype(
        darts_cell_genes(normal, steps), concat, darts_cell_genes(reduce, steps), concat
    )


def _check_op(op: str, allowed: tuple[str, ...], space: str) -> None:
    if op not in allowed:
        raise ValueError(f"unknown {space} op {op!r}; valid ops: {', '.join(allowed)}")
