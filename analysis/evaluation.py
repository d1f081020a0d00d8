"""The DARTS-space evaluation tables: genotypes trained from scratch, by architecture or by search.

A search in the DARTS space ends in a genotype; the paper judges it by training the network built
from that genotype from scratch with the CIFAR-10 or ImageNet protocol (``study evaluate``,
``trainables.eval_config``) and printing, per architecture, its FLOPs, its parameters and its
top-1 test accuracy (the paper's Tables 2 and 3). This module builds that table from the
evaluation results (``analysis.results.load_evaluations``), optionally joined with the searches
that found the genotypes (``analysis.results.load_results``), as an ``analysis.tables.Table``.

Which numbers enter: each evaluation trial (one genotype × one training seed: a *run*) counts by
its final epoch, the last one reported. A run whose last row has status ``diverged`` (non-finite
loss) and a run that has not reached its ``epochs`` yet (unfinished) are left out of the numbers;
the table's notes count them and name them.

Columns, one group per evaluation dataset (the ``dataset`` column: the table's dataset level):

* ``FLOPs/M`` — multiply-adds per image at the network's input size (``input_size``: 32 pixels
  for the CIFAR network, 224 for the ImageNet one), auxiliary head excluded, / 10^6;
* ``Params/M`` — parameters of the network, auxiliary head excluded, / 10^6;
* ``Top-1/%`` — top-1 accuracy (%) on the test set the search never reads (CIFAR-10
  ``test_batch``, ImageNet ``val/``) after the final epoch;

each as mean ± sample std (n − 1 in the denominator, as the paper's "± std") over the row's runs,
one value per run; a row of one run shows the value alone, and so do FLOPs/M and Params/M when
every run of the row has the same value (one architecture: a size, not a spread; ``stats`` holds
std NaN there). The count column ``runs`` counts the runs.

Rows (the grouping rule):

* without the searches, one row per ``architecture`` (the evaluation's ``arch``: a published name
  such as ``DARTS_V2``, or ``<search experiment>/<trial id>``): mean ± std over its runs, the
  training seeds;
* with the searches, each evaluation is joined on (``source_experiment``, ``source_trial_id``) ==
  (``experiment``, ``trial_id``) with its search trial's final-epoch row, and rows are the
  search's (``method``, ``activation``, ``data_fraction``): ``method`` is the paper's name of the
  update strategy (``analysis.frame.METHOD_NAMES``: DARTS, Single-DARTS, ...). A row pools every
  genotype its searches found — the search seeds — and every training seed of each: one value per
  run, so a genotype trained with k seeds counts k times. The row column ``searches`` says how
  many search trials (search seeds) the row pools; a note says when two of them found the same
  genotype. Evaluations of a genotype given by hand (no source, e.g. the published ``DARTS_V2``)
  are rows of their own, first, labelled by their ``arch`` in the ``method`` column with "—" in
  the search columns, so a search compares with the published cell in the same table.

A row never averages two different protocols or searches: any evaluation setting (an
``EvalConfig`` field other than the genotype and its provenance, the seed, the dataset, the
preset's name, file locations and the number of worker processes) and, with the searches, any
search setting (a ``SearchConfig`` field, shown as ``search <field>``, other than the ones the
row names, the seed and file locations) that still varies inside a row becomes an extra row
column, as in ``analysis.tables.summary_table``.

Only pandas is needed (no torch, no Ray): the tables build on a laptop from a cluster's results.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import pandas as pd

from analysis.frame import LOCATION_FIELDS, with_labels
from analysis.results import load_evaluations, load_results
from analysis.store import CONFIG_COLUMNS, experiment_folders, experiment_kind
from analysis.tables import (
    DATASET_TITLES,
    STAT_COLUMNS,
    Table,
    display_value,
    final_epochs,
    typed_stats,
)
from trainables import records as R
from trainables.config import ACTIVATIONS
from trainables.eval_config import EVAL_DATASETS, EvalConfig, normalise_genotype

FLOPS = "FLOPs/M"
PARAMS = "Params/M"
TOP1 = "Top-1/%"
# Display metric -> (record column, divisor): the paper's DARTS-space table columns.
METRICS: dict[str, tuple[str, float]] = {
    FLOPS: (R.MULTIPLY_ADDS, 1e6),
    PARAMS: (R.PARAMS, 1e6),
    TOP1: (R.TEST_ACC, 1.0),
}
ARCHITECTURE = "architecture"  # the row column without the searches
SEARCH_ROWS = ("method", "activation", "data_fraction")  # the row columns with the searches
SEARCHES = "searches"  # row column: search trials (search seeds) a row pools
RUNS = "runs"  # count column: evaluation runs in a row
NO_SEARCH = "—"  # search columns of a genotype given by hand
SEARCH_PREFIX = "search "  # a search setting shown as a row column: "search epochs"

EVAL_REQUIRED = (
    "experiment", "trial_id", "epoch", R.STATUS, "arch", "genotype", "source_experiment",
    "source_trial_id", "dataset", "epochs", "seed", R.PARAMS, R.MULTIPLY_ADDS, R.TEST_ACC,
)
SEARCH_REQUIRED = ("experiment", "trial_id", "epoch", "level", "arch_data", "order",
                   "activation", "data_fraction")
# EvalConfig fields that never split a row: the genotype and its provenance (the row's label),
# the repeat, the dataset (the table's column level), the preset's name (its values are fields),
# where files live and how many processes share the global batch.
_EVAL_SAME_ROW = {"genotype", "arch", "source_experiment", "source_trial_id", "seed", "dataset",
                  "preset", "data_dir", "workers"}
# SearchConfig fields that never split a row: those the row names (method = level, arch_data,
# order), the search seed (pooled) and file locations.
_SEARCH_SAME_ROW = {"level", "arch_data", "order", "activation", "data_fraction", "seed",
                    *LOCATION_FIELDS}
_METHOD_ORDER = ("DARTS", "DARTS (2nd order)", "DARTS (same subset)",
                 "DARTS (same subset, 2nd order)", "Single-DARTS")
_LISTED = 5  # runs named in a note before "and k more"


# --------------------------------------------------------------------------- the table
def evaluation_table(evaluations: pd.DataFrame, searches: pd.DataFrame | None = None) -> Table:
    """The DARTS-space table of ``evaluations`` (``load_evaluations``: every epoch or
    ``final_only``): FLOPs/M, Params/M and Top-1/% per evaluation dataset, mean ± sample std
    over each row's runs (module docstring).

    Without ``searches``: one row per ``architecture``. With ``searches`` (``load_results`` of
    the search experiments, ``alphas=False`` is enough; every epoch or ``final_only``): rows are
    the search's (method, activation, data_fraction) with the row column ``searches`` (search
    trials, i.e. search seeds, pooled), and genotypes given by hand are rows of their own
    labelled by their ``arch``. Row columns of settings varying inside a row are added.

    Raises ``ValueError`` when ``evaluations`` is empty or lacks a needed column (naming them),
    when ``searches`` lacks one, and when an evaluation's source search trial is not in
    ``searches`` (naming the (experiment, trial_id) pairs).
    """
    _check_columns(evaluations, EVAL_REQUIRED, "evaluations",
                   "read them with analysis.load_evaluations")
    runs = final_epochs(evaluations).copy()
    for name in ("arch", "genotype", "source_experiment", "source_trial_id", R.STATUS):
        runs[name] = _text(runs[name])
    notes: list[str] = []
    if searches is not None:
        _check_columns(searches, SEARCH_REQUIRED, "searches",
                       "read them with analysis.load_results(root, experiments=[...], "
                       "alphas=False)")
        runs = _join_searches(runs, searches)
        notes += _genotype_notes(runs)
    kept, left_out = _finished(runs)
    notes += left_out
    labelled, row_columns = (_search_rows(kept) if searches is not None
                             else _architecture_rows(kept))
    stats = _stats(labelled, row_columns)
    notes = [*_unit_notes(kept, searches is not None, labelled), *notes]
    if searches is not None:
        notes += _shared_genotype_notes(labelled, row_columns)
    datasets = _ordered_datasets(runs["dataset"])
    where = " and ".join(DATASET_TITLES.get(d, d) for d in datasets)
    by = "by search (method, activation, data fraction)" if searches is not None else (
        "by architecture")
    return Table(
        title=f"DARTS space, trained from scratch on {where}: FLOPs (M), params (M) and top-1 "
        f"test accuracy (%) {by}, mean ± sample std over runs",
        row_columns=tuple(row_columns),
        stats=stats,
        notes=tuple(notes),
        count_column=RUNS,
    )


def evaluation_tables(
    root: str | os.PathLike[str], experiments: Sequence[str] | None = None
) -> list[Table]:
    """One ``evaluation_table`` per evaluation dataset under ``root`` (only the evaluation
    experiments ``experiments`` when given; CIFAR-10, ImageNet, then
    any other, in ``EVAL_DATASETS`` order), joined with the search experiments the evaluations
    name (``source_experiment``) when they are under ``root`` too. When a named search
    experiment is not there (or holds no search results), that dataset's table is built without
    the join (rows by architecture) and a note says which experiments are missing."""
    evaluations = load_evaluations(root, experiments=experiments)
    named = sorted(set(_text(evaluations["source_experiment"])) - {""})
    searches, unreadable = _read_searches(root, named)
    tables = []
    for dataset in _ordered_datasets(evaluations["dataset"]):
        part = evaluations[evaluations["dataset"].astype("string") == dataset]
        wanted = sorted(set(_text(part["source_experiment"])) - {""})
        missing = [name for name in wanted if name in unreadable]
        if not wanted:
            tables.append(evaluation_table(part))
        elif not missing:
            tables.append(evaluation_table(part, searches))
        else:
            table = evaluation_table(part)
            reasons = "; ".join(f"{name!r} {unreadable[name]}" for name in missing)
            note = (f"rows are by architecture, not by search: the search experiment(s) these "
                    f"evaluations came from are not readable under {os.fspath(root)} ({reasons}); "
                    "put their results under the same root to group by method, activation and "
                    "data fraction.")
            tables.append(Table(table.title, table.row_columns, table.stats,
                                (*table.notes, note), table.count_column))
    return tables


# --------------------------------------------------------------------------- inputs
def _check_columns(frame: pd.DataFrame, required: Sequence[str], what: str, how: str) -> None:
    if frame is None or not isinstance(frame, pd.DataFrame):
        raise ValueError(f"{what} must be a pandas DataFrame, got {type(frame).__name__}; {how}")
    missing = [name for name in required if name not in frame.columns]
    if missing:
        raise ValueError(f"{what} frame lacks the column(s) {missing} (needed: {list(required)}); "
                         f"{how}")
    if frame.empty:
        raise ValueError(f"{what} frame has no rows: nothing to tabulate; {how}")


def _text(values: pd.Series) -> pd.Series:
    """A string column with missing values as '' (provenance fields are '' when unset)."""
    return values.astype("string").fillna("").astype(object)


def _read_searches(root: str | os.PathLike[str], named: list[str]
                   ) -> tuple[pd.DataFrame | None, dict[str, str]]:
    """The search results of the experiments ``named`` under ``root`` that are there, and
    ``{experiment: why it is not readable}`` for the rest."""
    if not named:
        return None, {}
    fs, folders = experiment_folders(root)
    unreadable = {name: "is not under the root" for name in named if name not in folders}
    kinds = {name: experiment_kind(fs, folders[name]) for name in named if name in folders}
    unreadable |= {name: f"holds {kind} results, not a search"
                   for name, kind in kinds.items() if kind != "search"}
    present = [name for name in named if name not in unreadable]
    if not present:
        return None, unreadable
    try:
        return load_results(root, experiments=present, alphas=False), unreadable
    except FileNotFoundError as error:
        return None, {**unreadable, **{name: f"has no readable results ({error})"
                                       for name in present}}


def _join_searches(runs: pd.DataFrame, searches: pd.DataFrame) -> pd.DataFrame:
    """``runs`` with their search's labels (``method``, ``activation``, ``data_fraction``), its
    final genotype (``search genotype``) and its settings (``search <field>``); NA for runs
    without a source. Raises ``ValueError`` naming source trials missing from ``searches``."""
    found = with_labels(final_epochs(searches))
    found["experiment"] = _text(found["experiment"])
    found["trial_id"] = _text(found["trial_id"])
    known = set(zip(found["experiment"], found["trial_id"], strict=True))
    sourced = runs["source_experiment"] != ""
    wanted = set(zip(runs.loc[sourced, "source_experiment"], runs.loc[sourced, "source_trial_id"],
                     strict=True))
    missing = sorted(wanted - known)
    if missing:
        experiments = sorted({e for e, _ in missing})
        raise ValueError(
            f"evaluations name search trial(s) {missing} (experiment, trial_id) that the "
            f"searches frame lacks; pass the search experiment's results, e.g. "
            f"load_results(root, experiments={experiments}, alphas=False)"
        )
    settings = [c for c in CONFIG_COLUMNS if c in found and c not in _SEARCH_SAME_ROW]
    columns = {"experiment": "source_experiment", "trial_id": "source_trial_id",
               "method": "method", "activation": "activation", "data_fraction": "data_fraction",
               **({"genotype": f"{SEARCH_PREFIX}genotype"} if "genotype" in found else {}),
               **{c: f"{SEARCH_PREFIX}{c}" for c in settings}}
    picked = found[list(columns)].rename(columns=columns)
    return runs.merge(picked, how="left", on=["source_experiment", "source_trial_id"],
                      validate="many_to_one")


def _genotype_notes(runs: pd.DataFrame) -> list[str]:
    """A note when an evaluation trained another genotype than its search trial's final one."""
    column = f"{SEARCH_PREFIX}genotype"
    if column not in runs:
        return []
    sourced = runs[runs["source_experiment"] != ""]
    differ = [
        f"{arch} (seed {seed})"
        for arch, seed, trained, found in zip(sourced["arch"], sourced["seed"],
                                              sourced["genotype"], sourced[column], strict=True)
        if _same_genotype(trained, found) is False
    ]
    if not differ:
        return []
    return [f"{len(differ)} run(s) trained another genotype than their search trial's final one "
            f"(was the genotype taken before the search ended?): {_listed(differ)}."]


def _same_genotype(trained: object, found: object) -> bool | None:
    """Whether two DARTS genotype strings are the same cell; None when one is not a genotype."""
    if not isinstance(trained, str) or not isinstance(found, str):
        return None
    try:
        return normalise_genotype(trained) == normalise_genotype(found)
    except ValueError:
        return None


def _finished(runs: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The runs that ended normally (status not diverged, final epoch >= epochs), and notes
    naming the diverged and the unfinished ones."""
    epoch = pd.to_numeric(runs["epoch"], errors="coerce")
    epochs = pd.to_numeric(runs["epochs"], errors="coerce")
    diverged = runs[R.STATUS] == R.STATUS_DIVERGED
    unfinished = ~diverged & ~(epoch >= epochs).fillna(False).astype(bool)
    notes = []
    if diverged.any():
        named = [f"{_label(a)} (seed {s}, epoch {e})" for a, s, e in
                 zip(runs.loc[diverged, "arch"], runs.loc[diverged, "seed"],
                     runs.loc[diverged, "epoch"], strict=True)]
        notes.append(f"{int(diverged.sum())} run(s) diverged (non-finite training loss) and are "
                     f"left out: {_listed(named)}.")
    if unfinished.any():
        named = [f"{_label(a)} (seed {s}, epoch {e}/{n})" for a, s, e, n in
                 zip(runs.loc[unfinished, "arch"], runs.loc[unfinished, "seed"],
                     runs.loc[unfinished, "epoch"], runs.loc[unfinished, "epochs"], strict=True)]
        notes.append(f"{int(unfinished.sum())} run(s) have not reached their last epoch and are "
                     f"left out: {_listed(named)}.")
    return runs[~diverged & ~unfinished].copy(), notes


def _label(arch: object) -> str:
    return str(arch) if arch else "unnamed genotype"


def _arch_label(arch: object, genotype: object) -> str:
    """A run's architecture label: its ``arch``, else (a genotype given by hand without a
    name) the genotype string itself, so two unnamed genotypes never share a row."""
    return str(arch) if arch else str(genotype)


def _listed(items: list[str]) -> str:
    shown = ", ".join(items[:_LISTED])
    return shown if len(items) <= _LISTED else f"{shown} and {len(items) - _LISTED} more"


# --------------------------------------------------------------------------- rows
def _architecture_rows(runs: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Runs labelled by architecture (genotypes given by hand first, then by name), plus the
    evaluation settings that vary inside an architecture's runs."""
    out = runs.copy()
    out[ARCHITECTURE] = [_arch_label(a, g) for a, g in zip(out["arch"], out["genotype"],
                                                           strict=True)]
    extra = _varying(out, _eval_settings(out), [ARCHITECTURE])
    out["_sourced"] = (out["source_experiment"] != "").astype(int)
    order = ["_sourced", ARCHITECTURE, *extra]
    return _sorted(out, order), [ARCHITECTURE, *extra]


def _search_rows(runs: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Runs labelled by their search (method, activation, data_fraction, the settings varying
    inside a group, ``searches``); runs without a source labelled by their ``arch``."""
    out = runs.copy()
    hand = out["source_experiment"] == ""
    out["method"] = out["method"].astype(object)
    out.loc[hand, "method"] = [_arch_label(a, g) for a, g in
                               zip(out.loc[hand, "arch"], out.loc[hand, "genotype"], strict=True)]
    search_settings = [c for c in out.columns if c.startswith(SEARCH_PREFIX)
                       and c != f"{SEARCH_PREFIX}genotype"]
    by = list(SEARCH_ROWS)
    extra_search = _varying(out[~hand], search_settings, by)
    for name in [*by[1:], *extra_search]:
        out[name] = out[name].astype(object)
        out.loc[hand, name] = NO_SEARCH
    extra_eval = _varying(out, _eval_settings(out), [*by, *extra_search])
    groups = [*by, *extra_search, *extra_eval]
    if out.empty:  # every run left out: the row columns, no rows
        out[SEARCHES] = pd.Series(dtype=object)
        return out, [*groups, SEARCHES]
    keys = out[groups].map(display_value).astype(str)
    group_id = keys.agg("\x1f".join, axis=1)
    sources = out["source_experiment"] + "\x1f" + out["source_trial_id"]
    counts = sources.where(~hand).groupby(group_id).nunique()
    out[SEARCHES] = [NO_SEARCH if h else str(int(counts[g]))
                     for h, g in zip(hand, group_id, strict=True)]
    out["_sourced"] = (~hand).astype(int)
    out["_method"] = [_rank(m, _METHOD_ORDER) for m in out["method"]]
    out["_activation"] = [_rank(a, ACTIVATIONS) for a in out["activation"]]
    order = ["_sourced", "_method", "method", "_activation", "data_fraction", *extra_search,
             *extra_eval]
    return _sorted(out, order), [*groups, SEARCHES]


def _eval_settings(runs: pd.DataFrame) -> list[str]:
    return [c for c in EvalConfig.field_names() if c in runs and c not in _EVAL_SAME_ROW]


def _varying(frame: pd.DataFrame, candidates: list[str], by: list[str]) -> list[str]:
    """The ``candidates`` taking more than one value inside some group of equal ``by`` values."""
    if frame.empty or not candidates:
        return []
    keyed = frame[by].map(display_value).astype(str)
    counts = frame[candidates].groupby([keyed[c] for c in by], dropna=False, sort=False
                                       ).nunique(dropna=False)
    return [c for c in candidates if int(counts[c].max()) > 1]


def _rank(value: object, known: Sequence[str]) -> int:
    return known.index(value) if value in known else len(known)  # type: ignore[arg-type]


def _sorted(frame: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """``frame`` sorted by ``order``: numbers numerically, text alphabetically, missing last."""
    keys = pd.DataFrame({c: [_natural(v) for v in frame[c]] for c in order}, index=frame.index)
    positions = sorted(range(len(frame)), key=lambda i: tuple(keys.iloc[i]))
    return frame.iloc[positions]


def _natural(value: object) -> tuple[int, float, str]:
    if value is None or (not isinstance(value, str) and pd.isna(value)):  # type: ignore[arg-type]
        return (2, 0.0, "")
    if isinstance(value, bool):
        return (1, 0.0, str(value))
    try:
        return (0, float(value), "")  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return (1, 0.0, str(value))


# --------------------------------------------------------------------------- numbers
def _stats(runs: pd.DataFrame, row_columns: list[str]) -> pd.DataFrame:
    """The tidy numbers (``Table.stats``): per row × dataset × metric the mean, sample std
    (NaN below two values, and for FLOPs/M and Params/M when every run has the same value: one
    architecture's size, not a spread, shown as the value alone), n (runs with a value) and
    trials (runs in the row), rows in the order of ``runs``, datasets in ``EVAL_DATASETS``
    order, metrics as ``METRICS``."""
    columns = [*row_columns, *STAT_COLUMNS]
    if runs.empty:
        return typed_stats(pd.DataFrame(columns=columns))
    labels = runs[row_columns].map(display_value).astype(str)
    datasets = _ordered_datasets(runs["dataset"])
    records: list[dict[str, object]] = []
    for key, group in labels.groupby(row_columns, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(row_columns, key, strict=True))
        members = runs.loc[group.index]
        for dataset in datasets:
            part = members[members["dataset"].astype("string") == dataset]
            if part.empty:
                continue
            for metric, (column, divisor) in METRICS.items():
                values = pd.to_numeric(part[column].astype("Float64"), errors="coerce").to_numpy(
                    dtype=float, na_value=math.nan) / divisor
                valued = values[~pd.isna(values)]
                spread = len(valued) >= 2 and (metric == TOP1 or len(set(valued)) > 1)
                records.append({
                    **row, "dataset": dataset, "metric": metric,
                    "mean": float(valued.mean()) if len(valued) else math.nan,
                    "std": float(valued.std(ddof=1)) if spread else math.nan,
                    "n": len(valued), "trials": len(part),
                })
    return typed_stats(pd.DataFrame(records, columns=columns))


def _ordered_datasets(values: pd.Series) -> list[str]:
    present = {str(v) for v in values.dropna().unique()}
    return [d for d in EVAL_DATASETS if d in present] + sorted(present - set(EVAL_DATASETS))


def _unit_notes(runs: pd.DataFrame, joined: bool, labelled: pd.DataFrame) -> list[str]:
    """What the columns and row labels mean (units, the spread, the input sizes)."""
    sizes = sorted({int(s) for s in pd.to_numeric(runs[R.INPUT_SIZE], errors="coerce").dropna()}
                   ) if R.INPUT_SIZE in runs else []
    at = f" at {'/'.join(map(str, sizes))} pixels" if sizes else " at the input size"
    notes = [
        f"{FLOPS} = multiply-adds per image{at} / 10^6, {PARAMS} = parameters / 10^6 (auxiliary "
        f"head excluded from both; shown alone when every run of the row has the same); {TOP1} = "
        f"top-1 test accuracy after the final epoch; mean ± sample std (n − 1) over the row's "
        f"{RUNS} (evaluation trials: training seeds).",
    ]
    if joined:
        notes.append(
            "method (the paper's name of the search's update strategy), activation, "
            f"data_fraction: the search that found the genotype (its final epoch); {SEARCHES} = "
            "search trials (search seeds) whose final genotypes the row pools; a genotype "
            "trained with several seeds counts once per run."
        )
        if (labelled[SEARCHES] == NO_SEARCH).any():
            notes.append(f"rows with {NO_SEARCH} for the search: genotypes given by hand "
                         "(published cells such as DARTS_V2), named by their arch.")
    return notes


def _shared_genotype_notes(labelled: pd.DataFrame, row_columns: list[str]) -> list[str]:
    """A note per search row whose search trials found fewer distinct genotypes than trials."""
    sourced = labelled[labelled[SEARCHES] != NO_SEARCH]
    notes = []
    keys = sourced[row_columns].map(display_value).astype(str)
    for key, group in sourced.groupby([keys[c] for c in row_columns], sort=False):
        genotypes = {_canonical(g) for g in group["genotype"]}
        trials = group[["source_experiment", "source_trial_id"]].drop_duplicates()
        if len(genotypes) < len(trials):
            label = ", ".join(display_value(k) for k in (key if isinstance(key, tuple) else (key,)))
            notes.append(f"{label}: its {len(trials)} search trials found {len(genotypes)} "
                         "distinct genotype(s).")
    return notes


def _canonical(genotype: object) -> str:
    try:
        return normalise_genotype(str(genotype))
    except ValueError:
        return str(genotype)
