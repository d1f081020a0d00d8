"""``study tune`` end to end, as a user runs it (``python -m study.cli tune`` in a subprocess with
its own Ray cluster): rows with their tuning context, the Optuna database agreeing with the
Parquet rows, the sidecar and the tables; bad specs exit 2 with no results folder; and (slow) the
shipped smoke spec killed mid-run and rerun ends with exactly its samples per cell."""

from __future__ import annotations

import math
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState
from ray_processes import kill_driver_when, subprocess_env
from tiny_specs import tiny_toml

from analysis import load_results
from analysis.store import read_tuning
from study.cli import main
from study.tune_spec import load_tune_spec

REPO = Path(__file__).resolve().parents[2]
EXPERIMENT = "tune-smoke"  # the name in examples/tune_smoke.toml
SPEC = tiny_toml(
    "tiny",
    2,
    """[axes]
level = ["single", "bi"]
[tune]
samples = 2
objective = "train_loss"
epoch = "best"
[tune.params]
w_lr = { low = 1e-3, high = 0.1, log = true }
""",
)


def _tune_cmd(spec: Path, results: Path, *options: str) -> list[str]:
    return [sys.executable, "-m", "study.cli", "tune", str(spec), "--results", str(results),
            *options]


def _trials(results: Path, experiment: str) -> dict[str, list[optuna.trial.FrozenTrial]]:
    url = f"sqlite:///{results / 'optuna.db'}"
    names = [s.study_name for s in optuna.get_all_study_summaries(url)]
    return {
        name: optuna.load_study(study_name=name, storage=url).get_trials()
        for name in names
        if name.startswith(f"{experiment}:")
    }


def _objective_per_sample(rows: pd.DataFrame) -> dict[tuple[str, int], float]:
    """(study, sample) -> objective recomputed from the rows: the complete trial's final or
    best epoch value, per the row's tuning context."""
    out = {}
    for (study, sample), group in rows.groupby(["tune_study", "tune_sample"]):
        trial = group.loc[group["epoch"].idxmax(), "trial_id"]
        mine = group[group["trial_id"] == trial].sort_values("epoch")
        column, epoch, direction = mine.iloc[0][["tune_objective", "tune_epoch", "tune_direction"]]
        values = mine[column].astype(float)
        if epoch == "final":
            value = float(values.iloc[-1])
        else:
            value = float(values.max() if direction == "max" else values.min())
        out[(study, int(sample))] = value
    return out


def _assert_database_and_rows_agree(results: Path, experiment: str, samples: int) -> None:
    rows = load_results(results, experiments=[experiment], alphas=False)
    trials = _trials(results, experiment)
    assert len(trials) == 2
    recomputed = _objective_per_sample(rows)
    for name, study_trials in trials.items():
        complete = [t for t in study_trials if t.state == TrialState.COMPLETE]
        assert len(complete) == samples, (name, [t.state for t in study_trials])
        assert not [t for t in study_trials if t.state == TrialState.RUNNING]
        for trial in complete:
            assert trial.value == pytest.approx(recomputed[(name, trial.number)]), trial.number
            mine = rows[(rows["tune_study"] == name) & (rows["tune_sample"] == trial.number)]
            assert mine["w_lr"].iloc[0] == pytest.approx(trial.params["w_lr"])
        in_rows = {s for (study, s) in recomputed if study == name}
        assert in_rows == {t.number for t in complete}  # none lost, none extra


def test_a_tuning_run_writes_rows_with_context_that_agree_with_the_database(
    tmp_path, ray_tmpdir
) -> None:
    spec = tmp_path / "tiny.toml"
    spec.write_text(SPEC)
    results = tmp_path / "res"
    done = subprocess.run(
        # all 4 samples at once on 2 CPUs: one wave of trial start-ups instead of two
        _tune_cmd(spec, results, "--cpus-per-trial", "0.5"), cwd=tmp_path, env=subprocess_env(ray_tmpdir),
        text=True,
        capture_output=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = load_results(results, experiments=["tiny"], alphas=False)
    assert len(rows) == 2 * 2 * 2  # cells x samples x epochs
    assert rows[["tune_study", "tune_cell", "tune_sample", "tune_objective"]].notna().all().all()
    assert set(rows["tune_cell"]) == {"level=single", "level=bi"}
    assert set(rows["tune_objective"]) == {"train_loss"} and set(rows["tune_direction"]) == {"min"}
    _assert_database_and_rows_agree(results, "tiny", samples=2)
    sidecar = read_tuning(results, ["tiny"])["tiny"]
    assert {label: cell["complete"] for label, cell in sidecar["cells"].items()} == {
        "level=single": 2, "level=bi": 2
    }
    assert "finished samples per cell: level=single: 2/2, level=bi: 2/2" in done.stdout


GOOD_PARAMS = "w_lr = { low = 0.001, high = 0.01 }"


@pytest.mark.parametrize(
    ("base", "tune_table", "params", "message"),
    [
        ("", "samples = 0\nobjective = 'valid_acc'", GOOD_PARAMS, "[tune] samples"),
        ("", "samples = 2\nobjective = 'no_such_column'", GOOD_PARAMS, "[tune] objective"),
        ("", "samples = 2\nobjective = 'benchmark:test'\n[base2]", GOOD_PARAMS, "base2"),
        ("", "samples = 2\nobjective = 'valid_acc'", "w_lr = { low = 0.01, high = 0.001 }",
         "[tune.params] w_lr"),
        ("", "samples = 2\nobjective = 'valid_acc'",
         "alpha_init = { low = 0.0, high = 1.0, log = true }", "[tune.params] alpha_init"),
        ("", "samples = 2\nobjective = 'valid_acc'", "lr = { low = 0.001, high = 0.01 }",
         "[tune.params] lr"),
        ("", "samples = 2\nobjective = 'valid_acc'", "w_optimizer = { choices = [] }",
         "[tune.params] w_optimizer"),
        ("space = 'darts'\n", "samples = 2\nobjective = 'benchmark:test'", GOOD_PARAMS,
         "space='nb201'"),
    ],
    ids=["samples", "objective", "table", "low-high", "log-bound", "unknown-param",
         "no-choices", "space-objective"],
)
def test_a_bad_spec_exits_2_before_anything_is_written(tmp_path, capsys, base, tune_table,
                                                       params, message):
    spec = tmp_path / "bad.toml"
    spec.write_text(
        "[base]\ndataset = 'synthetic'\n" + base + "[tune]\n" + tune_table
        + "\n[tune.params]\n" + params + "\n"
    )
    assert main(["tune", str(spec), "--results", str(tmp_path / "res")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "res").exists()


def test_object_store_results_need_an_explicit_storage(tmp_path, capsys) -> None:
    spec = tmp_path / "tiny.toml"
    spec.write_text(SPEC)
    assert main(["tune", str(spec), "--results", f"file://{tmp_path}/res"]) == 2
    assert "--storage" in capsys.readouterr().err


def test_an_unusable_storage_url_exits_2_before_ray_starts(tmp_path, capsys) -> None:
    spec = tmp_path / "tiny.toml"
    spec.write_text(SPEC)
    code = main(["tune", str(spec), "--results", str(tmp_path / "res"), "--storage", "bogus://x"])
    assert code == 2
    assert "cannot open the Optuna storage 'bogus://x'" in capsys.readouterr().err
    assert not (tmp_path / "res").exists()


# ---------------------------------------------------------------------- slow: kill and resume
@pytest.mark.slow
def test_the_smoke_spec_killed_mid_run_resumes_to_exactly_its_samples(
    tmp_path, ray_tmpdir
) -> None:
    """examples/tune_smoke.toml (2 cells x 4 samples x 2 epochs on digits): SIGKILL the driver
    once two samples have finished, rerun the same command: 4 finished samples per cell, the
    database and the Parquet rows agree, and the whole thing took under 10 minutes."""
    spec = REPO / "examples" / "tune_smoke.toml"
    assert load_tune_spec(spec).name == EXPERIMENT
    results = tmp_path / "res"
    env = subprocess_env(ray_tmpdir)
    start = time.monotonic()
    def two_finished() -> bool:
        try:
            return sum(
                t.state == TrialState.COMPLETE
                for trials in _trials(results, EXPERIMENT).values() for t in trials
            ) >= 2
        except Exception:  # the database is being created
            return False

    kill_driver_when(
        _tune_cmd(spec, results), cwd=tmp_path, env=env, ray_tmpdir=ray_tmpdir,
        ready=two_finished, timeout=400, poll=1.0,
    )
    before = {
        name: [t.state for t in trials] for name, trials in _trials(results, EXPERIMENT).items()
    }
    assert sum(s == TrialState.COMPLETE for states in before.values() for s in states) < 8
    rerun = subprocess.run(
        _tune_cmd(spec, results), cwd=tmp_path, env=env, text=True, capture_output=True,
        timeout=600, check=False,
    )
    elapsed = time.monotonic() - start
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    _assert_database_and_rows_agree(results, EXPERIMENT, samples=4)
    tables = subprocess.run(
        [sys.executable, "-m", "study.cli", "tables", str(results), "--table", "tuning"],
        env=env, text=True, capture_output=True, timeout=120, check=True,
    ).stdout
    assert "level=single" in tables and "level=bi" in tables
    print(f"before the kill: {before}; total {elapsed:.0f} s; tables:\n{tables}")
    assert elapsed < 600
    assert math.isfinite(elapsed)

