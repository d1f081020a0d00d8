"""Collapse indicators: how far a search drifted to parameter-free operations.

DARTS collapses when the derived cell fills up with operations that have no weights — ``none``,
``skip_connect``, average and max pooling (``search_spaces.genotypes.PARAMETER_FREE_OPS``) — and
its benchmark accuracy drops with them. Per epoch of every trial this module counts those ops in
the derived genotype; per trial it reports:

* ``n_param_free`` / ``n_edges`` — parameter-free ops in the final genotype, out of the cell's
  chosen edges (NAS-Bench-201: all 6 edges; DARTS: the 8 edges of the *normal* cell, the one whose
  skip connections the collapse literature counts);
* ``collapsed`` — the final genotype is *dominated* by parameter-free ops, i.e. they hold more
  than half of its edges (4+ of 6; 5+ of 8);
* ``collapse_epoch`` — the first epoch from which every later genotype of the trial stays
  dominated (missing when the final genotype is not dominated);
* ``final_bench_acc`` — the NAS-Bench-201 test accuracy (%) of the final derived cell
  (``analysis.frame.bench_column``), NaN where unknown (DARTS space, diverged search).

``collapse_by_epoch`` gives the per-epoch view (count, dominance and benchmark accuracy of the
derived architecture at every epoch), for curves and queries.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from analysis.frame import bench_column, config_columns
from analysis.store import TRIAL_KEY
from search_spaces.genotypes import PARAMETER_FREE_OPS, DartsGenotype, nb201_from_string
from trainables import records as R

EPOCH_COLUMNS = ["n_param_free", "n_edges", "dominated", "bench_acc"]


@functools.lru_cache(maxsize=65536)
def count_param_free(genotype: str | None, space: str) -> tuple[int, int] | None:
    """(parameter-free ops, edges) of a derived genotype string; None when there is no genotype
    (a diverged epoch) or the space is unknown. A malformed string raises ``ValueError``."""
    if genotype is None or genotype == "" or space not in ("nb201", "darts"):
        return None
    if space == "nb201":
        ops = nb201_from_string(genotype)
    else:
        ops = tuple(op for op, _ in DartsGenotype.from_string(genotype).normal)
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
    out["dominated"] = (out["n_param_free"] * 2 > out["n_edges"]).astype("boolean")
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
    ``n_param_free``, ``n_edges``, ``collapsed``, ``collapse_epoch`` (Int64, NA when not
    collapsed) and ``final_bench_acc``. ``df`` is a results frame with every epoch."""
    per_epoch = collapse_by_epoch(df).sort_values([*TRIAL_KEY, "epoch"], kind="stable")
    carried = [*TRIAL_KEY, *config_columns(df)]
    rows = []
    for _, group in per_epoch.groupby(list(TRIAL_KEY), sort=True, dropna=False):
        last = group.iloc[-1]
        rows.append(
            {
                **{c: last[c] for c in carried},
                "final_epoch": int(last["epoch"]),
                "final_genotype": last[R.GENOTYPE],
                "n_param_free": last["n_param_free"],
                "n_edges": last["n_edges"],
                "collapsed": last["dominated"],
                "collapse_epoch": _collapse_epoch(group),
                "final_bench_acc": float(last["bench_acc"]),
            }
        )
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    for name in ("n_param_free", "n_edges", "collapse_epoch"):
        out[name] = pd.array(
            [None if pd.isna(v) else int(v) for v in out[name]], dtype="Int64"
        )
    out["collapsed"] = out["collapsed"].astype("boolean")
    return out
