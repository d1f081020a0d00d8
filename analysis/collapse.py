"""Collapse indicators: how far a search drifted to parameter-free operations.

DARTS collapses when the derived cell fills up with operations that have no weights — ``none``,
``skip_connect``, average and max pooling (``search_spaces.genotypes.PARAMETER_FREE_OPS``) — and
its benchmark accuracy drops with them. Per epoch of every trial this module counts those ops in
the derived genotype; per trial it reports:

* ``n_param_free`` / ``n_edges`` — parameter-free ops in the final genotype, out of the cell's
  chosen edges (NAS-Bench-201: all 6 edges; DARTS: the 8 edges of the *normal* cell, the one whose
  skip connections the collapse literature counts);
* ``n_skip`` / ``n_pool`` / ``n_none`` — of those, the skip connections, poolings (average or
  max) and ``none`` (zero) ops, counted separately;
* ``collapsed`` — the final genotype is *dominated* by parameter-free ops, i.e. they hold more
  than half of its edges (4+ of 6; 5+ of 8);
* ``skip_dominant`` — the final genotype is dominated by skip connections alone: ``skip_connect``
  on more than half of its edges (4+ of 6; 5+ of 8).
* ``collapse_epoch`` — the first epoch from which every later genotype of the trial stays
  dominated (missing when the final genotype is not dominated);
* ``final_bench_acc`` — the NAS-Bench-201 test accuracy (%) of the final derived cell
  (``analysis.frame.bench_column``), NaN where unknown (DARTS space, diverged search).

Which criterion is the paper's: it gives no threshold. It describes collapse as the architecture
being *dominated* by non-learnable operations — "some operations, such as skip connections,
zeroes and poolings, dominate the architecture" (abstract), "enabling non-learnable operations to
dominate" (§3) — which ``collapsed`` reads as a strict majority of the edges; ``skip_dominant`` is
the narrower, skip-connection-only reading common in the collapse literature. Under either, a
random NAS-Bench-201 cell is often "collapsed": ``nb201_base_rates`` gives each criterion's
share of all 15,625 cells (``collapsed`` 8505 / 15625 = 54.4 %, ``skip_dominant`` 265 / 15625 =
1.7 %), which the collapse table prints as the baseline to read its fractions against.

``collapse_by_epoch`` gives the per-epoch view (count, dominance and benchmark accuracy of the
derived architecture at every epoch), for curves and queries.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from analysis.frame import bench_column, config_columns
from analysis.store import TRIAL_KEY
from search_spaces.benchmark import load_table
from search_spaces.genotypes import (
    NB201_OPS,
    PARAMETER_FREE_OPS,
    DartsGenotype,
    nb201_from_string,
)
from trainables import records as R

EPOCH_COLUMNS = ["n_param_free", "n_edges", "dominated", "bench_acc"]
SKIP = "skip_connect"
NONE = "none"
POOLS = frozenset({"avg_pool_3x3", "max_pool_3x3"})
CRITERIA = ("collapsed", "skip_dominant")  # the per-trial collapse criteria (module docstring)


def _ops(genotype: str | None, space: str) -> tuple[str, ...] | None:
    """The chosen op of every edge counted (NB201: all 6; DARTS: the normal cell's 8)."""
    if genotype is None or genotype == "" or space not in ("nb201", "darts"):
        return None
    if space == "nb201":
        return nb201_from_string(genotype)
    return tuple(op for op, _ in DartsGenotype.from_string(genotype).normal)


@functools.lru_cache(maxsize=65536)
def count_ops(genotype: str | None, space: str) -> tuple[int, int, int, int] | None:
    """(skip connections, poolings, none ops, edges) of a derived genotype string; None when
    there is no genotype or the space is unknown. A malformed string raises ``ValueError``."""
    ops = _ops(genotype, space)
    if ops is None:
        return None
    return (sum(op == SKIP for op in ops), sum(op in POOLS for op in ops),
            sum(op == NONE for op in ops), len(ops))


def is_skip_dominant(n_skip: int, n_edges: int) -> bool:
    """Skip connections on more than half of the edges."""
    return 2 * n_skip > n_edges


@functools.lru_cache(maxsize=1)
def nb201_base_rates() -> dict[str, float]:
    """The share of all 15,625 NAS-Bench-201 cells meeting each criterion of ``CRITERIA``,
    counted over the cells of the shipped benchmark table (``search_spaces.benchmark``)."""
    ops = np.asarray(load_table().ops)
    n_edges = ops.shape[1]
    free = np.isin(ops, [NB201_OPS.index(op) for op in NB201_OPS if op in PARAMETER_FREE_OPS])
    skip = ops == NB201_OPS.index(SKIP)
    return {
        "collapsed": float(np.mean(2 * free.sum(axis=1) > n_edges)),
        "skip_dominant": float(np.mean(2 * skip.sum(axis=1) > n_edges)),
    }


@functools.lru_cache(maxsize=65536)
def count_param_free(genotype: str | None, space: str) -> tuple[int, int] | None:
    """(parameter-free ops, edges) of a derived genotype string; None when there is no genotype
    (a diverged epoch) or the space is unknown. A malformed string raises ``ValueError``."""
    ops = _ops(genotype, space)
    if ops is None:
        return None
    return sum(op in PARAMETER_FREE_OPS for op in ops), len(ops)


def collapse_by_epoch(df: pd.DataFrame) -> pd.DataFrame:
    """One row per trial × epoch: the keys, config columns, and ``n_param_free``, ``n_edges``,
    ``dominated`` (nullable boolean; NA without a genotype) and ``bench_acc`` (%)."""
    out = df[[*TRIAL_KEY, "epoch", *config_columns(df), R.GENOTYPE]].copy()
    counts = [
        count_param_free(None if pd.isna(g) else str(g), str(s))
        for g, s in zip(out[R.GENOTYPE], out["space"], strict=True)
    ]
    out["n_param_free"] = pd.array([c[0] if c else None for c in counts], dtype="Int64")
    out["n_edges"] = pd.array([c[1] if c else None for c in counts], dtype="Int64")
    out["dominated"] = (out["n_param_free"] * 2 > out["n_edges"]).astype("boolean")  # collapsed
    acc = np.full(len(out), np.nan)
    for dataset in out["dataset"].dropna().unique():
        column = bench_column(str(dataset))
        if column in df:
            rows = (out["dataset"] == dataset).to_numpy(dtype=bool, na_value=False)
            acc[rows] = df.loc[rows, column].to_numpy(dtype=float, na_value=np.nan)
    out["bench_acc"] = acc
    return out.reset_index(drop=True)


def _collapse_epoch(group: pd.DataFrame) -> float:
    """First epoch of the final run of dominated genotypes; NaN if the last one is not."""
    dominated = group["dominated"].fillna(False).to_numpy(dtype=bool)
    if len(dominated) == 0 or not dominated[-1]:
        return np.nan
    not_dominated = np.flatnonzero(~dominated)
    start = not_dominated[-1] + 1 if len(not_dominated) else 0
    return float(group["epoch"].iloc[start])


def collapse_indicators(df: pd.DataFrame) -> pd.DataFrame:
    """One row per trial: keys, config columns, ``final_epoch``, ``final_genotype``,
    ``n_param_free``, ``n_skip``, ``n_pool``, ``n_none``, ``n_edges``, ``collapsed``,
    ``skip_dominant`` (nullable booleans, NA without a final genotype), ``collapse_epoch`` (Int64,
    NA when not collapsed) and ``final_bench_acc``. ``df`` is a results frame with every epoch."""
    per_epoch = collapse_by_epoch(df).sort_values([*TRIAL_KEY, "epoch"], kind="stable")
    carried = [*TRIAL_KEY, *config_columns(df)]
    rows = []
    for _, group in per_epoch.groupby(list(TRIAL_KEY), sort=True, dropna=False):
        last = group.iloc[-1]
        space = str(last["space"]) if "space" in group else ""
        counts = count_ops(None if pd.isna(last[R.GENOTYPE]) else str(last[R.GENOTYPE]), space)
        n_skip, n_pool, n_none, _ = counts if counts else (None, None, None, None)
        skip_dominant = None if counts is None else is_skip_dominant(counts[0], counts[3])
        rows.append(
            {
                **{c: last[c] for c in carried},
                "final_epoch": int(last["epoch"]),
                "final_genotype": last[R.GENOTYPE],
                "n_param_free": last["n_param_free"],
                "n_skip": n_skip,
                "n_pool": n_pool,
                "n_none": n_none,
                "n_edges": last["n_edges"],
                "collapsed": last["dominated"],
                "skip_dominant": skip_dominant,
                "collapse_epoch": _collapse_epoch(group),
                "final_bench_acc": float(last["bench_acc"]),
            }
        )
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    for name in ("n_param_free", "n_skip", "n_pool", "n_none", "n_edges", "collapse_epoch"):
        out[name] = pd.array(
            [None if pd.isna(v) else int(v) for v in out[name]], dtype="Int64"
        )
    out["collapsed"] = out["collapsed"].astype("boolean")
    out["skip_dominant"] = out["skip_dominant"].astype("boolean")
    return out
