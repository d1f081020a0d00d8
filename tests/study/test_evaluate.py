"""``study evaluate``: genotypes from a search's results or the command line, presets with
changes, bad input refused before Ray starts, and real evaluations through Ray Tune: one run
end to end through the command (written beside the search, joined with it in the table), and a
killed trial worker that resumes with every epoch landing once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from ray import tune

from analysis import store
from analysis.results import load_evaluations
from search_spaces.published import DARTS_V2, PC_DARTS
from study import evaluate as E
from study.cli import EXIT_BAD_INPUT, main
from study.results import ParquetResultsWriter
from study.runner import RunOptions, trial_trainable
from trainables import records as R
from trainables.config import SearchConfig
from trainables.eval_config import preset_config
from trainables.evaluation import run_evaluation
from trainables.tune_trainable import KILL_ONCE_AT_EPOCH

TINY = ("--set", "dataset=digits", "--set", "layers=3", "--set", "init_channels=4",
        "--set", "epochs=2", "--set", "batch_size=32", "--set", "steps_per_epoch=2",
        "--set", "cutout=8")
DARTS_SEARCH = SearchConfig(space="darts", dataset="digits", channels=4, depth=3, epochs=3)


def write_search(root: Path, experiment: str, trials: dict[str, tuple[SearchConfig, int, str]]):
    """A search experiment under ``root`` (a ``--results`` folder): per trial id its config,
    last epoch and final genotype, as the results writer stores them."""
    rows = []
    for trial_id, (config, last, genotype) in trials.items():
        for epoch in range(1, last + 1):
            rows.append({
                "experiment": experiment, "trial_id": trial_id, "attempt": 0,
                "reported_at": store.utc_now(), **config.to_dict(), R.EPOCH: epoch,
                R.STATUS: R.STATUS_OK, R.GENOTYPE: genotype,
            })
    fs, base = store.resolve_location(root / "parquet")
    folder = store.experiment_dir(base, experiment)
    fs.create_dir(folder, recursive=True)
    pq.write_table(store.rows_to_table(rows, store.SEARCH.schema()),
                   f"{folder}/{store.new_part_name()}")
    store.record_run(fs, folder, experiment, {"started_at": "now"})


# ---------------------------------------------------------------------- targets and settings
def test_finished_darts_searches_are_the_targets_with_their_provenance(tmp_path) -> None:
    write_search(tmp_path, "srch", {
        "a": (DARTS_SEARCH, 3, DARTS_V2.to_string()),
        "b": (DARTS_SEARCH.replace(seed=1), 3, PC_DARTS.to_string()),
        "c": (DARTS_SEARCH.replace(seed=2), 2, DARTS_V2.to_string()),  # unfinished
    })
    experiment, targets, notes = E.search_targets(str(tmp_path), None)
    assert experiment == "srch"
    assert [(t.arch, t.genotype, t.source_experiment, t.source_trial_id) for t in targets] == [
        ("srch/a", DARTS_V2.to_string(), "srch", "a"),
        ("srch/b", PC_DARTS.to_string(), "srch", "b"),
    ]
    assert notes == ["1 of 3 DARTS trial(s) of 'srch' are unfinished or diverged and are not "
                     "evaluated"]


def test_evaluations_go_to_the_results_folder_also_when_given_its_parquet_root(tmp_path) -> None:
    write_search(tmp_path / "res", "srch", {"a": (DARTS_SEARCH, 3, DARTS_V2.to_string())})
    for source in ("res", "res/parquet", "res/parquet/"):
        assert E.results_folder(str(tmp_path / source)) == str(tmp_path / "res")
    assert E.results_folder("s3://bucket/study") == "s3://bucket/study"


def test_a_search_source_must_be_one_darts_search_experiment(tmp_path) -> None:
    write_search(tmp_path, "nb", {"a": (SearchConfig(epochs=1), 1, "|none~0|")})
    with pytest.raises(ValueError, match="no DARTS-space searches"):
        E.search_targets(str(tmp_path), None)
    write_search(tmp_path, "other", {"a": (DARTS_SEARCH, 3, DARTS_V2.to_string())})
    with pytest.raises(ValueError, match=r"holds 2 search experiments \(nb, other\); name one"):
        E.search_targets(str(tmp_path), None)
    with pytest.raises(ValueError, match="--experiment 'x' is not a search experiment"):
        E.search_targets(str(tmp_path), "x")


def test_settings_are_typed_by_their_field_and_bad_ones_named() -> None:
    assert E.parse_settings(["epochs=3", "lr=0.1", "nesterov=true", "dataset=digits"]) == {
        "epochs": 3, "lr": 0.1, "nesterov": True, "dataset": "digits"}
    for pairs, message in [
        (["colour=red"], "--set colour: unknown setting"),
        (["epochs"], "expected KEY=VALUE"),
        (["epochs=2.5"], "--set epochs='2.5': not a int"),
        (["nesterov=yes"], "expected true or false"),
        (["genotype=DARTS_V2"], "genotype is set by the command"),
    ]:
        with pytest.raises(ValueError, match=message):
            E.parse_settings(pairs)


def test_one_config_per_genotype_and_seed_from_the_preset_with_changes() -> None:
    targets = E.given_targets(["darts_v2", DARTS_V2.to_string()])
    assert targets[0].arch == "DARTS_V2" and targets[1].arch.startswith("genotype-")
    configs = E.evaluation_configs(targets, "imagenet", range(2), {"epochs": 30})
    assert [(c.arch, c.seed, c.epochs, c.batch_size) for c in configs] == [
        ("DARTS_V2", 0, 30, 1024), ("DARTS_V2", 1, 30, 1024),
        (targets[1].arch, 0, 30, 1024), (targets[1].arch, 1, 30, 1024),
    ]
    twice = E.evaluation_configs([*targets[:1], *E.given_targets(["DARTS_V2"])], "cifar10",
                                 range(1), {})
    assert len(twice) == 1  # the same genotype named twice is trained once
    E.check_workers(twice, 0.5)  # one process may take a share of a GPU
    with pytest.raises(ValueError, match="set --gpus-per-trial 2"):
        E.check_workers([twice[0].replace(workers=2)], 0.5)
    with pytest.raises(ValueError, match="warmup_epochs=5 must be fewer than epochs=3"):
        E.evaluation_configs(targets, "imagenet", range(1), {"epochs": 3})


# ---------------------------------------------------------------------- the command
def test_dry_run_lists_the_trials_and_each_networks_size(tmp_path, capsys) -> None:
    code = main(["evaluate", "DARTS_V2", "P_DARTS", "--preset", "cifar10", "--set", "layers=20",
                 "--results", str(tmp_path / "res"), "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0
    assert "| DARTS_V2 | 528 | 3.35 |" in out  # the DARTS paper's 3.3 M at 20 cells
    assert "| P_DARTS |" in out and "2 trials in experiment 'eval-cifar10'" in out
    assert not (tmp_path / "res").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["DARTS_V3", "--preset", "cifar10"], "neither a DARTS Genotype"),
        (["no/such/results", "--preset", "cifar10"], "'no/such/results' is not a results folder"),
        (["DARTS_V2", "--preset", "cifar10", "--set", "lr=-1"], "lr=-1.0 must be > 0"),
        (["DARTS_V2", "--preset", "cifar10", "--workers", "2", "--gpus-per-trial", "1"],
         "set --gpus-per-trial 2"),
        (["DARTS_V2", "--preset", "cifar10", "--data-dir", "/nonexistent"], "/nonexistent"),
        (["DARTS_V2", "--preset", "cifar10", "--seeds", "0"], "--seeds 0 must be >= 1"),
        (["DARTS_V2", "--preset", "cifar10", "--experiment", "x"], "not one results folder"),
    ],
)
def test_bad_input_exits_2_before_anything_is_written(tmp_path, capsys, args, message) -> None:
    code = main(["evaluate", *args, "--results", str(tmp_path / "res")])
    assert code == EXIT_BAD_INPUT
    assert message in capsys.readouterr().err
    assert not (tmp_path / "res").exists()


def _study(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "study.cli", *args], cwd=cwd, text=True,
                          capture_output=True, timeout=300, check=False)


def _evaluate_search(tmp_path: Path) -> tuple[tuple[str, ...], subprocess.CompletedProcess[str]]:
    """``study evaluate`` on a search experiment with one finished DARTS trial, plus DARTS_V2:
    the command and its completed run."""
    write_search(tmp_path / "res", "srch", {
        "a": (DARTS_SEARCH.replace(activation="sigmoid"), 3, PC_DARTS.to_string()),
    })
    command = ("evaluate", str(tmp_path / "res"), "--preset", "cifar10",
               "--reference", "DARTS_V2", *TINY)
    return command, _study(*command, cwd=tmp_path)


def test_evaluate_a_search_end_to_end_beside_it(tmp_path) -> None:
    """A searched genotype and a published reference, trained through Ray by the command: the
    evaluations land as experiment '<search>-eval-<preset>' in the search's results folder,
    every (trial, epoch) once, and the table joins them with the search's method."""
    _, done = _evaluate_search(tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = load_evaluations(tmp_path / "res", experiments=["srch-eval-cifar10"])
    assert sorted(zip(rows["arch"], rows[R.EPOCH], strict=True)) == [
        ("DARTS_V2", 1), ("DARTS_V2", 2), ("srch/a", 1), ("srch/a", 2)]
    assert set(rows[rows["arch"] == "srch/a"]["source_trial_id"]) == {"a"}
    raw = pq.read_table(tmp_path / "res" / "parquet" / "experiment=srch-eval-cifar10")
    assert raw.num_rows == 4  # written once each
    assert "| Single-DARTS | sigmoid | 1 | 1 |" in done.stdout
    assert "| DARTS_V2 | — | — | — |" in done.stdout
    assert "started: arch=DARTS_V2" in done.stdout and "Genotype(" not in done.stdout
    assert "finished: epoch 2/2" in done.stdout and "top-1" in done.stdout
    tables = _study("tables", str(tmp_path / "res"), "--table", "evaluation", cwd=tmp_path)
    assert "| Single-DARTS | sigmoid |" in tables.stdout


@pytest.mark.slow
def test_the_same_evaluate_command_again_reruns_nothing(tmp_path) -> None:
    command, done = _evaluate_search(tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = load_evaluations(tmp_path / "res", experiments=["srch-eval-cifar10"])
    again = _study(*command, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "started" not in again.stdout
    rerun = load_evaluations(tmp_path / "res", experiments=["srch-eval-cifar10"])
    assert rerun["reported_at"].tolist() == rows["reported_at"].tolist()


# ---------------------------------------------------------------------- faults
def test_a_killed_evaluation_worker_resumes_and_every_epoch_lands_once(ray_local, tmp_path):
    """SIGKILL the trial's process after it reported epoch 1: Tune retries it from that
    checkpoint, and the rows equal an undisturbed evaluation's (bit for bit on the CPU)."""
    config = preset_config("cifar10", "DARTS_V2", dataset="digits", layers=3, init_channels=4,
                           epochs=2, batch_size=32, steps_per_epoch=2, cutout=8)
    undisturbed = run_evaluation(config)
    root = tmp_path / "parquet"
    tuner = tune.Tuner(
        trial_trainable(RunOptions(), evaluation=True),
        param_space={**config.to_dict(), KILL_ONCE_AT_EPOCH: 1},
        run_config=tune.RunConfig(
            storage_path=str(tmp_path / "tune"), name="killed", verbose=0,
            failure_config=tune.FailureConfig(max_failures=2),
            callbacks=[ParquetResultsWriter(root, "killed", kind="evaluation")],
        ),
    )
    results = tuner.fit()
    assert not results.errors
    rows = load_evaluations(root)
    assert rows[R.EPOCH].tolist() == [1, 2] and rows["attempt"].tolist() == [0, 1]
    raw = pq.read_table(root / "experiment=killed").to_pandas()
    assert sorted(raw[R.EPOCH]) == [1, 2]  # each epoch written once: none lost, none twice
    for row, expected in zip(rows.to_dict("records"), undisturbed, strict=True):
        for name in (R.TRAIN_LOSS, R.TRAIN_ACC, R.TEST_LOSS, R.TEST_ACC, R.EPOCH_LR):
            assert row[name] == expected[name], (row[R.EPOCH], name)
    assert KILL_ONCE_AT_EPOCH not in rows.columns


@pytest.mark.slow
def test_a_data_parallel_evaluation_through_ray_survives_a_killed_trial(ray_local, tmp_path):
    """2 gloo processes inside one Ray trial; the trial's process is SIGKILLed after epoch 1
    (its child dies with it), Tune retries it, and the rows equal those of the same data-parallel
    evaluation undisturbed outside Ray, each epoch written once."""
    from trainables.data_parallel import run_data_parallel

    config = preset_config("cifar10", "DARTS_V2", dataset="digits", layers=3, init_channels=4,
                           epochs=3, batch_size=32, steps_per_epoch=2, cutout=8, workers=2)
    undisturbed: list[dict] = []
    run_data_parallel(config, use_cuda=False, threads=2,
                      report=lambda record, evaluation, state: undisturbed.append(record))
    root = tmp_path / "parquet"
    tuner = tune.Tuner(
        trial_trainable(RunOptions(cpus_per_trial=2), evaluation=True),
        param_space={**config.to_dict(), KILL_ONCE_AT_EPOCH: 1},
        run_config=tune.RunConfig(
            storage_path=str(tmp_path / "tune"), name="ddp", verbose=0,
            failure_config=tune.FailureConfig(max_failures=2),
            callbacks=[ParquetResultsWriter(root, "ddp", kind="evaluation")],
        ),
    )
    assert not tuner.fit().errors
    rows = load_evaluations(root)
    assert rows[R.EPOCH].tolist() == [1, 2, 3] and rows["attempt"].tolist() == [0, 1, 1]
    assert sorted(pq.read_table(root / "experiment=ddp").to_pandas()[R.EPOCH]) == [1, 2, 3]
    for row, expected in zip(rows.to_dict("records"), undisturbed, strict=True):
        for name in (R.TRAIN_LOSS, R.TEST_LOSS, R.TEST_ACC):
            assert row[name] == expected[name], (row[R.EPOCH], name)
