"""``study tables``, ``study plots`` and ``study compact`` on a real results folder, in a fresh
process where torch, Ray and Optuna cannot be imported (as on a laptop with the base install):
they work, and leave none of them in ``sys.modules``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from builders import HEALTHY, TrialSpec, record, write_study

from trainables.config import SearchConfig

HEAVY = ("torch", "torchvision", "ray", "optuna")
# Runs the CLI with the heavy packages made unimportable, then reports what got imported.
RUNNER = f"""
import importlib.abc, sys
HEAVY = {HEAVY!r}

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HEAVY:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)", name=name)
        return None

sys.meta_path.insert(0, Block())
from study.cli import main
code = main(sys.argv[1:])
loaded = sorted({{m.split(".")[0] for m in sys.modules}} & set(HEAVY))
print("LOADED", loaded)
raise SystemExit(code if not loaded else 99)
"""


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("results")
    bench = {"cifar10_test": 90.0, "cifar100_test": 70.0, "imagenet16_120_test": 40.0}
    trials = [
        TrialSpec(
            f"{level}-{seed}",
            SearchConfig(dataset="cifar10", level=level, seed=seed, epochs=2),
            [record(epoch, genotype=HEALTHY, bench=bench) for epoch in (1, 2)],
        )
        for level in ("single", "bi")
        for seed in (0, 1)
    ]
    write_study(root / "parquet", "laptop", trials)
    return root


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", RUNNER, *args], capture_output=True, text=True, timeout=300
    )


def test_tables_need_neither_torch_nor_ray(results: Path) -> None:
    done = run_cli("tables", str(results))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "LOADED []" in done.stdout
    assert "Single-DARTS" in done.stdout and "90.00" in done.stdout  # the main table rendered


def test_plots_need_neither_torch_nor_ray(results: Path, tmp_path: Path) -> None:
    out = tmp_path / "figures"
    done = run_cli("plots", str(results), "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "LOADED []" in done.stdout
    assert sorted(p.name for p in out.glob("*.png")) == [
        "alpha_trajectories.png",
        "gradient_correlation.png",
        "operator_gradients.png",
        "stability.png",
    ]


def test_compact_needs_neither_torch_nor_ray(results: Path) -> None:
    done = run_cli("compact", str(results))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "LOADED []" in done.stdout


def test_run_without_the_extras_names_the_extra_to_install(tmp_path: Path) -> None:
    done = run_cli("run", "smoke", "--results", str(tmp_path / "r"))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "needs 'ray' (install extra 'study')" in done.stderr
    assert "pip install 'single-darts-study[all]'" in done.stderr
    assert not (tmp_path / "r").exists()
