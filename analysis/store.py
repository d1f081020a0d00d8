"""The results store: the one home of the Parquet results format.

Everything that says what a results folder looks like lives here, and nowhere else: the folder
layout, part-file names, the key columns and what they mean, the Arrow schema (built from
``SearchConfig``'s fields and the record fields), experiment-name rules, the metadata sidecar,
atomic writes and how a location (path or URI) becomes a filesystem. The writer
(``study.results``), compaction (``study.compaction``) and the reader (``analysis.results``) all
use it. Imports: pyarrow and the torch-free ``trainables.config`` / ``trainables.records`` only,
so results can be read on a machine without torch or Ray. The columns are described, with type,
unit and meaning, in docs/results.md (generated from ``SEARCH.columns``: ``python -m
analysis.store``).

Layout::

    ROOT/experiment=<name>/part-<utc stamp>[-compacted]-<uuid8>.parquet
    ROOT/experiment=<name>/_metadata.json

``ROOT`` is a local path or a URI (``s3://bucket/prefix``, ``file:///…``); the ``--results``
folder of ``study run`` holds it as ``parquet/`` and is accepted as a root too. Files whose names
do not start with ``part-`` and end with ``.parquet`` (temp files ``.part-….tmp``, the sidecar)
are never results.

Rows: one per reported epoch of a trial, at least once. Ray re-reports the epochs after a trial's
last checkpoint when it restarts the trial, so readers keep, for each ``RESULT_KEY``
(experiment, trial_id, epoch), the row with the highest ``ORDER_COLUMNS`` (attempt, then
reported_at); files keep every row of every attempt.

A format grows by adding nullable columns listed in ``ResultFormat.added``: files written before
a column existed still read (the column is null) and compact. That is where execution metadata
(``exec_path`` today) and, later, tuning context go; another result kind (e.g. evaluation rows)
is another ``ResultFormat`` with its own columns, in its own experiment folders.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.fs as pafs

from trainables import records as R
from trainables.config import ADDED_FIELDS, FIELD_DEFAULTS, FIELD_DOCS, FIELD_TYPES, SearchConfig
from trainables.eval_config import EVAL_FIELD_DOCS, EVAL_FIELD_TYPES, EvalConfig

logger = logging.getLogger(__name__)

EXPERIMENT_PREFIX = "experiment="
PART_PREFIX = "part-"
PART_SUFFIX = ".parquet"
COMPACTED_TAG = "compacted"  # in the name of a part file written by compaction
METADATA_FILE = "_metadata.json"
TUNING_FILE = "_tuning.json"  # a tuning experiment's sidecar: spec, cells, importances (study tune)
PARQUET_FOLDER = "parquet"  # study run writes RESULTS/parquet/experiment=<name>/

KEY_COLUMNS = ("experiment", "trial_id", "attempt", "reported_at")  # first columns of every row
RESULT_KEY = ("experiment", "trial_id", "epoch")  # one result; several rows = re-reports
ORDER_COLUMNS = ("attempt", "reported_at")  # among one result's rows the highest wins
TRIAL_KEY = ("experiment", "trial_id")  # one trial = one search
CONFIG_COLUMNS: tuple[str, ...] = SearchConfig.field_names()
RECORD_COLUMNS: tuple[str, ...] = R.RECORD_FIELDS
ALPHA_COLUMNS: tuple[str, ...] = (*R.ALPHA.values(), *R.ALPHA_GRAD.values())

_CLASH = set(RECORD_COLUMNS) & set(CONFIG_COLUMNS) | set(KEY_COLUMNS) & (
    set(RECORD_COLUMNS) | set(CONFIG_COLUMNS)
)
if _CLASH:  # a row is keys + config + record: a shared name would lose one of them
    raise RuntimeError(f"column names {sorted(_CLASH)} are used twice; rename them")


# ---------------------------------------------------------------------- columns and schema
class Column(NamedTuple):
    """One column: Arrow type, group (key | config | record | execution), unit, meaning."""

    name: str
    type: pa.DataType
    group: str
    unit: str
    meaning: str
    nullable: bool = True


_ARROW_BASE: dict[type, pa.DataType] = {
    str: pa.string(),
    int: pa.int64(),
    float: pa.float64(),
    bool: pa.bool_(),
}
_ARROW_KIND: dict[str, pa.DataType] = {
    "int": pa.int64(),
    "float": pa.float64(),
    "str": pa.string(),
    "matrix": pa.list_(pa.list_(pa.float64())),
}
_KEYS = (
    Column("experiment", pa.string(), "key", "", "experiment name (its folder)", False),
    Column("trial_id", pa.string(), "key", "", "Ray Tune trial id: one search (one evaluation)", False),
    Column("attempt", pa.int64(), "key", "", "failures of the trial before this row (0 = first run)",
           False),
    Column("reported_at", pa.timestamp("us", tz="UTC"), "key", "UTC",
           "when the driver received the result", False),
)


# The tuning context of a row written by ``study tune`` (null for ``study run`` rows). A trial's
# config carries each as ``"_" + column`` (bookkeeping keys never reach a SearchConfig).
_TUNING = (
    Column("tune_study", pa.string(), "tuning", "", "Optuna study of the row's cell: '<experiment>:<cell>'"),
    Column("tune_cell", pa.string(), "tuning", "", "the cell: its [axes] values, 'key=value, ...' ('all' without axes)"),
    Column("tune_sample", pa.int64(), "tuning", "", "sample number in the cell's study (Optuna trial number, 0-based)"),
    Column("tune_sampler_seed", pa.int64(), "tuning", "", "seed of the tuning sampler given in the spec"),
    Column("tune_objective", pa.string(), "tuning", "", "record column the tuning optimises for this cell"),
    Column("tune_epoch", pa.string(), "tuning", "", "which epoch's value is the objective: 'final' or 'best'"),
    Column("tune_direction", pa.string(), "tuning", "", "'max' or 'min': the objective's direction"),
)
TUNING_COLUMNS: tuple[str, ...] = tuple(c.name for c in _TUNING)


def _search_columns() -> tuple[Column, ...]:
    config = tuple(
        Column(name, _ARROW_BASE[FIELD_TYPES[name].base], "config", *FIELD_DOCS[name])
        for name in CONFIG_COLUMNS
    )
    record = tuple(
        Column(
            name,
            _ARROW_KIND[field.kind],
            "execution" if name in R.EXECUTION_FIELDS else "record",
            field.unit,
            field.meaning,
        )
        for name, field in R.FIELDS.items()
    )
    return (*_KEYS, *config, *record, *_TUNING)


@dataclass(frozen=True)
class ResultFormat:
    """The columns of one kind of result row and the columns added since its first files."""

    kind: str
    columns: tuple[Column, ...]
    added: tuple[str, ...] = ()
    defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # for added columns
    directions: Mapping[str, str] = dataclasses.field(default_factory=dict)  # metric: max | min

    def record_columns(self) -> list[str]:
        """The columns a trainable reports (record and execution groups), in order."""
        return [c.name for c in self.columns if c.group in ("record", "execution")]

    def config_columns(self) -> list[str]:
        """The columns copied from a trial's config, in order."""
        return [c.name for c in self.columns if c.group == "config"]

    def schema(self) -> pa.Schema:
        """The schema of every part file written today: the columns, in order."""
        return pa.schema([pa.field(c.name, c.type, nullable=c.nullable) for c in self.columns])

    def is_older(self, schema: pa.Schema) -> bool:
        """Whether ``schema`` is today's schema less some ``added`` columns (an older file)."""
        current = self.schema()
        absent = set(current.names) - set(schema.names)
        if not absent or not absent <= set(self.added):
            return False
        return schema.equals(pa.schema([f for f in current if f.name not in absent]))

    def is_readable(self, schema: pa.Schema) -> bool:
        """Today's schema or an older one (``is_older``)."""
        return schema.equals(self.schema()) or self.is_older(schema)

    def conform(self, table: pa.Table) -> pa.Table:
        """``table`` (today's schema or an older one) in today's schema; the added columns it
        lacks hold their ``defaults`` value, else nulls."""
        schema = self.schema()
        if table.schema.equals(schema):
            return table
        columns = [
            table.column(f.name) if f.name in table.column_names else self._missing(f, len(table))
            for f in schema
        ]
        return pa.Table.from_arrays(columns, schema=schema)

    def _missing(self, field: pa.Field, rows: int) -> pa.Array:
        if field.name in self.defaults:
            return pa.array([self.defaults[field.name]] * rows, type=field.type)
        return pa.nulls(rows, field.type)


# Search rows: keys, every SearchConfig field, every record field, the tuning context. exec_path,
# the tuning columns and the SearchConfig fields below came later. A config field added later has
# a default that means what every search before it did, so older files read with that default
# (not null): their rows keep their meaning and group with new rows of the same search.
ADDED_CONFIG_FIELDS = ADDED_FIELDS
SEARCH = ResultFormat(
    "search",
    _search_columns(),
    added=(R.EXEC_PATH, *TUNING_COLUMNS, *ADDED_CONFIG_FIELDS),
    defaults={name: FIELD_DEFAULTS[name] for name in ADDED_CONFIG_FIELDS},
    directions=R.METRIC_DIRECTIONS,
)


def _evaluation_columns() -> tuple[Column, ...]:
    config = tuple(
        Column(name, _ARROW_BASE[EVAL_FIELD_TYPES[name].base], "config", *EVAL_FIELD_DOCS[name])
        for name in EvalConfig.field_names()
    )
    record = tuple(
        Column(name, _ARROW_KIND[field.kind], "record", field.unit, field.meaning)
        for name, field in R.EVAL_FIELDS.items()
    )
    return (*_KEYS, *config, *record)


# Evaluation rows (``study evaluate``): keys, every EvalConfig field, every evaluation record
# field; one row per reported epoch of a genotype trained from scratch. Their experiments sit
# beside the searches' under the same root; the sidecar's ``kind`` tells them apart.
EVALUATION = ResultFormat("evaluation", _evaluation_columns(), directions=R.EVAL_METRIC_DIRECTIONS)
FORMATS: dict[str, ResultFormat] = {fmt.kind: fmt for fmt in (SEARCH, EVALUATION)}
_EVAL_CLASH = set(R.EVAL_RECORD_FIELDS) & set(EvalConfig.field_names()) | set(KEY_COLUMNS) & (
    set(R.EVAL_RECORD_FIELDS) | set(EvalConfig.field_names())
)
if _EVAL_CLASH:
    raise RuntimeError(f"evaluation column names {sorted(_EVAL_CLASH)} are used twice; rename them")


def result_format(kind: str) -> ResultFormat:
    """The format of result kind ``kind`` ('search' | 'evaluation'); ``ValueError`` otherwise."""
    try:
        return FORMATS[kind]
    except KeyError:
        raise ValueError(f"unknown result kind {kind!r}; known: {list(FORMATS)}") from None


def results_schema() -> pa.Schema:
    """The schema of every search part file: keys, config fields, record fields, tuning context."""
    return SEARCH.schema()


def rows_to_table(rows: Sequence[dict[str, Any]], schema: pa.Schema,
                  on_misfit: Callable[[str, Any], None] | None = None) -> pa.Table:
    """Rows (dicts) -> a table of exactly ``schema``; a value that does not fit its column's
    type becomes null (``on_misfit(column, value)`` is told), a missing key is null."""
    arrays = []
    for field in schema:
        values = [row.get(field.name) for row in rows]
        try:
            arrays.append(pa.array(values, type=field.type))
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            arrays.append(pa.array([_fit(v, field, on_misfit) for v in values], type=field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _fit(value: Any, field: pa.Field, on_misfit: Callable[[str, Any], None] | None) -> Any:
    try:
        pa.array([value], type=field.type)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        if on_misfit is not None:
            on_misfit(field.name, value)
        return None
    return value


# ---------------------------------------------------------------------- names
def check_experiment_name(experiment: str) -> str:
    """``experiment`` if it is a usable folder-name part, else ``ValueError`` saying why."""
    bad = (
        not isinstance(experiment, str)
        or not experiment
        or experiment in (".", "..")
        or any(c in experiment for c in "/\\=")
    )
    if bad:
        raise ValueError(
            f"experiment={experiment!r} must be a non-empty name without '/', '\\' or '='"
        )
    return experiment


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_part_name(tag: str = "") -> str:
    """A fresh part-file name: ``part-<utc stamp>[-<tag>]-<uuid8>.parquet`` (sorts by time)."""
    stamp = utc_now().strftime("%Y%m%dT%H%M%S%fZ")
    middle = f"-{tag}" if tag else ""
    return f"{PART_PREFIX}{stamp}{middle}-{uuid.uuid4().hex[:8]}{PART_SUFFIX}"


def is_part_file(name: str) -> bool:
    return name.startswith(PART_PREFIX) and name.endswith(PART_SUFFIX)


# ---------------------------------------------------------------------- locations
def resolve_location(root: str | os.PathLike) -> tuple[pafs.FileSystem, str]:
    """The one place a root becomes (filesystem, path): URIs via ``FileSystem.from_uri``,
    anything else is a local path (made absolute)."""
    text = os.fspath(root)
    if "://" in text:
        return pafs.FileSystem.from_uri(text)
    return pafs.LocalFileSystem(), os.path.abspath(text).replace(os.sep, "/")


def experiment_dir(base: str, experiment: str) -> str:
    """The folder of ``experiment`` under the dataset root path ``base``."""
    return f"{base.rstrip('/')}/{EXPERIMENT_PREFIX}{check_experiment_name(experiment)}"


def _children(fs: pafs.FileSystem, path: str) -> list[pafs.FileInfo]:
    return fs.get_file_info(pafs.FileSelector(path, recursive=False))


def _dataset_base(fs: pafs.FileSystem, base: str) -> str:
    """``base`` if it holds experiment folders; else ``base/parquet`` when that is a folder, so
    the ``--results`` folder of ``study run`` works as well as its ``parquet`` subfolder."""
    if any(c.base_name.startswith(EXPERIMENT_PREFIX) for c in _children(fs, base)):
        return base
    nested = f"{base.rstrip('/')}/{PARQUET_FOLDER}"
    if fs.get_file_info(nested).type == pafs.FileType.Directory:
        return nested
    return base


def experiment_folders(
    root: str | os.PathLike, experiments: Sequence[str] | None = None
) -> tuple[pafs.FileSystem, dict[str, str]]:
    """The filesystem and ``{experiment: folder path}`` under a results root (the dataset root,
    the ``--results`` folder of ``study run`` holding ``parquet/``, or a URI), restricted to
    ``experiments`` when given. A missing root or experiment raises ``FileNotFoundError``."""
    fs, base = resolve_location(root)
    if fs.get_file_info(base).type != pafs.FileType.Directory:
        raise FileNotFoundError(f"results root {root!s} does not exist or is not a directory")
    base = _dataset_base(fs, base)
    folders = {
        child.base_name[len(EXPERIMENT_PREFIX) :]: child.path
        for child in _children(fs, base)
        if child.type == pafs.FileType.Directory and child.base_name.startswith(EXPERIMENT_PREFIX)
    }
    if experiments is not None:
        missing = sorted(set(experiments) - set(folders))
        if missing:
            raise FileNotFoundError(
                f"no results for experiment(s) {missing} under {root!s}; found {sorted(folders)}"
            )
        folders = {name: folders[name] for name in experiments}
    return fs, folders


def part_files(fs: pafs.FileSystem, folder: str) -> list[str]:
    """The part files in an experiment folder now, sorted by name (temp files and the sidecar
    are not part files)."""
    return sorted(
        child.path
        for child in _children(fs, folder)
        if child.type == pafs.FileType.File and is_part_file(child.base_name)
    )


# ---------------------------------------------------------------------- writing
def atomic_write(fs: pafs.FileSystem, path: str, write: Callable[[str], None]) -> None:
    """Write via ``write(tmp_path)`` to a hidden temp file in ``path``'s folder, then move it
    into place (a rename on local and NFS storage; copy + delete on object stores). Readers
    never see a partial file: the temp name is not a part file."""
    folder, name = path.rsplit("/", 1)
    tmp = f"{folder}/.{name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        write(tmp)
        fs.move(tmp, path)
    finally:
        if fs.get_file_info(tmp).type != pafs.FileType.NotFound:
            fs.delete_file(tmp)


def read_text(fs: pafs.FileSystem, path: str) -> str | None:
    """The text of ``path``, or None when it is not a file."""
    if fs.get_file_info(path).type != pafs.FileType.File:
        return None
    with fs.open_input_stream(path) as stream:
        return stream.read().decode()


def write_text_atomic(fs: pafs.FileSystem, path: str, text: str) -> None:
    def write(tmp: str) -> None:
        with fs.open_output_stream(tmp) as stream:
            stream.write(text.encode())

    atomic_write(fs, path, write)


def record_run(
    fs: pafs.FileSystem, folder: str, experiment: str, run: dict[str, Any], fmt: ResultFormat = SEARCH
) -> None:
    """Append ``run`` (a writer start: time, versions, git revision) to the experiment's
    metadata sidecar ``_metadata.json``, creating it if needed; an unreadable sidecar is
    rewritten. The sidecar also names the result kind, its columns and the metric directions."""
    path = f"{folder}/{METADATA_FILE}"
    metadata: Any = {}
    text = read_text(fs, path)
    if text is not None:
        try:
            metadata = json.loads(text)
        except ValueError:
            metadata = None
        if not isinstance(metadata, dict):
            logger.warning("results store: unreadable %s; rewriting it", path)
            metadata = {}
    metadata.setdefault("experiment", experiment)
    metadata.setdefault("created_at", run.get("started_at", utc_now().isoformat()))
    metadata["kind"] = fmt.kind
    for key in ("versions", "git_revision"):
        if key in run:
            metadata[key] = run[key]
    metadata["metric_directions"] = dict(fmt.directions)
    metadata["record_columns"] = fmt.record_columns()
    metadata["columns"] = fmt.schema().names
    metadata.setdefault("runs", []).append(run)
    write_text_atomic(fs, path, json.dumps(metadata, indent=2, sort_keys=False))


def read_metadata(fs: pafs.FileSystem, folder: str) -> dict[str, Any]:
    """The experiment sidecar ``_metadata.json`` in ``folder`` ({} when missing or unreadable);
    ``metadata_kind`` and ``metadata_superseded`` read it."""
    text = read_text(fs, f"{folder}/{METADATA_FILE}")
    if text is None:
        return {}
    try:
        metadata = json.loads(text)
    except ValueError:
        return {}
    return metadata if isinstance(metadata, dict) else {}


def record_superseded(
    fs: pafs.FileSystem, folder: str, experiment: str, trial_ids: Sequence[str], reason: str
) -> None:
    """Mark ``trial_ids`` of the experiment as superseded in its sidecar (key ``superseded``:
    trial id -> when and why). Their rows stay in the part files; ``load_results`` leaves them
    out, because their grid entries were started again under new trial ids (``study run
    --restart``)."""
    fs.create_dir(folder, recursive=True)
    path = f"{folder}/{METADATA_FILE}"
    metadata = read_metadata(fs, folder)
    metadata.setdefault("experiment", experiment)
    marked = metadata.setdefault("superseded", {})
    now = utc_now().isoformat(timespec="seconds")
    for trial_id in trial_ids:
        marked.setdefault(str(trial_id), {"at": now, "reason": reason})
    write_text_atomic(fs, path, json.dumps(metadata, indent=2, sort_keys=False))


def metadata_kind(metadata: Mapping[str, Any]) -> str:
    """The result kind a sidecar names; 'search' when it names none (experiments written before
    there were other kinds, or without a sidecar)."""
    kind = metadata.get("kind", SEARCH.kind)
    return kind if kind in FORMATS else SEARCH.kind


def metadata_superseded(metadata: Mapping[str, Any]) -> frozenset[str]:
    """Trial ids a sidecar marks superseded (``record_superseded``)."""
    marked = metadata.get("superseded", {})
    return frozenset(str(t) for t in marked) if isinstance(marked, dict) else frozenset()


def experiment_kind(fs: pafs.FileSystem, folder: str) -> str:
    """The result kind of the experiment in ``folder`` (``metadata_kind`` of its sidecar)."""
    return metadata_kind(read_metadata(fs, folder))


def superseded_trials(fs: pafs.FileSystem, folder: str) -> frozenset[str]:
    """Trial ids of the experiment in ``folder`` marked superseded (``record_superseded``)."""
    return metadata_superseded(read_metadata(fs, folder))


def write_tuning(fs: pafs.FileSystem, folder: str, payload: dict[str, Any]) -> None:
    """Write a tuning experiment's sidecar ``_tuning.json`` (atomically, replacing it)."""
    write_text_atomic(fs, f"{folder}/{TUNING_FILE}", json.dumps(payload, indent=2, sort_keys=False))


def read_tuning(
    root: str | os.PathLike, experiments: Sequence[str] | None = None
) -> dict[str, dict[str, Any]]:
    """``{experiment: sidecar}`` of every tuning experiment under ``root`` (those with a
    ``_tuning.json``); an unreadable sidecar raises ``ValueError`` naming it. The sidecar's format
    is documented in docs/results.md ("Tuning experiments")."""
    fs, folders = experiment_folders(root, experiments)
    found: dict[str, dict[str, Any]] = {}
    for name, folder in sorted(folders.items()):
        path = f"{folder}/{TUNING_FILE}"
        text = read_text(fs, path)
        if text is None:
            continue
        try:
            payload = json.loads(text)
        except ValueError as error:
            raise ValueError(f"bad tuning sidecar {path}: not JSON ({error})") from error
        if not isinstance(payload, dict) or not isinstance(payload.get("cells"), dict):
            raise ValueError(f"bad tuning sidecar {path}: no 'cells' table")
        found[name] = payload
    return found


# ---------------------------------------------------------------------- documentation
def columns_markdown(fmt: ResultFormat = SEARCH) -> str:
    """The column table of docs/results.md: name, Arrow type, group, unit, meaning."""
    lines = ["| column | type | group | unit | meaning |", "| --- | --- | --- | --- | --- |"]
    for c in fmt.columns:
        nullable = "" if c.nullable else ", not null"
        meaning = c.meaning.replace("|", "\\|")
        added = " (added later: null in older files)" if c.name in fmt.added else ""
        if c.name in fmt.defaults:
            added = f" (added later: older files read as {fmt.defaults[c.name]!r})"
        lines.append(f"| `{c.name}` | {c.type}{nullable} | {c.group} | {c.unit} | {meaning}{added} |")
    return "\n".join(lines) + "\n"


DOC_START = "<!-- columns:start (generated by python -m analysis.store docs/results.md) -->"
DOC_END = "<!-- columns:end -->"
# The generated tables of docs/results.md: each format's column table between its markers.
DOC_MARKERS: dict[str, tuple[str, str]] = {
    SEARCH.kind: (DOC_START, DOC_END),
    EVALUATION.kind: (
        "<!-- evaluation-columns:start (generated by python -m analysis.store docs/results.md) -->",
        "<!-- evaluation-columns:end -->",
    ),
}


def update_doc(path: str | os.PathLike) -> bool:
    """Rewrite each format's column table between its ``DOC_MARKERS`` in the Markdown file
    ``path``; returns whether the file changed."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    new = text
    for kind, (start, end) in DOC_MARKERS.items():
        head, found, rest = new.partition(start)
        _, found_end, tail = rest.partition(end)
        if not found or not found_end:
            raise ValueError(f"{path} lacks the markers {start!r} ... {end!r}")
        new = f"{head}{start}\n{columns_markdown(FORMATS[kind])}{end}{tail}"
    if new != text:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(new)
    return new != text


if __name__ == "__main__":  # python -m analysis.store [DOC.md]: print, or rewrite DOC's table
    import sys

    if len(sys.argv) > 1:
        print("updated" if update_doc(sys.argv[1]) else "up to date", sys.argv[1])
    else:
        print(columns_markdown(), end="")
