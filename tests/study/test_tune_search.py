"""The tuning searcher (``study.tune_search.CellStudies``) driven as Tune drives it, without a
cluster: suggest / on_trial_result / on_trial_complete against a real SQLite Optuna database.
Covers the budget per cell, common first samples, resume after a crash (orphaned samples handed
out again, exactly ``samples`` finished per cell), errors replaced, diverged samples counted,
the best-epoch objective, and the sidecar with its importances."""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from analysis import store
from study import tune_search as ts
from study.tune_spec import TuneSpec, load_tune_spec
from trainables.tune_trainable import OBJECTIVE

SPEC = """
name = "unit"
[base]
dataset = "synthetic"
channels = 4
depth = 1
epochs = 3
[axes]
level = ["single", "bi"]
[tune]
samples = {samples}
objective = "valid_acc"
epoch = "{epoch}"
seed = 7
[tune.params]
w_lr = {{ low = 1e-3, high = 0.1, log = true }}
w_optimizer = {{ choices = ["sgd", "adam"] }}
"""


def make_spec(tmp_path: Path, samples: int = 3, epoch: str = "final") -> TuneSpec:
    path = tmp_path / "spec.toml"
    path.write_text(SPEC.format(samples=samples, epoch=epoch))
    return load_tune_spec(path)


def searcher(spec: TuneSpec, tmp_path: Path, known: frozenset = frozenset()) -> ts.CellStudies:
    ts.bind("unit", ts.Binding(f"sqlite:///{tmp_path / 'optuna.db'}", str(tmp_path / "pq"), known))
    return ts.CellStudies(spec, "unit")


def finish(s: ts.CellStudies, trial_id: str, config: dict, values: list[float],
           status: str = "ok", error: bool = False) -> None:
    """Report one value per epoch, then complete (Tune's order)."""
    result: dict = {}
    for epoch, value in enumerate(values, start=1):
        result = {"epoch": epoch, OBJECTIVE: value, "status": status, "config": config}
        s.on_trial_result(trial_id, result)
    s.on_trial_complete(trial_id, None if error else result, error=error)


def studies(tmp_path: Path) -> dict[str, list[optuna.trial.FrozenTrial]]:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    return {
        name: optuna.load_study(study_name=name, storage=url).get_trials()
        for name in ("unit:level=single", "unit:level=bi")
    }


def test_samples_alternate_between_cells_and_carry_their_context(tmp_path: Path) -> None:
    s = searcher(make_spec(tmp_path), tmp_path)
    configs = [s.suggest(f"t{i}") for i in range(6)]
    assert [c["_tune_cell"] for c in configs] == ["level=single", "level=bi"] * 3
    assert [c["_tune_sample"] for c in configs] == [0, 0, 1, 1, 2, 2]
    assert s.suggest("t6") is None  # every sample is out: wait
    first = configs[0]
    assert first["_tune_study"] == "unit:level=single" and first["_tune_objective"] == "valid_acc"
    assert first["_tune_epoch"] == "final" and first["_tune_direction"] == "max"
    assert first["_tune_sampler_seed"] == 7 and first["level"] == "single"
    assert 1e-3 <= first["w_lr"] <= 0.1 and first["w_optimizer"] in ("sgd", "adam")
    # The same seed gives both cells the same first samples (common random numbers).
    assert [(c["w_lr"], c["w_optimizer"]) for c in configs[0::2]] == [
        (c["w_lr"], c["w_optimizer"]) for c in configs[1::2]
    ]
    for i, config in enumerate(configs):
        finish(s, f"t{i}", config, [50.0, 60.0 + i, 55.0])
    assert s.suggest("t7") == "FINISHED"
    for trials in studies(tmp_path).values():
        assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
        assert [t.intermediate_values[3] for t in trials] == [t.value for t in trials]


def test_a_fresh_run_with_the_same_seed_proposes_the_same_samples(tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    runs = []
    for run in ("a", "b"):
        (tmp_path / run).mkdir(exist_ok=True)
        s = searcher(spec, tmp_path / run)
        runs.append([(c["w_lr"], c["w_optimizer"]) for c in (s.suggest(f"t{i}") for i in range(6))])
    assert runs[0] == runs[1]


def test_best_epoch_objective_is_the_best_finite_epoch(tmp_path: Path) -> None:
    s = searcher(make_spec(tmp_path, samples=1, epoch="best"), tmp_path)
    a, b = s.suggest("a"), s.suggest("b")
    finish(s, "a", a, [50.0, 70.0, 60.0])
    finish(s, "b", b, [50.0, math.nan, math.nan], status="diverged")
    single, bi = studies(tmp_path).values()
    assert single[0].state == TrialState.COMPLETE and single[0].value == 70.0
    assert bi[0].state == TrialState.COMPLETE and bi[0].value == 50.0  # before it diverged


def test_a_diverged_sample_counts_without_a_final_value(tmp_path: Path) -> None:
    s = searcher(make_spec(tmp_path, samples=1), tmp_path)
    a, b = s.suggest("a"), s.suggest("b")
    finish(s, "a", a, [50.0, 70.0, 60.0])
    finish(s, "b", b, [50.0, math.nan, math.nan], status="diverged")
    bi = studies(tmp_path)["unit:level=bi"]
    assert bi[0].state == TrialState.FAIL and bi[0].user_attrs[ts.OUTCOME] == ts.COUNTED_FAIL
    assert s.suggest("c") == "FINISHED"  # a diverged sample is a finished sample


def test_an_errored_trial_is_replaced_by_a_new_sample(tmp_path: Path) -> None:
    s = searcher(make_spec(tmp_path, samples=1), tmp_path)
    a, b = s.suggest("a"), s.suggest("b")
    finish(s, "a", a, [50.0], error=True)
    c = s.suggest("c")
    assert c["_tune_cell"] == "level=single" and c["_tune_sample"] == 1
    finish(s, "b", b, [50.0, 51.0, 52.0])
    finish(s, "c", c, [50.0, 51.0, 53.0])
    single = studies(tmp_path)["unit:level=single"]
    assert [t.state for t in single] == [TrialState.FAIL, TrialState.COMPLETE]
    assert single[0].user_attrs[ts.OUTCOME] == ts.ERROR_FAIL
    assert s.suggest("d") == "FINISHED"


def test_resume_hands_out_orphans_first_and_ends_with_exactly_the_samples(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, samples=2)
    s = searcher(spec, tmp_path)
    handed = {f"t{i}": s.suggest(f"t{i}") for i in range(4)}
    finish(s, "t0", handed["t0"], [1.0, 2.0, 3.0])  # single sample 0 finished
    s.on_trial_result("t1", {"epoch": 1, OBJECTIVE: 5.0, "config": handed["t1"]})
    # Crash. Tune's saved state knows t1 (bi sample 0) and t2 (single sample 1); t3 (bi sample 1)
    # was asked just before the crash and no Tune trial holds it.
    known = frozenset({("unit:level=bi", 0), ("unit:level=single", 1)})
    restored = pickle.loads(pickle.dumps(s))  # what Tune restores: no database state in it
    ts.bind("unit", ts.Binding(f"sqlite:///{tmp_path / 'optuna.db'}", str(tmp_path / "pq"), known))
    orphan = restored.suggest("n1")
    assert (orphan["_tune_study"], orphan["_tune_sample"]) == ("unit:level=bi", 1)
    assert orphan["w_lr"] == handed["t3"]["w_lr"]  # the same sample, not a new one
    assert restored.suggest("n2") is None  # nothing else is free
    # The restored Tune trials report again under new ids: found by their config.
    finish(restored, "r1", handed["t1"], [5.0, 6.0, 7.0])
    finish(restored, "r2", handed["t2"], [1.0, 1.0, 1.0])
    finish(restored, "n1", orphan, [2.0, 2.0, 2.0])
    finish(restored, "t0-again", handed["t0"], [9.0, 9.0, 9.0])  # a re-report: already told
    assert restored.suggest("n3") == "FINISHED"
    for name, trials in studies(tmp_path).items():
        assert [t.state for t in trials] == [TrialState.COMPLETE] * 2, name
    assert studies(tmp_path)["unit:level=single"][0].value == 3.0  # not overwritten
    assert studies(tmp_path)["unit:level=bi"][0].intermediate_values == {1: 5.0, 2: 6.0, 3: 7.0}


def test_a_resumed_study_draws_new_samples(tmp_path: Path) -> None:
    assert ts.sampler_seed(7, 0) == 7
    assert ts.sampler_seed(7, 3) != 7 and ts.sampler_seed(7, 3) == ts.sampler_seed(7, 3)


def test_the_sidecar_holds_progress_best_and_importances(tmp_path: Path) -> None:
    s = searcher(make_spec(tmp_path, samples=4), tmp_path)
    for i in range(8):
        config = s.suggest(f"t{i}")
        finish(s, f"t{i}", config, [10.0, 20.0, 30.0 + 100 * config["w_lr"] + i])
    payload = store.read_tuning(tmp_path / "pq")["unit"]
    assert payload["samples"] == 4 and payload["direction"] == "max"
    assert payload["params"]["w_lr"] == {"low": 1e-3, "high": 0.1, "log": True}
    single = payload["cells"]["level=single"]
    trials = studies(tmp_path)["unit:level=single"]
    best = max(trials, key=lambda t: t.value)
    assert single["complete"] == 4 and single["best"]["sample"] == best.number
    assert single["best"]["value"] == best.value
    values = single["importance"]["values"]
    assert set(values) == {"w_lr", "w_optimizer"}
    assert sum(values.values()) == pytest.approx(1.0)  # Optuna normalises importances to sum 1
    assert json.loads((tmp_path / "pq" / "experiment=unit" / store.TUNING_FILE).read_text())


def test_the_searchers_saved_state_reads_as_intact_to_the_next_runs_state_check(tmp_path):
    """Tune saves the searcher as ``searcher-state-<stamp>.pkl`` at every snapshot; a driver
    killed after one must still resume (the state check once took its plain text for damaged
    JSON and refused the rerun)."""
    import pyarrow.fs as pafs

    from study.experiment import state_problems

    folder = tmp_path / "exp"
    folder.mkdir()
    (folder / "tuner.pkl").write_bytes(pickle.dumps({"tuner": 1}))
    (folder / "experiment_state-2026-01-01_00-00-00.json").write_text("{}")
    searcher(make_spec(tmp_path), tmp_path).save(str(folder / "searcher-state-2026-01-01_00-00-00.pkl"))
    assert state_problems(pafs.LocalFileSystem(), str(folder)) == []
