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

import importlib.metadata
import logging
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from ray import tune

from analysis import store
from study.compaction import compact_experiment
from trainables import records as R
from trainables.config import SearchConfig
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

    def __init__(self, root: str | os.PathLike, experiment: str, *, flush_every: int = 50) -> None:
        if flush_every < 1:
            raise ValueError(f"flush_every={flush_every} must be >= 1")
        self.experiment = store.check_experiment_name(experiment)
        self.flush_every = flush_every
        self._locate(os.fspath(root))
        _CURRENT_ROOTS[self.experiment] = self.root
        self._schema = store.results_schema()
        self._buffer: list[dict[str, Any]] = []
        self._started = False

    def _locate(self, root: str) -> None:
        self.root = root
        self._fs, base = store.resolve_location(root)
        self.directory = store.experiment_dir(base, self.experiment)

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
        self._schema = store.results_schema()
        self._locate(_CURRENT_ROOTS.get(self.experiment, self.root))

    # ------------------------------------------------------------------ rows and files
    def _row(self, trial, result: dict[str, Any]) -> dict[str, Any]:
        row: dict[str, Any] = {
            "experiment": self.experiment,
            "trial_id": str(trial.trial_id),
            "attempt": int(getattr(trial, "num_failures", 0) or 0),
            "reported_at": store.utc_now(),
        }
        row.update(_config_columns(trial.config))
        for name in R.RECORD_FIELDS:
            row[name] = result.get(name)
        for name in store.TUNING_COLUMNS:  # study tune's context, carried as "_" + name
            row[name] = trial.config.get(f"_{name}")
        return row

    def flush(self) -> str | None:
        """Write the buffered rows as one new part file; returns its path (None if empty)."""
        if not self._buffer:
            return None
        self._start()
        rows, self._buffer = self._buffer, []
        table = store.rows_to_table(rows, self._schema, _warn_misfit)
        path = f"{self.directory}/{store.new_part_name()}"
        try:
            store.atomic_write(
                self._fs, path, lambda tmp: pq.write_table(table, tmp, filesystem=self._fs)
            )
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
        run = {
            "started_at": store.utc_now().isoformat(),
            "versions": library_versions(),
            "git_revision": git_revision(),
            "columns": self._schema.names,
        }
        store.record_run(self._fs, self.directory, self.experiment, run)
        self._started = True


def _config_columns(config: dict[str, Any]) -> dict[str, Any]:
    """Every SearchConfig field from a trial config (bookkeeping ``_`` keys dropped); never raises."""
    values = search_fields(dict(config))
    try:
        return SearchConfig.from_dict(values).to_dict()
    except Exception as error:  # not a valid config: keep what is there, as given
        logger.warning("results writer: trial config is not a valid SearchConfig (%s)", error)
        return {name: values.get(name) for name in SearchConfig.field_names()}


def _warn_misfit(column: str, value: Any) -> None:
    logger.warning("results writer: %s=%r does not fit its column type; stored null", column, value)
