"""Merge an experiment's many small part files into one, losslessly and crash-safely.

``ParquetResultsWriter`` writes a new small part file at every flush (checkpoint, trial end,
experiment end), so a long grid leaves tens of thousands of files, and reading them gets slow.
``compact_experiment`` merges every part file of one experiment into one new part file::

    ROOT/experiment=<name>/part-<utc timestamp>-compacted-<uuid8>.parquet

which ``analysis.results.load_results`` reads like any other part file (names, layout and schema
are the results store's, ``analysis.store``). Nothing is lost or
changed: every row of every merged file is kept as it is (no de-duplication — readers already
keep the last attempt, and the earlier attempts stay as history), in the writer's schema
(the experiment's format's schema (``analysis.store``: search or evaluation)), so ``load_results`` returns the same frame before and after.

Crash safety, in this order:

1. every part file is checked (readable Parquet, exactly ``results_schema()``, only rows of this
   experiment) before anything is written; a bad one raises ``ValueError`` naming it, and no file
   is written or deleted;
2. the merged file is written under a temporary name readers ignore (``.part-….tmp``, not
   ``part-*``) and then moved into place;
3. only then are the merged inputs deleted.

A crash before the move leaves the inputs as they were (and at most a stray temp file, which
readers ignore); a crash between the move and the last delete leaves some rows twice, as identical
copies, which readers de-duplicate like any re-reported result — the frame ``load_results``
returns is the same. Running the compaction again merges them.

Only the part files present when a compaction starts are merged and deleted: files a live writer
adds meanwhile are left for the next one. Rows are streamed into output row groups of at most
``ROW_GROUP_ROWS`` rows / ``ROW_GROUP_BYTES`` bytes: memory holds one output row group plus the
``READ_AHEAD`` small part files being read in threads (reading thousands of tiny files is
latency-bound, above all on object stores); a larger input (an earlier compaction's file) is read
one row group at a time — never the whole experiment. Each input is read twice, once to check it
and once to copy it (about 2 ms per writer part file on a local disk). Local paths and URIs
(``s3://``, ``file://``) both work, through the same ``resolve_location`` as the writer and the
reader.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from typing import TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from analysis import store
from analysis.store import (
    ResultFormat,
    check_experiment_name,
    experiment_folders,
    experiment_kind,
    result_format,
)

logger = logging.getLogger(__name__)

ROW_GROUP_ROWS = 20_000
ROW_GROUP_BYTES = 64 * 2**20
READ_AHEAD = 8  # part files read at once (threads)
READ_AHEAD_BYTES = 8 * 2**20  # larger files are streamed one row group at a time

_T = TypeVar("_T")


@dataclass(frozen=True)
class CompactionReport:
    """What one compaction did: ``files`` part files merged into ``output`` holding ``rows``
    rows; ``files == 0`` and ``output is None`` when there was nothing to do."""

    experiment: str
    files: int
    rows: int
    output: str | None


def compact_experiment(
    root: str | os.PathLike, experiment: str, *, min_files: int = 2
) -> CompactionReport:
    """Merge every part file of ``root/experiment=<experiment>/`` into one new part file.

    ``root`` is the dataset root the writer and ``load_results`` take (a local path or a URI; the
    ``--results`` folder of ``study run``, holding ``parquet/``, works too). With fewer than
    ``min_files`` part files nothing is done. A part file that is not readable Parquet, has
    another schema than ``results_schema()`` or holds rows of another experiment raises
    ``ValueError`` naming it, before anything is written; a missing folder raises
    ``FileNotFoundError``. See the module docstring for the crash-safety order.
    """
    fs, folders = experiment_folders(root, [check_experiment_name(experiment)])
    folder = folders[experiment]
    return _compact(fs, folder, experiment, *_plan(fs, folder, experiment, min_files))


def compact_results(
    root: str | os.PathLike,
    experiments: Sequence[str] | None = None,
    *,
    min_files: int = 2,
) -> list[CompactionReport]:
    """Compact every experiment under ``root`` (or only ``experiments``), in name order.

    Every experiment's part files are checked before any is compacted, so a bad file or a missing
    experiment stops the whole call with nothing written.
    """
    if isinstance(experiments, str):
        experiments = [experiments]
    fs, folders = experiment_folders(root, experiments)
    if not folders:
        raise FileNotFoundError(
            f"no experiment folders ({store.EXPERIMENT_PREFIX}*) under {root!s}"
        )
    plans = [(name, _plan(fs, folders[name], name, min_files)) for name in sorted(folders)]
    return [_compact(fs, folders[name], name, *plan) for name, plan in plans]


# ---------------------------------------------------------------------- steps
def _plan(
    fs: pafs.FileSystem, folder: str, experiment: str, min_files: int
) -> tuple[list[str], ResultFormat]:
    """The part files to merge (empty when fewer than ``min_files``), each checked against the
    experiment's format (its sidecar's kind), and that format."""
    if min_files < 1:
        raise ValueError(f"min_files={min_files} must be >= 1")
    files = store.part_files(fs, folder)
    fmt = result_format(experiment_kind(fs, folder))
    if len(files) < min_files:
        return [], fmt
    for _ in _in_order(lambda path: _check_part(fs, path, experiment, fmt), files):
        pass
    return files, fmt


def _check_part(fs: pafs.FileSystem, path: str, experiment: str, fmt: ResultFormat) -> None:
    """``ValueError`` naming ``path`` unless it is readable Parquet of exactly ``schema`` holding
    only rows of ``experiment`` (the rule ``load_results`` applies to a folder's files)."""
    try:
        with fs.open_input_file(path) as handle:
            part = pq.ParquetFile(handle)
            found = part.schema_arrow
            if not fmt.is_readable(found):
                raise ValueError(
                    f"cannot compact {path}: its schema is not the {fmt.kind} results schema "
                    f"(columns {found.names[:6]}...); leave it out of the folder or rewrite it"
                )
            names = part.read(columns=["experiment"], use_threads=False).column("experiment")
    except (pa.ArrowException, OSError) as error:
        raise ValueError(f"cannot compact {path}: not a readable Parquet file ({error})") from error
    foreign = set(pc.unique(names.drop_null()).to_pylist()) - {experiment}
    if foreign:
        raise ValueError(
            f"cannot compact {path}: it holds rows of experiment(s) {sorted(foreign)} in the "
            f"folder of experiment {experiment!r}"
        )


def _compact(
    fs: pafs.FileSystem, folder: str, experiment: str, files: list[str], fmt: ResultFormat
) -> CompactionReport:
    """Write the merged file, then delete the inputs (the crash-safe order)."""
    if not files:
        return CompactionReport(experiment, 0, 0, None)
    output, rows = _write_merged(fs, folder, files, fmt)
    _delete_inputs(fs, files)
    logger.info("compacted %d part files (%d rows) into %s", len(files), rows, output)
    return CompactionReport(experiment, len(files), rows, output)


def _write_merged(
    fs: pafs.FileSystem, folder: str, files: list[str], fmt: ResultFormat
) -> tuple[str, int]:
    """Stream every row of ``files``, in order, into one new part file of ``fmt`` written
    atomically; returns its path and row count. The inputs are left untouched."""
    output = f"{folder}/{store.new_part_name(store.COMPACTED_TAG)}"
    schema = fmt.schema()
    rows = 0

    def write(tmp: str) -> None:
        nonlocal rows
        pending: list[pa.Table] = []
        pending_rows = pending_bytes = 0
        with pq.ParquetWriter(tmp, schema, filesystem=fs) as writer:

            def drain() -> None:
                nonlocal pending, pending_rows, pending_bytes
                if pending:
                    writer.write_table(pa.concat_tables(pending), row_group_size=ROW_GROUP_ROWS)
                pending, pending_rows, pending_bytes = [], 0, 0

            with closing(_in_order(lambda path: _read_small(fs, path, fmt), files)) as small:
                for path, whole in zip(files, small, strict=True):
                    groups = _row_groups(fs, path, fmt) if whole is None else whole
                    for group, size in groups:
                        pending.append(group)
                        pending_rows += group.num_rows
                        pending_bytes += size
                        rows += group.num_rows
                        if pending_rows >= ROW_GROUP_ROWS or pending_bytes >= ROW_GROUP_BYTES:
                            drain()
            drain()

    store.atomic_write(fs, output, write)
    return output, rows


def _in_order(read: Callable[[str], _T], paths: list[str]) -> Generator[_T, None, None]:
    """``read(path)`` of every path, in order, ``READ_AHEAD`` at a time in threads: reading
    thousands of tiny files is latency-bound, above all on object stores. The first failure, in
    path order, is raised; the reads still in flight are waited for (at most ``READ_AHEAD``)."""
    with ThreadPoolExecutor(READ_AHEAD, thread_name_prefix="compaction") as pool:
        pending: deque[Future[_T]] = deque()
        try:
            for path in paths:
                pending.append(pool.submit(read, path))
                if len(pending) >= READ_AHEAD:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def _read_small(
    fs: pafs.FileSystem, path: str, fmt: ResultFormat
) -> list[tuple[pa.Table, int]] | None:
    """Every row group of ``path`` (as ``_row_groups`` yields them) when the file holds at most
    ``READ_AHEAD_BYTES`` uncompressed — a writer's part file — else None: a large file (an earlier
    compaction's) is streamed one row group at a time instead of held whole."""
    try:
        with fs.open_input_file(path) as handle:
            part = pq.ParquetFile(handle)
            sizes = [part.metadata.row_group(i).total_byte_size for i in range(part.num_row_groups)]
            if sum(sizes) > READ_AHEAD_BYTES:
                return None
            return [(_read_group(part, i, fmt), size) for i, size in enumerate(sizes)]
    except (pa.ArrowException, OSError) as error:
        raise ValueError(f"cannot compact {path}: not a readable Parquet file ({error})") from error


def _row_groups(
    fs: pafs.FileSystem, path: str, fmt: ResultFormat
) -> Iterator[tuple[pa.Table, int]]:
    """Each row group of ``path`` as a table of ``schema`` with its uncompressed size in bytes
    (a read error becomes ``ValueError`` naming the file; the caller's temp file is then
    discarded and nothing is deleted)."""
    try:
        with fs.open_input_file(path) as handle:
            part = pq.ParquetFile(handle)
            for index in range(part.num_row_groups):
                size = part.metadata.row_group(index).total_byte_size
                yield _read_group(part, index, fmt), size
    except (pa.ArrowException, OSError) as error:
        raise ValueError(f"cannot compact {path}: not a readable Parquet file ({error})") from error


def _read_group(part: pq.ParquetFile, index: int, fmt: ResultFormat) -> pa.Table:
    group = part.read_row_group(index, use_threads=False)  # a tiny group: threads only wait
    schema = fmt.schema()
    if group.schema.equals(schema):
        return group
    return fmt.conform(group) if fmt.is_older(group.schema) else group.cast(schema)


def _delete_inputs(fs: pafs.FileSystem, files: list[str]) -> None:
    """Delete the merged inputs; one already gone (a concurrent compaction) is fine."""
    for path in files:
        try:
            fs.delete_file(path)
        except FileNotFoundError:
            logger.info("compaction: %s was already deleted", path)
