"""Searches on a CUDA device (run with ``python -m pytest -m gpu`` on a machine with a GPU)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from record_checks import assert_records_close
from strategy_axes import STRATEGY_AXES

from trainables import records as R
from trainables.config import SearchConfig
from trainables.datasets import load_dataset
from trainables.fast_steps import FastSteps, draw_epoch
from trainables.sampling import epoch_plan
from trainables.search import FAST_BY_DEFAULT, Search, run_search

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


# ---------------------------------------------------------------------- the CUDA-graph fast path
# Losses agree to 1e-3 relative between the paths on a GPU: cuDNN picks other algorithms for
# the fast path's evaluation batches (1024 images, eager 256) and its backward kernels are not
# deterministic; measured on an H200: up to 4e-4 on valid_loss, train_loss within 1e-4.
GPU_RTOL = 1e-3
FAST_BASE = {
    "dataset": "synthetic",
    "channels": 8,
    "depth": 1,
    "w_lr": 0.005,
    "batch_size": 16,
    "steps_per_epoch": 10,
    "epochs": 2,
    "probe_every": 4,
}


@pytest.fixture
def _float32_convs():
    """Compare the paths at float32 precision: TF32 convolutions round each op to ~1e-3, which
    the tiny test supernets amplify; both paths use the same setting either way."""
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


@pytest.mark.usefixtures("_float32_convs")
@pytest.mark.parametrize(("level", "arch_data", "order"), STRATEGY_AXES)
def test_cuda_graph_records_match_eager_records(level: str, arch_data: str, order: str) -> None:
    config = SearchConfig(level=level, arch_data=arch_data, order=order, **FAST_BASE)
    data = load_dataset("synthetic")
    eager = Search(config, "cuda", dataset=data, fast=False)
    fast = Search(config, "cuda", dataset=data, fast=True)
    eager_records = [eager.run_epoch() for _ in range(2)]
    fast_records = [fast.run_epoch() for _ in range(2)]
    assert fast.fast_steps is not None and set(fast.fast_steps.graphs) == {"gather", "probe", "step"}
    assert {r[R.EXEC_PATH] for r in fast_records} == {R.EXEC_CUDA_GRAPH}
    assert {r[R.EXEC_PATH] for r in eager_records} == {R.EXEC_EAGER}
    assert_records_close(
        eager_records, fast_records, train_images=160, valid_images=len(data.held_out), rtol=GPU_RTOL
    )


@pytest.mark.usefixtures("_float32_convs")
def test_cuda_graph_with_a_short_last_batch() -> None:
    # 640 images at batch 112: 5 whole steps (3 eager warm-up, then graphs) and one of 80.
    config = SearchConfig(
        level="bi", **{**FAST_BASE, "batch_size": 112, "steps_per_epoch": 0, "probe_every": 2}
    )
    data = load_dataset("synthetic")
    eager = [r for r in run_search(config, device="cuda", fast=False)]
    fast = [r for r in run_search(config, device="cuda", fast=True)]
    assert [r[R.STEPS] for r in fast] == [6, 6]
    assert_records_close(
        eager, fast, train_images=640, valid_images=len(data.held_out), rtol=GPU_RTOL
    )


@pytest.mark.usefixtures("_float32_convs")
def test_cuda_graph_resume_matches_uninterrupted(tmp_path) -> None:
    config = SearchConfig(level="bi", **{**FAST_BASE, "epochs": 3})
    straight = list(run_search(config, device="cuda", fast=True))
    head = list(itertools.islice(run_search(config, device="cuda", checkpoint_dir=tmp_path, fast=True), 1))
    tail = list(run_search(config, device="cuda", checkpoint_dir=tmp_path, resume=True, fast=True))
    assert [r[R.EPOCH] for r in head + tail] == [1, 2, 3]
    assert {r[R.EXEC_PATH] for r in head + tail} == {R.EXEC_CUDA_GRAPH}
    assert_records_close(straight, head + tail, train_images=160, valid_images=320, rtol=GPU_RTOL)


def test_cuda_graph_gathers_the_eager_batches() -> None:
    """The recorded gather graph, replayed step after step, builds exactly the batches the
    eager loop builds from the same generator (a wrong crop, flip or index breaks equality)."""
    config = SearchConfig(level="bi", arch_data="same", **FAST_BASE)
    search = Search(config, "cuda", dataset=load_dataset("synthetic"), fast=True)
    steps = FastSteps(search, capture=True)
    eager_gen = torch.Generator().manual_seed(123)
    expected = []
    plan = epoch_plan(len(search.train), len(search.held_out), 16, level="bi", arch_data="same",
                      generator=eager_gen, cap=10)
    for w_idx, a_idx in plan:
        expected.append((search.train.train_batch(w_idx, eager_gen),
                         search.train.train_batch(a_idx, eager_gen)))
    draws = draw_epoch(config, search.train, search.held_out, torch.Generator().manual_seed(123))
    steps._load_plan(draws.full)
    with steps._side_stream():
        steps._gather()  # warm-up outside the capture
    steps.cursor.zero_()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        steps._gather()
    for (x_w, y_w), (x_a, y_a) in expected:
        graph.replay()
        assert torch.equal(steps.x_w, x_w) and torch.equal(steps.y_w, y_w)
        assert steps.x_a is not None and steps.y_a is not None
        assert torch.equal(steps.x_a, x_a) and torch.equal(steps.y_a, y_a)
    assert int(steps.cursor) == 10


def test_default_path_on_cuda() -> None:
    search = Search(SearchConfig(dataset="synthetic", channels=4, depth=1), "cuda")
    assert search.exec_path == (R.EXEC_CUDA_GRAPH if FAST_BY_DEFAULT else R.EXEC_EAGER)
    assert Search(SearchConfig(dataset="synthetic", channels=4, depth=1), "cuda",
                  fast=False).exec_path == R.EXEC_EAGER


def test_an_evaluation_trains_on_cuda_close_to_the_cpu_and_resumes_there(tmp_path) -> None:
    """A genotype trained from scratch on the GPU: the first epoch's records close to the CPU's
    (same batches, augmentation and initial weights), and a checkpoint resumes on the GPU."""
    from trainables.eval_config import preset_config
    from trainables.evaluation import Evaluation, run_evaluation

    config = preset_config(
        "cifar10", "DARTS_V2", dataset="digits", layers=3, init_channels=8, epochs=2,
        batch_size=32, steps_per_epoch=3, drop_path=0.0,
    )
    cpu = run_evaluation(config.replace(epochs=1))[0]
    gpu = Evaluation(config, "cuda")
    first = gpu.run_epoch()
    assert first[R.TRAIN_LOSS] == pytest.approx(cpu[R.TRAIN_LOSS], rel=1e-3)
    assert first[R.TEST_ACC] == pytest.approx(cpu[R.TEST_ACC], abs=1.0)
    gpu.save(tmp_path)
    resumed = Evaluation(config, "cuda")
    resumed.restore(tmp_path)
    assert resumed.epoch == 1 and next(resumed.model.parameters()).is_cuda
    assert resumed.run_epoch()[R.EPOCH] == 2
