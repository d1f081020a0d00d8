"""Test-session settings shared by every test package."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

try:  # the 'test' extra; a GPU machine running only `pytest -m gpu` may lack it
    from hypothesis import HealthCheck, settings
except ImportError:
    pass
else:
    # Property tests: deterministic and quick, the same examples on every run, no example
    # database on disk. A test asks for more or fewer examples with @settings(max_examples=).
    settings.register_profile(
        "project",
        max_examples=80,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    settings.load_profile("project")


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tests use tiny tensors, where torch's intra-op threads only wait on each other (and on a
    shared 2-core machine a tiny step can take seconds instead of milliseconds): use one."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def ray_local():
    """One real local Ray cluster (2 CPUs) for the whole test session, started on first use."""
    ray = pytest.importorskip("ray")
    ray.init(
        "local",
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=150 * 2**20,
        log_to_driver=False,
    )
    yield ray
    ray.shutdown()


@pytest.fixture
def small_tmpfs(tmp_path) -> Iterator[Callable[[int], Path]]:
    """``small_tmpfs(mib)``: a fresh tmpfs of ``mib`` MiB under ``tmp_path`` (a real full disk;
    needs root and mount rights, the test is skipped otherwise), unmounted after the test."""
    mounted: list[Path] = []

    def mount(mib: int) -> Path:
        folder = tmp_path / f"small{len(mounted)}"
        folder.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={mib}m", "tmpfs", str(folder)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode:
            pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()}")
        mounted.append(folder)
        return folder

    try:
        yield mount
    finally:
        for folder in mounted:
            subprocess.run(["umount", "-l", str(folder)], check=False)
