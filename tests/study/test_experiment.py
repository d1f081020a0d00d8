"""The experiment guards (study.experiment): the lock, the stored grid, the health check of Tune's
saved state (on a real Tune experiment folder) and the superseded rows of --restart."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pyarrow.fs as pafs
import pytest

from analysis import store
from analysis.results import load_results
from study.experiment import (
    GRID_FILE,
    DamagedState,
    ExperimentLocked,
    GridChanged,
    finished_grid_trials,
    grid_record,
    lock_experiment,
    open_experiment,
    state_problems,
)
from study.results import ParquetResultsWriter
from trainables.config import SearchConfig

LOCAL = pafs.LocalFileSystem()


# ---------------------------------------------------------------------- the lock
def _hold_lock_in_subprocess(tune_root: Path, experiment: str) -> subprocess.Popen:
    code = textwrap.dedent(f"""
        import sys, time
        from study.experiment import lock_experiment
        lock = lock_experiment({str(tune_root)!r}, {experiment!r})
        print("locked", flush=True)
        time.sleep(120)
    """)
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "locked"
    return process


def test_second_driver_is_refused_naming_the_first_and_a_killed_holder_never_blocks(tmp_path):
    holder = _hold_lock_in_subprocess(tmp_path, "exp")
    try:
        with pytest.raises(ExperimentLocked) as refused:
            lock_experiment(str(tmp_path), "exp")
        message = str(refused.value)
        assert f"pid {holder.pid}" in message and "'exp'" in message
        assert lock_experiment(str(tmp_path), "other") is not None  # other experiments are free
    finally:
        os.kill(holder.pid, signal.SIGKILL)  # no chance to clean up: the file stays behind
        holder.wait()
    assert (tmp_path / "exp.lock").exists()
    lock = lock_experiment(str(tmp_path), "exp")  # the dead holder's lock is gone with it
    assert lock is not None
    assert json.loads((tmp_path / "exp.lock").read_text())["pid"] == os.getpid()
    lock.release()


def test_object_store_results_hold_no_lock():
    assert lock_experiment("s3://bucket/results/tune", "exp") is None


# ---------------------------------------------------------------------- the stored grid
def _grid(**changes) -> list[SearchConfig]:
    base = SearchConfig(dataset="synthetic", epochs=3, batch_size=8, data_dir="/data/a")
    return [base.replace(seed=s, **changes) for s in range(3)]


def test_a_changed_grid_is_refused_naming_the_difference(tmp_path):
    parquet = str(tmp_path / "parquet")
    with open_experiment(str(tmp_path), parquet, "exp", grid_record(_grid())) as opened:
        assert not opened.resume and (tmp_path / "exp" / GRID_FILE).exists()
    with pytest.raises(GridChanged) as refused:
        open_experiment(str(tmp_path), parquet, "exp", grid_record(_grid(epochs=5)))
    message = str(refused.value)
    assert "trial 0: epochs 3 -> 5" in message and "--name" in message
    longer = grid_record([*_grid(), SearchConfig(dataset="synthetic", seed=9)])
    with pytest.raises(GridChanged, match="1 trial\\(s\\) added"):
        open_experiment(str(tmp_path), parquet, "exp", longer)
    # the refusals released the lock and changed nothing
    assert json.loads((tmp_path / "exp" / GRID_FILE).read_text())["trials"][0]["epochs"] == 3


def test_moved_data_and_later_added_fields_at_their_default_still_match(tmp_path):
    parquet = str(tmp_path / "parquet")
    stored = grid_record(_grid())
    for trial in stored["trials"]:  # an experiment stored before data_fraction existed
        del trial["data_fraction"]
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / GRID_FILE).write_text(json.dumps(stored))
    moved = grid_record(_grid(data_dir="/elsewhere", benchmark_dir="/bench"))
    open_experiment(str(tmp_path), parquet, "exp", moved).close()
    with pytest.raises(GridChanged, match=r"data_fraction 1\.0 -> 0\.5"):
        open_experiment(str(tmp_path), parquet, "exp", grid_record(_grid(data_fraction=0.5)))


# ---------------------------------------------------------------------- Tune's saved state
def _trivial(config):
    from ray import tune

    tune.report({"x": config["i"]})


@pytest.fixture(scope="module")
def tune_experiment(tmp_path_factory, ray_local) -> Path:
    """A real (finished) Tune experiment folder of 2 trivial trials, on the session's cluster."""
    from ray import tune

    root = tmp_path_factory.mktemp("tune")
    tune.Tuner(
        _trivial,
        param_space={"i": tune.grid_search([0, 1])},
        run_config=tune.RunConfig(name="exp", storage_path=str(root), verbose=0),
    ).fit()
    return root / "exp"


def _copy(folder: Path, tmp_path: Path) -> Path:
    target = tmp_path / "tune" / "exp"
    shutil.copytree(folder, target)
    return target


def test_an_intact_tune_state_has_no_problems(tune_experiment, tmp_path):
    assert state_problems(LOCAL, str(_copy(tune_experiment, tmp_path))) == []
    assert state_problems(LOCAL, str(tmp_path / "absent")) == []


@pytest.mark.parametrize("victim", ["experiment_state-", "tuner.pkl", "basic-variant-state-"])
@pytest.mark.parametrize("keep", [0, 0.5])
def test_a_truncated_state_file_is_named(tune_experiment, tmp_path, victim, keep):
    folder = _copy(tune_experiment, tmp_path)
    (path,) = [p for p in folder.iterdir() if p.name.startswith(victim)]
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    problems = state_problems(LOCAL, str(folder))
    assert len(problems) == 1 and problems[0].startswith(path.name)
    assert ("empty" if keep == 0 else "complete") in problems[0]
    with pytest.raises(DamagedState) as refused:
        open_experiment(str(tmp_path / "tune"), str(tmp_path / "parquet"), "exp", {"trials": []})
    assert path.name in str(refused.value) and "--restart" in str(refused.value)


def test_a_missing_tuner_pickle_beside_trials_is_damage(tune_experiment, tmp_path):
    folder = _copy(tune_experiment, tmp_path)
    (folder / "tuner.pkl").unlink()
    assert state_problems(LOCAL, str(folder)) == ["tuner.pkl is missing"]


# ---------------------------------------------------------------------- --restart
class _Trial:  # what the writer reads of a Tune trial: its id, failures and config
    def __init__(self, trial_id: str, config: SearchConfig) -> None:
        self.trial_id, self.num_failures, self.config = trial_id, 0, config.to_dict()


def _write_rows(parquet: str, trials: dict[str, tuple[SearchConfig, int]]) -> None:
    writer = ParquetResultsWriter(parquet, "exp")
    for trial_id, (config, epochs) in trials.items():
        for epoch in range(1, epochs + 1):
            writer.on_trial_result(0, [], _Trial(trial_id, config), {"epoch": epoch,
                                                                     "status": "ok"})
    writer.flush()


def test_restart_moves_the_state_aside_keeps_finished_trials_and_supersedes_the_rest(
    tune_experiment, tmp_path
):
    grid = _grid()
    parquet = str(tmp_path / "parquet")
    # trial a finished grid entry 0, trial b got 1 of 3 epochs of entry 2, entry 1 never started
    _write_rows(parquet, {"a": (grid[0], 3), "b": (grid[2], 1)})
    folder = _copy(tune_experiment, tmp_path)
    (folder / "tuner.pkl").write_bytes(b"")
    record = grid_record(grid)
    with pytest.raises(DamagedState):
        open_experiment(str(tmp_path / "tune"), parquet, "exp", record)

    def finished(rows: pd.DataFrame) -> dict[int, str]:
        return finished_grid_trials(rows, grid)

    opened = open_experiment(
        str(tmp_path / "tune"), parquet, "exp", record, restart=True, finished=finished
    )
    opened.close()
    restart = opened.restart
    assert restart is not None and restart.done == {0} and restart.superseded == {"b"}
    assert restart.moved_to and Path(restart.moved_to, "tuner.pkl").exists()  # nothing deleted
    assert not opened.resume and (folder / GRID_FILE).exists() and not (folder / "tuner.pkl").exists()
    rows = load_results(parquet, alphas=False)
    assert sorted(rows["trial_id"].unique()) == ["a"]  # b's row is superseded, not deleted
    folder_of = store.experiment_dir(parquet, "exp")
    assert "b" in store.superseded_trials(LOCAL, folder_of)
    raw = sum(len(pd.read_parquet(p)) for p in Path(folder_of).glob("part-*.parquet"))
    assert raw == 4
    time.sleep(1.1)  # a second restart gets its own aside folder (stamped to the second)
    again = open_experiment(
        str(tmp_path / "tune"), parquet, "exp", record, restart=True, finished=finished
    )
    again.close()
    assert again.restart is not None and again.restart.moved_to != restart.moved_to


# ---------------------------------------------------------------------- study tune
TUNE_SPEC = """name = "t"
[base]
dataset = "synthetic"
epochs = 2
[axes]
level = ["single", "bi"]
[tune]
samples = 2
objective = "valid_acc"
seed = 0
[tune.params]
w_lr = { low = 1e-3, high = 0.1, log = true }
"""


def _spec(tmp_path: Path, text: str):
    from study.tune_spec import load_tune_spec

    path = tmp_path / "spec.toml"
    path.write_text(text)
    return load_tune_spec(str(path))


def test_a_tuning_rerun_must_match_its_spec_but_may_ask_for_more_samples(tmp_path):
    from study.tune_execute import tuning_record

    tune_root, parquet = str(tmp_path / "tune"), str(tmp_path / "parquet")
    open_experiment(tune_root, parquet, "t", tuning_record(_spec(tmp_path, TUNE_SPEC))).close()
    more = _spec(tmp_path, TUNE_SPEC.replace("samples = 2", "samples = 5"))
    open_experiment(tune_root, parquet, "t", tuning_record(more)).close()
    for change, named in [
        (("seed = 0", "seed = 1"), "seed 0 -> 1"),
        (('objective = "valid_acc"', 'objective = "train_loss"'), "objective"),
        (("high = 0.1", "high = 0.2"), "params"),
        (("epochs = 2", "epochs = 3"), "trial 0: epochs 2 -> 3"),
    ]:
        changed = _spec(tmp_path, TUNE_SPEC.replace(*change))
        with pytest.raises(GridChanged, match=re.escape(named)):
            open_experiment(tune_root, parquet, "t", tuning_record(changed))


def test_restart_of_a_tuning_run_keeps_the_samples_the_database_finished(tmp_path):
    import optuna

    from study.tune_execute import finished_samples

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="t:level=single", storage=storage)
    for state in ("complete", "pruned", "running"):
        trial = study.ask()
        if state == "complete":
            study.tell(trial, 1.0)
        elif state == "pruned":
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    rows = pd.DataFrame({
        "tune_study": ["t:level=single"] * 4 + ["t:gone"],
        "tune_sample": [0, 1, 2, 2, 0],
        "trial_id": ["a", "b", "c", "c", "d"],
    })
    assert finished_samples(storage, rows) == {("t:level=single", 0): "a",
                                               ("t:level=single", 1): "b"}
