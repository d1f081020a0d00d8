"""Read the study's results dataset: one row per trial × epoch, the last attempt winning.

The dataset is written by ``study.results.ParquetResultsWriter`` in the layout of the results
store (``analysis.store``)::

    ROOT/experiment=<name>/part-*.parquet     (plus _metadata.json, ignored here)

Ray Tune delivers results at least once: after a restart the epochs after a trial's last
checkpoint are reported again, so the same (experiment, trial_id, epoch) may appear in several
files. ``load_results`` keeps, for each of those keys, the row with the highest
(attempt, reported_at).

This module imports only pandas, pyarrow and the results store (no ray, no torch), so results can
be analysed anywhere. The filesystem is resolved in one place (``store.resolve_location``): a URI
(``s3://bucket/prefix``, ``file:///...``) goes through ``pyarrow.fs.FileSystem.from_uri``,
anything else is a local path.

Dtypes (stable whatever the data holds): ``epoch`` and ``attempt`` int64 (a row with a null key
is dropped with a warning); other integer columns nullable ``Int64``; booleans nullable
``boolean``; floats float64; strings pandas' string dtype; ``reported_at`` datetime64[us, UTC];
α list columns are Arrow-backed (``pd.ArrowDtype`` list of lists, no copy into Python objects, so
a million rows stay small): a cell reads as a nested Python list (edges × ops), None where
missing; ``series.tolist()`` gives them all.

Rows are de-duplicated on the key columns alone before the frame is built, so duplicates cost
neither conversion nor memory.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from analysis.store import (
    ALPHA_COLUMNS,
    EXPERIMENT_PREFIX,
    ORDER_COLUMNS,
    PART_PREFIX,
    PART_SUFFIX,
    RESULT_KEY,
    SEARCH,
    TRIAL_KEY,
    ResultFormat,
    experiment_folders,
    metadata_kind,
    metadata_superseded,
    part_files,
    read_metadata,
    result_format,
)

PART_GLOB = f"{EXPERIMENT_PREFIX}*/{PART_PREFIX}*{PART_SUFFIX}"
REQUIRED_COLUMNS = (*RESULT_KEY, *ORDER_COLUMNS)  # a row without one of them cannot be placed


def load_results(
    root: str | os.PathLike,
    *,
    experiments: Sequence[str] | None = None,
    final_only: bool = False,
    on_bad_file: Literal["raise", "skip"] = "raise",
    alphas: bool = True,
    kind: str = "search",
) -> pd.DataFrame:
    """All search results under ``root`` as one DataFrame, one row per trial × epoch.

    Rows are de-duplicated on (experiment, trial_id, epoch), keeping the highest
    (attempt, reported_at), and sorted by experiment, trial_id, epoch. ``experiments`` restricts
    the read to those experiment folders (a name with no folder raises ``FileNotFoundError``).
    ``final_only`` keeps each trial's last epoch only. ``alphas=False`` leaves out the four α list
    columns (``ALPHA_COLUMNS``): they are most of the bytes, and tables do not need them, so a
    large read gets several times faster. Rows of trials the experiment's sidecar marks
    superseded (their grid entry was started again by ``study run --restart``) are left out.

    ``kind`` picks the result kind read (``analysis.store.FORMATS``): experiments of another
    kind under the same root (``study evaluate`` writes its evaluations beside the searches) are
    left out, and naming one in ``experiments`` raises ``ValueError`` saying which reader to use
    (``load_evaluations`` for evaluations).

    A file that is not Parquet, lacks a key column, or holds rows of another experiment than its
    folder names raises ``ValueError`` naming it; with ``on_bad_file="skip"`` it is skipped with a
    warning naming it instead. A missing root, or a root without any part file, raises
    ``FileNotFoundError`` naming it (so a wrong path never looks like an empty study).
    """
    if on_bad_file not in ("raise", "skip"):
        raise ValueError(f"on_bad_file={on_bad_file!r}; choose 'raise' or 'skip'")
    if isinstance(experiments, str):
        experiments = [experiments]
    fmt = result_format(kind)
    fs, folders, sidecars = _folders_of_kind(root, experiments, fmt)
    files = _part_files(fs, folders, root)
    skipped = set() if alphas else set(ALPHA_COLUMNS)
    tables = []
    superseded = {name: metadata_superseded(sidecars[name]) for name in folders}
    for experiment, path in files:
        table = _read_part(fs, path, experiment, on_bad_file, skipped)
        if table is not None and superseded[experiment]:  # started again: rows of the new trial
            kept = pc.invert(pc.is_in(table.column("trial_id"),
                                      pa.array(sorted(superseded[experiment]))))
            table = table.filter(kept)
        if table is not None:
            tables.append(table)
    if not tables:
        raise FileNotFoundError(f"no readable results files under {root!s}")
    table = _in_schema_order(
        _drop_null_keys(pa.concat_tables(tables, promote_options="permissive")), fmt
    )
    del tables
    rows = _last_attempt_rows(table, final_only)
    if len(rows) != len(table) or not np.array_equal(rows, np.arange(len(table))):
        # Take column by column, releasing each source column as soon as it is copied, so the
        # peak holds one column twice rather than the whole table.
        indices, schema, taken = pa.array(rows), table.schema, []
        while table.num_columns:
            taken.append(table.column(0).take(indices))
            table = table.remove_column(0)
            pa.default_memory_pool().release_unused()
        table = pa.Table.from_arrays(taken, schema=schema)
        del taken
    return _to_pandas(table)


def load_evaluations(
    root: str | os.PathLike,
    *,
    experiments: Sequence[str] | None = None,
    final_only: bool = False,
    on_bad_file: Literal["raise", "skip"] = "raise",
) -> pd.DataFrame:
    """All evaluation results under ``root`` (``study evaluate``: genotypes trained from
    scratch) as one DataFrame, one row per trial × epoch, read and de-duplicated as
    ``load_results`` reads searches; the columns are ``analysis.store.EVALUATION``'s."""
    return load_results(
        root, experiments=experiments, final_only=final_only, on_bad_file=on_bad_file,
        kind="evaluation",
    )


# ---------------------------------------------------------------------- listing
def _folders_of_kind(
    root: str | os.PathLike, experiments: Sequence[str] | None, fmt: ResultFormat
) -> tuple[pafs.FileSystem, dict[str, str], dict[str, dict[str, Any]]]:
    """The experiment folders of result kind ``fmt.kind`` (all of them, or ``experiments``,
    each of which must be of that kind) and their sidecars, each read once."""
    fs, folders = experiment_folders(root, experiments)
    sidecars = {name: read_metadata(fs, folder) for name, folder in folders.items()}
    kinds = {name: metadata_kind(sidecar) for name, sidecar in sidecars.items()}
    if experiments is not None:
        wrong = {name: k for name, k in kinds.items() if k != fmt.kind}
        if wrong:
            readers = {"search": "load_results", "evaluation": "load_evaluations"}
            named = ", ".join(f"{n!r} holds {k} results" for n, k in sorted(wrong.items()))
            raise ValueError(
                f"{named}; read {'it' if len(wrong) == 1 else 'them'} with "
                f"analysis.{readers[next(iter(wrong.values()))]}"
            )
    folders = {name: folder for name, folder in folders.items() if kinds[name] == fmt.kind}
    if not folders:
        raise FileNotFoundError(f"no {fmt.kind} experiments under {root!s}")
    return fs, folders, sidecars


def _part_files(
    fs: pafs.FileSystem, folders: dict[str, str], root
) -> list[tuple[str, str]]:
    """(experiment, path) of every part file, in a deterministic order."""
    files = [(name, path) for name in sorted(folders) for path in part_files(fs, folders[name])]
    if not files:
        raise FileNotFoundError(f"no results files ({PART_GLOB}) under {root!s}")
    return files


def _read_part(
    fs: pafs.FileSystem, path: str, experiment: str, on_bad_file: str, skipped: set[str]
) -> pa.Table | None:
    try:
        with fs.open_input_file(path) as handle:
            part = pq.ParquetFile(handle)
            names = part.schema_arrow.names
            table = part.read(columns=[c for c in names if c not in skipped])
    except (pa.ArrowException, OSError) as error:
        return _bad_file(path, f"not a readable Parquet file ({error})", on_bad_file)
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        return _bad_file(path, f"missing key column(s) {missing}", on_bad_file)
    names = set(table.column("experiment").drop_null().unique().to_pylist())
    if names - {experiment}:
        return _bad_file(
            path,
            f"holds rows of experiment(s) {sorted(names - {experiment})} in the folder of "
            f"experiment {experiment!r}",
            on_bad_file,
        )
    return table


def _bad_file(path: str, reason: str, on_bad_file: str) -> pa.Table | None:
    """Raise for a bad file, or (``on_bad_file="skip"``) warn and return None to skip it."""
    message = f"bad results file {path}: {reason}"
    if on_bad_file == "raise":
        raise ValueError(message)
    warnings.warn(f"skipping {message}", stacklevel=4)
    return None


# ---------------------------------------------------------------------- frame
def _types_mapper(arrow_type: pa.DataType):
    if pa.types.is_integer(arrow_type):
        return pd.Int64Dtype()
    if pa.types.is_boolean(arrow_type):
        return pd.BooleanDtype()
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return pd.StringDtype()
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        return pd.ArrowDtype(arrow_type)
    return None


def _in_schema_order(table: pa.Table, fmt: ResultFormat = SEARCH) -> pa.Table:
    """Columns in the results schema's order (older files lack later columns, which permissive
    concatenation appends at the end), then any column the schema does not know."""
    known = [name for name in fmt.schema().names if name in table.column_names]
    extra = [name for name in table.column_names if name not in set(known)]
    return table.select(known + extra)


def _drop_null_keys(table: pa.Table) -> pa.Table:
    """Rows with a null key or order column cannot be placed: drop them with a warning."""
    valid = None
    for name in REQUIRED_COLUMNS:
        column_valid = pc.is_valid(table.column(name))
        valid = column_valid if valid is None else pc.and_(valid, column_valid)
    dropped = len(table) - pc.sum(valid).as_py() if len(table) else 0
    if dropped:
        warnings.warn(
            f"dropping {dropped} result row(s) with a null {'/'.join(REQUIRED_COLUMNS)}",
            stacklevel=3,
        )
        table = table.filter(valid)
    return table


def _last_attempt_rows(table: pa.Table, final_only: bool) -> np.ndarray:
    """Row positions, sorted by key, of the last (attempt, reported_at) of every key — and
    with ``final_only`` of every trial's last epoch only. Only the key columns are read."""
    keys = table.select(list(REQUIRED_COLUMNS)).to_pandas()
    keys["_row"] = np.arange(len(keys))
    ordered = keys.sort_values([*RESULT_KEY, *ORDER_COLUMNS], kind="stable")
    last = ordered.drop_duplicates(list(RESULT_KEY), keep="last")
    if final_only:
        last = last.drop_duplicates(list(TRIAL_KEY), keep="last")
    return last["_row"].to_numpy()


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    frame = table.to_pandas(types_mapper=_types_mapper, self_destruct=True)
    return frame.astype({"epoch": "int64", "attempt": "int64"})
