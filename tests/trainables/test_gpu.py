"""Searches on a CUDA device (run with ``python -m pytest -m gpu`` on a machine with a GPU)."""

from __future__ import annotations

import math

import pytest
import torch

from trainables import records as R
from trainables.config import SearchConfig
from trainables.search import Search, run_search

pytestmark = pytest.mark.gpu


@pytest.fixture(autouse=True)
def _needs_cuda() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")


@pytest.mark.parametrize(
    ("level", "order"), [("single", "first"), ("bi", "first"), ("bi", "second")]
)
def test_search_on_cuda_matches_cpu_closely(level: str, order: str) -> None:
    config = SearchConfig(
        dataset="synthetic",
        level=level,
        order=order,
        channels=8,
        depth=1,
        batch_size=32,
        steps_per_epoch=5,
        epochs=2,
    )
    cpu = list(run_search(config, device="cpu"))
    gpu = list(run_search(config, device="cuda"))
    assert [r[R.STATUS] for r in gpu] == ["ok", "ok"]
    for a, b in zip(cpu, gpu, strict=True):
        # Same data draws (CPU generator) and init; only round-off differs (cuDNN convs may use
        # TF32, ~1e-3 relative per op).
        assert math.isclose(a[R.TRAIN_LOSS], b[R.TRAIN_LOSS], rel_tol=1e-2)


def test_model_and_data_live_on_the_device() -> None:
    search = Search(SearchConfig(dataset="synthetic", channels=4, depth=1, epochs=1), "cuda")
    assert all(p.is_cuda for p in search.model.parameters())
    assert search.train.images.is_cuda and search.train.images.dtype == torch.uint8
    record = search.run_epoch()
    assert record[R.STATUS] == "ok" and record[R.IMAGES_PER_SEC] > 0
