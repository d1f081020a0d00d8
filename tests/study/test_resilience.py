"""Resilience of a study run: a killed driver resumes, and trials survive losing a node.

Both scenarios run Ray outside this pytest process (a ``python -m study.cli`` subprocess, and a
small multi-node script run as a subprocess), so they never touch the session's ``ray_local``
cluster: ``ray.cluster_utils.Cluster`` in-process would need ``ray.shutdown()`` of a
``ray_local`` cluster that later tests expect to still be there. Each run has its own
``RAY_TMPDIR`` (the ``ray_tmpdir`` fixture, ``ray_processes.py``), so the leftover Ray
processes of a SIGKILLed driver are stopped, and nothing else on the machine.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from ray_processes import kill_driver_when, subprocess_env
from tiny_specs import tiny_toml

from analysis.results import load_results

EPOCHS = 6
CONFIG_COLUMNS = ["level", "activation"]  # the grid axes: one trial per distinct pair
KILL_GRID = tiny_toml(
    "kill", EPOCHS, '[axes]\nlevel = ["single", "bi"]\nactivation = ["softmax", "sigmoid"]\n'
)


# ---------------------------------------------------------------------- helpers
def _study_cmd(grid: Path, name: str, results: str = "res") -> list[str]:
    return [
        sys.executable, "-m", "study.cli", "run", str(grid), "--results", results, "--name", name
    ]


def _results_or_none(root: Path, experiment: str) -> pd.DataFrame | None:
    try:
        return load_results(root, experiments=[experiment])
    except FileNotFoundError:
        return None


def _complete_trials(frame: pd.DataFrame | None) -> set[str]:
    if frame is None:
        return set()
    epochs = frame.groupby("trial_id")["epoch"].apply(set)
    return {tid for tid, seen in epochs.items() if seen == set(range(1, EPOCHS + 1))}


def _terminated_in_tune_state(experiment_dir: Path) -> set[str]:
    """Trial ids that Tune's latest saved experiment state records as TERMINATED."""
    states = sorted(experiment_dir.glob("experiment_state-*.json"))
    if not states:
        return set()
    try:
        data = json.loads(states[-1].read_text())
    except (OSError, ValueError):  # being rewritten right now
        return set()
    trials = (json.loads(entry[0]) for entry in data.get("trial_data", []))
    return {t["trial_id"] for t in trials if t.get("status") == "TERMINATED"}


def _finished(frame: pd.DataFrame | None, experiment_dir: Path) -> set[str]:
    """Trials with every epoch in Parquet that Tune has also saved as finished. (A trial that
    finished after Tune's last state snapshot resumes from its last checkpoint on restore.)"""
    return _complete_trials(frame) & _terminated_in_tune_state(experiment_dir)


# ---------------------------------------------------------------------- 1. driver kill
@pytest.mark.slow
def test_killed_driver_resumes_and_writes_every_trial_epoch_exactly_once(
    tmp_path, ray_tmpdir
) -> None:
    """SIGKILL the driver once a trial has finished, copy the results folder (as a user moving
    it to other storage would), rerun the same command on the copy: the copy ends with every
    trial epoch exactly once and the original folder is left as the kill left it (the rerun's
    writer takes its folder from the command, not from Tune's saved state)."""
    grid = tmp_path / "grid.toml"
    grid.write_text(KILL_GRID)
    parquet = tmp_path / "res" / "parquet"
    tune_dir = tmp_path / "res" / "tune" / "kill"
    env = subprocess_env(ray_tmpdir)

    leftovers = kill_driver_when(  # once a trial has finished
        _study_cmd(grid, "kill"), cwd=tmp_path, env=env, ray_tmpdir=ray_tmpdir,
        ready=lambda: bool(_finished(_results_or_none(parquet, "kill"), tune_dir)),
        timeout=150, poll=0.2,
    )
    print(f"killed leftover Ray processes of the dead driver: {sorted(leftovers)}")

    before = load_results(parquet, experiments=["kill"])
    finished = _finished(before, tune_dir)
    assert finished
    assert len(finished) < 4, "every trial had finished before the kill; nothing to resume"
    stamps = before[before["trial_id"].isin(finished)].set_index(["trial_id", "epoch"])
    original_parts = sorted(p.name for p in (parquet / "experiment=kill").iterdir())
    shutil.copytree(tmp_path / "res", tmp_path / "copy")
    parquet = tmp_path / "copy" / "parquet"

    rerun = subprocess.run(
        _study_cmd(grid, "kill", results="copy"),
        cwd=tmp_path,
        env=env,
        text=True,
        capture_output=True,
        timeout=240,
        check=False,
    )
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]

    after = load_results(parquet, experiments=["kill"])
    # One trial per grid config and every epoch exactly once, by config: a fresh restart (new
    # trial ids) that left the killed run's rows beside the new ones would show up here.
    per_config = after.groupby([*CONFIG_COLUMNS, "epoch"]).size()
    assert len(per_config) == 4 * EPOCHS and (per_config == 1).all(), per_config
    assert len(after) == 4 * EPOCHS
    assert after["trial_id"].nunique() == 4
    assert set(finished) <= set(after["trial_id"]), "Tuner.restore did not keep the trial ids"
    for trial_id, epochs in after.groupby("trial_id")["epoch"]:
        assert sorted(epochs) == list(range(1, EPOCHS + 1)), trial_id

    # Trials that had finished before the kill were not rerun: same rows, same report times.
    kept = after[after["trial_id"].isin(finished)].set_index(["trial_id", "epoch"])
    assert kept.index.sort_values().equals(stamps.index.sort_values())
    pd.testing.assert_series_equal(
        kept["reported_at"].sort_index(), stamps["reported_at"].sort_index()
    )
    assert (kept["attempt"] == 0).all()
    # The original folder is as the kill left it: no rerun row went there.
    assert sorted(p.name for p in (tmp_path / "res" / "parquet" / "experiment=kill").iterdir()) \
        == original_parts
    print(
        f"{len(finished)} trial(s) had finished before the kill; Tuner.restore resumed the others "
        f"(attempts after the rerun: {after.groupby('trial_id')['attempt'].max().to_dict()})"
    )


# ---------------------------------------------------------------------- 2. several nodes
MULTI_NODE_SCRIPT = '''
"""Run by test_trials_spread_over_nodes_and_survive_losing_their_node; prints one JSON line."""
import json
import sys
import threading
import time
from pathlib import Path

import ray
from ray import tune
from ray.cluster_utils import Cluster

from study.results import ParquetResultsWriter
from study.runner import RunOptions, build_tuner
from trainables import records as R
from trainables.config import SearchConfig

RESULTS = sys.argv[1]
LONG_EPOCHS = int(sys.argv[2])
BASE = SearchConfig(
    dataset="synthetic", channels=4, depth=1, batch_size=16, steps_per_epoch=2, probe_every=0
)
SEEN = []  # (experiment, trial_id, epoch, raylet pid of the reporting worker, attempt)


def _parent(pid):
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return None


class WhereItRan(tune.Callback):
    """Maps each result to its node: a Ray worker process is a child of its node's raylet."""

    def __init__(self, experiment):
        self.experiment = experiment

    def on_trial_result(self, iteration, trials, trial, result, **info):
        where = _parent(result["pid"])
        SEEN.append((self.experiment, trial.trial_id, result[R.EPOCH], where, trial.num_failures))


def raylet_pid(node):
    return node.all_processes["raylet"][0].process.pid


def tuner(configs, experiment):
    options = RunOptions(results=RESULTS, cpus_per_trial=1, max_failures=2)
    writer = ParquetResultsWriter(options.storage("parquet"), experiment)
    return build_tuner(configs, options, experiment, [writer, WhereItRan(experiment)])


cluster = Cluster(initialize_head=True, connect=True, head_node_args={"num_cpus": 0})
try:
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    out = {"workers": [raylet_pid(n) for n in workers], "head": raylet_pid(cluster.head_node)}

    # A: two trials at once, one CPU each, head without CPUs: one per worker node.
    spread = tuner([BASE.replace(epochs=4, level=level) for level in ("single", "bi")], "spread")
    out["spread_errors"] = len(spread.fit().errors)

    # B: one long trial; remove its node mid-trial (from this main thread), add a new one.
    box = {}
    fit = threading.Thread(
        target=lambda: box.update(r=tuner([BASE.replace(epochs=LONG_EPOCHS)], "failover").fit())
    )
    fit.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and sum(s[0] == "failover" for s in SEEN) < 3:
        time.sleep(0.1)
    before = [s for s in SEEN if s[0] == "failover"]
    victim = next(n for n in workers if raylet_pid(n) == before[-1][3])
    out["removed"] = raylet_pid(victim)
    out["removed_after_epoch"] = before[-1][2]
    cluster.remove_node(victim)
    added = cluster.add_node(num_cpus=1)
    out["added"] = raylet_pid(added)
    fit.join(timeout=240)
    out["fit_done"] = not fit.is_alive()
    out["failover_errors"] = len(box["r"].errors) if "r" in box else None
    out["seen"] = SEEN
    print("RESULT " + json.dumps(out), flush=True)
finally:
    ray.shutdown()
    cluster.shutdown()
'''


@pytest.mark.slow
def test_trials_spread_over_nodes_and_survive_losing_their_node(tmp_path, ray_tmpdir) -> None:
    """A simulated 3-node cluster (head without CPUs, two 1-CPU workers), run as a script in a
    subprocess so it never meets the session's ``ray_local`` cluster."""
    import json

    long_epochs = 30
    script = tmp_path / "multi_node.py"
    script.write_text(MULTI_NODE_SCRIPT)
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "res"), str(long_epochs)],
        cwd=tmp_path,
        env=subprocess_env(ray_tmpdir),
        text=True,
        capture_output=True,
        timeout=400,
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-5000:]
    out = json.loads(lines[-1][len("RESULT ") :])
    seen = pd.DataFrame(
        out["seen"], columns=["experiment", "trial_id", "epoch", "raylet", "attempt"]
    )
    parquet = tmp_path / "res" / "parquet"

    # A: both trials finished, each on its own worker node.
    assert out["spread_errors"] == 0
    spread = seen[seen["experiment"] == "spread"]
    nodes = spread.groupby("trial_id")["raylet"].agg(set)
    assert len(nodes) == 2 and all(len(n) == 1 for n in nodes), nodes
    assert set().union(*nodes) == set(out["workers"]), (nodes, out["workers"])
    frame = load_results(parquet, experiments=["spread"])
    assert len(frame) == 2 * 4 and frame.groupby("trial_id")["epoch"].nunique().eq(4).all()

    # B: the trial lost its node, restarted on another one and finished; every epoch once.
    assert out["fit_done"] and out["failover_errors"] == 0, out
    failover = seen[seen["experiment"] == "failover"]
    assert set(failover.loc[failover["attempt"] == 0, "raylet"]) == {out["removed"]}, failover
    retried = failover[failover["attempt"] > 0]
    assert len(retried) and set(retried["raylet"]) <= {*out["workers"], out["added"]} - {
        out["removed"]
    }, failover
    print(
        f"node removed after epoch {out['removed_after_epoch']}; retry reported epochs "
        f"{retried['epoch'].tolist()} from raylet(s) {set(retried['raylet'])}"
    )
    frame = load_results(parquet, experiments=["failover"])
    assert frame["trial_id"].nunique() == 1
    assert sorted(frame["epoch"]) == list(range(1, long_epochs + 1))
    assert frame["attempt"].max() == 1  # the rows after the restart come from attempt 1
