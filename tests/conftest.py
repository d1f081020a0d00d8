"""Test-session settings shared by every test package."""

from __future__ import annotations

import pytest
import torch


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
