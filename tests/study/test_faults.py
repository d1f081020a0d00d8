"""Fault injection on a real local Ray cluster, through the ``study`` command as a user runs it.

Every scenario ends with the same checks against an undisturbed run of the same grid: one row per
(grid entry, epoch), the record values equal (searches are bit-identical on CPU, except the
timing fields), no trial nobody asked for, and the rows in the folder the command named.

Fast scenarios (default run): a second driver on a running experiment; a rerun with a changed
grid. Slow (``pytest -m slow``): a driver killed mid-run whose saved Tune state is then
truncated (the rerun stops and names the damage, ``--restart`` finishes the grid); a trial
worker SIGKILLed mid-trial; a full disk met by the results writer (exit 3, then a rerun). The
state check and ``--restart`` also have fast tests without a run (test_experiment.py). Other faults
are covered where their parts live: a killed driver whose folder is copied and rerun elsewhere,
and a node lost mid-trial (test_resilience.py), a full disk and a truncated checkpoint
(test_disk_full.py, tests/trainables/test_checkpoint_integrity.py), a trial without its grid
entry (tests/trainables/test_tune_trainable.py), and random trial-worker kills at scale
(benchmarks/soak.py, figures in docs/reliability.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from ray_processes import kill_driver_when, kill_processes_mentioning, subprocess_env
from tiny_specs import tiny_toml

from analysis.results import load_results
from trainables import records as R

EPOCHS = 3
GRID = tiny_toml("faults", EPOCHS, '[axes]\nlevel = ["single", "bi"]\n')
ENTRY = ["level"]  # what tells the grid entries apart
COMPARED = [c for c in R.RECORD_FIELDS if c not in (*R.TIMING_FIELDS, R.EPOCH)]


def _cmd(grid: Path, results: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "study.cli", "run", str(grid), "--results", str(results),
            "--name", "faults", *extra]


def _rows(results: Path) -> pd.DataFrame | None:
    try:
        return load_results(results, experiments=["faults"])
    except FileNotFoundError:
        return None


def _raw_rows(results: Path) -> int:
    folder = results / "parquet" / "experiment=faults"
    return sum(len(pd.read_parquet(p)) for p in folder.glob("part-*.parquet"))


def assert_like_undisturbed(rows: pd.DataFrame, reference: pd.DataFrame) -> None:
    """One row per (grid entry, epoch), nothing else, with the undisturbed run's values."""
    counts = rows.groupby([*ENTRY, "epoch"]).size()
    assert (counts == 1).all() and len(counts) == 2 * EPOCHS, counts
    assert rows["trial_id"].nunique() == 2
    mine = rows.set_index([*ENTRY, "epoch"]).sort_index()[COMPARED]
    theirs = reference.set_index([*ENTRY, "epoch"]).sort_index()[COMPARED]
    pd.testing.assert_frame_equal(mine, theirs)


@pytest.fixture(scope="module")
def undisturbed(tmp_path_factory) -> dict:
    """The grid run once without faults, while a second driver on the same experiment is
    refused; the refusal's output and the rows are the other tests' reference."""
    work = tmp_path_factory.mktemp("undisturbed")
    ray_tmpdir = Path(tmp_path_factory.mktemp("rt", numbered=True))
    grid = work / "grid.toml"
    grid.write_text(GRID)
    env = subprocess_env(ray_tmpdir)
    lock = work / "res" / "tune" / "faults.lock"
    first = subprocess.Popen(_cmd(grid, work / "res"), cwd=work, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and first.poll() is None:
            try:
                if json.loads(lock.read_text() or "{}").get("pid") == first.pid:
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.2)
        assert first.poll() is None, "the first driver ended before the second could start"
        started = time.monotonic()
        second = subprocess.run(_cmd(grid, work / "res"), cwd=work, env=env, text=True,
                                capture_output=True, timeout=120, check=False)
        second_seconds = time.monotonic() - started
        output, _ = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
        kill_processes_mentioning(str(ray_tmpdir))
    assert first.returncode == 0, output[-3000:]
    return {"work": work, "grid": grid, "rows": load_results(work / "res", experiments=["faults"]),
            "second": second, "second_seconds": second_seconds, "first_pid": first.pid,
            "output": output}


def test_a_second_driver_on_a_running_experiment_exits_2_naming_the_first(undisturbed):
    second = undisturbed["second"]
    assert second.returncode == 2, second.stdout + second.stderr
    assert f"pid {undisturbed['first_pid']}" in second.stderr
    assert "already being run" in second.stderr
    assert undisturbed["second_seconds"] < 30  # refused before starting Ray, not after a run
    rows = undisturbed["rows"]
    counts = rows.groupby([*ENTRY, "epoch"]).size()
    assert (counts == 1).all() and len(counts) == 2 * EPOCHS  # the first run alone wrote rows
    assert _raw_rows(undisturbed["work"] / "res") == 2 * EPOCHS  # no duplicate raw rows either


def test_a_rerun_with_a_changed_grid_exits_2_naming_the_change(undisturbed):
    work, grid = undisturbed["work"], undisturbed["grid"]
    rerun = subprocess.run(_cmd(grid, work / "res", "--epochs", "5"), cwd=work, text=True,
                           capture_output=True, timeout=120, check=False)
    assert rerun.returncode == 2, rerun.stdout + rerun.stderr
    assert "epochs 3 -> 5" in rerun.stderr and "--name" in rerun.stderr
    assert _raw_rows(work / "res") == 2 * EPOCHS


@pytest.mark.slow
def test_damaged_state_stops_the_rerun_and_restart_finishes_the_grid_once(
    undisturbed, tmp_path, ray_tmpdir
):
    """Kill the driver when the first trial has finished and the second has begun, truncate
    Tune's saved experiment state (as a full disk does), rerun: exit 2 naming the damage, no
    search started. Rerun with --restart: the finished trial is kept as it was, the other runs
    afresh; the rows read back equal the undisturbed run's."""
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID)
    results = tmp_path / "res"
    env = subprocess_env(ray_tmpdir)

    def one_done_one_begun() -> bool:
        rows = _rows(results)
        if rows is None:
            return False
        epochs = rows.groupby("trial_id")["epoch"].max()
        return len(epochs) == 2 and (epochs == EPOCHS).sum() == 1

    kill_driver_when(_cmd(grid, results, "--max-concurrent", "1"), cwd=tmp_path, env=env,
                     ray_tmpdir=ray_tmpdir, ready=one_done_one_begun, timeout=200, poll=0.1)
    before = load_results(results, experiments=["faults"])
    done = before.groupby("trial_id")["epoch"].max()
    finished_id = done[done == EPOCHS].index[0]
    raw_before = _raw_rows(results)
    (state,) = sorted((results / "tune" / "faults").glob("experiment_state-*.json"))[-1:]
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])

    rerun = subprocess.run(_cmd(grid, results), cwd=tmp_path, env=env, text=True,
                           capture_output=True, timeout=120, check=False)
    assert rerun.returncode == 2, rerun.stdout + rerun.stderr
    assert state.name in rerun.stderr and "--restart" in rerun.stderr
    assert _raw_rows(results) == raw_before  # no search ran

    restart = subprocess.run(_cmd(grid, results, "--restart"), cwd=tmp_path, env=env, text=True,
                             capture_output=True, timeout=300, check=False)
    kill_processes_mentioning(str(ray_tmpdir))
    assert restart.returncode == 0, restart.stdout[-3000:] + restart.stderr[-3000:]
    after = load_results(results, experiments=["faults"])
    assert_like_undisturbed(after, undisturbed["rows"])
    kept = after[after["trial_id"] == finished_id].set_index("epoch")["reported_at"]
    pd.testing.assert_series_equal(
        kept, before[before["trial_id"] == finished_id].set_index("epoch")["reported_at"]
    )
    assert list((results / "tune").glob("faults.damaged-*"))  # the old state was moved aside


FULL_DISK_DRIVER = """
import errno, sys
from analysis import store
from study.cli import main

real, calls = store.atomic_write, []

def atomic_write(fs, path, write):  # the second results part file meets a full disk
    if "/part-" in path:
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", path)
    real(fs, path, write)

store.atomic_write = atomic_write
raise SystemExit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_a_full_disk_stops_the_command_with_exit_3_and_the_rerun_completes_the_grid(
    undisturbed, tmp_path, ray_tmpdir
):
    """The driver's results writer meets ENOSPC on its second part file: the command ends with
    exit status 3 and the disk-full message; a rerun (space back) finishes the grid, every
    (entry, epoch) once, with the undisturbed values."""
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID)
    results = tmp_path / "res"
    env = subprocess_env(ray_tmpdir)
    args = _cmd(grid, results, "--max-concurrent", "1")[3:]  # after "python -m study.cli"
    full = subprocess.run([sys.executable, "-c", FULL_DISK_DRIVER, *args], cwd=tmp_path, env=env,
                          text=True, capture_output=True, timeout=300, check=False)
    kill_processes_mentioning(str(ray_tmpdir))
    assert full.returncode == 3, full.stdout[-3000:] + full.stderr[-3000:]
    assert "The disk is full" in full.stderr and "run the same command again" in full.stderr
    rerun = subprocess.run(_cmd(grid, results), cwd=tmp_path, env=env, text=True,
                           capture_output=True, timeout=300, check=False)
    kill_processes_mentioning(str(ray_tmpdir))
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert_like_undisturbed(load_results(results, experiments=["faults"]), undisturbed["rows"])


def _trial_workers(ray_tmpdir: Path) -> list[int]:
    """Pids of this run's Ray workers running a trial (retitled ``ray::ImplicitFunc.train``;
    a worker's environment names the run's RAY_TMPDIR)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if cmdline.startswith(b"ray::ImplicitFunc.train") and (
            f"RAY_TMPDIR={ray_tmpdir}".encode() in environ
        ):
            found.append(int(entry.name))
    return found


@pytest.mark.slow
def test_a_killed_trial_worker_is_retried_and_the_grid_lands_once(
    undisturbed, tmp_path, ray_tmpdir
):
    """SIGKILL the worker of a running trial once it has reported an epoch: the trial is
    retried from its checkpoint, the command exits 0, every (entry, epoch) lands once with the
    undisturbed values."""
    import os
    import signal

    grid = tmp_path / "grid.toml"
    grid.write_text(GRID)
    results = tmp_path / "res"
    driver = subprocess.Popen(_cmd(grid, results, "--max-concurrent", "1"), cwd=tmp_path,
                              env=subprocess_env(ray_tmpdir), text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    killed = 0
    try:
        deadline = time.monotonic() + 200
        while not killed and time.monotonic() < deadline and driver.poll() is None:
            rows = _rows(results)
            workers = _trial_workers(ray_tmpdir)
            if rows is not None and rows["epoch"].max() < EPOCHS and workers:
                os.kill(workers[0], signal.SIGKILL)
                killed += 1
            time.sleep(0.1)
        output, _ = driver.communicate(timeout=300)
    finally:
        if driver.poll() is None:
            driver.kill()
        kill_processes_mentioning(str(ray_tmpdir))
    assert killed == 1, "no trial worker was running mid-trial"
    assert driver.returncode == 0, output[-3000:]
    assert "retry 1 of" in output  # the display says retried, not errored
    rows = load_results(results, experiments=["faults"])
    assert_like_undisturbed(rows, undisturbed["rows"])
    assert rows["attempt"].max() == 1
