"""Column vocabulary of a results DataFrame, and the derived columns the tables group by.

A results frame (``analysis.results.load_results``) has the results store's columns
(``analysis.store``: keys, one column per ``SearchConfig`` field, one per epoch-record field).
This module picks the config columns out of a frame and adds the labels the paper's tables use:

* ``method`` — the update strategy as the paper names it: ``DARTS`` (bi-level, held-out split,
  first order), ``DARTS (2nd order)``, ``DARTS (same subset)`` (bi-level, α batches from the
  training pool), ``Single-DARTS`` (single level);
* ``data_mode`` — Table 4's rows: different subsets + different batches (bi/split), same subset +
  different batches (bi/same), same subset + same batch (single);
* ``lr`` — the learning rate label of Table 5(a): ``"0.005"`` when w and α share it, else
  ``"w 0.025 / α 0.0003"``;
* ``optimizer`` — Table 5(c): the α optimizer (``SGD`` / ``Adam``), prefixed with w's when w does
  not use SGD.

Only pandas is needed (and the torch-free ``analysis.store`` and ``trainables.records``).
"""

from __future__ import annotations

import pandas as pd

from analysis.store import CONFIG_COLUMNS
from trainables import records as R

SEED = "seed"
DATASET = "dataset"
# Config fields that never distinguish two searches scientifically (where files live).
LOCATION_FIELDS = ("data_dir", "benchmark_dir")

METHOD_NAMES = {
    ("single", "split", "first"): "Single-DARTS",
    ("bi", "split", "first"): "DARTS",
    ("bi", "split", "second"): "DARTS (2nd order)",
    ("bi", "same", "first"): "DARTS (same subset)",
    ("bi", "same", "second"): "DARTS (same subset, 2nd order)",
}
DATA_MODES = {
    ("bi", "split"): "different subsets, different batches",
    ("bi", "same"): "same subset, different batches",
    ("single", "split"): "same subset, same batch",
}
# Each derived column and the config fields it is a label of.
DERIVED: dict[str, tuple[str, ...]] = {
    "method": ("level", "arch_data", "order"),
    "data_mode": ("level", "arch_data", "order"),
    "lr": ("w_lr", "arch_lr"),
    "optimizer": ("w_optimizer", "arch_optimizer", "arch_lr", "arch_beta1", "arch_beta2"),
}
_OPTIMIZER_NAMES = {"sgd": "SGD", "adam": "Adam"}
def config_columns(df: pd.DataFrame) -> list[str]:
    """The columns of ``df`` that are ``SearchConfig`` fields (``store.CONFIG_COLUMNS``), in
    frame order; a frame may lack some of them."""
    config = set(CONFIG_COLUMNS)
    return [c for c in df.columns if c in config]


def _number(value: object) -> str:
    return f"{float(value):g}"  # type: ignore[arg-type]


def _lr_label(w_lr: object, arch_lr: object) -> str:
    if pd.isna(w_lr) or pd.isna(arch_lr):  # type: ignore[call-overload]
        return "n/a"
    if float(w_lr) == float(arch_lr):  # type: ignore[arg-type]
        return _number(w_lr)
    return f"w {_number(w_lr)} / α {_number(arch_lr)}"


def _optimizer_label(w_opt: object, arch_opt: object) -> str:
    arch = _OPTIMIZER_NAMES.get(str(arch_opt), str(arch_opt))
    if w_opt == "sgd":
        return arch
    return f"w {_OPTIMIZER_NAMES.get(str(w_opt), str(w_opt))} / α {arch}"


def with_labels(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` with the ``method``, ``data_mode``, ``lr`` and ``optimizer`` columns.

    A combination this module does not name (a config column missing or null) is labelled from
    its raw values, never dropped.
    """
    out = df.copy()
    n = len(out)

    def col(name: str) -> pd.Series:
        return out[name] if name in out else pd.Series([None] * n, index=out.index, dtype=object)

    level, arch_data, order = col("level"), col("arch_data"), col("order")
    keys = list(zip(level, arch_data, order, strict=True))
    out["method"] = pd.array(
        [METHOD_NAMES.get(k, "/".join(str(v) for v in k)) for k in keys], dtype="string"
    )
    out["data_mode"] = pd.array(
        [DATA_MODES.get((k[0], k[1]), f"{k[0]}/{k[1]}") for k in keys], dtype="string"
    )
    out["lr"] = pd.array(
        [_lr_label(w, a) for w, a in zip(col("w_lr"), col("arch_lr"), strict=True)],
        dtype="string",
    )
    out["optimizer"] = pd.array(
        [
            _optimizer_label(w, a)
            for w, a in zip(col("w_optimizer"), col("arch_optimizer"), strict=True)
        ],
        dtype="string",
    )
    return out


def bench_column(dataset: str, split: str = "test") -> str:
    """The record column with the NAS-Bench-201 ``split`` ('valid' | 'test') accuracy (%) that
    judges a search on ``dataset``: its own benchmark dataset, CIFAR-10 for any other
    (``trainables.records.bench_field``)."""
    return R.bench_field(dataset, split)


def covered_fields(by: tuple[str, ...] | list[str]) -> set[str]:
    """The config fields that the columns ``by`` already tell apart (a derived label covers the
    fields it is made of)."""
    covered: set[str] = set()
    for name in by:
        covered |= set(DERIVED.get(name, (name,)))
    return covered


def varying_fields(
    df: pd.DataFrame, by: tuple[str, ...] | list[str] = (), *, within_groups: bool = True
) -> list[str]:
    """Config fields not covered by ``by`` that take more than one value inside some group of
    equal ``by`` values (inside ``df`` when ``by`` is empty or ``within_groups`` is False).

    Seeds (aggregated over), the dataset (a table's columns) and file locations never count.
    Grouping by ``by`` plus these fields never averages two different searches together, and a
    field that merely differs between groups (DARTS' w lr vs Single-DARTS') is not added.
    """
    skip = covered_fields(by) | {SEED, DATASET, *LOCATION_FIELDS}
    candidates = [c for c in config_columns(df) if c not in skip]
    if not candidates or df.empty:
        return []
    if not by or not within_groups:
        return [c for c in candidates if df[c].nunique(dropna=False) > 1]
    counts = df.groupby(list(by), dropna=False, sort=False)[candidates].nunique(dropna=False)
    return [c for c in candidates if int(counts[c].max()) > 1]


def series_labels(df: pd.DataFrame, by: tuple[str, ...] | list[str] = ("method",)) -> pd.Series:
    """One legend label per row: the ``by`` values, then ``field=value`` for every other varying
    config field (``varying_fields``), e.g. ``"Single-DARTS, activation=sigmoid"``.

    ``df`` must hold the ``by`` columns (``with_labels`` adds the derived ones).
    """
    extra = varying_fields(df, by)
    parts = [df[name].astype("string").fillna("n/a") for name in by]
    parts += [name + "=" + df[name].astype("string").fillna("n/a") for name in extra]
    if not parts:
        return pd.Series(["all"] * len(df), index=df.index, dtype="string")
    label = parts[0]
    for part in parts[1:]:
        label = label + ", " + part
    return label.astype("string")
