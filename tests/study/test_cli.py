"""The ``study`` command: grid listing, dry runs, bad input, and a real end-to-end run.

End-to-end runs go through a subprocess (``python -m study.cli``), as a user would: the command
starts its own local Ray cluster, so it cannot share the test session's one.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from tiny_specs import tiny_toml

from analysis.results import load_results
from study.cli import EXIT_BAD_INPUT, main

TINY_GRID = tiny_toml("tiny", 2, '[axes]\nlevel = ["single", "bi"]\n')


def _write(tmp_path: Path, text: str, name: str = "grid.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _study(*args: str, cwd: Path, timeout: int = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "study.cli", *args],
        cwd=cwd,
        text=True,
        capture_output=True,
        timeout=timeout,
        check=False,
    )


def test_grids_lists_every_grid_with_its_trial_count(capsys) -> None:
    from study.grids import GRIDS, build_grid

    assert main(["grids"]) == 0
    out = capsys.readouterr().out
    for name in GRIDS:
        assert f"{len(build_grid(name))} trials" in next(
            line for line in out.splitlines() if line.startswith(name + " ")
        )


def test_dry_run_prints_every_trial_and_runs_nothing(tmp_path, capsys) -> None:
    results = tmp_path / "results"
    assert main(["run", "smoke", "--dry-run", "--results", str(results)]) == 0
    out = capsys.readouterr().out
    trial_lines = [line for line in out.splitlines() if line.startswith("[")]
    assert len(trial_lines) == 8 and "8 trials in experiment 'smoke'" in out
    assert "level=bi" in out and "activation=sigmoid" in out
    assert not results.exists()


def test_paper_dry_run_lists_the_full_grid(capsys) -> None:
    from study.grids import build_grid

    assert main(["run", "paper", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"{len(build_grid('paper'))} trials in experiment 'paper'" in out
    # No CIFAR here: the dry run still lists the grid, and says a real run would stop.
    assert "warning: a real run would stop here" in out and "data_dir" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "no-such-grid"], "no-such-grid"),
        (["run", "smoke", "--epochs", "0"], "epochs"),
        (["run", "smoke", "--cpus-per-trial", "0"], "--cpus-per-trial"),
        (["run", "smoke", "--gpus-per-trial", "-1"], "--gpus-per-trial"),
        (["run", "smoke", "--name", "a/b"], "experiment='a/b'"),
    ],
)
def test_bad_input_exits_2_before_anything_is_written(tmp_path, capsys, args, message) -> None:
    results = tmp_path / "results"
    assert main([*args, "--results", str(results)]) == EXIT_BAD_INPUT
    assert message in capsys.readouterr().err
    assert not results.exists()


def test_missing_benchmark_directory_fails_before_ray_starts(tmp_path, capsys) -> None:
    grid = _write(tmp_path, TINY_GRID)
    results = tmp_path / "results"
    missing = tmp_path / "no-nats"
    code = main(["run", str(grid), "--results", str(results), "--benchmark-dir", str(missing)])
    assert code == EXIT_BAD_INPUT
    assert str(missing) in capsys.readouterr().err
    assert not results.exists()


def test_invalid_grid_file_values_fail_before_ray_starts(tmp_path, capsys) -> None:
    grid = _write(tmp_path, TINY_GRID.replace('level = ["single", "bi"]', "w_lr = [0.01, -0.1]"))
    results = tmp_path / "results"
    assert main(["run", str(grid), "--results", str(results)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "w_lr" in err and "grid.toml" in err
    assert not results.exists()


def test_missing_data_directory_fails_before_ray_starts(tmp_path, capsys) -> None:
    grid = _write(tmp_path, TINY_GRID.replace('dataset = "synthetic"', 'dataset = "cifar10"'))
    results = tmp_path / "results"
    code = main(["run", str(grid), "--results", str(results), "--data-dir", str(tmp_path / "no")])
    assert code == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert str(tmp_path / "no") in err and "download" in err
    assert not results.exists()


@pytest.mark.slow
def test_run_writes_every_trial_epoch_once_and_rerun_resumes_without_rerunning(tmp_path) -> None:
    grid = _write(tmp_path, TINY_GRID)
    first = _study("run", str(grid), "--results", "res", "--name", "tiny", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "Parquet dataset:" in first.stdout and "load_results" in first.stdout
    assert "not a valid SearchConfig" not in first.stderr  # rows carry real configs
    frame = load_results(tmp_path / "res" / "parquet", experiments=["tiny"])
    assert len(frame) == 2 * 2
    assert sorted(frame["level"].unique()) == ["bi", "single"]
    assert set(frame["epoch"]) == {1, 2} and (frame["dataset"] == "synthetic").all()
    assert (frame["exec_path"] == "eager").all()  # CPU trials always run eagerly
    parts = sorted((tmp_path / "res" / "parquet").rglob("part-*.parquet"))
    # the end of the run prints the main table (one row per method, then Optimal)
    assert "NAS-Bench-201 accuracy (%) of the final derived architecture" in first.stdout
    assert "| DARTS |" in first.stdout and "| Single-DARTS |" in first.stdout
    assert "| Optimal |" in first.stdout
    _check_tables_and_plots(tmp_path / "res")

    again = _study("run", str(grid), "--results", "res", "--name", "tiny", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert sorted((tmp_path / "res" / "parquet").rglob("part-*.parquet")) == parts  # no rerun
    assert len(load_results(tmp_path / "res" / "parquet", experiments=["tiny"])) == 4


def test_run_with_a_uri_results_location(tmp_path) -> None:
    """Checkpoints, Tune state and Parquet all go through the URI (file:// here, like s3://)."""
    grid = _write(tmp_path, TINY_GRID.replace('level = ["single", "bi"]', 'level = ["bi"]'))
    uri = (tmp_path / "store").as_uri()
    done = _study("run", str(grid), "--results", uri, "--name", "uri", "--eager", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    frame = load_results(f"{uri}/parquet", experiments=["uri"])
    assert len(frame) == 2 and (frame["exec_path"] == "eager").all()
    assert (tmp_path / "store" / "tune" / "uri").is_dir()
    assert not (tmp_path / "file:").exists()


def _check_tables_and_plots(results: Path) -> None:
    """``study tables`` / ``study plots`` on a finished run's --results folder."""
    tables = _study("tables", str(results), "--format", "markdown", cwd=results.parent)
    assert tables.returncode == 0, tables.stderr[-3000:]
    assert "| Optimal |" in tables.stdout and "Collapse" in tables.stdout
    latex = _study("tables", str(results), "--table", "main", "--format", "latex",
                   cwd=results.parent)
    assert latex.returncode == 0 and "\\begin{tabular}" in latex.stdout
    assert "Collapse" not in latex.stdout
    plots = _study("plots", str(results), "--out", str(results.parent / "figs"),
                   cwd=results.parent)
    assert plots.returncode == 0, plots.stderr[-3000:]
    names = sorted(p.name for p in (results.parent / "figs").glob("*.png"))
    assert names == sorted(
        ["alpha_trajectories.png", "gradient_correlation.png", "operator_gradients.png",
         "stability.png"]
    )
    assert all((results.parent / "figs" / n).stat().st_size > 1000 for n in names)


def test_tables_on_a_missing_folder_or_a_corrupt_file_exit_2_naming_it(tmp_path, capsys) -> None:
    assert main(["tables", str(tmp_path / "nowhere")]) == EXIT_BAD_INPUT
    assert str(tmp_path / "nowhere") in capsys.readouterr().err
    folder = tmp_path / "res" / "parquet" / "experiment=x"
    folder.mkdir(parents=True)
    bad = folder / "part-bad.parquet"
    bad.write_bytes(b"not parquet at all")
    assert main(["tables", str(tmp_path / "res")]) == EXIT_BAD_INPUT
    assert "part-bad.parquet" in capsys.readouterr().err
    assert bad.read_bytes() == b"not parquet at all"  # nothing touched
    # skipping the only file leaves nothing to read: still a clear error, not an empty table
    assert main(["tables", str(tmp_path / "res"), "--skip-bad-files"]) == EXIT_BAD_INPUT


def test_without_address_a_new_local_cluster_starts_even_if_one_runs_here() -> None:
    """``ray.init()`` joins a cluster started with ``ray start`` on this machine and then
    refuses ``num_cpus``; ``address="local"`` always starts our own (checked by hand with a
    ``ray start --head`` cluster running, see the issue-3 note)."""
    from study.runner import RunOptions, ray_init_kwargs

    assert ray_init_kwargs(RunOptions())["address"] == "local"
    assert ray_init_kwargs(RunOptions(address="10.0.0.1:6379")) == {"address": "10.0.0.1:6379"}


def test_tables_with_reported_adds_the_papers_rows_only_with_the_flag(tmp_path, capsys) -> None:
    sys.path.insert(0, str(Path(__file__).parents[1] / "analysis"))  # the results builders
    from builders import HEALTHY, TrialSpec, record, write_study

    from trainables.config import SearchConfig

    config = SearchConfig(space="nb201", dataset="cifar10", level="bi", epochs=2)
    trial = TrialSpec("t0", config, [record(1, genotype=HEALTHY, bench={"cifar10_test": 88.0})])
    write_study(tmp_path / "res" / "parquet", "x", [trial])
    assert main(["tables", str(tmp_path / "res"), "--table", "main"]) == 0
    plain = capsys.readouterr().out
    assert "| DARTS | n/a | 88.00 | 1 |" in plain and "(reported)" not in plain
    assert main(["tables", str(tmp_path / "res"), "--table", "main", "--with-reported"]) == 0
    out = capsys.readouterr().out
    assert "| DARTS | n/a | 88.00 | 1 |" in out
    assert "| GDAS (reported) | 90.00 ± 0.21 | 93.51 ± 0.13 |  |" in out
    assert "| Single-DARTS (reported) | 91.55 ± 0.00 | 94.36 ± 0.00 |  |" in out
    assert "Table 1" in out


def test_a_grid_files_name_key_names_the_experiment_and_name_overrides_it(
        tmp_path, capsys) -> None:
    grid = _write(tmp_path, tiny_toml("from-key", 1, '[axes]\nlevel = ["single"]\n'),
                  name="file-stem.toml")
    assert main(["run", str(grid), "--dry-run"]) == 0
    assert "1 trials in experiment 'from-key'" in capsys.readouterr().out
    assert main(["run", str(grid), "--dry-run", "--name", "mine"]) == 0
    assert "1 trials in experiment 'mine'" in capsys.readouterr().out
    nameless = _write(tmp_path, TINY_GRID.replace('name = "tiny"\n', ""), name="stem.toml")
    assert main(["run", str(nameless), "--dry-run"]) == 0
    assert "trials in experiment 'stem'" in capsys.readouterr().out


def test_dry_run_warns_once_about_sigmoid_with_alpha_weight_decay(tmp_path, capsys) -> None:
    sigmoid = _write(tmp_path, tiny_toml("sig", 1, '[axes]\nactivation = ["sigmoid"]\n'
                                          "seed = [0, 1]\n"), name="sig.toml")
    assert main(["run", str(sigmoid), "--dry-run"]) == 0  # default arch_weight_decay 1e-3
    err = capsys.readouterr().err
    assert err.count("study: warning: ") == 1
    assert "2 NAS-Bench-201 trials" in err and "arch_weight_decay" in err
    softmax = _write(tmp_path, tiny_toml("soft", 1, '[axes]\nactivation = ["softmax"]\n'),
                     name="soft.toml")
    assert main(["run", str(softmax), "--dry-run"]) == 0
    assert "warning" not in capsys.readouterr().err
