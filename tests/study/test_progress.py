"""The console of a study run: ``study.progress.ProgressDisplay`` fed real Tune ``Trial`` objects
(as Tune's controller changes them), the grid's trial configs without ``sample_from``, a
restored experiment taking the command's display, and one real ``study run`` whose whole output
is checked (no deprecation flood, no Tune tables, our closing line)."""

from __future__ import annotations

import io
import json
import math
import os
import pickle
import re
import site
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from ray import tune
from ray.tune.experiment import Experiment, Trial
from ray_processes import subprocess_env
from tiny_specs import tiny_toml

from study.progress import TABLE_ROWS, ProgressDisplay, closing_counts, summarize_error
from study.runner import (
    RunOptions,
    build_tuner,
    experiment_path,
    grid_axes,
    grid_search_alg,
    param_space,
)
from trainables import records as R
from trainables.config import SearchConfig

STAMP = r"\d\d:\d\d:\d\d "


class Clock:
    """A settable clock for the display's periodic table."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _display(every: float = 30, **kwargs) -> tuple[ProgressDisplay, io.StringIO, Clock]:
    out, clock = io.StringIO(), Clock()
    display = ProgressDisplay("grid", every=every, stream=out, clock=clock, **kwargs)
    display.setup(total_num_samples=kwargs.get("total"))
    return display, out, clock


def _lines(out: io.StringIO) -> list[str]:
    """The lines written so far, without their time stamps; the buffer is emptied."""
    text = out.getvalue()
    out.seek(0)
    out.truncate()
    return [re.sub(f"^{STAMP}", "", line) for line in text.splitlines()]


def _trial(index: int, epochs: int = 3, max_failures: int = 2, **config) -> Trial:
    """A real Tune trial of the search trainable, as a grid makes it (not started)."""
    full = {"_trial": index, "epochs": epochs, "dataset": "synthetic", **config}
    return Trial("search_trainable", config=full, stub=True, max_failures=max_failures)


def _report(display: ProgressDisplay, trials: list[Trial], trial: Trial, epoch: int, **metrics):
    result = {R.EPOCH: epoch, R.STATUS: R.STATUS_OK, **metrics}
    trial.update_last_result(result)
    display.on_trial_result(0, trials, trial, result)


def _fail(display: ProgressDisplay, trials: list[Trial], trial: Trial, error: Exception) -> None:
    """What Tune's controller does when a trial's task raises: count and record the failure
    (``Trial.handle_error`` writes the trial's error file), then recover or give up."""
    trial.handle_error(error)
    if trial.should_recover():
        trial.set_status(Trial.PENDING)
        display.on_trial_recover(0, trials, trial)
    else:
        trial.set_status(Trial.ERROR)
        display.on_trial_error(0, trials, trial)


def _complete(display: ProgressDisplay, trials: list[Trial], trial: Trial) -> None:
    display.on_trial_complete(0, trials, trial)
    trial.set_status(Trial.TERMINATED)


@pytest.fixture
def trial_folders(tmp_path, monkeypatch):
    """Trials keep their files (the error file) under tmp_path, as under a Ray session."""
    monkeypatch.setattr(Trial, "local_path", property(lambda t: str(tmp_path / t.trial_id)))
    monkeypatch.setattr(Trial, "path", property(lambda t: f"/results/tune/grid/{t.trial_id}"))
    return tmp_path


def _start(display: ProgressDisplay, trials: list[Trial], trial: Trial) -> None:
    Path(trial.local_path).mkdir(parents=True, exist_ok=True)
    display.on_trial_start(0, trials, trial)
    trial.set_status(Trial.RUNNING)


# ---------------------------------------------------------------------- state changes
def test_one_line_per_state_change_and_the_closing_counts(trial_folders) -> None:
    display, out, _ = _display(total=4, fields=["level", "seed"])
    retried, diverged, errored, clean = trials = [
        _trial(0, level="bi", seed=0),
        _trial(1, level="single", seed=1),
        _trial(2, level="bi", seed=2),
        _trial(3, level="single", seed=3),
    ]
    assert _lines(out) == ["grid: 4 trials; a table of the running trials every 30 s"]
    for trial in trials:
        _start(display, trials, trial)
    assert _lines(out) == [
        "trial 0 started: level=bi seed=0",
        "trial 1 started: level=single seed=1",
        "trial 2 started: level=bi seed=2",
        "trial 3 started: level=single seed=3",
    ]

    # retried, then finished: one line for the failure, none for the restart
    _report(display, trials, retried, 1, train_loss=2.5)
    _fail(display, trials, retried, OSError("disk quota exceeded"))
    _start(display, trials, retried)
    for epoch in (2, 3):
        _report(display, trials, retried, epoch, train_loss=1.23456, images_per_sec=812.4,
                bench_cifar10_test=93.7561)
    _complete(display, trials, retried)
    assert _lines(out) == [
        "trial 0 failed after epoch 1/3 (disk quota exceeded); retry 1 of 2 from its last "
        "checkpoint",
        "trial 0 finished: epoch 3/3, loss 1.2346, nb201 93.76%, 812 img/s",
    ]

    _report(display, trials, diverged, 2, **{R.STATUS: R.STATUS_DIVERGED, "train_loss": math.nan})
    _complete(display, trials, diverged)
    assert _lines(out) == ["trial 1 diverged in epoch 2/3 (non-finite loss; its search ended)"]

    _report(display, trials, errored, 1)
    for _ in range(3):  # max_failures=2: two retries, then it gives up
        _fail(display, trials, errored, RuntimeError("boom"))
    lines = _lines(out)
    assert lines[:2] == [
        "trial 2 failed after epoch 1/3 (boom); retry 1 of 2 from its last checkpoint",
        "trial 2 failed after epoch 1/3 (boom); retry 2 of 2 from its last checkpoint",
    ]
    assert lines[2] == (
        f"trial 2 errored after epoch 1/3 (3 failures: boom); see /results/tune/grid/"
        f"{errored.trial_id}/error.txt"
    )

    for epoch in (1, 2, 3):  # no benchmark accuracy or speed reported: left out, not "nan"
        _report(display, trials, clean, epoch, train_loss=2.0, bench_cifar10_test=None)
    _complete(display, trials, clean)
    assert _lines(out) == ["trial 3 finished: epoch 3/3, loss 2.0000"]

    display.on_experiment_end(trials)
    assert _lines(out) == [
        "grid: 4 trials: 2 finished, 1 diverged, 1 errored; 2 retried after a failure"
    ]


def test_a_resumed_trial_and_unfinished_trials_are_said_so() -> None:
    display, out, _ = _display(total=2)
    resumed, _waiting = trials = [_trial(0, epochs=5), _trial(1, epochs=5)]
    resumed.update_last_result({R.EPOCH: 2, R.STATUS: R.STATUS_OK})  # restored from its state
    display.on_trial_start(0, trials, resumed)
    display.on_experiment_end(trials)  # interrupted: neither ended
    assert _lines(out)[1:] == [
        "trial 0 resumed at epoch 2/5",
        "grid: 2 trials: 0 finished, 0 diverged, 0 errored; 2 not finished (run the same "
        "command again to resume them)",
    ]


def test_closing_counts_name_trials_stopped_early_as_finished() -> None:
    early, full = _trial(0, epochs=10), _trial(1, epochs=10)
    early.update_last_result({R.EPOCH: 4, R.STATUS: R.STATUS_OK})
    full.update_last_result({R.EPOCH: 10, R.STATUS: R.STATUS_OK})
    for trial in (early, full):
        trial.set_status(Trial.TERMINATED)
    assert closing_counts([early, full]) == (
        "2 trials: 2 finished (1 stopped early), 0 diverged, 0 errored"
    )


# ---------------------------------------------------------------------- the periodic table
def test_the_table_lists_running_trials_every_period_only_after_new_results() -> None:
    display, out, clock = _display(every=30)
    running, done, _pending = trials = [_trial(0), _trial(1), _trial(2)]
    for trial in (running, done):
        display.on_trial_start(0, trials, trial)
        trial.set_status(Trial.RUNNING)
    _report(display, trials, done, 3, train_loss=1.0)
    _complete(display, trials, done)
    _report(display, trials, running, 2, train_loss=2.25, images_per_sec=95.2,
            bench_cifar10_test=float("nan"))
    _lines(out)

    clock.now += 29
    display.on_step_end(0, trials)
    assert _lines(out) == []  # not yet
    clock.now += 2
    display.on_step_end(0, trials)
    table = _lines(out)
    assert table[0] == "progress: 1 running, 1 finished, 1 pending"
    assert table[1].split() == ["trial", "status", "epoch", "loss", "nb201", "%", "img/s"]
    assert table[2].split() == ["0", "running", "2/3", "2.2500", "95"]  # nan accuracy: blank
    assert len(table) == 3  # finished and pending trials have no row
    clock.now += 31
    display.on_step_end(0, trials)
    assert _lines(out) == []  # nothing new since the last table


def test_the_table_leaves_out_trials_waiting_to_retry_and_caps_its_rows(trial_folders) -> None:
    display, out, clock = _display(every=30)
    trials = [_trial(i) for i in range(TABLE_ROWS + 3)]
    for trial in trials:
        _start(display, trials, trial)
        _report(display, trials, trial, 1, train_loss=2.0)
    waiting = trials[0]
    waiting.handle_error(RuntimeError("killed"))
    waiting.set_status(Trial.PENDING)
    display.on_trial_recover(0, trials, waiting)
    _report(display, trials, trials[1], 2, train_loss=1.5)
    _lines(out)
    clock.now += 31
    display.on_step_end(0, trials)
    table = _lines(out)
    assert table[0] == f"progress: {TABLE_ROWS + 2} running, 1 retrying"
    rows = [line.split()[0] for line in table[2:-1]]
    assert "0" not in rows and len(rows) == TABLE_ROWS  # the waiting trial has no row
    assert table[-1].strip() == "... and 2 more running"


def test_study_tune_trials_are_named_by_cell_and_sample_with_their_objective() -> None:
    display, out, clock = _display(fields=["arch_lr"], objective="objective")
    trial = Trial(
        "search_trainable",
        config={"_tune_cell": "level=bi", "_tune_sample": 4, "epochs": 2, "arch_lr": 0.000312},
        stub=True,
    )
    display.on_trial_start(0, [trial], trial)
    trial.set_status(Trial.RUNNING)
    _report(display, [trial], trial, 1, objective=91.25)
    clock.now += 31
    display.on_step_end(0, [trial])
    lines = _lines(out)
    assert lines[1] == "level=bi #4 started: arch_lr=0.000312"
    assert lines[3].split() == [
        "trial", "status", "epoch", "loss", "nb201", "%", "objective", "img/s"
    ]
    assert lines[4].split() == ["level=bi", "#4", "running", "1/2", "91.2500"]


def test_the_display_survives_pickling_as_tune_saves_it() -> None:
    display, _, _ = _display(total=3, fields=["seed"])
    copy = pickle.loads(pickle.dumps(display))
    assert (copy.title, copy.total, copy.fields, copy.stream) == ("grid", 3, ("seed",), None)


def test_a_failing_hook_never_raises_into_tune(caplog) -> None:
    display, _, _ = _display()
    display.on_trial_start(0, [], object())  # not a trial at all
    assert "on_trial_start failed" in caplog.text


def test_the_gist_of_a_ray_error_file() -> None:
    text = (
        "Failure # 1 (occurred at 2026-12-02_05-12-12)\n"
        "\x1b[36mray::ImplicitFunc.train()\x1b[39m (pid=3379, ip=127.0.0.1, actor_id=0236, "
        "repr=search_trainable)\n"
        '  File "/work/main/trainables/tune_trainable.py", line 104, in search_trainable\n'
        '    raise InjectedFault(f"test fault injected after epoch {fail_at}")\n'
        "trainables.tune_trainable.InjectedFault: test fault injected after epoch 1\n"
        "Failure # 2 (occurred at 2026-12-02_05-13-12)\n"
        "The actor died unexpectedly before finishing this task.\n"
        "\tclass_name: ImplicitFunc\n"
    )
    assert summarize_error(text) == "The actor died unexpectedly before finishing this task."
    first = text.split("Failure # 2")[0]
    assert summarize_error(first) == "InjectedFault: test fault injected after epoch 1"
    assert summarize_error("Failure # 1 (x)\n" + "y" * 500, limit=20) == "y" * 17 + "..."


# ---------------------------------------------------------------------- grid configs
BASE = SearchConfig(dataset="synthetic", channels=4, depth=1, batch_size=16, steps_per_epoch=2)
GRID = [BASE.replace(level=level, seed=seed) for level in ("single", "bi") for seed in (0, 1)]


def test_grid_trials_are_the_flat_configs_in_order_without_sample_from(tmp_path) -> None:
    space = param_space(GRID)
    assert not any(isinstance(v, tune.search.sample.Function) for v in space.values())
    experiment = Experiment(
        "grid", lambda config: None, config=space, num_samples=len(GRID),
        storage_path=str(tmp_path),
    )
    algorithm = grid_search_alg(GRID, max_concurrent=2)
    algorithm.add_configurations([experiment])
    assert algorithm.total_samples == len(GRID)
    made: list[Trial] = []
    live: list[Trial] = []
    while (trial := algorithm.next_trial()) is not None or live:
        if trial is None:  # max_concurrent trials live: one has to end first
            assert len(live) == 2 or algorithm.is_finished()
            algorithm.on_trial_complete(live.pop(0).trial_id)
        else:
            made.append(trial)
            live.append(trial)
    assert [t.config for t in made] == [
        {"_trial": index, **config.to_dict()} for index, config in enumerate(GRID)
    ]
    assert algorithm.is_finished()
    assert grid_axes(GRID) == ["level", "seed"]


def test_a_restored_experiment_takes_this_commands_display_and_console(tmp_path) -> None:
    """Tune restores the run config pickled by the first run; the rerun's callbacks and
    verbosity replace it (the saved Tuner is written when it is built: no Ray needed)."""
    quiet = RunOptions(results=str(tmp_path))
    build_tuner(GRID, quiet, "grid", [ProgressDisplay("first run")])
    assert tune.Tuner.can_restore(experiment_path(quiet, "grid"))
    display = ProgressDisplay("second run")
    config = build_tuner(GRID, quiet, "grid", [display])._local_tuner.get_run_config()
    assert config.callbacks == [display] and config.verbose == 0
    assert config.progress_reporter is None
    verbose = RunOptions(results=str(tmp_path), verbose=True)
    config = build_tuner(GRID, verbose, "grid", [])._local_tuner.get_run_config()
    assert config.callbacks == [] and config.verbose == tune.RunConfig().verbose != 0


# ---------------------------------------------------------------------- a real run
def test_a_real_run_prints_our_lines_and_none_of_tunes(tmp_path, ray_tmpdir) -> None:
    """One 1-epoch trial through ``study run``, in a subprocess with its own HOME: no
    deprecation warning, no Tune table, our lines; the node bound to loopback; Ray's token
    file (written under the new HOME) readable by its owner only."""
    grid = tmp_path / "grid.toml"
    grid.write_text(tiny_toml("tiny", 1, '[axes]\nlevel = ["bi"]\n'))
    home = tmp_path / "home"
    home.mkdir()
    env = subprocess_env(ray_tmpdir)
    env["HOME"] = str(home)
    env.setdefault("PYTHONUSERBASE", site.getuserbase())  # user site-packages stay importable
    run = subprocess.run(
        [sys.executable, "-m", "study.cli", "run", str(grid), "--results", "res"],
        cwd=tmp_path, env=env, text=True, capture_output=True, timeout=240, check=False,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-3000:]
    assert "deprecated" not in output.lower()
    assert not any(mark in output for mark in ("╭", "│", "+---", "Trial status:")), output
    ours = [line[9:] for line in run.stdout.splitlines() if re.match(STAMP, line)]
    assert ours[:2] == [
        "tiny: 1 trial; a table of the running trials every 30 s",
        "trial 0 started",
    ]
    assert all(line.startswith("progress: ") for line in ours[2:-2]), ours
    assert re.fullmatch(r"trial 0 finished: epoch 1/1, loss \d+\.\d{4}, .*img/s", ours[-2])
    assert ours[-1] == "tiny: 1 trial: 1 finished, 0 diverged, 0 errored"
    assert "Parquet dataset:" in run.stdout
    assert len(output.splitlines()) < 40, output

    results = next((tmp_path / "res" / "tune" / "tiny").glob("*/result.json"))
    assert json.loads(results.read_text().splitlines()[-1])["node_ip"] == "127.0.0.1"
    if not any(os.environ.get(f"RAY_AUTH_{v}") for v in ("MODE", "TOKEN", "TOKEN_PATH")):
        token = home / ".ray" / "auth_token"  # a new local cluster made one (the default)
        assert stat.S_IMODE(token.stat().st_mode) == 0o600
