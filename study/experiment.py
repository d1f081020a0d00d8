"""An experiment's guards on the driver: one driver at a time, the grid it was started with, and
the health of Tune's saved state. All of it runs before Ray starts.

Tune keeps an experiment's state under ``RESULTS/tune/NAME`` (``study.runner.experiment_path``).
Before a ``study run`` or ``study tune`` driver starts Ray it:

* takes the experiment's lock ``RESULTS/tune/NAME.lock`` (``fcntl.flock``, held until the driver
  exits). The kernel releases the lock when its holder dies, also by SIGKILL, so a dead driver
  never blocks a rerun; a second live driver exits 2 naming the first (pid, host, start time).
  Object-store results (``s3://``) cannot hold such a lock: there, one driver per experiment is
  the user's job (README);
* compares the grid with the one the experiment was started with (``RESULTS/tune/NAME/
  study-grid.json``, written when the experiment is created) and refuses a changed grid, naming
  the differences. Where data lives (``data_dir``, ``benchmark_dir``) is not part of a trial,
  and a config field added to SearchConfig later (``ADDED_FIELDS``) at its default value matches
  a stored grid that lacks it, so moved folders and older experiments still resume;
* checks Tune's saved state (``tuner.pkl``, the newest ``experiment_state-*.json`` and the other
  pickles beside it) without unpickling it, and stops on damage, saying what is damaged and how
  to go on: ``--restart`` moves the damaged state aside (``NAME.damaged-<UTC stamp>``, nothing is
  deleted), keeps every Parquet row, and starts afresh only the trials that have not finished;
  the rows of trials it starts again are marked superseded in the results store, so
  ``load_results`` shows each trial once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import errno
import json
import os
import pickletools
import re
import socket
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pyarrow.fs as pafs

from analysis import store
from trainables.config import ADDED_FIELDS, FIELD_DEFAULTS, SearchConfig
from trainables.eval_config import EvalConfig

GRID_FILE = "study-grid.json"
LOCK_SUFFIX = ".lock"
DAMAGED_TAG = ".damaged-"
LOCATION_FIELDS = ("data_dir", "benchmark_dir")  # where data lives, not what a trial is
_TUNER_PICKLE = "tuner.pkl"
_STATE_PREFIX, _STATE_SUFFIX = "experiment_state-", ".json"
_STAMPED = re.compile(r"^(.*)-\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}(\.json|\.pkl)$")
_SHOWN = 5  # differences named in a message before "and N more"


class ExperimentError(ValueError):
    """An experiment cannot be run as asked; the message says why and what to do (exit 2)."""


class ExperimentLocked(ExperimentError):
    """Another live driver runs the experiment."""


class DamagedState(ExperimentError):
    """Tune's saved state of the experiment cannot be restored."""


class GridChanged(ExperimentError):
    """The grid differs from the one the experiment was started with."""


# ---------------------------------------------------------------------- the lock
class ExperimentLock:
    """An exclusive ``flock`` on ``path`` for this process's lifetime (or until ``release``).

    The lock file holds the holder's pid, host, start time and command line (JSON), which a
    refused driver shows. Nothing else is read from it: whether the experiment is locked is the
    kernel's ``flock`` state, so a stale file of a dead holder never blocks anyone."""

    def __init__(self, path: str, experiment: str) -> None:
        import fcntl

        self.path = path
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(fd)
            if error.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            raise ExperimentLocked(
                f"experiment {experiment!r} is already being run by {_holder(path)}; two "
                "drivers would run every trial twice. Wait for that run to end or stop it (the "
                f"lock {path} is released when its process ends, also when it is killed), then "
                "rerun this command to resume"
            ) from None
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_at": store.utc_now().isoformat(timespec="seconds"),
            "command": " ".join(sys.argv),
        }
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(holder).encode())
        os.fsync(fd)
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def __enter__(self) -> ExperimentLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _holder(path: str) -> str:
    """The lock holder as the lock file describes it."""
    try:
        with open(path) as file:
            info = json.loads(file.read() or "{}")
    except (OSError, ValueError):
        info = {}
    if not isinstance(info, dict) or "pid" not in info:
        return "another driver"
    return (
        f"pid {info.get('pid')} on host {info.get('host')} since {info.get('started_at')} "
        f"({info.get('command', '?')})"
    )


def lock_experiment(tune_root: str, experiment: str) -> ExperimentLock | None:
    """The experiment's lock (``tune_root/NAME.lock``); None for object-store results, which
    cannot hold one. ``ExperimentLocked`` when another live driver holds it."""
    if "://" in tune_root:
        return None
    return ExperimentLock(f"{tune_root}/{experiment}{LOCK_SUFFIX}", experiment)


# ---------------------------------------------------------------------- the stored grid
def comparable(config: dict[str, Any]) -> dict[str, Any]:
    """What identifies a trial: its config without location fields and without later-added
    fields that are at their default value."""
    return {
        name: value
        for name, value in config.items()
        if name not in LOCATION_FIELDS
        and not (name in ADDED_FIELDS and value == FIELD_DEFAULTS.get(name))
    }


def grid_record(configs: Sequence[SearchConfig | EvalConfig], extra: dict[str, Any] | None = None) -> dict:
    """The stored form of a grid: every trial's full config (and, for a tuning spec, its
    settings under ``extra``)."""
    record: dict[str, Any] = {"trials": [c.to_dict() for c in configs]}
    if extra:
        record["extra"] = extra
    return record


def grid_differences(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Human-readable differences between two grid records (``grid_record``), empty if none."""
    old = [comparable(c) for c in stored.get("trials", [])]
    new = [comparable(c) for c in current.get("trials", [])]
    lines = []
    for index, (a, b) in enumerate(zip(old, new, strict=False)):
        changed = sorted(set(a) | set(b))
        fields = [
            f"{k} {_show(a, k)} -> {_show(b, k)}" for k in changed if a.get(k, FIELD_DEFAULTS.get(k))
            != b.get(k, FIELD_DEFAULTS.get(k))
        ]
        if fields:
            lines.append(f"trial {index}: {', '.join(fields)}")
    if len(new) > len(old):
        lines.append(f"{len(new) - len(old)} trial(s) added (grid of {len(old)} -> {len(new)})")
    elif len(old) > len(new):
        lines.append(f"{len(old) - len(new)} trial(s) removed (grid of {len(old)} -> {len(new)})")
    old_extra, new_extra = stored.get("extra", {}), current.get("extra", {})
    for key in sorted(set(old_extra) | set(new_extra)):
        if old_extra.get(key) != new_extra.get(key):
            lines.append(f"{key} {old_extra.get(key)!r} -> {new_extra.get(key)!r}")
    return lines


def _show(config: dict[str, Any], key: str) -> str:
    return repr(config.get(key, FIELD_DEFAULTS.get(key)))


def check_grid(
    fs: pafs.FileSystem, exp_dir: str, experiment: str, current: dict[str, Any]
) -> bool:
    """Refuse (``GridChanged``) a grid that differs from the stored one. Returns True when the
    experiment has no stored grid yet (the caller writes it with ``write_grid``)."""
    text = store.read_text(fs, f"{exp_dir}/{GRID_FILE}")
    if text is None:
        return True
    current = json.loads(json.dumps(current))  # as it reads back: tuples are lists
    try:
        stored = json.loads(text)
    except ValueError as error:
        raise DamagedState(
            f"the stored grid {exp_dir}/{GRID_FILE} of experiment {experiment!r} is not JSON "
            f"({error}); rerun with --restart to start the experiment's unfinished trials afresh "
            "(every Parquet row is kept)"
        ) from error
    differences = grid_differences(stored, current)
    if not differences:
        return False
    shown = "; ".join(differences[:_SHOWN])
    more = f"; and {len(differences) - _SHOWN} more" if len(differences) > _SHOWN else ""
    raise GridChanged(
        f"the grid differs from the one experiment {experiment!r} was started with: {shown}"
        f"{more}. Rerun with the original settings to resume it, or give --name NEW to run the "
        "changed grid as a new experiment"
    )


def write_grid(fs: pafs.FileSystem, exp_dir: str, record: dict[str, Any]) -> None:
    fs.create_dir(exp_dir, recursive=True)
    store.write_text_atomic(fs, f"{exp_dir}/{GRID_FILE}", json.dumps(record, indent=1))


# ---------------------------------------------------------------------- Tune's saved state
def state_problems(fs: pafs.FileSystem, exp_dir: str) -> list[str]:
    """What is wrong with Tune's saved state in ``exp_dir`` (empty when it looks restorable or
    there is nothing to restore). Pickles are parsed opcode by opcode, never loaded."""
    try:
        entries = fs.get_file_info(pafs.FileSelector(exp_dir, allow_not_found=True))
    except OSError as error:
        return [f"{exp_dir} cannot be listed ({error})"]
    files = {e.base_name: e for e in entries if e.type == pafs.FileType.File}
    trial_dirs = [e for e in entries if e.type == pafs.FileType.Directory]
    states = sorted(n for n in files if n.startswith(_STATE_PREFIX) and n.endswith(_STATE_SUFFIX))
    if _TUNER_PICKLE not in files:
        if states or trial_dirs:
            return [f"{_TUNER_PICKLE} is missing"]
        return []  # nothing of Tune's yet: a new experiment
    problems = []
    for name in _newest_per_kind(files):
        problem = _file_problem(fs, f"{exp_dir}/{name}", files[name].size)
        if problem:
            problems.append(f"{name}: {problem}")
    if not states and trial_dirs:
        problems.append(f"no {_STATE_PREFIX}*{_STATE_SUFFIX} although trials were started")
    return problems


def _newest_per_kind(files: Iterable[str]) -> list[str]:
    """The state files Tune reads on restore: ``tuner.pkl`` and, of every kind of stamped file
    (``experiment_state-<stamp>.json``, the searcher's state), the newest."""
    newest: dict[str, str] = {}
    for name in files:
        match = _STAMPED.match(name)
        if match:
            kind = match.group(1) + match.group(2)
            newest[kind] = max(newest.get(kind, name), name)
        elif name == _TUNER_PICKLE:
            newest[name] = name
    return sorted(newest.values())


def _read(fs: pafs.FileSystem, path: str) -> bytes:
    with fs.open_input_stream(path) as stream:
        return stream.read()


def _file_problem(fs: pafs.FileSystem, path: str, size: int | None) -> str | None:
    """Why the state file at ``path`` cannot be read back, or None. Tune writes pickles (also
    under ``.json`` names, e.g. the searcher's state) and JSON; a pickle is parsed opcode by
    opcode (``pickletools``), never loaded."""
    if not size:
        return "empty (0 bytes)"
    data = _read(fs, path)
    if data[:1] == b"\x80":  # a pickle (protocol 2 or later)
        try:
            for _ in pickletools.genops(data):
                pass
        except Exception as error:  # truncated or garbled: genops raises ValueError and others
            return f"not a complete pickle ({size} bytes: {error})"
        return None
    try:
        json.loads(data)
    except ValueError as error:
        return f"not complete JSON ({size} bytes: {error})"
    return None


def damaged_message(experiment: str, exp_dir: str, problems: Sequence[str]) -> str:
    shown = "; ".join(problems[:_SHOWN])
    more = f"; and {len(problems) - _SHOWN} more" if len(problems) > _SHOWN else ""
    return (
        f"the saved Tune state of experiment {experiment!r} in {exp_dir} is damaged ({shown}"
        f"{more}), e.g. by a full disk or a crash while it was written, so it cannot be resumed. "
        "Every Parquet row already written is intact. To go on, rerun the same command with "
        f"--restart: the damaged state is moved aside to {exp_dir}{DAMAGED_TAG}<time>, trials "
        "that finished are kept and not run again, the others start afresh from epoch 1"
    )


# ---------------------------------------------------------------------- --restart
@dataclasses.dataclass(frozen=True)
class Restart:
    """What ``--restart`` did: where the old state went, which entries (grid indices, or tuning
    samples) finished and are not run again, and the trials whose rows were superseded."""

    moved_to: str | None
    done: frozenset[Any]  # keys of ``finished``'s mapping: entries not run again
    superseded: frozenset[str]  # trial ids whose rows are superseded (started again)


@dataclasses.dataclass
class OpenedExperiment:
    """An experiment this driver owns (``lock`` held until ``close``), checked and ready: Tune
    restores ``exp_dir`` when ``resume``; ``restart`` says what ``--restart`` did."""

    exp_dir: str
    resume: bool
    restart: Restart | None
    lock: ExperimentLock | None

    def close(self) -> None:
        if self.lock is not None:
            self.lock.release()

    def __enter__(self) -> OpenedExperiment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


Finished = Callable[[Any], dict[Any, str]]  # de-duplicated rows -> {finished entry: trial id}


def open_experiment(
    tune_root: str,
    parquet_root: str,
    experiment: str,
    record: dict[str, Any],
    *,
    restart: bool = False,
    finished: Finished | None = None,
    kind: str = "search",
) -> OpenedExperiment:
    """Take the experiment's lock, then check its grid and saved state (module docstring); with
    ``restart``, move the state aside and supersede the rows of every trial ``finished`` does not
    name. Raises an ``ExperimentError`` (exit 2) before anything is changed when the experiment
    is locked, its grid changed, or (without ``restart``) its state is damaged."""
    lock = lock_experiment(tune_root, experiment)
    try:
        fs, base = store.resolve_location(tune_root)
        exp_dir = f"{base.rstrip('/')}/{experiment}"
        problems = state_problems(fs, exp_dir)
        try:
            new = check_grid(fs, exp_dir, experiment, record)
        except DamagedState:
            if not restart:
                raise
            new = True
        if restart:
            moved = move_aside(fs, exp_dir)
            done: dict[Any, str] = {}

            def keep(rows: Any) -> set[str]:
                done.update(finished(rows) if finished is not None else {})
                return set(done.values())

            _, superseded = supersede(parquet_root, experiment, keep, kind)
            write_grid(fs, exp_dir, record)
            return OpenedExperiment(
                exp_dir, False, Restart(moved, frozenset(done), superseded), lock
            )
        if problems:
            raise DamagedState(damaged_message(experiment, exp_dir, problems))
        if new:
            write_grid(fs, exp_dir, record)
        resume = fs.get_file_info(f"{exp_dir}/{_TUNER_PICKLE}").type == pafs.FileType.File
        return OpenedExperiment(exp_dir, resume, None, lock)
    except BaseException:
        if lock is not None:
            lock.release()
        raise


def move_aside(fs: pafs.FileSystem, exp_dir: str) -> str | None:
    """Move Tune's state folder to ``<exp_dir>.damaged-<UTC stamp>``; None if there is none."""
    if fs.get_file_info(exp_dir).type == pafs.FileType.NotFound:
        return None
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    target = f"{exp_dir}{DAMAGED_TAG}{stamp}"
    fs.move(exp_dir, target)
    return target


def supersede(
    parquet_root: str,
    experiment: str,
    finished: Callable[[Any], Iterable[str]],
    kind: str = "search",
) -> tuple[frozenset[str], frozenset[str]]:
    """Mark every trial of ``experiment`` (rows of result ``kind``) with rows that ``finished``
    (given the de-duplicated rows, a DataFrame) does not name as superseded in the store;
    returns (kept, superseded)."""
    from analysis.results import load_results

    try:
        rows = load_results(parquet_root, experiments=[experiment], alphas=False, kind=kind)
    except FileNotFoundError:  # no rows yet: nothing to keep or supersede
        return frozenset(), frozenset()
    kept = frozenset(finished(rows))
    superseded = frozenset(str(t) for t in rows["trial_id"].unique()) - kept
    if superseded:
        fs, base = store.resolve_location(parquet_root)
        store.record_superseded(
            fs, store.experiment_dir(base, experiment), experiment, sorted(superseded),
            "started again by --restart",
        )
    return kept, superseded


def finished_grid_trials(rows: Any, configs: Sequence[SearchConfig | EvalConfig]) -> dict[int, str]:
    """``{grid index: trial_id}`` of the grid entries that have a finished trial in ``rows``
    (de-duplicated results): its last epoch reached the config's ``epochs``, or it diverged.
    A trial is matched to a grid entry by its config (``comparable``)."""
    from trainables import records as R

    wanted: dict[str, list[int]] = {}
    for index, config in enumerate(configs):
        wanted.setdefault(_key(config.to_dict()), []).append(index)
    done: dict[int, str] = {}
    names = type(configs[0]).field_names() if configs else ()
    for trial_id, trial in rows.groupby("trial_id", sort=True):
        last = trial.loc[trial[R.EPOCH].idxmax()]
        values = {name: _plain(last[name]) for name in names if name in last.index}
        finished = last[R.EPOCH] >= values.get("epochs", 0) or last[R.STATUS] == R.STATUS_DIVERGED
        slots = wanted.get(_key(values), [])
        if finished and slots:
            done[slots.pop(0)] = str(trial_id)
    return done


def _key(config: dict[str, Any]) -> str:
    return json.dumps(comparable(config), sort_keys=True, default=str)


def _plain(value: Any) -> Any:
    """A pandas cell as the plain Python value ``SearchConfig.to_dict`` would hold."""
    import pandas as pd

    if not isinstance(value, (list, tuple)) and pd.isna(value):  # a null cell
        return None
    return value.item() if hasattr(value, "item") else value
