"""Architecture parameters as a long table: one row per trial × epoch × cell × edge × op.

The results frame (``analysis.results.load_results``) holds each epoch's activated α
(``alpha_normal`` / ``alpha_reduce``) and mean α-gradient (``alpha_grad_normal`` /
``alpha_grad_reduce``) as nested lists, edges × ops, in the op order of the row's search space.
``alpha_long`` unrolls them into a tidy frame that names every edge and op, which is what the α
trajectories (paper Figure A-1) and operator gradients (paper Figure 3) are plotted from, and what
a reader filters and groups with plain pandas::

    long = alpha_long(frame)                       # columns ... edge, op, weight
    long[long.op == "skip_connect"].groupby("epoch").weight.mean()

Edges are labelled ``"i<-j"`` (into node i from node j): NAS-Bench-201 nodes 0..3 with node 0 the
cell input; DARTS nodes 0 and 1 are the two cell inputs and 2..5 the intermediate nodes. Rows keep
the frame's row order, then normal before reduce, then the space's edge and op order.

The work is vectorised per (space, cell): each group's lists are stacked into one
(rows, edges, ops) array, so ~50k epochs × 30 values unroll in about a second. Only pandas and
numpy are imported (no torch, no ray).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas.api.extensions import ExtensionArray

from search_spaces.genotypes import DARTS_OPS, DARTS_STEPS, NB201_EDGES, NB201_OPS
from trainables import records as R

CELLS = ("normal", "reduce")
KINDS: dict[str, tuple[dict[str, str], str]] = {
    # kind -> (record column per cell, value column of the long frame)
    "alpha": (R.ALPHA, "weight"),
    "alpha_grad": (R.ALPHA_GRAD, "grad"),
}

NB201_EDGE_LABELS: tuple[str, ...] = tuple(f"{i}<-{j}" for i, j in NB201_EDGES)
DARTS_EDGE_LABELS: tuple[str, ...] = tuple(
    f"{i + 2}<-{j}" for i in range(DARTS_STEPS) for j in range(i + 2)
)
# Per space: (edge labels, op names).
SPACE_LAYOUT: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "nb201": (NB201_EDGE_LABELS, NB201_OPS),
    "darts": (DARTS_EDGE_LABELS, DARTS_OPS),
}


def edge_labels(space: str) -> tuple[str, ...]:
    """The edge labels of ``space`` in α's edge order (``"1<-0"``, …)."""
    return _layout(space)[0]


def op_names(space: str) -> tuple[str, ...]:
    """The op names of ``space`` in α's op order."""
    return _layout(space)[1]


def alpha_long(
    df: pd.DataFrame, kind: str = "alpha", *, columns: Sequence[str] = ()
) -> pd.DataFrame:
    """Unroll the α lists of ``df`` into one row per trial × epoch × cell × edge × op.

    Columns: experiment, trial_id, epoch, cell (``"normal"`` / ``"reduce"``), edge, op, then the
    value — ``weight`` (activated α, ``kind="alpha"``) or ``grad`` (mean ∂L/∂α,
    ``kind="alpha_grad"``) — then any further ``columns`` of ``df`` carried along with their
    dtypes (e.g. ``seed`` or a series label). String columns have dtype ``"string"``, epoch
    int64, the value float64.

    Edge and op names follow each row's ``space``. A missing α (None, NaN, or no column — e.g. the
    reduce cell of NAS-Bench-201) is skipped; an α whose shape is not (edges, ops) of its space,
    or an α in a row of unknown space, raises ``ValueError`` naming experiment, trial and epoch.
    """
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}; choose one of {list(KINDS)}")
    cell_columns, value_name = KINDS[kind]
    missing = [c for c in ("experiment", "trial_id", "epoch", *columns) if c not in df.columns]
    if missing:
        raise ValueError(f"alpha_long needs column(s) {missing} in the results frame")
    blocks: list[tuple[np.ndarray, int, np.ndarray, tuple[str, ...], tuple[str, ...]]] = []
    spaces = _spaces(df)
    for rank, cell in enumerate(CELLS):
        if cell_columns[cell] not in df.columns:
            continue
        series = df[cell_columns[cell]]
        present = _present(series)
        if not present.any():
            continue
        for space in pd.unique(spaces[present]):
            rows = np.flatnonzero(present & (spaces == space))
            edges, ops = _layout_for(df, rows[0], space, cell_columns[cell])
            stacked = _stack(df, rows, series, (len(edges), len(ops)), cell_columns[cell])
            blocks.append((rows, rank, stacked, edges, ops))
    return _assemble(df, blocks, value_name, list(columns))


# ---------------------------------------------------------------------- helpers
def _layout(space: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if space not in SPACE_LAYOUT:
        raise ValueError(f"unknown search space {space!r}; known: {list(SPACE_LAYOUT)}")
    return SPACE_LAYOUT[space]


def _is_present(value: Any) -> bool:
    return isinstance(value, list | tuple | np.ndarray)


def _spaces(df: pd.DataFrame) -> np.ndarray:
    if "space" not in df.columns:
        return np.full(len(df), "<no space column>", dtype=object)
    return df["space"].astype(object).where(df["space"].notna(), "<null>").to_numpy(dtype=object)


def _where(df: pd.DataFrame, row: int) -> str:
    r = df.iloc[row]
    return f"experiment {r['experiment']!r}, trial {r['trial_id']!r}, epoch {r['epoch']}"


def _layout_for(
    df: pd.DataFrame, row: int, space: str, column: str
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    try:
        return _layout(space)
    except ValueError as error:
        raise ValueError(f"{column} of {_where(df, row)}: {error}") from None


def _present(series: pd.Series) -> np.ndarray:
    """Rows holding an α (Arrow list columns from ``load_results``, or Python lists)."""
    if isinstance(series.dtype, pd.ArrowDtype):
        return series.notna().to_numpy(dtype=bool)
    values = series.to_numpy(dtype=object)
    return np.fromiter((_is_present(v) for v in values), dtype=bool, count=len(values))


def _arrow_stack(series: pd.Series, rows: np.ndarray, shape: tuple[int, int]
                 ) -> np.ndarray | None:
    """Zero-copy path for Arrow list<list<double>> columns; None when some row is misshapen."""
    data = pa.array(series.array)
    if isinstance(data, pa.ChunkedArray):  # one chunk per part file read
        data = data.combine_chunks()
    taken = data.take(pa.array(rows))
    inner = taken.flatten()
    values = inner.flatten()
    if (
        pc.all(pc.equal(pc.list_value_length(taken), shape[0])).as_py() is not True
        or (len(inner) and pc.all(pc.equal(pc.list_value_length(inner), shape[1])).as_py()
            is not True)
        or len(values) != len(rows) * shape[0] * shape[1]
        or values.null_count
    ):
        return None
    return values.to_numpy(zero_copy_only=False).astype(np.float64).reshape(len(rows), *shape)


def _stack(
    df: pd.DataFrame, rows: np.ndarray, series: pd.Series, shape: tuple[int, int], column: str
) -> np.ndarray:
    """(len(rows), edges, ops) float64 array of the α in ``series`` at ``rows``; ValueError
    naming a misshapen row."""
    stacked: np.ndarray | None = None
    if isinstance(series.dtype, pd.ArrowDtype):
        stacked = _arrow_stack(series, rows, shape)
        values = np.empty(len(rows), dtype=object)
        if stacked is None:  # find the culprit row, reading rows as Python lists
            values[:] = [series.iloc[row] for row in rows]
    else:
        values = series.to_numpy(dtype=object)[rows]
        try:
            stacked = np.asarray(values.tolist(), dtype=np.float64)
        except (ValueError, TypeError):  # ragged: some row has edges of different lengths
            stacked = None
    if stacked is not None and stacked.shape == (len(rows), *shape):
        return stacked
    for row, value in zip(rows, values, strict=True):
        try:
            got = np.asarray(value, dtype=np.float64).shape
        except (ValueError, TypeError):
            got = None
        if got != shape:
            found = "a ragged list" if got is None else f"shape {got}"
            space = df["space"].iloc[row] if "space" in df.columns else "?"
            raise ValueError(
                f"{column} of {_where(df, row)} has {found}; space {space!r} needs "
                f"(edges, ops) = {shape}"
            )
    raise AssertionError("unreachable: a stack mismatch with every row well-shaped")


def _assemble(
    df: pd.DataFrame,
    blocks: list[tuple[np.ndarray, int, np.ndarray, tuple[str, ...], tuple[str, ...]]],
    value_name: str,
    columns: list[str],
) -> pd.DataFrame:
    """Concatenate the blocks in frame-row order (normal before reduce) as the long frame.

    String columns are built from integer codes and a small dictionary (through Arrow), which is
    an order of magnitude faster than converting millions of Python strings.
    """
    if not blocks:
        return _empty(df, value_name, columns)
    edge_names = list(dict.fromkeys(e for block in blocks for e in block[3]))
    op_names_ = list(dict.fromkeys(o for block in blocks for o in block[4]))
    source, cell, edge, op, value = [], [], [], [], []
    for rows, cell_rank, stacked, edges, ops in blocks:
        edge_codes = np.array([edge_names.index(e) for e in edges])
        op_codes = np.array([op_names_.index(o) for o in ops])
        per_row = len(edges) * len(ops)
        source.append(np.repeat(rows, per_row))
        cell.append(np.full(len(rows) * per_row, cell_rank))
        edge.append(np.tile(np.repeat(edge_codes, len(ops)), len(rows)))
        op.append(np.tile(op_codes, len(rows) * len(edges)))
        value.append(stacked.reshape(-1))
    src = np.concatenate(source)
    cells = np.concatenate(cell)
    order = np.lexsort((cells, src))  # stable: edge/op order kept within a cell
    src = src[order]
    out = pd.DataFrame(
        {
            "experiment": _factorized(df["experiment"], src),
            "trial_id": _factorized(df["trial_id"], src),
            "epoch": df["epoch"].to_numpy(dtype=np.int64)[src],
            "cell": _from_codes(cells[order], CELLS),
            "edge": _from_codes(np.concatenate(edge)[order], edge_names),
            "op": _from_codes(np.concatenate(op)[order], op_names_),
            value_name: np.concatenate(value)[order].astype(np.float64),
        }
    )
    for name in columns:
        out[name] = df[name].iloc[src].reset_index(drop=True)
    return out


def _factorized(column: pd.Series, take: np.ndarray) -> ExtensionArray:
    codes, uniques = pd.factorize(column)
    return _from_codes(codes[take], [str(u) for u in uniques])


def _from_codes(codes: np.ndarray, names: Sequence[str]) -> ExtensionArray:
    """A "string" array of ``names[codes]``; code -1 is missing."""
    indices = pa.array(np.asarray(codes, dtype=np.int32), mask=np.asarray(codes) < 0)
    dictionary = pa.DictionaryArray.from_arrays(indices, pa.array(list(names), pa.string()))
    return pd.array(dictionary.cast(pa.string()), dtype="string")


def _empty(df: pd.DataFrame, value_name: str, columns: list[str]) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            "experiment": pd.array([], dtype="string"),
            "trial_id": pd.array([], dtype="string"),
            "epoch": np.array([], dtype=np.int64),
            "cell": pd.array([], dtype="string"),
            "edge": pd.array([], dtype="string"),
            "op": pd.array([], dtype="string"),
            value_name: np.array([], dtype=np.float64),
        }
    )
    for name in columns:
        out[name] = df[name].iloc[:0].reset_index(drop=True)
    return out
