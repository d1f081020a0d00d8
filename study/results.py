"""The results writer: a Ray Tune callback that turns every reported epoch into one Parquet row.

It runs on the driver (the single writer). Each Tune result of ``trainables.tune_trainable`` is
one epoch record; the writer buffers one row per result — experiment, trial id, attempt, report
time, every ``SearchConfig`` field and every record field — and flushes the buffer as a new,
atomically written part file at every checkpoint, trial end (completion or error), experiment
end and whenever ``flush_every`` rows are waiting, so a driver crash loses nothing flushed. The
folder layout, file names, schema and key columns are the results store's
(``analysis.store``, the one home of the format).

Rows are never de-duplicated here: Ray delivers results at least once (a restarted trial
re-reports the epochs after its last checkpoint), so the same (experiment, trial_id, epoch) may
appear in several files, distinguished by ``attempt`` (how many times the trial had failed when
the result arrived, ``Trial.num_failures``, which survives ``Tuner.restore``) and
``reported_at``. ``analysis.results.load_results`` keeps the last attempt.

At experiment end the writer merges the experiment's part files into one
(``study.compaction``, lossless: every row of every attempt), so a long grid does not leave tens
of thousands of small files; ``study compact`` does it after a killed driver.
"""

from __future__ import annotations

import errno
import importlib.metadata
import json
import logging
import os
import pickle
import platform
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from ray import tune

from analysis import store
from study.compaction import compact_experiment
from trainables.checkpoints import CheckpointDiskFull, is_disk_full
from trainables.config import SearchConfig
from trainables.eval_config import EvalConfig
from trainables.tune_trainable import search_fields

logger = logging.getLogger(__name__)

_LIBRARIES = ("torch", "ray", "pyarrow", "pandas", "numpy")


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


# experiment -> results root of the writer the running command built (this process only). On a
# rerun, ``Tuner.restore`` unpickles the first run's writer with the first run's root; the
# restored writer takes the current command's root from here instead (see __setstate__), so a
# copied or moved results folder, or one mounted at another path, gets the rerun's rows.
_CURRENT_ROOTS: dict[str, str] = {}


class ResultsDiskFull(OSError):
    """The results writer could not write a part file because the disk is full (``errno``
    ENOSPC or EDQUOT; ``filename``: the file). Raised from the writer's Tune hooks to end the
    run; the rows it could not write stay in ``ParquetResultsWriter._buffer``."""


class ParquetResultsWriter(tune.Callback):
    """Ray Tune callback writing one row per reported result to ``root/experiment=<name>/``.

    ``flush_every`` bounds the rows held in memory between the event-driven flushes. The writer
    only ever writes inside its own experiment folder (created, with ``root``, if missing).
    Malformed results (a missing field, a value of the wrong type) become nulls with a logged
    warning; they never raise inside the Tune loop.

    Its location always comes from the current command: constructing a writer registers its
    root for its experiment in this process, and a writer unpickled from an earlier run's saved
    state (``Tuner.restore``) writes to that registered root, not to the one it was saved with.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        experiment: str,
        *,
        flush_every: int = 50,
        kind: str = store.SEARCH.kind,
    ) -> None:
        if flush_every < 1:
            raise ValueError(f"flush_every={flush_every} must be >= 1")
        self.experiment = store.check_experiment_name(experiment)
        self.flush_every = flush_every
        self.kind = store.result_format(kind).kind
        self._locate(os.fspath(root))
        _CURRENT_ROOTS[self.experiment] = self.root
        self._schema = self.format.schema()
        self._buffer: list[dict[str, Any]] = []
        self._started = False
        self.storage_error: ResultsDiskFull | None = None  # set when the disk was found full

    @property
    def format(self) -> store.ResultFormat:
        """The result format this writer writes (``kind``: search or evaluation rows)."""
        return store.result_format(getattr(self, "kind", store.SEARCH.kind))

    def _locate(self, root: str) -> None:
        self.root = root
        self._fs, base = store.resolve_location(root)
        self.directory = store.experiment_dir(base, self.experiment)

    # ------------------------------------------------------------------ Tune callback hooks
    def setup(self, stop=None, num_samples=None, total_num_samples=None, **info) -> None:
        try:
            self._start()
        except OSError as error:
            if not is_disk_full(error):
                raise
            self._disk_full(error, self.directory)
        self._stop_if_disk_full()

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        try:
            self._buffer.append(self._row(trial, result))
        except Exception:  # the Tune loop must not die for a results row
            logger.exception("results writer: could not build a row for trial %s", trial)
            return
        if len(self._buffer) >= self.flush_every:
            self.flush()
        self._stop_if_disk_full()

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info) -> None:
        # Raising here makes Tune log the error and not record this checkpoint: a resumed trial
        # then starts from an earlier one, whose rows were all written.
        self.flush()
        self._stop_if_disk_full()

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self.flush()
        self._stop_if_disk_full()

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self.flush()
        self._stop_if_disk_full()

    def on_step_begin(self, iteration, trials, **info) -> None:
        self._stop_if_disk_full()

    def on_step_end(self, iteration, trials, **info) -> None:
        self._stop_if_disk_full()

    def on_experiment_end(self, trials, **info) -> None:
        # Tune calls this also while it shuts down after a hook raised: never raise a second
        # time, and never compact onto a full disk.
        known = self.storage_error is not None
        self.flush()
        if self.storage_error is not None:
            if not known:
                self._stop_if_disk_full()
            return
        if not self._started:  # nothing was ever written
            return
        try:  # merge this experiment's many small part files into one (study.compaction)
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
        state["storage_error"] = None
        state["_schema"] = None
        state["_fs"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("kind", store.SEARCH.kind)  # saved before writers had kinds
        self._schema = self.format.schema()
        self._locate(_CURRENT_ROOTS.get(self.experiment, self.root))

    # ------------------------------------------------------------------ rows and files
    def _row(self, trial, result: dict[str, Any]) -> dict[str, Any]:
        row: dict[str, Any] = {
            "experiment": self.experiment,
            "trial_id": str(trial.trial_id),
            "attempt": int(getattr(trial, "num_failures", 0) or 0),
            "reported_at": store.utc_now(),
        }
        fmt = self.format
        row.update(_config_columns(trial.config, fmt))
        for name in fmt.record_columns():
            row[name] = result.get(name)
        for column in fmt.columns:  # study tune's context, carried as "_" + name
            if column.group == "tuning":
                row[column.name] = trial.config.get(f"_{column.name}")
        return row

    def flush(self) -> str | None:
        """Write the buffered rows as one new part file; returns its path (None if empty or
        not written: the rows then stay buffered for the next flush). A full disk also sets
        ``storage_error`` (the writer's hooks then stop the run)."""
        if not self._buffer:
            return None
        rows, self._buffer = self._buffer, []
        path = f"{self.directory}/{store.new_part_name()}"
        try:
            self._start()
            table = store.rows_to_table(rows, self._schema, _warn_misfit)
            store.atomic_write(
                self._fs, path, lambda tmp: pq.write_table(table, tmp, filesystem=self._fs)
            )
        except Exception as error:
            self._buffer = rows + self._buffer  # keep them for the next flush
            if is_disk_full(error):
                self._disk_full(error, path)
            else:
                logger.exception("results writer: could not write %s", path)
            return None
        return path

    def _disk_full(self, error: BaseException, path: str) -> None:
        """Remember that the disk is full (the first time: log it once)."""
        if self.storage_error is not None:
            return
        waiting = len(self._buffer)
        self.storage_error = ResultsDiskFull(
            getattr(error, "errno", None) or errno.ENOSPC,
            f"the disk is full: could not write the results file {path} ({error})"
            + (
                f"; its {waiting} row(s) are reported again when the run resumes" if waiting else ""
            ),
            path,
        )
        logger.error("results writer: %s; stopping the run", self.storage_error.strerror)

    def _stop_if_disk_full(self) -> None:
        error = self.storage_error
        if error is not None:  # a new exception each time: one raise, one clean traceback
            raise ResultsDiskFull(error.errno, error.strerror, error.filename)

    def _start(self) -> None:
        """Create the folder and record this writer start in the metadata sidecar (once)."""
        if self._started:
            return
        self._fs.create_dir(self.directory, recursive=True)
        run = {
            "started_at": store.utc_now().isoformat(),
            "versions": library_versions(),
            "git_revision": git_revision(),
            "columns": self._schema.names,
        }
        store.record_run(self._fs, self.directory, self.experiment, run, self.format)
        self._started = True


# Free space below which a results or Tune folder counts as full when Ray fails reading back
# its own files (an empty or cut-short pickle is what a full disk leaves behind).
LOW_SPACE_BYTES = 64 * 2**20
DISK_FULL_EXIT = 3  # exit status of a run stopped by a full disk (space must be freed first)


def storage_failure_message(
    error: BaseException, locations: Sequence[str | os.PathLike]
) -> str | None:
    """The message for the user when ``error`` (escaping ``Tuner.fit()``, or a trial's error)
    comes from a full disk; None when it does not.

    ``locations``: where the run writes, e.g. the Parquet root and the Tune experiment folder
    (``RESULTS/tune/NAME``). A full disk shows as an ``OSError`` with errno ENOSPC or EDQUOT
    anywhere in the chain of ``error`` (its ``__cause__`` / ``__context__``, a Ray task error's
    ``cause``): the writer's ``ResultsDiskFull``, a trial's ``CheckpointDiskFull``, or Tune
    failing to save its state. It also shows as Ray failing to read back a file it wrote on the
    full disk (``EOFError``, ``pickle.UnpicklingError``: e.g. an empty ``error.pkl``); that
    counts only when a local location has less than ``LOW_SPACE_BYTES`` free. The message names
    the path, says the disk is full, that every row written so far is kept, and how to go on;
    when the full disk also cut short Tune's saved experiment state in a location (so a plain
    rerun cannot resume), it says to rerun with ``--restart`` instead.
    """
    chain = list(_exception_chain(error))
    full = next((e for e in chain if is_disk_full(e)), None)
    unreadable = next((e for e in chain if isinstance(e, EOFError | pickle.UnpicklingError)), None)
    if isinstance(full, ResultsDiskFull | CheckpointDiskFull):  # they say it all themselves
        what = str(full.strerror)
    elif isinstance(full, OSError):
        path = full.filename or next((os.fspath(p) for p in locations), "a file")
        what = f"the disk is full: could not write {path} ({full.strerror or full})"
    elif unreadable is not None:
        low = [(loc, free) for loc in locations if (free := _free_bytes(loc)) is not None]
        low = [(loc, free) for loc, free in low if free < LOW_SPACE_BYTES]
        if not low:
            return None
        location, free = low[0]
        what = (
            f"the disk holding {os.fspath(location)} is full ({free / 2**20:.1f} MiB free), "
            f"and Ray could not read back a file it had written there "
            f"({type(unreadable).__name__}: {unreadable})"
        )
    else:
        return None
    damaged = next(filter(None, map(_damaged_tune_state, locations)), None)
    return _disk_full_message(what, damaged)


def _disk_full_message(what: str, damaged_state: str | None = None) -> str:
    lines = [
        f"{what[:1].upper()}{what[1:]}.",
        "The run stopped. Every result row written so far is kept.",
    ]
    if damaged_state is None:
        lines.append(
            "To go on: free space on that disk, then run the same command again: finished "
            "trials are not rerun, the others resume from their last intact checkpoint."
        )
    else:
        lines.append(
            f"The full disk also cut short Ray Tune's saved state of the run ({damaged_state}), "
            "so the trials cannot resume from it. To go on: free space on that disk, then run "
            "the same command again with --restart: the rows already written are kept and "
            "trials that finished are not run again."
        )
    return "\n".join(lines)


def _damaged_tune_state(location: str | os.PathLike) -> str | None:
    """The newest Tune experiment state file in local folder ``location`` (the one a restore
    reads) when it is not valid JSON; None when it is, or when there is none."""
    text = os.fspath(location)
    if "://" in text and not text.startswith("file://"):
        return None
    states = sorted(Path(text.removeprefix("file://")).glob("experiment_state-*.json"))
    if not states:
        return None
    try:
        json.loads(states[-1].read_bytes())
    except (OSError, ValueError):
        return str(states[-1])
    return None


def _exception_chain(error: BaseException) -> Iterator[BaseException]:
    """``error`` and every exception it wraps (cause, context, a Ray task error's cause)."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [error]
    while todo:
        current = todo.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        wrapped = getattr(current, "cause", None)  # ray.exceptions.RayTaskError
        todo += [
            current.__cause__,
            current.__context__,
            wrapped if isinstance(wrapped, BaseException) else None,
        ]


def _free_bytes(location: str | os.PathLike) -> int | None:
    """Free bytes on the disk holding local folder ``location`` (its nearest existing parent),
    None for a URI or when unknown."""
    text = os.fspath(location)
    if "://" in text and not text.startswith("file://"):
        return None
    path = Path(text.removeprefix("file://")).expanduser().absolute()
    for folder in (path, *path.parents):
        if folder.exists():
            try:
                return shutil.disk_usage(folder).free
            except OSError:
                return None
    return None


# The config class of each result kind's trials.
CONFIG_CLASSES: dict[str, type[SearchConfig] | type[EvalConfig]] = {
    store.SEARCH.kind: SearchConfig,
    store.EVALUATION.kind: EvalConfig,
}


def _config_columns(config: dict[str, Any], fmt: store.ResultFormat = store.SEARCH) -> dict[str, Any]:
    """Every config field from a trial config (bookkeeping ``_`` keys dropped), normalised by the
    kind's config class; never raises."""
    values = search_fields(dict(config))
    cls = CONFIG_CLASSES[fmt.kind]
    try:
        return cls.from_dict(values).to_dict()
    except Exception as error:  # not a valid config: keep what is there, as given
        logger.warning("results writer: trial config is not a valid %s (%s)", cls.__name__, error)
        return {name: values.get(name) for name in fmt.config_columns()}


def _warn_misfit(column: str, value: Any) -> None:
    logger.warning("results writer: %s=%r does not fit its column type; stored null", column, value)
