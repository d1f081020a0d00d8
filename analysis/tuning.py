"""Tuning samples (``study tune``) from a results frame: one row per Optuna sample, its objective.

``study tune`` tunes each cell of a spec (e.g. DARTS vs Single-DARTS) with its own Optuna study;
every sample (Optuna trial) is an ordinary search writing ordinary rows, tagged with the tuning
columns of the results store (``store.TUNING_COLUMNS``: ``tune_study``, ``tune_cell``,
``tune_sample``, ``tune_objective``, ``tune_epoch``, ``tune_direction``, ...; null for rows of
``study run``). The tuned hyperparameters are ordinary config columns (e.g. ``w_lr``).

* A **sample** is every row of one (experiment, tune_study, tune_sample). After a driver crash a
  sample may hold rows of two Ray trials (an abandoned one and the one that completed): the trial
  whose rows reach the highest epoch counts (ties: the latest ``reported_at``).
* It is **complete** when that trial's last epoch equals its config ``epochs`` or its last
  ``status`` is ``diverged``; only complete samples enter a best value or a top-k.
* Its **objective** is the ``tune_objective`` column at the trial's last epoch (``tune_epoch`` =
  ``final``) or the max / min over its epochs per ``tune_direction`` (``best``; NaN epochs
  skipped). A NaN or infinite objective means the sample has no value (e.g. diverged): it counts
  as complete but is left out of best values, top-k and plots.

The experiment's sidecar (``_tuning.json``, ``analysis.store.read_tuning``) names the tuned
hyperparameters; without one, they are the config fields that vary inside a cell. The tables are
``analysis.tables.tuning_table`` / ``importance_table``, the figure
``analysis.figures.tuning_figure`` (they import this module, not the other way round). Only
pandas and numpy are needed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from analysis import store
from analysis.frame import varying_fields, with_labels
from trainables import records as R

TUNE_STUDY = "tune_study"
TUNE_CELL = "tune_cell"
TUNE_SAMPLE = "tune_sample"
TUNE_OBJECTIVE = "tune_objective"
TUNE_EPOCH = "tune_epoch"
TUNE_DIRECTION = "tune_direction"
if not {TUNE_STUDY, TUNE_CELL, TUNE_SAMPLE, TUNE_OBJECTIVE, TUNE_EPOCH, TUNE_DIRECTION} <= set(
    store.TUNING_COLUMNS
):
    raise RuntimeError("analysis.tuning: the tuning column names differ from analysis.store's")

SAMPLE_KEY = ("experiment", TUNE_STUDY, TUNE_SAMPLE)  # one sample (one Optuna trial)
CELL_KEY = ("experiment", TUNE_STUDY)  # one cell: one Optuna study
FINAL, BEST = "final", "best"  # values of tune_epoch
MAX, MIN = "max", "min"  # values of tune_direction
# The columns of tuning_samples, before the tuned hyperparameters.
SAMPLE_COLUMNS = (
    "experiment",
    TUNE_STUDY,
    TUNE_CELL,
    TUNE_SAMPLE,
    "trial_id",
    "method",  # analysis.frame's method label (NA when level / arch_data / order are unknown)
    "epoch",  # last epoch reached by the counted trial
    "epochs",  # the search's configured length
    "status",  # status of that last epoch
    "objective",  # the record column optimised
    TUNE_EPOCH,
    TUNE_DIRECTION,
    "value",  # the objective (NaN = no value)
    "complete",
    "trial_ids",  # Ray trials seen for the sample (2 after a driver crash)
)
Tuning = Mapping[str, Mapping[str, Any]]  # {experiment: sidecar payload} (store.read_tuning)


def tuning_mask(df: pd.DataFrame) -> pd.Series:
    """True for the rows written by ``study tune`` (non-null ``tune_study``); all False for a
    frame without the column (results from before tuning existed)."""
    if TUNE_STUDY not in df:
        return pd.Series(False, index=df.index, dtype=bool)
    return df[TUNE_STUDY].notna().astype(bool)


def uses_test_split(objective: object) -> bool:
    """Whether the record column ``objective`` is a NAS-Bench-201 test accuracy
    (``bench_<dataset>_test``): tuning on it makes the reported numbers optimistic."""
    name = str(objective)
    return name in R.BENCH.values() and name.endswith("_test")


def cell_info(tuning: Tuning | None, experiment: str, study: str, cell: str) -> dict[str, Any]:
    """The sidecar's entry for one cell (matched by its study name, else its label); {} when the
    experiment has no sidecar or the sidecar does not list the cell."""
    payload = (tuning or {}).get(experiment) or {}
    cells = payload.get("cells") or {}
    for info in cells.values():
        if isinstance(info, Mapping) and info.get("study") == study:
            return dict(info)
    found = cells.get(cell)
    return dict(found) if isinstance(found, Mapping) else {}


def sidecar_rank(tuning: Tuning | None, experiment: str, study: str) -> int:
    """A cell's position in its experiment's sidecar ``cells`` (the spec's order), for sorting
    tables and legends; cells the sidecar does not list come last."""
    cells = ((tuning or {}).get(experiment) or {}).get("cells") or {}
    studies = [info.get("study") for info in cells.values() if isinstance(info, Mapping)]
    return studies.index(study) if study in studies else len(studies)


def tuned_params(df: pd.DataFrame, tuning: Tuning | None = None) -> dict[tuple[str, str], list[str]]:
    """{(experiment, tune_study): tuned hyperparameter names} for every cell with rows in the
    results frame ``df``: the sidecar's ``params`` (in its order) when
    the experiment has one, else the config fields that vary inside the cell (seed, dataset and
    file locations excepted: ``analysis.frame.varying_fields``)."""
    rows = df[tuning_mask(df)]
    found: dict[tuple[str, str], list[str]] = {}
    if rows.empty:
        return found
    for (experiment, study), cell in rows.groupby(list(CELL_KEY), sort=True):
        payload = (tuning or {}).get(str(experiment))
        if payload is not None and isinstance(payload.get("params"), Mapping):
            found[(str(experiment), str(study))] = [str(p) for p in payload["params"]]
        else:
            found[(str(experiment), str(study))] = varying_fields(cell)
    return found


def tuning_samples(df: pd.DataFrame, tuning: Tuning | None = None) -> pd.DataFrame:
    """One row per tuning sample of ``df`` (a ``load_results`` frame with every epoch — with
    ``final_only`` a ``best`` objective can only be the last epoch's; rows of ``study run`` are
    ignored), sorted by experiment, study and sample number.

    Columns: ``SAMPLE_COLUMNS`` (experiment, tune_study, tune_cell, tune_sample, the counted
    trial_id, method, its last epoch, the configured epochs, status, the objective column name,
    tune_epoch, tune_direction, ``value`` — the objective, NaN for none —, ``complete`` and
    ``trial_ids``), then one column per tuned hyperparameter of any cell (``tuned_params``;
    values from the counted trial's config). Missing tuning context in the rows (an older
    writer) is taken from ``tuning``'s sidecars (objective column, epoch, direction).
    """
    params = tuned_params(df, tuning)
    names = list(dict.fromkeys(name for cell in params.values() for name in cell))
    rows = df[tuning_mask(df)]
    if rows.empty:
        return pd.DataFrame(columns=[*SAMPLE_COLUMNS, *names])
    counted = _counted_trials(rows)
    trial_rows = rows.merge(counted, on=[*SAMPLE_KEY, "trial_id"], how="inner")
    trial_rows = trial_rows.sort_values([*SAMPLE_KEY, R.EPOCH], kind="stable")
    records, lasts = [], []
    for _, group in trial_rows.groupby(list(SAMPLE_KEY), sort=False, dropna=False):
        records.append(_sample(group, tuning))
        lasts.append(group.index[-1])
    samples = pd.DataFrame(records, columns=list(SAMPLE_COLUMNS))
    last = trial_rows.loc[lasts].reset_index(drop=True)
    samples["method"] = _methods(last)
    for name in names:
        samples[name] = last.get(name, pd.NA)
    samples = samples.sort_values(list(SAMPLE_KEY), kind="stable", na_position="last")
    return samples.reset_index(drop=True)


def _counted_trials(rows: pd.DataFrame) -> pd.DataFrame:
    """Per sample, the trial that counts (the highest last epoch, then the latest report) and how
    many trials the sample has: columns experiment, tune_study, tune_sample, trial_id,
    trial_ids; one row per sample."""
    reported = rows["reported_at"] if "reported_at" in rows else pd.Series(0, index=rows.index)
    frame = rows[[*SAMPLE_KEY, "trial_id", R.EPOCH]].assign(_reported=reported)
    per_trial = (
        frame.groupby([*SAMPLE_KEY, "trial_id"], sort=False, dropna=False)
        .agg(_last_epoch=(R.EPOCH, "max"), _last_report=("_reported", "max"))
        .reset_index()
    )
    per_trial["trial_ids"] = per_trial.groupby(list(SAMPLE_KEY), sort=False, dropna=False)[
        "trial_id"
    ].transform("size")
    per_trial = per_trial.sort_values(
        [*SAMPLE_KEY, "_last_epoch", "_last_report"], kind="stable", na_position="first"
    )
    counted = per_trial.drop_duplicates(list(SAMPLE_KEY), keep="last")
    return counted[[*SAMPLE_KEY, "trial_id", "trial_ids"]]


def _sample(group: pd.DataFrame, tuning: Tuning | None) -> dict[str, Any]:
    """The ``SAMPLE_COLUMNS`` of one sample from its counted trial's rows (sorted by epoch)."""
    last = group.iloc[-1]
    experiment, study = str(last["experiment"]), str(last[TUNE_STUDY])
    cell = _text(last.get(TUNE_CELL))
    info = cell_info(tuning, experiment, study, cell)
    payload = (tuning or {}).get(experiment) or {}
    objective = _text(last.get(TUNE_OBJECTIVE)) or str(info.get("objective_column") or "")
    rule = _text(last.get(TUNE_EPOCH)) or str(payload.get("epoch") or FINAL)
    direction = _text(last.get(TUNE_DIRECTION)) or str(payload.get("direction") or MAX)
    epochs = last.get("epochs")
    status = _text(last.get(R.STATUS))
    reached = not pd.isna(epochs) and int(last[R.EPOCH]) >= int(epochs)
    return {
        "experiment": experiment,
        TUNE_STUDY: study,
        TUNE_CELL: cell or study.partition(":")[2] or study,
        TUNE_SAMPLE: last[TUNE_SAMPLE],
        "trial_id": str(last["trial_id"]),
        "method": pd.NA,
        "epoch": int(last[R.EPOCH]),
        "epochs": pd.NA if pd.isna(epochs) else int(epochs),
        "status": status or pd.NA,
        "objective": objective,
        TUNE_EPOCH: rule,
        TUNE_DIRECTION: direction,
        "value": objective_value(group, objective, rule, direction),
        "complete": bool(reached or status == R.STATUS_DIVERGED),
        "trial_ids": int(last["trial_ids"]),
    }


def objective_value(rows: pd.DataFrame, column: str, rule: str, direction: str) -> float:
    """The objective of one trial's rows (sorted by epoch): ``column`` at the last epoch
    (``rule`` = ``final``) or its max / min over the epochs per ``direction`` (``best``,
    non-finite epochs skipped); NaN when there is none (a non-finite value is none)."""
    if column not in rows or rows.empty:
        objective_of([], rule, direction)  # still refuses a bad rule or direction
        return math.nan
    values = pd.to_numeric(rows[column], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return objective_of(values.tolist(), rule, direction)


def objective_of(values: Sequence[float | None], rule: str, direction: str) -> float:
    """The objective rule on one sample's per-epoch values in epoch order: the last one
    (``final``) or the max / min of the finite ones per ``direction`` (``best``); NaN when there
    is none (a non-finite or missing value is none). ``study tune`` tells Optuna the same."""
    if rule not in (FINAL, BEST):
        raise ValueError(f"tuning objective epoch {rule!r}: use {FINAL!r} or {BEST!r}")
    if direction not in (MAX, MIN):
        raise ValueError(f"tuning direction {direction!r}: use {MAX!r} or {MIN!r}")
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    if rule == FINAL:
        last = values[-1] if len(values) else None
        return float(last) if last is not None and math.isfinite(last) else math.nan
    if not finite:
        return math.nan
    return max(finite) if direction == MAX else min(finite)


def _methods(last: pd.DataFrame) -> pd.Series:
    """``analysis.frame``'s method label of each row; NA where level, arch_data and order are
    all unknown (nothing to derive it from)."""
    fields = [name for name in ("level", "arch_data", "order") if name in last]
    labels = with_labels(last)["method"]
    known = last[fields].notna().any(axis=1) if fields else pd.Series(False, index=last.index)
    return labels.where(known, pd.NA)


def _text(value: object) -> str:
    """A cell as text; '' for null."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):  # type: ignore[arg-type]
        return ""
    return str(value)
