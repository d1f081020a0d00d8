"""Bad inputs of ``study run``, ``study tune`` and ``study plots`` exit with status 2 and a message
naming the bad value, before Ray starts or anything is written (``study.inputs``).

Every command runs in-process through ``study.cli.main``; running a grid, a tuning spec or
drawing figures is replaced by a stand-in that fails the test, so a check that lets a bad input
through fails fast instead of starting Ray (or waiting forever for resources).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import ray
from tiny_specs import tiny_toml

from study.cli import EXIT_BAD_INPUT, main
from study.inputs import (
    FILELESS_DATASETS,
    check_cluster_resources,
    check_locations_used,
    check_results_location,
    check_trial_fits,
)
from study.runner import RunOptions
from trainables.config import DATASETS, SearchConfig

GRID = tiny_toml("tiny", 1, '[axes]\nlevel = ["single", "bi"]\n')
SPEC = tiny_toml(
    "tiny-tune",
    1,
    """[axes]
level = ["single", "bi"]
[tune]
samples = 1
objective = "train_loss"
[tune.params]
w_lr = { low = 2e-3, high = 0.1, log = true }
""",
)
# A DARTS-space grid and spec: no trial is judged by NAS-Bench-201.
DARTS_BASE = '[base]\nspace = "darts"\ndataset = "synthetic"\nchannels = 4\ndepth = 3\nepochs = 1\n'
DARTS_GRID = 'name = "darts-tiny"\n' + DARTS_BASE + '[axes]\nlevel = ["single", "bi"]\n'
DARTS_SPEC = (
    'name = "darts-tune"\n' + DARTS_BASE + '[tune]\nsamples = 1\nobjective = "train_loss"\n'
    "[tune.params]\nw_lr = { low = 2e-3, high = 0.1, log = true }\n"
)


@pytest.fixture(autouse=True)
def nothing_runs(monkeypatch) -> None:
    """Running a grid or a spec, starting Ray, or drawing figures fails the test instead (a
    test session may already hold a Ray cluster, so ``ray.is_initialized`` cannot tell)."""
    import analysis.figures
    import study.execute
    import study.tune_execute

    def refuse(what: str):
        def stand_in(*args, **kwargs):
            raise AssertionError(f"{what} was reached: the input passed every check")

        return stand_in

    monkeypatch.setattr(study.execute, "run_experiment", refuse("run_experiment (Ray)"))
    monkeypatch.setattr(study.tune_execute, "run_tuning", refuse("run_tuning (Ray)"))
    monkeypatch.setattr(analysis.figures, "save_figures", refuse("save_figures"))
    monkeypatch.setattr(ray, "init", refuse("ray.init"))


def _write(tmp_path: Path, text: str, name: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _command(kind: str, tmp_path: Path) -> list[str]:
    """``run GRID`` or ``tune SPEC`` on a tiny synthetic-data grid or spec."""
    if kind == "run":
        return ["run", _write(tmp_path, GRID, "grid.toml")]
    return ["tune", _write(tmp_path, SPEC, "spec.toml")]


def _refused(capsys, argv: list[str], *needles: str) -> str:
    """``main(argv)`` exits 2 before Ray starts, its message holds every needle; the message."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT, err
    assert err.startswith("study: error: ")
    for needle in needles:
        assert needle in err
    return err


KINDS = ("run", "tune")


# ------------------------------------------------------------------------------ --results
@pytest.mark.parametrize("kind", KINDS)
def test_results_naming_a_file_exits_2(tmp_path, capsys, kind) -> None:
    taken = tmp_path / "taken"
    taken.write_text("mine")
    _refused(capsys, [*_command(kind, tmp_path), "--results", str(taken)],
             f"--results {taken}", "is a file")
    assert taken.read_text() == "mine"


@pytest.mark.parametrize("kind", KINDS)
def test_results_under_a_file_exits_2(tmp_path, capsys, kind) -> None:
    taken = tmp_path / "taken"
    taken.write_text("mine")
    results = taken / "sub" / "deeper"
    _refused(capsys, [*_command(kind, tmp_path), "--results", str(results)],
             f"--results {results}", f"under {taken}, which is a file")
    assert taken.read_text() == "mine"


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
@pytest.mark.parametrize("kind", KINDS)
def test_results_that_cannot_be_written_exit_2(tmp_path, capsys, kind) -> None:
    results = "/proc/study-results-check"
    _refused(capsys, [*_command(kind, tmp_path), "--results", results],
             f"--results {results}", "cannot create or write")
    assert not Path(results).exists()


def test_a_results_check_leaves_nothing_behind_and_skips_uris(tmp_path) -> None:
    check_results_location(str(tmp_path / "new" / "results"))
    assert not (tmp_path / "new").exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    check_results_location(str(existing))
    assert list(existing.iterdir()) == []
    check_results_location("s3://bucket/prefix")  # pyarrow's to resolve
    check_results_location("file:///proc/no/such/place")


# ------------------------------------------------------------------------------ plots --out
@pytest.mark.parametrize("under", [False, True], ids=["file", "under-file"])
def test_plots_out_naming_a_file_exits_2_before_any_figure(tmp_path, capsys, under) -> None:
    sys.path.insert(0, str(Path(__file__).parents[1] / "analysis"))  # the results builders
    from builders import HEALTHY, TrialSpec, record, write_study

    trial = TrialSpec("t0", SearchConfig(epochs=1), [record(1, genotype=HEALTHY)])
    write_study(tmp_path / "res" / "parquet", "x", [trial])
    taken = tmp_path / "figs.png"
    taken.write_text("mine")
    out = taken / "figs" if under else taken
    _refused(capsys, ["plots", str(tmp_path / "res"), "--out", str(out)],
             f"--out {out}", "under" if under else "is a file")
    assert taken.read_text() == "mine"


# ------------------------------------------------------------------------------ --name
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dry_run", [False, True], ids=["real", "dry-run"])
def test_an_empty_name_exits_2(tmp_path, capsys, kind, dry_run) -> None:
    results = tmp_path / "results"
    argv = [*_command(kind, tmp_path), "--name", "", "--results", str(results)]
    _refused(capsys, argv + (["--dry-run"] if dry_run else []), "--name ''", "non-empty")
    assert not results.exists()


# ------------------------------------------------------------------------------ unused dirs
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dry_run", [False, True], ids=["real", "dry-run"])
def test_a_data_dir_no_dataset_reads_exits_2(tmp_path, capsys, kind, dry_run) -> None:
    results, data = tmp_path / "results", tmp_path / "data"
    argv = [*_command(kind, tmp_path), "--data-dir", str(data), "--results", str(results)]
    _refused(capsys, argv + (["--dry-run"] if dry_run else []),
             f"--data-dir {data}", "synthetic", "drop --data-dir")
    assert not results.exists()


def test_a_data_dir_for_the_smoke_grid_exits_2(tmp_path, capsys) -> None:
    results = tmp_path / "results"
    _refused(capsys, ["run", "smoke", "--data-dir", str(tmp_path), "--results", str(results)],
             "digits", "need none", "drop --data-dir")
    assert not results.exists()


@pytest.mark.parametrize(
    ("kind", "text"), [("run", DARTS_GRID), ("tune", DARTS_SPEC)], ids=["run", "tune"]
)
def test_a_benchmark_dir_no_space_uses_exits_2(tmp_path, capsys, kind, text) -> None:
    results, bench = tmp_path / "results", tmp_path / "nats"
    source = _write(tmp_path, text, f"{kind}.toml")
    _refused(capsys, [kind, source, "--benchmark-dir", str(bench), "--results", str(results)],
             f"--benchmark-dir {bench}", "darts", "drop --benchmark-dir")
    assert not results.exists()


def test_locations_that_some_trial_uses_pass() -> None:
    mixed = [SearchConfig(dataset="digits"), SearchConfig(dataset="cifar10", space="darts")]
    check_locations_used(mixed, data_dir="/data", benchmark_dir="/nats")
    check_locations_used(mixed, data_dir=None, benchmark_dir=None)


def test_the_fileless_datasets_are_those_that_need_no_files(tmp_path) -> None:
    from trainables.datasets import check_dataset_files

    for name in DATASETS:
        try:
            check_dataset_files(name, tmp_path / "empty")
            needs_files = False
        except FileNotFoundError:
            needs_files = True
        assert needs_files == (name not in FILELESS_DATASETS), name


# ------------------------------------------------------------------------------ resources
@pytest.mark.parametrize("kind", KINDS)
def test_more_cpus_per_trial_than_this_machine_has_exit_2(tmp_path, capsys, kind) -> None:
    results, cpus = tmp_path / "results", (os.cpu_count() or 1) + 1
    argv = [*_command(kind, tmp_path), "--cpus-per-trial", str(cpus), "--results", str(results)]
    _refused(capsys, argv, f"--cpus-per-trial {cpus}", "this machine has",
             f"--cpus-per-trial {os.cpu_count()} or less", "--address")
    assert not results.exists()


@pytest.mark.parametrize("kind", KINDS)
def test_more_gpus_per_trial_than_this_machine_has_exit_2(tmp_path, capsys, kind) -> None:
    import torch

    present = torch.cuda.device_count()
    results, gpus = tmp_path / "results", present + 1
    argv = [*_command(kind, tmp_path), "--gpus-per-trial", str(gpus), "--results", str(results)]
    fix = f"--gpus-per-trial {present} or less" if present else "--gpus-per-trial 0 (CPU-only"
    _refused(capsys, argv, f"--gpus-per-trial {gpus}", "this machine has", fix)
    assert not results.exists()


@pytest.mark.parametrize("kind", KINDS)
def test_a_nan_resource_exits_2(tmp_path, capsys, kind) -> None:
    results = tmp_path / "results"
    argv = [*_command(kind, tmp_path), "--cpus-per-trial", "nan", "--results", str(results)]
    _refused(capsys, argv, "--cpus-per-trial nan")
    assert not results.exists()


@pytest.mark.parametrize(
    "extra", [["--autoscaling"], ["--address", "10.0.0.1:6379"]], ids=["autoscaling", "address"]
)
def test_autoscaling_or_a_joined_cluster_skips_the_local_resource_check(
        tmp_path, capsys, monkeypatch, extra) -> None:
    import study.execute

    reached = []
    monkeypatch.setattr(study.execute, "run_experiment", lambda *a: reached.append(a) or 0)
    cpus = str((os.cpu_count() or 1) + 1)
    grid = _write(tmp_path, GRID, "grid.toml")
    argv = ["run", grid, "--cpus-per-trial", cpus, "--results", str(tmp_path / "r"), *extra]
    assert main(argv) == 0, capsys.readouterr().err
    assert len(reached) == 1 and not (tmp_path / "r").exists()


def test_a_dry_run_plans_for_any_machine(tmp_path, capsys) -> None:
    """The dry run skips the resource and results checks: it may plan a cluster run."""
    grid = _write(tmp_path, GRID, "grid.toml")
    taken = tmp_path / "taken"
    taken.write_text("")
    argv = ["run", grid, "--dry-run", "--cpus-per-trial", "4096", "--gpus-per-trial", "8",
            "--results", str(taken)]
    assert main(argv) == 0, capsys.readouterr().err
    assert "2 trials in experiment 'tiny'" in capsys.readouterr().out


def _node(address: str, cpus: float, gpus: float = 0, alive: bool = True) -> dict:
    resources = {"CPU": cpus, "memory": 1e9, **({"GPU": gpus} if gpus else {})}
    return {"NodeManagerAddress": address, "Alive": alive, "Resources": resources}


NODES = [_node("10.0.0.1", 64), _node("10.0.0.2", 8, 2), _node("10.0.0.3", 128, 8, alive=False)]


@pytest.mark.parametrize(("cpus", "gpus"), [(64, 0), (8, 2), (4, 0.5), (0.5, 0)])
def test_a_trial_that_fits_on_one_alive_node_passes(cpus, gpus) -> None:
    check_trial_fits(RunOptions(cpus_per_trial=cpus, gpus_per_trial=gpus), NODES)


@pytest.mark.parametrize(
    ("cpus", "gpus", "largest", "fix"),
    [
        (65, 0, "node 10.0.0.1, has 64 CPUs and 0 GPUs", "--cpus-per-trial 64 or less"),
        (16, 1, "node 10.0.0.2, has 8 CPUs and 2 GPUs", "--cpus-per-trial 8 or less"),
        (1, 4, "node 10.0.0.2, has 8 CPUs and 2 GPUs", "--gpus-per-trial 2 or less"),
    ],
)
def test_a_trial_no_alive_node_fits_is_refused(cpus, gpus, largest, fix) -> None:
    options = RunOptions(cpus_per_trial=cpus, gpus_per_trial=gpus, address="10.0.0.1:6379")
    with pytest.raises(ValueError) as caught:
        check_trial_fits(options, NODES)
    message = str(caught.value)
    assert f"--cpus-per-trial {cpus:g} --gpus-per-trial {gpus:g}" in message
    assert largest in message and fix in message and "--autoscaling" in message
    check_trial_fits(RunOptions(cpus_per_trial=cpus, gpus_per_trial=gpus, autoscaling=True),
                     NODES)


def test_gpu_trials_on_a_cluster_without_gpus_are_told_to_run_on_cpus() -> None:
    with pytest.raises(ValueError, match=r"--gpus-per-trial 0 \(CPU-only trials\)"):
        check_trial_fits(RunOptions(gpus_per_trial=0.5), [_node("10.0.0.1", 64)])


def test_a_cluster_without_alive_nodes_is_refused() -> None:
    with pytest.raises(ValueError, match="no alive node"):
        check_trial_fits(RunOptions(), [_node("10.0.0.3", 128, 8, alive=False)])


def test_the_cluster_check_reads_the_connected_clusters_nodes(monkeypatch) -> None:
    monkeypatch.setattr(ray, "nodes", lambda: NODES)
    check_cluster_resources(RunOptions(cpus_per_trial=8, gpus_per_trial=1, address="head:6379"))
    with pytest.raises(ValueError, match="--gpus-per-trial 3"):
        check_cluster_resources(RunOptions(gpus_per_trial=3, address="head:6379"))
    check_cluster_resources(RunOptions(gpus_per_trial=3, address="head:6379", autoscaling=True))


# ------------------------------------------------------------------------------ grid files
@pytest.mark.parametrize("text", ["", "# only a comment\n\n"], ids=["zero-bytes", "comments"])
def test_empty_grid_file_exits_2(tmp_path, capsys, text) -> None:
    grid = _write(tmp_path, text, "empty.toml")
    results = tmp_path / "results"
    err = _refused(capsys, ["run", grid, "--results", str(results)], grid)
    assert any(words in err for words in ("no trial", "no key", "empty")), err
    assert not results.exists()
