"""The console display of a study run: a Ray Tune callback that prints, for people, one line per
trial state change, a compact table of the running trials now and then, and a closing count.

What it prints (to stdout, each line stamped with the wall-clock time)::

    05:02:01 smoke: 8 trials; a table of the running trials every 30 s
    05:02:30 trial 0 started: level=single activation=softmax arch_weight_decay=0.001 seed=0
    05:12:12 trial 0 failed after epoch 1/2 (OSError: ...); retry 1 of 2 from its last checkpoint
    05:12:21 progress: 1 running, 1 retrying, 6 pending
               trial  status   epoch  loss    nb201 %  img/s
               1      running  1/2    2.4163  91.58    38
    05:12:59 trial 0 finished: epoch 2/2, loss 2.3164, nb201 91.93%, 46 img/s
    05:13:43 trial 1 diverged in epoch 2/2 (non-finite loss; its search ended)
    05:15:52 trial 2 errored after epoch 1/2 (3 failures: ...); see RESULTS/tune/.../error.txt
    05:20:00 smoke: 8 trials: 6 finished, 1 diverged, 1 errored; 2 retried after a failure

A trial is named by its grid index (``_trial``, as ``study run --dry-run`` lists it) or, for
``study tune``, by its cell and sample number (``_tune_cell``, ``_tune_sample``). The table lists
the running trials only (at most ``TABLE_ROWS``; a restarted one as retrying until its first
result), and only when a result came in since the last one, so a long grid prints a few lines
per trial and no more. The callback never raises into the Tune loop.
"""

from __future__ import annotations

import logging
import math
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TextIO

from ray import tune
from ray.tune.experiment import Trial

from trainables import records as R

logger = logging.getLogger(__name__)

TABLE_EVERY = 30.0  # seconds between two tables of the running trials
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_RAY_HEADER = re.compile(r"^ray::\S+ \(pid=")  # "ray::ImplicitFunc.train() (pid=..., ip=...)"
_MODULE_PATH = re.compile(r"^(?:[A-Za-z_]\w*\.)+(?=[A-Za-z_]\w*(?:\(\w+\))?: )")


def _safe(hook: Callable[..., None]) -> Callable[..., None]:
    """A hook that logs its own failure instead of raising into the Tune loop."""

    def guarded(self: ProgressDisplay, *args: Any, **kwargs: Any) -> None:
        try:
            hook(self, *args, **kwargs)
        except Exception:
            logger.exception("progress display: %s failed", hook.__name__)

    guarded.__name__ = hook.__name__
    guarded.__doc__ = hook.__doc__
    return guarded


class ProgressDisplay(tune.Callback):
    """Tune callback printing trial state changes, a periodic table and a closing count.

    ``title`` names the run in the first and last lines; ``total`` is the number of trials when
    known (``study run``); ``fields`` are the config keys that tell the trials apart (the grid's
    axes, the tuned parameters), shown when a trial starts; ``objective``, when given, is a
    result metric shown as a table column (``study tune``); ``every`` is the number of seconds
    between two tables; ``stream`` defaults to the current ``sys.stdout``.
    """

    def __init__(
        self,
        title: str,
        *,
        total: int | None = None,
        fields: Sequence[str] = (),
        objective: str | None = None,
        accuracy: tuple[str, str] | None = None,
        every: float = TABLE_EVERY,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not every > 0:
            raise ValueError(f"every={every} must be > 0 seconds")
        self.title = title
        self.total = total
        self.fields = tuple(fields)
        self.objective = objective
        self.accuracy = accuracy  # (label, record column); None = the NAS-Bench-201 accuracy
        self.every = every
        self.stream = stream
        self.clock = clock
        self._reset()

    def _reset(self) -> None:
        self._last_table = self.clock()
        self._new_results = False
        self._retrying: set[str] = set()  # failed, waiting to restart from a checkpoint
        self._retried: set[str] = set()  # recovered from a failure at least once
        self._first_step = True

    # ------------------------------------------------------------------ state for pickling
    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles the run config with its callbacks; a stream is not picklable and the
        # counts belong to one run.
        state = dict(self.__dict__)
        state["stream"] = None
        state["clock"] = time.time
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset()

    # ------------------------------------------------------------------ Tune callback hooks
    @_safe
    def setup(self, stop=None, num_samples=None, total_num_samples=None, **info) -> None:
        self._reset()
        what = _count(self.total, "trial") if self.total is not None else "started"
        self._say(f"{self.title}: {what}; a table of the running trials every {self.every:g} s")

    @_safe
    def on_step_begin(self, iteration: int, trials: list[Trial], **info) -> None:
        if not self._first_step:
            return
        self._first_step = False
        done = sum(t.status in (Trial.TERMINATED, Trial.ERROR) for t in trials)
        if done:  # a restored experiment: its finished trials are not run again
            self._say(f"resuming: {_count(done, 'trial')} had already ended")

    @_safe
    def on_step_end(self, iteration: int, trials: list[Trial], **info) -> None:
        now = self.clock()
        if now - self._last_table < self.every:
            return
        self._last_table = now
        if self._new_results:
            self._new_results = False
            self._table(trials)

    @_safe
    def on_trial_start(self, iteration: int, trials: list[Trial], trial: Trial, **info) -> None:
        if trial.trial_id in self._retrying:  # the restart after a failure: said already
            self._retrying.discard(trial.trial_id)
            return
        epoch = _epoch(trial.last_result)
        if epoch:
            self._say(f"{label(trial)} resumed at epoch {epoch}/{_epochs(trial)}")
            return
        described = " ".join(f"{k}={_value(trial.config.get(k))}" for k in self.fields)
        self._say(f"{label(trial)} started" + (f": {described}" if described else ""))

    @_safe
    def on_trial_result(self, iteration, trials, trial: Trial, result: dict, **info) -> None:
        self._new_results = True
        self._retrying.discard(trial.trial_id)  # running again

    @_safe
    def on_trial_recover(self, iteration: int, trials: list[Trial], trial: Trial, **info) -> None:
        self._retrying.add(trial.trial_id)
        self._retried.add(trial.trial_id)
        error = error_summary(trial)
        limit = f" of {trial.max_failures}" if trial.max_failures >= 0 else ""
        self._say(
            f"{label(trial)} failed {_when(trial)}{f' ({error})' if error else ''}; retry "
            f"{trial.num_failures}{limit} from its last checkpoint"
        )

    @_safe
    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info) -> None:
        self._retrying.discard(trial.trial_id)
        failures = trial.num_failures
        error = error_summary(trial)
        where = error_location(trial)
        self._say(
            f"{label(trial)} errored {_when(trial)} ({_count(failures, 'failure')}"
            f"{f': {error}' if error else ''})"
            + (f"; see {where}" if where else "")
        )

    @_safe
    def on_trial_complete(self, iteration, trials, trial: Trial, **info) -> None:
        result = trial.last_result
        epoch, epochs = _epoch(result), _epochs(trial)
        if result.get(R.STATUS) == R.STATUS_DIVERGED:
            self._say(
                f"{label(trial)} diverged in epoch {epoch or '?'}/{epochs} "
                "(non-finite loss; its search ended)"
            )
            return
        parts = [f"epoch {epoch or '?'}/{epochs}"]
        loss = _number(result.get(R.TRAIN_LOSS), 4)
        parts += [f"loss {loss}"] if loss else []
        name, column = self._accuracy(trial)
        bench = _number(result.get(column), 2)
        parts += [f"{name} {bench}%"] if bench else []
        if self.objective:
            value = _number(result.get(self.objective), 4)
            parts += [f"{self.objective} {value}"] if value else []
        speed = _number(result.get(R.IMAGES_PER_SEC), 0)
        parts += [f"{speed} img/s"] if speed else []
        how = "stopped early" if _stopped_early(trial) else "finished"
        self._say(f"{label(trial)} {how}: {', '.join(parts)}")

    @_safe
    def on_experiment_end(self, trials: list[Trial], **info) -> None:
        self._say(f"{self.title}: {closing_counts(trials, self._retried)}")

    def _accuracy(self, trial: Trial | None) -> tuple[str, str]:
        """(label, record column) of the accuracy shown for ``trial``."""
        if self.accuracy is not None:
            return self.accuracy
        return "nb201", bench_column(trial) if trial is not None else ""

    # ------------------------------------------------------------------ output
    def _say(self, line: str) -> None:
        stamp = time.strftime("%H:%M:%S", time.localtime(self.clock()))
        self._write(f"{stamp} {line}")

    def _write(self, text: str) -> None:
        stream = self.stream if self.stream is not None else sys.stdout
        print(text, file=stream, flush=True)

    def _table(self, trials: Sequence[Trial]) -> None:
        counts = _state_counts(trials, self._retrying)
        self._say("progress: " + ", ".join(f"{n} {state}" for state, n in counts.items()))
        # running trials only (a restarted one shows as retrying until its first result): one
        # waiting for its restart is counted above and was said when it failed, and a wall of
        # them after many failures would bury the running ones
        live = [t for t in trials if t.status == Trial.RUNNING]
        if not live:
            return
        hidden = max(0, len(live) - TABLE_ROWS)
        live = live[:TABLE_ROWS]
        header = ["trial", "status", "epoch", "loss", f"{self._accuracy(None)[0]} %"]
        header += [self.objective] if self.objective else []
        header += ["img/s"]
        rows = [header]
        for trial in live:
            result = trial.last_result
            epoch = _epoch(result)
            row = [
                label(trial, short=True),
                "retrying" if trial.trial_id in self._retrying else "running",
                f"{epoch or 0}/{_epochs(trial)}",
                _number(result.get(R.TRAIN_LOSS), 4),
                _number(result.get(self._accuracy(trial)[1]), 2),
            ]
            row += [_number(result.get(self.objective), 4)] if self.objective else []
            row += [_number(result.get(R.IMAGES_PER_SEC), 0)]
            rows.append(row)
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        for row in rows:
            cells = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
            self._write(" " * 11 + cells.rstrip())
        if hidden:
            self._write(" " * 11 + f"... and {hidden} more running")


TABLE_ROWS = 20  # running trials shown in a table at most


# ---------------------------------------------------------------------- trials, pure helpers
def label(trial: Trial, short: bool = False) -> str:
    """``trial 3`` (grid index), ``CELL #3`` (study tune) or Tune's trial name."""
    config = trial.config or {}
    if "_tune_sample" in config:
        return f"{config.get('_tune_cell', '?')} #{config['_tune_sample']}"
    if "_trial" in config:
        return str(config["_trial"]) if short else f"trial {config['_trial']}"
    return str(trial)


def bench_column(trial: Trial) -> str:
    """The record field with the NAS-Bench-201 test accuracy that judges this trial's search."""
    return R.bench_field(str((trial.config or {}).get("dataset") or "cifar10"))


def error_summary(trial: Trial, limit: int = 160) -> str:
    """The gist of a trial's latest failure from its error file: the exception line of a
    traceback, else the failure's first line; "" when there is no readable error file."""
    try:
        path = trial.error_file
        if not path:
            return ""
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except Exception:  # no storage, no file yet, a remote path: show no message
        return ""
    return summarize_error(text, limit)


def summarize_error(text: str, limit: int = 160) -> str:
    """The gist of Tune's error-file text (``Failure # N (occurred at ...)`` blocks, each the
    text of a Ray error): of the latest failure, the exception line that ends a traceback
    (``InjectedFault: ...``, its module path dropped), else the first line of the message."""
    latest = re.split(r"^Failure # \d+.*$", _ANSI.sub("", text), flags=re.MULTILINE)[-1]
    lines = [line.strip() for line in latest.splitlines() if line.strip()]
    lines = [line for line in lines if not _RAY_HEADER.match(line)]
    if not lines:
        return ""
    traceback = any(line.startswith(('File "', "Traceback (most recent")) for line in lines)
    gist = _MODULE_PATH.sub("", lines[-1] if traceback else lines[0])
    return gist if len(gist) <= limit else gist[: limit - 3] + "..."


def error_location(trial: Trial) -> str:
    """Where the full error text of a trial is kept: its trial folder in the results (synced
    from the driver when Tune saves the experiment)."""
    try:
        name = trial.run_metadata.error_filename
        return f"{trial.path}/{name}" if name and trial.path else ""
    except Exception:
        return ""


def closing_counts(trials: Iterable[Trial], retried: Iterable[str] = ()) -> str:
    """``N trials: F finished, D diverged, E errored`` plus the retried and unfinished trials.

    Finished trials that ended before their last epoch (stopped by the scheduler) are counted
    as finished and named; a trial that failed, was retried and then finished is finished."""
    trials = list(trials)
    retried_ids = set(retried)
    finished = diverged = errored = early = 0
    for trial in trials:
        if trial.status == Trial.ERROR:
            errored += 1
        elif trial.status == Trial.TERMINATED:
            result = trial.last_result
            if result.get(R.STATUS) == R.STATUS_DIVERGED:
                diverged += 1
            else:
                finished += 1
                early += _stopped_early(trial)
    line = f"{_count(len(trials), 'trial')}: {finished} finished"
    line += f" ({early} stopped early)" if early else ""
    line += f", {diverged} diverged, {errored} errored"
    retried_count = sum(t.trial_id in retried_ids for t in trials)
    if retried_count:
        line += f"; {retried_count} retried after a failure"
    unfinished = len(trials) - finished - diverged - errored
    if unfinished:
        line += f"; {unfinished} not finished (run the same command again to resume them)"
    return line


def _state_counts(trials: Sequence[Trial], retrying: set[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for trial in trials:
        if trial.trial_id in retrying:
            state = "retrying"
        elif trial.status == Trial.TERMINATED:
            diverged = trial.last_result.get(R.STATUS) == R.STATUS_DIVERGED
            state = "diverged" if diverged else "finished"
        else:
            state = {Trial.ERROR: "errored", Trial.RUNNING: "running"}.get(
                trial.status, trial.status.lower()
            )
        counts[state] = counts.get(state, 0) + 1
    order = ["running", "retrying", "finished", "diverged", "errored", "pending", "paused"]
    return dict(sorted(counts.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 99))


def _epoch(result: dict | None) -> int | None:
    value = (result or {}).get(R.EPOCH)
    return int(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _epochs(trial: Trial) -> str:
    value = (trial.config or {}).get("epochs")
    return str(value) if isinstance(value, int) else "?"


def _when(trial: Trial) -> str:
    epoch = _epoch(trial.last_result)
    return f"after epoch {epoch}/{_epochs(trial)}" if epoch else "before its first epoch"


def _stopped_early(trial: Trial) -> bool:
    """Finished before its last epoch: stopped by the scheduler (ASHA in ``study tune``)."""
    epoch, epochs = _epoch(trial.last_result), _epochs(trial)
    return epoch is not None and epochs != "?" and epoch < int(epochs)


def _number(value: Any, digits: int) -> str:
    """``value`` with ``digits`` decimals (scientific when it is huge); "" when not finite."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return ""
    return f"{value:.{digits}f}" if abs(value) < 1e5 else f"{value:.2e}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
