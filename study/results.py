"""The results writer: a Ray Tune callback that turns every reported epoch into one Parquet row.

It runs on the driver (the single writer). Each Tune result of ``trainables.tune_trainable`` is
one epoch record; the writer buffers one row per result — experiment, trial id, attempt, report
time, every ``SearchConfig`` field and every record field — and flushes the buffer as a new,
atomically written Parquet file at every checkpoint, trial end (completion or error), experiment
end and whenever ``flush_every`` rows are waiting, so a driver crash loses nothing flushed::

    ROOT/experiment=<name>/part-<utc timestamp>-<uuid8>.parquet
    ROOT/experiment=<name>/_metadata.json

Every file has exactly ``results_schema()``. Rows are never de-duplicated here: Ray delivers
results at least once (a restarted trial re-reports the epochs after its last checkpoint), so the
same (experiment, trial_id, epoch) may appear in several files, distinguished by ``attempt`` (how
many times the trial had failed when the result arrived, ``Trial.num_failures``, which survives
``Tuner.restore``) and ``reported_at``. ``analysis.results.load_results`` keeps the last attempt.

At experiment end the writer merges the experiment's part files into one
(``study.compaction``, lossless: every row of every attempt), so a long grid does not leave tens
of thousands of small files; ``study compact`` does it after a killed driver.

Column names: config fields keep their ``SearchConfig`` names (so a row's config columns rebuild
the config with ``SearchConfig.from_dict``) and record fields their ``trainables.records`` names;
the two sets are disjoint (checked at import).
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import logging
import os
import platform
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from ray import tune

from analysis.results import resolve_location
from trainables import records as R
from trainables.config import SearchConfig
from trainables.tune_trainable import search_fields

logger = logging.getLogger(__name__)

KEY_COLUMNS = ("experiment", "trial_id", "attempt", "reported_at")
METADATA_FILE = "_metadata.json"
PART_PREFIX = "part-"
PART_SUFFIX = ".parquet"

_CONFIG_TYPES: dict[str, pa.DataType] = {
    "str": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "float | None": pa.float64(),
    "int | None": pa.int64(),
}
_ALPHA_TYPE = pa.list_(pa.list_(pa.float64()))
_RECORD_TYPES: dict[str, pa.DataType] = {
    R.EPOCH: pa.int64(),
    R.STATUS: pa.string(),
    R.STEPS: pa.int64(),
    R.GENOTYPE: pa.string(),
    R.EXEC_PATH: pa.string(),
    **{name: _ALPHA_TYPE for name in (*R.ALPHA.values(), *R.ALPHA_GRAD.values())},
}  # every other record field is float64
_LIBRARIES = ("torch", "ray", "pyarrow", "pandas", "numpy")

_CLASH = set(R.RECORD_FIELDS) & set(SearchConfig.field_names())
if _CLASH:  # a row is config + record: a shared name would lose one of them
    raise RuntimeError(f"record fields {sorted(_CLASH)} clash with SearchConfig fields; rename them")


def results_schema() -> pa.Schema:
    """The schema of every part file: keys, then config fields, then record fields, in order."""
    from dataclasses import fields

    columns: list[pa.Field] = [
        pa.field("experiment", pa.string(), nullable=False),
        pa.field("trial_id", pa.string(), nullable=False),
        pa.field("attempt", pa.int64(), nullable=False),
        pa.field("reported_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
    for f in fields(SearchConfig):
        columns.append(pa.field(f.name, _CONFIG_TYPES[str(f.type)]))
    for name in R.RECORD_FIELDS:
        columns.append(pa.field(name, _RECORD_TYPES.get(name, pa.float64())))
    return pa.schema(columns)


# Record fields added to the format after results were first written: part files from before
# lack their columns, which read as nulls (``conform``) and do not make a file foreign.
ADDED_RECORD_FIELDS: tuple[str, ...] = (R.EXEC_PATH,)


def older_schema(schema: pa.Schema) -> bool:
    """Whether ``schema`` is ``results_schema()`` less some of ``ADDED_RECORD_FIELDS``."""
    current = results_schema()
    absent = set(current.names) - set(schema.names)
    if not absent or not absent <= set(ADDED_RECORD_FIELDS):
        return False
    kept = pa.schema([f for f in current if f.name not in absent])
    return schema.equals(kept)


def conform(table: pa.Table) -> pa.Table:
    """``table`` (of ``results_schema()`` or an ``older_schema``) in ``results_schema()``, the
    added columns it lacks filled with nulls."""
    schema = results_schema()
    if table.schema.equals(schema):
        return table
    columns = [
        table.column(f.name) if f.name in table.column_names else pa.nulls(len(table), f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)


UTC = dt.UTC


def _utc_now() -> dt.datetime:
    return dt.datetime.now(UTC)


def check_experiment_name(experiment: str) -> str:
    """``experiment`` if it is a usable folder-name part, else ``ValueError`` saying why."""
    bad = not experiment or experiment in (".", "..") or any(c in experiment for c in "/\\=")
    if not isinstance(experiment, str) or bad:
        raise ValueError(
            f"experiment={experiment!r} must be a non-empty name without '/', '\\' or '='"
        )
    return experiment


def library_versions() -> dict[str, str | None]:
    """Versions of python and the main libraries; None for a library that is not installed.

    Modules already imported report ``__version__``; others are looked up in the installed
    distributions' metadata, so nothing heavy (torch) is imported just to learn its version.
    """
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in _LIBRARIES:
        module = sys.modules.get(name)
        version = getattr(module, "__version__", None) if module is not None else None
        if version is None:
            try:
                version = importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                version = None
        versions[name] = None if version is None else str(version)
    return versions


def git_revision(directory: str | os.PathLike | None = None) -> str | None:
    """``git rev-parse HEAD`` of the working tree holding ``directory`` (this package by default),
    or None when git or the repository is unavailable."""
    cwd = Path(directory) if directory is not None else Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    revision = out.stdout.strip()
    return revision or None


def _atomic_write(fs: pafs.FileSystem, path: str, write: Callable[[str], None]) -> None:
    """Write via ``write(tmp_path)`` to a hidden temp file in ``path``'s folder, then move it
    into place (a rename on local and NFS storage; copy + delete on object stores)."""
    folder, name = path.rsplit("/", 1)
    tmp = f"{folder}/.{name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        write(tmp)
        fs.move(tmp, path)
    finally:
        if fs.get_file_info(tmp).type != pafs.FileType.NotFound:
            fs.delete_file(tmp)


def _write_text(fs: pafs.FileSystem, path: str, text: str) -> None:
    with fs.open_output_stream(path) as stream:
        stream.write(text.encode())


def _read_text(fs: pafs.FileSystem, path: str) -> str | None:
    if fs.get_file_info(path).type != pafs.FileType.File:
        return None
    with fs.open_input_stream(path) as stream:
        return stream.read().decode()


class ParquetResultsWriter(tune.Callback):
    """Ray Tune callback writing one row per reported result to ``root/experiment=<name>/``.

    ``flush_every`` bounds the rows held in memory between the event-driven flushes. The writer
    only ever writes inside its own experiment folder (created, with ``root``, if missing).
    Malformed results (a missing field, a value of the wrong type) become nulls with a logged
    warning; they never raise inside the Tune loop.
    """

    def __init__(self, root: str | os.PathLike, experiment: str, *, flush_every: int = 50) -> None:
        if flush_every < 1:
            raise ValueError(f"flush_every={flush_every} must be >= 1")
        self.root = os.fspath(root)
        self.experiment = check_experiment_name(experiment)
        self.flush_every = flush_every
        self._fs, base = resolve_location(self.root)
        self.directory = f"{base.rstrip('/')}/experiment={experiment}"
        self._schema = results_schema()
        self._buffer: list[dict[str, Any]] = []
        self._started = False

    # ------------------------------------------------------------------ Tune callback hooks
    def setup(self, stop=None, num_samples=None, total_num_samples=None, **info) -> None:
        self._start()

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        try:
            self._buffer.append(self._row(trial, result))
        except Exception:  # the Tune loop must not die for a results row
            logger.exception("results writer: could not build a row for trial %s", trial)
            return
        if len(self._buffer) >= self.flush_every:
            self.flush()

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info) -> None:
        self.flush()

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self.flush()

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self.flush()

    def on_experiment_end(self, trials, **info) -> None:
        self.flush()
        if not self._started:  # nothing was ever written
            return
        try:  # merge this experiment's many small part files into one (study.compaction)
            from study.compaction import compact_experiment  # imports this module: not at top

            compact_experiment(self.root, self.experiment)
        except Exception:  # the Tune loop must not die; the part files stay readable as they are
            logger.exception("results writer: could not compact %s", self.directory)

    # ------------------------------------------------------------------ state for pickling
    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles the run config (with its callbacks) into the experiment folder; a
        # restored writer starts empty and records a new run in the sidecar.
        state = dict(self.__dict__)
        state["_buffer"] = []
        state["_started"] = False
        state["_schema"] = None
        state["_fs"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._schema = results_schema()
        self._fs, _ = resolve_location(self.root)

    # ------------------------------------------------------------------ rows and files
    def _row(self, trial, result: dict[str, Any]) -> dict[str, Any]:
        row: dict[str, Any] = {
            "experiment": self.experiment,
            "trial_id": str(trial.trial_id),
            "attempt": int(getattr(trial, "num_failures", 0) or 0),
            "reported_at": _utc_now(),
        }
        row.update(_config_columns(trial.config))
        for name in R.RECORD_FIELDS:
            row[name] = result.get(name)
        return row

    def flush(self) -> str | None:
        """Write the buffered rows as one new part file; returns its path (None if empty)."""
        if not self._buffer:
            return None
        self._start()
        rows, self._buffer = self._buffer, []
        table = _to_table(rows, self._schema)
        stamp = _utc_now().strftime("%Y%m%dT%H%M%S%fZ")
        path = f"{self.directory}/{PART_PREFIX}{stamp}-{uuid.uuid4().hex[:8]}{PART_SUFFIX}"
        try:
            _atomic_write(self._fs, path, lambda tmp: pq.write_table(table, tmp, filesystem=self._fs))
        except Exception:
            self._buffer = rows + self._buffer  # keep them for the next flush
            logger.exception("results writer: could not write %s", path)
            return None
        return path

    def _start(self) -> None:
        """Create the folder and record this writer start in the metadata sidecar (once)."""
        if self._started:
            return
        self._fs.create_dir(self.directory, recursive=True)
        path = f"{self.directory}/{METADATA_FILE}"
        now = _utc_now().isoformat()
        run = {
            "started_at": now,
            "versions": library_versions(),
            "git_revision": git_revision(),
            "columns": self._schema.names,
        }
        metadata: dict[str, Any] = {}
        text = _read_text(self._fs, path)
        if text is not None:
            try:
                metadata = json.loads(text)
            except ValueError:
                logger.warning("results writer: unreadable %s; rewriting it", path)
                metadata = {}
        metadata.setdefault("experiment", self.experiment)
        metadata.setdefault("created_at", now)
        metadata["versions"] = run["versions"]
        metadata["git_revision"] = run["git_revision"]
        metadata["metric_directions"] = dict(R.METRIC_DIRECTIONS)
        metadata["record_columns"] = list(R.RECORD_FIELDS)
        metadata["columns"] = self._schema.names
        metadata.setdefault("runs", []).append(run)
        text = json.dumps(metadata, indent=2, sort_keys=False)
        _atomic_write(self._fs, path, lambda tmp: _write_text(self._fs, tmp, text))
        self._started = True


def _config_columns(config: dict[str, Any]) -> dict[str, Any]:
    """Every SearchConfig field from a trial config (bookkeeping ``_`` keys dropped); never raises."""
    values = search_fields(dict(config))
    try:
        return SearchConfig.from_dict(values).to_dict()
    except Exception as error:  # not a valid config: keep what is there, as given
        logger.warning("results writer: trial config is not a valid SearchConfig (%s)", error)
        return {name: values.get(name) for name in SearchConfig.field_names()}


def _to_table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """Rows -> a table of exactly ``schema``; a value that does not fit its type becomes null."""
    arrays = []
    for field in schema:
        values = [row.get(field.name) for row in rows]
        try:
            arrays.append(pa.array(values, type=field.type))
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            arrays.append(pa.array([_coerce(v, field) for v in values], type=field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _coerce(value: Any, field: pa.Field) -> Any:
    try:
        pa.array([value], type=field.type)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        logger.warning(
            "results writer: %s=%r does not fit %s; stored null", field.name, value, field.type
        )
        return None
    return value
