"""One-command GPU benchmark suite: search step (eager / fast path / reference), calibration of
the cost model, packing, a real ``study run``, the DARTS space, the evaluation presets, and ``torch.compile``.

    python benchmarks/gpu_suite.py [--out DIR] [--quick] [--device cuda|cpu]
                                   [--budget-seconds 330] [--parts tests,steps,...]
    bash benchmarks/gpu_suite.sh --out DIR            # the same, with python3

The orchestrator runs each part in its own subprocess (``gpu_suite.py --part NAME``, a new
process group, killed as a whole on timeout), so a part that fails or hangs never stops the
others. Each part writes its figures to a JSON file as it goes (a killed part keeps what it had
measured). Parts, in order (GPU timeouts are ceilings; ``--budget-seconds`` is shared, later
parts get what is left, and a part whose minimum no longer fits is skipped):

1. ``tests``: ``pytest -m gpu`` (passed / failed / skipped, names of failures).
2. ``steps``: NB201 C=16 N=5, 10 classes, 32x32: seconds per search step of ours (eager and fast
   path; single, bi-first, bi-second; batch 64, single also at batch 256) through
   ``Search.run_epoch`` on synthetic device-resident data (batch building and the probe
   included; the first epoch is warm-up and graph capture, later epochs are timed), against the
   reference (xautodl ``TinyNetworkDarts``, built as ``benchmarks/step_throughput.py`` builds it,
   on fixed device tensors, timed with CUDA events); peak GPU memory per variant.
3. ``calibration``: fast-path step seconds, evaluation seconds per image and per-epoch overhead
   for NB201 at 32 px (10 classes) and 16 px (120 classes): ``OUT/gpu_calibration.json`` in the
   format ``study.cost.load_calibration`` reads.
4. ``packing``: k = 1, 2, 4, 8, 16 concurrent fast-path searches on one GPU (one process each,
   all warmed up, then released together for a fixed window): aggregate images/s.
5. ``study_run``: a real ``study run`` of a 4-trial TOML grid with ``--gpus-per-trial 0.25`` on
   the default (fast) path; checks every (trial, epoch) appears once, no duplicate raw rows,
   ``exec_path``.
6. ``darts``: DARTS space, CIFAR stem (eager vs fast, single and bi-first) and ImageNet stem at
   batch 360, 224x224 (eager, strategy on device tensors), step time and peak memory.
7. ``evaluation``: ``study evaluate``'s presets with DARTS-V2: the ``cifar10`` preset's training
   step and test time through ``Evaluation.run_epoch`` (synthetic 32 px data) and the
   ``imagenet`` preset network's training step at batch 256 per GPU (224 px device tensors),
   peak memory, and the GPU-hours they imply for the presets' 600 and 250 epochs.
8. ``compile``: ``torch.compile`` of the NB201 model (default and ``reduce-overhead``) inside
   the eager single-level strategy, each mode time-boxed in its own process.

Outputs in ``--out``: ``gpu_suite.json`` (every figure), ``gpu_benchmarks.md`` (the markdown
section), ``gpu_calibration.json``, ``suite.log`` (everything), ``logs/`` (one log and one
JSON per part), and ``benchmarks.md``: docs/benchmarks.md with the section between
``<!-- gpu-suite:start -->`` and ``<!-- gpu-suite:end -->`` replaced (on a GPU, without
``--quick``, docs/benchmarks.md itself is updated too; ``--update-docs`` / ``--no-update-docs``
override).

``--quick`` runs every part with tiny sizes (C=4, depth 1, 2 steps, k = 1, 2) to check that
every code path works; ``--quick --device cpu`` is that check on a machine without a GPU, and
its output is a functional check, not a measurement (no absolute times are printed).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import gc
import json
import math
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from trainables.config import SearchConfig
    from trainables.datasets.base import SearchDataset

SCRIPT = Path(__file__).resolve()
BENCH_DIR = SCRIPT.parent
REPO_ROOT = BENCH_DIR.parent
for _path in (REPO_ROOT, BENCH_DIR):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from machine import cpu_model  # noqa: E402  (benchmarks/machine.py, on the path just set)

DOCS = REPO_ROOT / "docs" / "benchmarks.md"
MARK_START = "<!-- gpu-suite:start -->"
MARK_END = "<!-- gpu-suite:end -->"
DOCS_HEADING = "## GPU (one-command suite)"
STUDY_EXPERIMENT = "gpu_suite"
MIB = 2**20


# =============================================================================================
# Sizes and parts
# =============================================================================================
@dataclass(frozen=True)
class Sizes:
    """Every size the parts use; ``GPU`` for the real run, ``QUICK`` for the functional check."""

    channels: int  # NB201 C
    depth: int  # NB201 cells per stage
    batch: int
    big_batch: int  # the second single-level batch size of the step table
    fast_cap: int  # steps per epoch of fast-path searches (probe every 10th: keep a multiple)
    eager_cap: int  # steps per epoch of eager searches
    timed_epochs: int  # epochs timed after the warm-up epoch
    held_out: int  # held-out images of the step searches (evaluated every epoch)
    ref_warmup: int
    ref_steps: int
    calib_held_out: tuple[tuple[int, int], ...]  # (image side, held-out images)
    eval_repeats: int
    pack_ks: tuple[int, ...]
    pack_window: float  # seconds every worker of a k runs
    pack_cap: int
    pack_held_out: int
    pack_ready_timeout: float
    study_channels: int
    study_depth: int
    study_cap: int
    study_batch: int
    study_epochs: int
    darts_channels: int
    darts_depth: int
    darts_batch: int
    darts_cap: int
    darts_held_out: int
    inet_batch: int
    inet_half: int  # second batch size (step-time scaling check)
    inet_classes: int
    inet_warmup: int
    inet_steps: int
    compile_warm: int  # first calls timed as "compile + warm-up"
    compile_steps: int
    eval_layers: int  # the cifar10 evaluation preset's network (14 cells, 36 channels)
    eval_channels: int
    eval_batch: int
    eval_steps: int  # timed training steps of the evaluation (after a warm-up epoch)
    eval_test: int  # test images of the evaluation's synthetic data
    inet_eval_layers: int  # the imagenet evaluation preset's network (14 cells, 48 channels)
    inet_eval_channels: int
    inet_eval_batch: int  # images per GPU (the preset's 1024 over 4 GPUs)


GPU = Sizes(
    channels=16, depth=5, batch=64, big_batch=256, fast_cap=30, eager_cap=10, timed_epochs=2,
    held_out=512, ref_warmup=5, ref_steps=30, calib_held_out=((32, 2048), (16, 3000)),
    eval_repeats=2, pack_ks=(1, 2, 4, 8, 16), pack_window=3.0, pack_cap=20, pack_held_out=256,
    pack_ready_timeout=45.0, study_channels=16, study_depth=5, study_cap=20, study_batch=64,
    study_epochs=2, darts_channels=16, darts_depth=8, darts_batch=64, darts_cap=10,
    darts_held_out=512, inet_batch=360, inet_half=180, inet_classes=1000, inet_warmup=3,
    inet_steps=5, compile_warm=3, compile_steps=30, eval_layers=14, eval_channels=36,
    eval_batch=128, eval_steps=20, eval_test=2048, inet_eval_layers=14, inet_eval_channels=48,
    inet_eval_batch=256,
)  # fmt: skip
QUICK = Sizes(
    channels=4, depth=1, batch=16, big_batch=32, fast_cap=2, eager_cap=2, timed_epochs=1,
    held_out=32, ref_warmup=1, ref_steps=2, calib_held_out=((32, 64), (16, 64)), eval_repeats=1,
    pack_ks=(1, 2), pack_window=1.5, pack_cap=2, pack_held_out=16, pack_ready_timeout=150.0,
    study_channels=4, study_depth=1, study_cap=2, study_batch=16, study_epochs=2,
    darts_channels=4, darts_depth=3, darts_batch=8, darts_cap=2, darts_held_out=16, inet_batch=2,
    inet_half=1, inet_classes=10, inet_warmup=1, inet_steps=1, compile_warm=2, compile_steps=3,
    eval_layers=3, eval_channels=4, eval_batch=8, eval_steps=2, eval_test=16, inet_eval_layers=3,
    inet_eval_channels=4, inet_eval_batch=2,
)  # fmt: skip


@dataclass(frozen=True)
class PartSpec:
    name: str
    timeout: float  # GPU ceiling (seconds, start-up included)
    minimum: float  # skip the part when less than this is left for it
    quick_timeout: float
    optional: bool = False  # takes what is left; nothing is reserved for it


PARTS = (
    PartSpec("tests", 60, 20, 300),
    PartSpec("steps", 75, 30, 400),
    PartSpec("calibration", 45, 20, 300),
    PartSpec("packing", 60, 25, 400),
    PartSpec("study_run", 60, 35, 600),
    PartSpec("darts", 50, 20, 400),
    PartSpec("evaluation", 45, 20, 400),
    PartSpec("compile", 200, 30, 700, optional=True),
)
PART_NAMES = tuple(p.name for p in PARTS)


# =============================================================================================
# Small utilities (no torch)
# =============================================================================================
def clean(value: Any) -> Any:
    """JSON-safe copy: non-finite floats -> None, tuples -> lists, unknown objects -> str."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)


def write_json(path: Path, data: Any) -> None:
    """Atomically replace ``path`` with ``data`` as JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(clean(data), indent=1, allow_nan=False) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def tail(path: Path, lines: int = 15) -> list[str]:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    return [line[:300] for line in text.splitlines()[-lines:]]


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


@functools.cache
def git_commit() -> str:
    """Short HEAD, with ``+ uncommitted changes`` when tracked files differ; "unknown" without
    git or a repository. ``GPU_SUITE_COMMIT`` in the environment overrides it, for a copy of the
    tree whose ``.git`` is not the code's (a machine that receives the files without history)."""
    if os.environ.get("GPU_SUITE_COMMIT"):
        return os.environ["GPU_SUITE_COMMIT"]
    try:
        sha = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if not sha:
        return "unknown"
    try:
        dirty = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        dirty = ""
    return f"{sha} + uncommitted changes" if dirty else sha


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(REPO_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no network on the GPU machine
    return env


def kill_group(pgid: int, grace: float = 3.0) -> None:
    """SIGTERM the process group ``pgid`` (one this script created), SIGKILL what is left."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 0.0)):
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            return
        end = time.monotonic() + wait
        while time.monotonic() < end:
            try:
                os.killpg(pgid, 0)
            except (ProcessLookupError, PermissionError):
                return
            time.sleep(0.1)


def run_group(
    cmd: Sequence[str], timeout: float, log: Path | None = None
) -> tuple[int | None, float]:
    """Run ``cmd`` from the repository root in a new process group; output to ``log`` (appended)
    or inherited. Returns (exit status or None when killed on timeout, seconds). Whatever the
    command left running in its group is killed afterwards."""
    start = time.monotonic()
    with open(log, "ab") if log is not None else contextlib.nullcontext() as sink:
        proc = subprocess.Popen(
            list(cmd), cwd=REPO_ROOT, env=child_env(), stdout=sink,
            stderr=subprocess.STDOUT if sink is not None else None, start_new_session=True,
        )  # fmt: skip
        rc: int | None
        try:
            rc = proc.wait(timeout=max(1.0, timeout))
        except subprocess.TimeoutExpired:
            rc = None
        kill_group(proc.pid, grace=3.0 if rc is None else 0.5)
        if rc is None:
            proc.wait()
    return rc, time.monotonic() - start


class Recorder:
    """A part's result dict, rewritten to its JSON file after every change."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.data: dict[str, Any] = {"errors": [], "notes": []}

    def set(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.flush()

    def add(self, key: str, item: Any) -> None:
        self.data.setdefault(key, []).append(item)
        self.flush()

    def error(self, item: str, exc: BaseException | str) -> None:
        text = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
        print(f"[error] {item}: {text}", flush=True)
        if isinstance(exc, BaseException):
            traceback.print_exception(exc)
        self.add("errors", {"item": item, "error": text[:600]})

    def note(self, text: str) -> None:
        print(f"[note] {text}", flush=True)
        self.add("notes", text)

    def flush(self) -> None:
        if self.path is not None:
            write_json(self.path, self.data)


@dataclass
class Ctx:
    """What a part knows: device, mode, its wall-clock deadline, a scratch folder, its record."""

    device: str
    quick: bool
    deadline: float  # time.time() by which the part must have written its result
    work: Path
    rec: Recorder
    sizes: Sizes
    args: argparse.Namespace = field(default_factory=argparse.Namespace)

    @property
    def gpu(self) -> bool:
        return self.device == "cuda"

    def left(self) -> float:
        return self.deadline - time.time()

    def cmd(self, part: str, *extra: str, deadline: float | None = None) -> list[str]:
        """Command line of a helper process of this part (same device, mode and scratch)."""
        return [
            sys.executable, str(SCRIPT), "--part", part, "--device", self.device,
            "--work", str(self.work), "--deadline", f"{deadline or self.deadline:.3f}",
            *(["--quick"] if self.quick else []), *extra,
        ]  # fmt: skip


# =============================================================================================
# Torch helpers (torch is imported inside the functions: the orchestrator and the tests part do
# not need it)
# =============================================================================================
def torch_facts(device: str) -> dict[str, Any]:
    import torch

    facts: dict[str, Any] = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda or "none",
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
    }
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        facts["device_name"] = torch.cuda.get_device_name(0)
        facts["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
        facts["cudnn"] = torch.backends.cudnn.version()
    else:
        facts["device_name"] = cpu_model()
    return facts


def sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def memory_reset(device: str) -> int:
    """Free cached blocks, reset the peak counter; returns the bytes still allocated."""
    import torch

    gc.collect()
    if device != "cuda":
        return 0
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    return int(torch.cuda.memory_allocated())


def memory_peak_mib(device: str, base: int) -> float | None:
    import torch

    if device != "cuda":
        return None
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / MIB


def time_steps(step: Callable[[], object], n: int, device: str) -> float:
    """Seconds per call of ``step`` over ``n`` calls (CUDA events on a GPU)."""
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
        begin = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        begin.record()
        for _ in range(n):
            step()
        end.record()
        end.synchronize()
        return begin.elapsed_time(end) / 1000.0 / n
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    return (time.perf_counter() - t0) / n


def synthetic_dataset(
    num_classes: int, side: int, n_train: int, n_held_out: int, seed: int = 0
) -> SearchDataset:
    """Random uint8 images of ``side`` px, named "synthetic" (config.dataset must say so)."""
    import torch

    from trainables.datasets.base import ImageSplit, SearchDataset

    gen = torch.Generator().manual_seed(seed)

    def split(n: int) -> ImageSplit:
        images = torch.randint(0, 256, (n, 3, side, side), dtype=torch.uint8, generator=gen)
        return ImageSplit(images, torch.randint(0, num_classes, (n,), generator=gen))

    return SearchDataset(
        name="synthetic",
        train=split(n_train),
        held_out=split(n_held_out),
        num_classes=num_classes,
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.25, 0.25),
        crop_padding=4 if side >= 32 else 2,
    )


KINDS = {"single": ("single", "first"), "bi-first": ("bi", "first"), "bi-second": ("bi", "second")}


def search_config(
    kind: str, *, space: str, batch: int, cap: int, epochs: int, channels: int, depth: int
) -> SearchConfig:
    from trainables.config import SearchConfig

    level, order = KINDS[kind]
    return SearchConfig(
        space=space, dataset="synthetic", level=level, order=order, batch_size=batch,
        steps_per_epoch=cap, epochs=epochs, channels=channels, depth=depth,
    )  # fmt: skip


def new_search(config: SearchConfig, device: str, dataset: SearchDataset, fast: bool) -> Any:
    """``trainables.search.Search`` on ``dataset``; ``fast`` selects the execution path."""
    from trainables.search import Search

    return Search(config, device, dataset=dataset, fast=fast)


def measure_search(
    ctx: Ctx,
    name: str,
    config: SearchConfig,
    dataset: SearchDataset,
    *,
    fast: bool,
    eval_repeats: int = 0,
) -> dict[str, Any]:
    """Build a search, run its warm-up epoch (warm-up + graph capture on the fast path), then
    up to ``timed_epochs`` timed epochs while the part's time allows. Step seconds = summed
    ``train_seconds`` / summed steps of the timed epochs (the warm-up epoch when none fit)."""
    from trainables import records as R

    device = ctx.device
    base = memory_reset(device)
    t0 = time.perf_counter()
    search = new_search(config, device, dataset, fast)
    built = time.perf_counter() - t0
    first = search.run_epoch()
    timed: list[dict[str, Any]] = []
    while len(timed) < ctx.sizes.timed_epochs:
        estimate = (timed[-1] if timed else first)[R.EPOCH_SECONDS]
        if ctx.left() < 1.5 * estimate + 2:
            ctx.rec.note(f"{name}: {len(timed)} timed epoch(s) only (part time limit)")
            break
        timed.append(search.run_epoch())
    records = timed or [first]
    steps = sum(int(r[R.STEPS]) for r in records)
    train = sum(float(r[R.TRAIN_SECONDS]) for r in records)
    statuses = {r[R.STATUS] for r in [first, *timed]}
    exec_path = records[-1].get(R.EXEC_PATH, getattr(search, "exec_path", "unknown"))
    result: dict[str, Any] = {
        "name": name,
        "path": "fast" if fast else "eager",
        "space": config.space,
        "kind": next(k for k, v in KINDS.items() if v == (config.level, config.order)),
        "batch": config.batch_size,
        "channels": config.channels,
        "depth": config.depth,
        "steps_timed": steps,
        "warm_only": not timed,
        "step_seconds": train / max(steps, 1),
        "images_per_sec": config.batch_size * steps / max(train, 1e-12),
        "first_epoch_seconds": first[R.EPOCH_SECONDS],
        "first_train_seconds": first[R.TRAIN_SECONDS],
        "build_seconds": built,
        "exec_path": exec_path,
        "statuses": sorted(statuses),
    }
    if eval_repeats:
        try:  # the step figures stand without it
            result.update(_eval_timing(search, records, len(dataset.held_out), eval_repeats))
        except Exception as exc:
            ctx.rec.error(f"{name} evaluation timing", exc)
    result["peak_mib"] = memory_peak_mib(device, base)
    del search
    memory_reset(device)
    if statuses != {R.STATUS_OK}:
        ctx.rec.error(name, f"epoch status {sorted(statuses)} (diverged?)")
    if fast and ctx.gpu and exec_path != R.EXEC_CUDA_GRAPH:
        ctx.rec.error(name, f"fast=True on CUDA ran exec_path {exec_path!r}, not cuda_graph")
    if not fast and exec_path != R.EXEC_EAGER:
        ctx.rec.error(name, f"fast=False ran exec_path {exec_path!r}, not eager")
    print(
        f"{name} batch {config.batch_size}: {1000 * result['step_seconds']:.2f} ms/step over "
        f"{steps} steps, exec_path {exec_path}, first epoch {first[R.EPOCH_SECONDS]:.2f} s",
        flush=True,
    )
    return result


def _eval_timing(
    search: Any, records: list[dict[str, Any]], held_out: int, repeats: int
) -> dict[str, float]:
    """Seconds of ``search._evaluate()`` (the whole held-out split; one untimed call first),
    per image, and the epochs' remaining overhead (epoch - steps - evaluation: genotype, α,
    benchmark lookup, record)."""
    from trainables import records as R

    search._evaluate()
    sync(search.device.type)
    t0 = time.perf_counter()
    for _ in range(repeats):
        search._evaluate()  # ends with .item(): synchronised
    seconds = (time.perf_counter() - t0) / repeats
    overheads = [float(r[R.EPOCH_SECONDS]) - float(r[R.TRAIN_SECONDS]) - seconds for r in records]
    return {
        "eval_seconds": seconds,
        "held_out": held_out,
        "eval_seconds_per_image": seconds / held_out,
        "epoch_overhead_seconds": max(0.0, statistics.mean(overheads)),
    }


def xautodl_missing() -> str | None:
    try:
        from xautodl.models.cell_searchs.search_model_darts import (  # noqa: F401
            TinyNetworkDarts,
        )
    except Exception as err:  # ImportError, or its pinned numpy failing at import
        return f"xautodl is not importable ({type(err).__name__}: {err})"
    return None


def measure_reference(ctx: Ctx, kind: str, batch: int) -> dict[str, Any]:
    """``ref single`` / ``ref DARTS-V1`` exactly as step_throughput.py builds them, on the
    device, on fixed random device tensors; CUDA-event time of ``ref_steps`` steps."""
    import step_throughput as st
    import torch

    s = ctx.sizes
    device = ctx.device
    base = memory_reset(device)
    gen = torch.Generator().manual_seed(0)
    shape = (batch, 3, st.IMAGE_SIZE, st.IMAGE_SIZE)

    def make() -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(shape, generator=gen)
        y = torch.randint(0, st.NUM_CLASSES, (batch,), generator=gen)
        return x.to(device), y.to(device)

    w_batch, a_batch = make(), make()
    torch.manual_seed(0)
    variant = st._reference(kind, s.channels, s.depth, w_batch, a_batch, device=device)
    for _ in range(s.ref_warmup):
        variant.step()
    seconds = time_steps(variant.step, s.ref_steps, device)
    result = {
        "name": variant.name,
        "path": "ref",
        "space": "nb201",
        "kind": "single" if kind == "single" else "bi-first",
        "batch": batch,
        "steps_timed": s.ref_steps,
        "step_seconds": seconds,
        "images_per_sec": batch / seconds,
        "peak_mib": memory_peak_mib(device, base),
        "weights": variant.weights,
    }
    del variant, w_batch, a_batch
    memory_reset(device)
    print(f"{result['name']} batch {batch}: {1000 * seconds:.2f} ms/step", flush=True)
    return result


# =============================================================================================
# Parts
# =============================================================================================
def part_tests(ctx: Ctx) -> int:
    """pytest -m gpu; counts from pytest's last line, names of failures."""
    log = ctx.work / "pytest.log"
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", "tests"]
    rc, seconds = run_group(cmd, timeout=ctx.left() - 1, log=log)
    text = log.read_text(errors="replace") if log.exists() else ""
    print(text, flush=True)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    last = next((line for line in reversed(lines) if re.search(r"\d+ \w+.* in [\d.]+s", line)), "")
    counts = {
        word: int(n)
        for n, word in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected|x\w+)", last)
    }
    failures = [line.split(" - ")[0] for line in lines if line.startswith(("FAILED ", "ERROR "))]
    ctx.rec.set("pytest", {"exit": rc, "seconds": seconds, "counts": counts,
                           "last_line": last, "failures": failures})  # fmt: skip
    if rc is None:
        ctx.rec.error("pytest", f"did not finish in {seconds:.0f} s")
        return 1
    ok = rc in (0, 5)  # 5: no tests collected
    ctx.rec.set("summary", last or f"pytest exit {rc}")
    if failures:
        ctx.rec.error("pytest", f"{len(failures)} failed: {', '.join(failures[:8])}")
    return 0 if ok else 1


STEP_PLAN = (  # (path, kind, which batch): the order the steps part runs them in
    ("fast", "single", "batch"),
    ("eager", "single", "batch"),
    ("ref", "single", "batch"),
    ("fast", "bi-first", "batch"),
    ("eager", "bi-first", "batch"),
    ("ref", "bi-first", "batch"),
    ("fast", "single", "big_batch"),
    ("eager", "single", "big_batch"),
    ("ref", "single", "big_batch"),
    ("fast", "bi-second", "batch"),
    ("eager", "bi-second", "batch"),
)
REF_NAMES = {"single": "ref single", "bi-first": "ref DARTS-V1"}


def part_steps(ctx: Ctx) -> int:
    s = ctx.sizes
    ctx.rec.set("facts", torch_facts(ctx.device))
    ctx.rec.set("config", {"channels": s.channels, "depth": s.depth, "classes": 10, "side": 32,
                           "fast_cap": s.fast_cap, "eager_cap": s.eager_cap,
                           "timed_epochs": s.timed_epochs, "ref_steps": s.ref_steps})  # fmt: skip
    dataset = synthetic_dataset(10, 32, s.fast_cap * s.big_batch, s.held_out)
    no_ref = xautodl_missing()
    if no_ref:
        ctx.rec.note(f"reference variants skipped: {no_ref}")
    for path, kind, which in STEP_PLAN:
        batch = getattr(s, which)
        name = REF_NAMES[kind] if path == "ref" else f"ours {path} {kind}"
        if path == "ref" and no_ref:
            continue
        need = 15 if (path == "eager" and kind == "bi-second") else 6
        if ctx.gpu and ctx.left() < need:
            ctx.rec.note(f"{name} batch {batch} not run: {ctx.left():.0f} s left in the part")
            continue
        try:
            if path == "ref":
                result = measure_reference(ctx, kind, batch)
            else:
                cap = s.fast_cap if path == "fast" else s.eager_cap
                config = search_config(
                    kind, space="nb201", batch=batch, cap=cap, epochs=1 + s.timed_epochs,
                    channels=s.channels, depth=s.depth,
                )  # fmt: skip
                result = measure_search(ctx, name, config, dataset, fast=path == "fast")
            ctx.rec.add("variants", result)
        except Exception as exc:
            ctx.rec.error(f"{name} batch {batch}", exc)
        memory_reset(ctx.device)  # after the except block, which kept the failed run alive
    return 0


CALIB_PLAN = (  # (image side, kind, path), most important first
    (32, "single", "fast"),
    (32, "bi-first", "fast"),
    (16, "single", "fast"),
    (16, "bi-first", "fast"),
    (32, "single", "eager"),
    (32, "bi-second", "fast"),
    (16, "bi-second", "fast"),
    (16, "single", "eager"),
)


def calibration_entry(result: dict[str, Any], side: int) -> dict[str, Any]:
    """One entry of gpu_calibration.json (study.cost's format 1) from a measured search."""
    level, order = KINDS[result["kind"]]
    return {
        "space": result["space"], "level": level, "order": order, "image_side": side,
        "batch_size": result["batch"], "channels": result["channels"], "depth": result["depth"],
        "step_seconds": sig(result["step_seconds"]),
        "eval_seconds_per_image": sig(result.get("eval_seconds_per_image")),
        "epoch_overhead_seconds": sig(result.get("epoch_overhead_seconds")),
        "scales_with_batch": False,
    }  # fmt: skip


def sig(value: float | None, digits: int = 4) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(f"{value:.{digits}g}")


def part_calibration(ctx: Ctx) -> int:
    s = ctx.sizes
    ctx.rec.set("facts", torch_facts(ctx.device))
    held = dict(s.calib_held_out)
    datasets: dict[int, SearchDataset] = {}
    for side, kind, path in CALIB_PLAN:
        name = f"nb201 {side}px {path} {kind}"
        need = 12 if kind == "bi-second" else 6
        if ctx.gpu and ctx.left() < need:
            ctx.rec.note(f"{name} not run: {ctx.left():.0f} s left in the part")
            continue
        try:
            if side not in datasets:
                classes = 10 if side == 32 else 120
                datasets[side] = synthetic_dataset(classes, side, s.fast_cap * s.batch, held[side])
            cap = s.fast_cap if path == "fast" else s.eager_cap
            config = search_config(
                kind, space="nb201", batch=s.batch, cap=cap, epochs=1 + s.timed_epochs,
                channels=s.channels, depth=s.depth,
            )  # fmt: skip
            result = measure_search(
                ctx, name, config, datasets[side], fast=path == "fast", eval_repeats=s.eval_repeats
            )
            result["image_side"] = side
            ctx.rec.add("measured", result)
            if path == "fast":
                ctx.rec.add("entries", calibration_entry(result, side))
        except Exception as exc:
            ctx.rec.error(name, exc)
        memory_reset(ctx.device)
    return 0


def part_packing(ctx: Ctx) -> int:
    """k concurrent fast-path searches: one worker process per search, all started and warmed up
    once; then for each k the first k workers run together for ``pack_window`` seconds from a
    shared start time (a file every worker polls), the others stay idle."""
    s = ctx.sizes
    ks = list(s.pack_ks)
    if ctx.gpu and 16 in ks and ctx.left() < 50:
        ks.remove(16)
        ctx.rec.note(f"k=16 left out: {ctx.left():.0f} s for the part")
    scratch = ctx.work / "packing"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    n = max(ks)
    ctx.rec.set("config", {"channels": s.channels, "depth": s.depth, "batch": s.batch,
                           "level": "single", "fast": True, "window_seconds": s.pack_window,
                           "steps_per_epoch": s.pack_cap, "ks": ks})  # fmt: skip
    helper_ctx = Ctx(ctx.device, ctx.quick, ctx.deadline, scratch, ctx.rec, s)
    procs: list[subprocess.Popen[bytes]] = []
    logs = []
    started = time.time()
    for i in range(n):
        log = open(scratch / f"worker_{i}.log", "wb")  # noqa: SIM115 (closed below)
        logs.append(log)
        procs.append(
            subprocess.Popen(
                helper_ctx.cmd("packing_worker", "--index", str(i)),
                cwd=REPO_ROOT, env=child_env(), stdout=log, stderr=subprocess.STDOUT,
            )
        )
    try:
        ready = _wait_ready(ctx, scratch, procs, started)
        _run_phases(ctx, scratch, ks, ready)
    finally:
        (scratch / "stop").touch()
        end = time.time() + 5
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=max(0.1, end - time.time()))
            if p.poll() is None:
                p.kill()
                p.wait()
        for log in logs:
            log.close()
    return 0


def _wait_ready(
    ctx: Ctx, scratch: Path, procs: list[subprocess.Popen[bytes]], started: float
) -> list[int]:
    limit = min(started + ctx.sizes.pack_ready_timeout, ctx.deadline - 10)
    n = len(procs)
    while True:
        ready = [i for i in range(n) if (scratch / f"ready_{i}.json").exists()]
        dead = [i for i in range(n) if procs[i].poll() is not None and i not in ready]
        if len(ready) + len(dead) == n or time.time() > limit:
            break
        time.sleep(0.1)
    infos = [read_json(scratch / f"ready_{i}.json") or {} for i in ready]
    ctx.rec.set("workers", {
        "started": n, "ready": len(ready), "ready_after_seconds": time.time() - started,
        "exec_paths": sorted({str(x.get("exec_path")) for x in infos}),
        "warm_seconds": [x.get("warm_seconds") for x in infos],
    })  # fmt: skip
    for i in range(n):
        if i not in ready:
            why = "died" if procs[i].poll() is not None else "not ready in time"
            ctx.rec.error(f"worker {i}", f"{why}; log: {' | '.join(tail(scratch / f'worker_{i}.log', 6))}")
    return ready


def _run_phases(ctx: Ctx, scratch: Path, ks: list[int], ready: list[int]) -> None:
    s = ctx.sizes
    phase = 0
    aggregate: dict[int, float] = {}
    for k in ks:
        if k > len(ready):
            ctx.rec.note(f"k={k} not run: only {len(ready)} workers ready")
            continue
        if ctx.left() < s.pack_window + (4 if ctx.gpu else 10):
            ctx.rec.note(f"k={k} not run: {ctx.left():.0f} s left in the part")
            continue
        members = ready[:k]
        t0 = time.time() + 0.5
        write_json(scratch / f"go_{phase}.json",
                   {"t0": t0, "window": s.pack_window, "workers": members})  # fmt: skip
        files = [scratch / f"res_{phase}_{i}.json" for i in members]
        limit = min(t0 + s.pack_window + (20 if ctx.gpu else 90), ctx.deadline)
        while time.time() < limit and not all(f.exists() for f in files):
            time.sleep(0.05)
        phase += 1
        results = [read_json(f) for f in files]
        if any(r is None for r in results):
            ctx.rec.error(f"k={k}", "not every worker reported in time")
            continue
        rates = [r["images"] / r["elapsed"] for r in results]
        aggregate[k] = sum(rates)
        ctx.rec.add("points", {
            "k": k, "aggregate_images_per_sec": sum(rates),
            "per_search_images_per_sec": sum(rates) / k,
            "slowest_search": min(rates), "fastest_search": max(rates),
            "epochs": [r["epochs"] for r in results],
            "exec_paths": sorted({r["exec_path"] for r in results}),
        })  # fmt: skip
        print(f"k={k}: aggregate {sum(rates):.0f} images/s", flush=True)
        if 1 in aggregate:
            ctx.rec.set("packing", {str(kk): v / aggregate[1] for kk, v in aggregate.items()})


def part_packing_worker(ctx: Ctx) -> int:
    from trainables import records as R

    s, scratch, index = ctx.sizes, ctx.work, ctx.args.index
    t0 = time.perf_counter()
    dataset = synthetic_dataset(10, 32, s.pack_cap * s.batch, s.pack_held_out, seed=index)
    config = search_config(
        "single", space="nb201", batch=s.batch, cap=s.pack_cap, epochs=100_000,
        channels=s.channels, depth=s.depth,
    )  # fmt: skip
    search = new_search(config, ctx.device, dataset, True)
    search.run_epoch()  # warm-up and graph capture
    search.run_epoch()
    write_json(scratch / f"ready_{index}.json",
               {"exec_path": search.exec_path, "warm_seconds": time.perf_counter() - t0})  # fmt: skip
    parent, phase = os.getppid(), 0
    while not (scratch / "stop").exists() and os.getppid() == parent and time.time() < ctx.deadline:
        spec = read_json(scratch / f"go_{phase}.json")
        if spec is None:
            time.sleep(0.005)
            continue
        phase += 1
        if index not in spec["workers"]:
            continue
        while time.time() < spec["t0"]:
            time.sleep(0.001)
        end = spec["t0"] + spec["window"]
        images = epochs = 0
        train = 0.0
        exec_path = ""
        while time.time() < end:
            record = search.run_epoch()
            images += int(record[R.STEPS]) * s.batch
            train += float(record[R.TRAIN_SECONDS])
            exec_path = record[R.EXEC_PATH]
            epochs += 1
        elapsed = time.time() - spec["t0"]
        write_json(scratch / f"res_{phase - 1}_{index}.json", {
            "images": images, "elapsed": elapsed, "train_seconds": train, "epochs": epochs,
            "exec_path": exec_path,
        })  # fmt: skip
    return 0


def study_grid_toml(s: Sizes) -> str:
    return f"""# written by benchmarks/gpu_suite.py (study_run part)
name = "{STUDY_EXPERIMENT}"
description = "GPU suite: 2 levels x 2 seeds, capped epochs"

[base]
space = "nb201"
dataset = "synthetic"
channels = {s.study_channels}
depth = {s.study_depth}
batch_size = {s.study_batch}
steps_per_epoch = {s.study_cap}
epochs = {s.study_epochs}

[axes]
level = ["single", "bi"]
seed = [0, 1]
"""


def part_study_run(ctx: Ctx) -> int:
    s = ctx.sizes
    scratch = ctx.work / "study"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    grid = scratch / "gpu_suite_grid.toml"
    grid.write_text(study_grid_toml(s))
    results = scratch / "results"
    gpus = "0.25" if ctx.gpu else "0"
    flags = ["--gpus-per-trial", gpus, "--cpus-per-trial", "1"]  # the fast path is the default
    cmd = [
        sys.executable, "-c", "import sys; from study.cli import main; sys.exit(main())",
        "run", str(grid), "--results", str(results), "--name", STUDY_EXPERIMENT, *flags,
    ]  # fmt: skip
    ctx.rec.set("command", " ".join(cmd[3:]))
    ctx.rec.set("flags", " ".join(flags))
    log = scratch / "study_cli.log"
    rc, seconds = run_group(cmd, timeout=ctx.left() - 5, log=log)
    text = log.read_text(errors="replace") if log.exists() else ""
    print(text, flush=True)
    ctx.rec.set("cli", {"exit": rc, "wall_seconds": seconds})
    if rc is None:
        ctx.rec.error("study run", f"did not finish in {seconds:.0f} s")
    elif rc != 0:
        ctx.rec.error("study run", f"exit {rc}")
    expected = "cuda_graph" if ctx.gpu else "eager"
    ctx.rec.set("expected_exec_path", expected)
    checks = study_checks(results, expected_trials=4, epochs=s.study_epochs, exec_path=expected)
    ctx.rec.set("checks", checks)
    for name, check in checks.items():
        if not check["ok"]:
            ctx.rec.error(f"check {name}", check["detail"])
    return 0 if rc == 0 and all(c["ok"] for c in checks.values()) else 1


def study_checks(
    results: Path, *, expected_trials: int, epochs: int, exec_path: str
) -> dict[str, dict[str, Any]]:
    """Checks of a finished study run from its Parquet rows (deduplicated and raw)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from analysis.results import load_results

    checks: dict[str, dict[str, Any]] = {}

    def check(name: str, ok: bool, detail: str) -> None:
        checks[name] = {"ok": bool(ok), "detail": detail}

    try:
        df = load_results(results / "parquet", experiments=[STUDY_EXPERIMENT], alphas=False)
    except Exception as exc:
        check("results", False, f"load_results failed: {type(exc).__name__}: {exc}")
        return checks
    trials = df["trial_id"].nunique()
    check("trials", trials == expected_trials, f"{trials} of {expected_trials} trials")
    per_trial = df.groupby("trial_id")["epoch"].apply(lambda e: sorted(int(x) for x in e))
    want = list(range(1, epochs + 1))
    bad = {t: v for t, v in per_trial.items() if v != want}
    check("epochs", not bad and len(df) == trials * epochs,
          f"{len(df)} rows after de-duplication; epochs {want} per trial"
          + (f"; wrong: {bad}" if bad else ""))  # fmt: skip
    folder = results / "parquet" / f"experiment={STUDY_EXPERIMENT}"
    files = sorted(folder.glob("part-*.parquet"))
    raw = pa.concat_tables([pq.read_table(f, columns=["trial_id", "epoch"]) for f in files])
    pairs = list(zip(raw["trial_id"].to_pylist(), raw["epoch"].to_pylist(), strict=True))
    dupes = len(pairs) - len(set(pairs))
    check("raw_duplicates", dupes == 0,
          f"{len(pairs)} raw rows in {len(files)} file(s), {dupes} duplicate (trial, epoch)")
    if "exec_path" in df.columns:
        paths = sorted({str(v) for v in df["exec_path"]})
        check("exec_path", paths == [exec_path], f"exec_path values {paths}, want {exec_path}")
    else:
        check("exec_path", False, "no exec_path column in the results")
    statuses = sorted({str(v) for v in df["status"]})
    check("status", statuses == ["ok"], f"statuses {statuses}")
    return checks


def part_darts(ctx: Ctx) -> int:
    s = ctx.sizes
    ctx.rec.set("facts", torch_facts(ctx.device))
    dataset = synthetic_dataset(10, 32, s.darts_cap * s.darts_batch, s.darts_held_out)
    plan: list[tuple[str, str]] = [("fast", "single"), ("fast", "bi-first"), ("inet", "")]
    plan += [("eager", "single"), ("eager", "bi-first")]
    for path, kind in plan:
        if path == "inet":
            imagenet_step(ctx)
            continue
        name = f"darts {path} {kind}"
        if ctx.gpu and ctx.left() < (10 if path == "fast" else 15):
            ctx.rec.note(f"{name} not run: {ctx.left():.0f} s left in the part")
            continue
        try:
            config = search_config(
                kind, space="darts", batch=s.darts_batch, cap=s.darts_cap,
                epochs=1 + s.timed_epochs, channels=s.darts_channels, depth=s.darts_depth,
            )  # fmt: skip
            result = measure_search(
                ctx, name, config, dataset, fast=path == "fast", eval_repeats=s.eval_repeats
            )
            ctx.rec.add("cifar", result)
            if path == "fast":
                ctx.rec.add("entries", calibration_entry(result, 32))
        except Exception as exc:
            ctx.rec.error(name, exc)
        memory_reset(ctx.device)
    return 0


def imagenet_step(ctx: Ctx) -> None:
    """DARTS ImageNet stem, single-level, eager: the strategy on random device tensors at
    ``inet_batch`` (and ``inet_half``, for the batch scaling), plus eval forward per image."""
    s = ctx.sizes
    results: dict[str, Any] = {"channels": s.darts_channels, "depth": s.darts_depth,
                               "classes": s.inet_classes, "side": 224, "path": "eager"}  # fmt: skip
    for batch in (s.inet_batch, s.inet_half):
        if ctx.gpu and ctx.left() < 12:
            ctx.rec.note(f"darts imagenet batch {batch} not run: {ctx.left():.0f} s left")
            break
        try:
            results[str(batch)] = _imagenet_one(ctx, batch, eval_too=batch == s.inet_batch)
            ctx.rec.set("imagenet", results)
        except Exception as exc:
            ctx.rec.error(f"darts imagenet batch {batch}", exc)
        memory_reset(ctx.device)  # the failed run's tensors are released with the except block


def _imagenet_one(ctx: Ctx, batch: int, eval_too: bool) -> dict[str, Any]:
    import torch

    from search_spaces import build_supernet
    from trainables.config import SearchConfig
    from trainables.optim import build_optimizers
    from trainables.strategies import build_strategy

    s, device = ctx.sizes, ctx.device
    cfg = SearchConfig(
        space="darts", dataset="imagenet", stem="imagenet", level="single", batch_size=batch,
        channels=s.darts_channels, depth=s.darts_depth,
    )  # fmt: skip
    base = memory_reset(device)
    torch.manual_seed(0)
    model = build_supernet(
        "darts", num_classes=s.inet_classes, channels=cfg.channels, depth=cfg.depth or 8,
        activation=cfg.activation, alpha_init=cfg.alpha_init,
        alpha_init_std=cfg.alpha_init_std, stem="imagenet",
    ).to(device)  # fmt: skip
    w_opt, a_opt, _ = build_optimizers(cfg, model.weights(), model.alphas())
    strategy = build_strategy(
        cfg.level, cfg.order, model, w_opt, a_opt, cfg.grad_clip, cfg.unroll_r
    )
    x = torch.randn(batch, 3, 224, 224, device=device)
    y = torch.randint(0, s.inet_classes, (batch,), device=device)

    def step() -> object:
        return strategy.step((x, y), None)

    for _ in range(s.inet_warmup):
        step()
    seconds = time_steps(step, s.inet_steps, device)
    entry = {"step_seconds": seconds, "images_per_sec": batch / seconds,
             "peak_mib": memory_peak_mib(device, base)}  # fmt: skip
    if eval_too:
        entry["eval_seconds_per_image"] = _eval_per_image(model, device, batch)
    print(f"darts imagenet batch {batch}: {seconds:.3f} s/step", flush=True)
    return entry


def _eval_per_image(model: Any, device: str, batch: int) -> float:
    """Seconds per image of the eval-mode forward at the search's eval batch (256) at 224 px
    (decoding the JPEGs, which a real ImageNet search also pays, is not included)."""
    import torch

    from trainables.search import EVAL_BATCH

    n = min(EVAL_BATCH, batch)
    x = torch.randn(n, 3, 224, 224, device=device)
    model.eval()
    with torch.no_grad():
        model(x)
        seconds = time_steps(lambda: model(x), 2, device)
    model.train()
    return seconds / n


# ---------------------------------------------------------------------------------------------
# 7. evaluation: a genotype trained from scratch (study evaluate's presets)
# ---------------------------------------------------------------------------------------------
CIFAR10_STEPS_PER_EPOCH = 50_000 // 128  # the cifar10 preset: 50k images, batch 128
IMAGENET_IMAGES = 1_281_167


def part_evaluation(ctx: Ctx) -> int:
    """DARTS-V2 trained with the evaluation presets: the cifar10 preset's training step and test
    time through ``Evaluation.run_epoch`` on synthetic device-resident 32 px data (auxiliary
    head, cutout, drop-path at half its final value), and the imagenet preset network's training
    step on random 224 px device tensors (no JPEG decoding)."""
    ctx.rec.set("facts", torch_facts(ctx.device))
    for name, measure in (("cifar10", _evaluation_cifar), ("imagenet", _evaluation_imagenet)):
        if ctx.gpu and ctx.left() < 12:
            ctx.rec.note(f"evaluation {name} not run: {ctx.left():.0f} s left in the part")
            continue
        try:
            ctx.rec.set(name, measure(ctx))
        except Exception as exc:
            ctx.rec.error(f"evaluation {name}", exc)
        memory_reset(ctx.device)
    return 0


def _evaluation_cifar(ctx: Ctx) -> dict[str, Any]:
    from trainables.datasets.base import EvaluationDataset
    from trainables.eval_config import preset_config
    from trainables.evaluation import Evaluation

    s = ctx.sizes
    data = synthetic_dataset(10, 32, s.eval_steps * s.eval_batch, s.eval_test)
    dataset = EvaluationDataset(
        name="synthetic", train=data.train, test=data.held_out, num_classes=10, mean=data.mean,
        std=data.std, crop_padding=4, input_size=32,
    )  # fmt: skip
    config = preset_config(
        "cifar10", "DARTS_V2", dataset="synthetic", layers=s.eval_layers,
        init_channels=s.eval_channels, batch_size=s.eval_batch, epochs=4,
    )  # fmt: skip
    base = memory_reset(ctx.device)
    evaluation = Evaluation(config, ctx.device, dataset)
    evaluation.run_epoch()  # warm-up (cuDNN autotuning, allocator)
    evaluation.epoch = 2  # drop-path 0.15, half its final value, as mid-training
    record = evaluation.run_epoch()
    step = record["train_seconds"] / record["steps"]
    test_per_image = (record["epoch_seconds"] - record["train_seconds"]) / s.eval_test
    epoch = step * CIFAR10_STEPS_PER_EPOCH + test_per_image * 10_000
    print(f"evaluation cifar10: {step:.4f} s/step", flush=True)
    return {
        "layers": s.eval_layers, "channels": s.eval_channels, "batch": s.eval_batch,
        "step_seconds": step, "images_per_sec": s.eval_batch / step,
        "test_seconds_per_image": test_per_image, "epoch_seconds": epoch,
        "preset_gpu_hours": epoch * 600 / 3600, "peak_mib": memory_peak_mib(ctx.device, base),
        "params": record["params"],
    }  # fmt: skip


def _evaluation_imagenet(ctx: Ctx) -> dict[str, Any]:
    import torch
    import torch.nn.functional as F

    from trainables.eval_config import preset_config
    from trainables.evaluation import build_network

    s, device = ctx.sizes, ctx.device
    config = preset_config(
        "imagenet", "DARTS_V2", layers=s.inet_eval_layers, init_channels=s.inet_eval_channels
    )
    base = memory_reset(device)
    torch.manual_seed(0)
    model = build_network(config, s.inet_classes).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=3e-5)
    batch = s.inet_eval_batch
    x = torch.randn(batch, 3, 224, 224, device=device)
    y = torch.randint(0, s.inet_classes, (batch,), device=device)

    def step() -> object:
        logits, aux = model(x)
        loss = F.cross_entropy(logits, y, label_smoothing=0.1)
        loss = loss + 0.4 * F.cross_entropy(aux, y, label_smoothing=0.1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        return loss

    for _ in range(s.inet_warmup):
        step()
    seconds = time_steps(step, s.inet_steps, device)
    per_gpu_epoch = IMAGENET_IMAGES / batch * seconds
    print(f"evaluation imagenet batch {batch}: {seconds:.3f} s/step", flush=True)
    return {
        "layers": s.inet_eval_layers, "channels": s.inet_eval_channels, "batch": batch,
        "classes": s.inet_classes, "step_seconds": seconds, "images_per_sec": batch / seconds,
        "epoch_gpu_hours": per_gpu_epoch / 3600, "preset_gpu_hours": per_gpu_epoch * 250 / 3600,
        "peak_mib": memory_peak_mib(device, base),
    }  # fmt: skip


COMPILE_MODES = ("reduce-overhead", "default")  # CUDA graphs first: the fast path's rival


def part_compile(ctx: Ctx) -> int:
    """Each torch.compile mode in its own process (time-boxed): eager baseline, compile + first
    calls, steady state. The first mode (reduce-overhead) gets 60% of the time left, the second
    the rest (it reuses the first one's compiled kernels from inductor's on-disk cache)."""
    for i, mode in enumerate(COMPILE_MODES):
        left = ctx.left() - 2
        limit = left * 0.6 if (i == 0 and ctx.gpu) else left
        if limit < (15 if ctx.gpu else 5):
            ctx.rec.add("variants", {"mode": mode, "status": f"not run: {left:.0f} s left"})
            continue
        result_file = ctx.work / f"compile_{mode}.json"
        result_file.unlink(missing_ok=True)
        cmd = ctx.cmd("compile_variant", "--mode", mode, "--result", str(result_file),
                      deadline=time.time() + limit)  # fmt: skip
        rc, seconds = run_group(cmd, timeout=limit)
        data = read_json(result_file) or {}
        if rc is None:
            status = f"did not finish in {limit:.0f} s"
        elif rc != 0:
            errors = data.get("errors") or [{"error": "no result"}]
            status = f"failed: {errors[-1]['error'][:200]}"
        else:
            status = "ok"
        variant = {"mode": mode, "status": status, "seconds": seconds, **{
            k: data.get(k) for k in ("eager_step_seconds", "compile_seconds", "warm_steps",
                                     "steady_step_seconds", "peak_mib", "batch")
        }}  # fmt: skip
        ctx.rec.add("variants", variant)
        if status != "ok":
            ctx.rec.error(f"torch.compile {mode}", status)
    return 0


def part_compile_variant(ctx: Ctx) -> int:
    import torch

    from search_spaces import build_supernet
    from trainables.config import SearchConfig
    from trainables.optim import build_optimizers
    from trainables.strategies import build_strategy

    s, device, mode = ctx.sizes, ctx.device, ctx.args.mode
    rec = ctx.rec
    rec.set("batch", s.batch)
    rec.set("warm_steps", s.compile_warm)
    cfg = SearchConfig(level="single", channels=s.channels, depth=s.depth, batch_size=s.batch)
    torch.manual_seed(0)
    model = build_supernet(
        "nb201", num_classes=10, channels=cfg.channels, depth=cfg.depth or 5,
        activation=cfg.activation, alpha_init=cfg.alpha_init, alpha_init_std=cfg.alpha_init_std,
    ).to(device)  # fmt: skip
    w_opt, a_opt, _ = build_optimizers(cfg, model.weights(), model.alphas())
    strategy = build_strategy("single", "first", model, w_opt, a_opt, cfg.grad_clip)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(s.batch, 3, 32, 32, generator=gen).to(device)
    y = torch.randint(0, 10, (s.batch,), generator=gen).to(device)
    mark = getattr(torch.compiler, "cudagraph_mark_step_begin", lambda: None)

    def step() -> object:
        mark()
        return strategy.step((x, y), None)

    for _ in range(s.compile_warm):
        step()
    rec.set("eager_step_seconds", time_steps(step, s.compile_steps, device))
    base = memory_reset(device)
    model.compile(mode=None if mode == "default" else mode)
    t0 = time.perf_counter()
    for _ in range(s.compile_warm):
        step()
    sync(device)
    rec.set("compile_seconds", time.perf_counter() - t0)
    rec.set("steady_step_seconds", time_steps(step, s.compile_steps, device))
    rec.set("peak_mib", memory_peak_mib(device, base))
    print(f"compile {mode}: {rec.data}", flush=True)
    return 0


PART_FUNCS: dict[str, Callable[[Ctx], int]] = {
    "tests": part_tests,
    "steps": part_steps,
    "calibration": part_calibration,
    "packing": part_packing,
    "study_run": part_study_run,
    "darts": part_darts,
    "evaluation": part_evaluation,
    "compile": part_compile,
    "packing_worker": part_packing_worker,
    "compile_variant": part_compile_variant,
}


def run_part(args: argparse.Namespace) -> int:
    """Entry of a part process (``--part NAME``)."""
    rec = Recorder(Path(args.result) if args.result else None)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="gpu_suite_"))
    deadline = args.deadline or time.time() + 600
    ctx = Ctx(args.device, args.quick, deadline, work, rec, QUICK if args.quick else GPU, args)
    if args.part in (
        "steps", "calibration", "packing_worker", "darts", "evaluation", "compile_variant"
    ):
        import torch

        # One intra-op thread where several processes share the cores (packing workers, as a
        # Ray trial with --cpus-per-trial 1) and for the tiny quick sizes on CPU, where more
        # threads only wait on each other (a 2-core machine: seconds instead of milliseconds).
        if args.part == "packing_worker" or (args.quick and args.device == "cpu"):
            torch.set_num_threads(1)
    print(f"part {args.part} on {args.device}, {ctx.left():.0f} s to its deadline", flush=True)
    try:
        status = PART_FUNCS[args.part](ctx)
    except Exception as exc:
        rec.error(args.part, exc)
        return 1
    if rec.data["errors"] and status == 0 and args.part in ("compile_variant",):
        return 1
    return status


# =============================================================================================
# Orchestrator
# =============================================================================================
@dataclass
class PartOutcome:
    name: str
    status: str  # ok | errors | failed | timeout | skipped
    seconds: float = 0.0
    limit: float = 0.0
    reason: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    log_tail: list[str] = field(default_factory=list)


def orchestrate(args: argparse.Namespace) -> int:
    out = Path(args.out).expanduser().resolve()
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    suite_log = open(out / "suite.log", "w", encoding="utf-8")  # noqa: SIM115 (closed at the end)

    def say(message: str, echo: bool = True) -> None:
        if echo:
            print(message, flush=True)
        suite_log.write(message + "\n")
        suite_log.flush()

    device = args.device or default_device()
    if device == "cuda" and not cuda_available():
        say("error: --device cuda but torch sees no CUDA device")
        return 2
    names = parse_parts(args.parts)
    specs = [p for p in PARTS if p.name in names]
    measure = device == "cuda"
    update = args.update_docs if args.update_docs is not None else measure and not args.quick
    started = time.time()
    say(f"gpu_suite: device {device}, {'quick' if args.quick else 'full'} mode, "
        f"budget {args.budget_seconds:.0f} s, parts {', '.join(names)}; out {out}")  # fmt: skip
    if not measure:
        say("(CPU: a functional check of every code path, not a measurement)")
    work = Path(tempfile.mkdtemp(prefix="gpu_suite_"))
    outcomes: dict[str, PartOutcome] = {}
    report: dict[str, Any] = {}
    calibration: dict[str, Any] = {}
    for i, spec in enumerate(specs):
        elapsed = time.time() - started
        if args.quick:
            limit = spec.quick_timeout
        else:
            reserve = sum(p.minimum for p in specs[i + 1 :] if not p.optional)
            limit = min(spec.timeout, args.budget_seconds - elapsed - reserve)
            if limit < spec.minimum:
                reason = (f"budget: {args.budget_seconds - elapsed:.0f} s left, {reserve:.0f} s "
                          f"kept for later parts, the part needs {spec.minimum:.0f} s")  # fmt: skip
                outcomes[spec.name] = PartOutcome(spec.name, "skipped", reason=reason)
                say(f"[{spec.name}] skipped ({reason})")
                continue
        outcome = run_one(spec.name, device, args.quick, limit, logs, work, say)
        outcomes[spec.name] = outcome
        lines = tail(logs / f"{spec.name}.log", 300)
        say(f"-------- {spec.name} log (last {len(lines)} lines) --------", echo=False)
        say("\n".join(lines) + "\n--------", echo=False)
        # Publish after every part: a suite cut short still leaves what it measured.
        report, calibration = publish(out, outcomes, device, args, time.time() - started, update)
    if not outcomes:
        report, calibration = publish(out, outcomes, device, args, 0.0, update)
    say("")
    for line in summary_lines(report, calibration):
        say(line)
    say(f"outputs in {out}: gpu_suite.json, gpu_benchmarks.md, gpu_calibration.json, "
        f"benchmarks.md, suite.log, logs/" + (f"; updated {DOCS}" if update else ""))  # fmt: skip
    suite_log.close()
    bad = [o for o in outcomes.values() if o.status in ("failed", "timeout")]
    return 1 if bad else 0


def publish(
    out: Path, outcomes: dict[str, PartOutcome], device: str, args: argparse.Namespace,
    total: float, update: bool,
) -> tuple[dict[str, Any], dict[str, Any]]:  # fmt: skip
    """Write every output from the parts so far: JSON, calibration, markdown, docs."""
    report = build_report(outcomes, device, args, total)
    calibration = build_calibration(report)
    write_json(out / "gpu_calibration.json", calibration)
    report["calibration"] = {"file": str(out / "gpu_calibration.json"),
                             **check_calibration(out / "gpu_calibration.json")}  # fmt: skip
    section = render_markdown(report, calibration)
    (out / "gpu_benchmarks.md").write_text(f"{DOCS_HEADING}\n\n{section}\n")
    docs_text = docs_with_section(DOCS.read_text() if DOCS.exists() else "# Benchmarks\n", section)
    if update:
        DOCS.write_text(docs_text)
    (out / "benchmarks.md").write_text(docs_text)
    report["docs_updated"] = str(DOCS) if update else None
    write_json(out / "gpu_suite.json", report)
    return report, calibration


def run_one(
    name: str, device: str, quick: bool, limit: float, logs: Path, work: Path,
    say: Callable[[str], None],
) -> PartOutcome:  # fmt: skip
    log, result = logs / f"{name}.log", work / f"{name}.json"
    for path in (log, result):
        path.unlink(missing_ok=True)
    part_work = work / name
    part_work.mkdir(parents=True, exist_ok=True)
    deadline = time.time() + limit - 3
    cmd = [
        sys.executable, str(SCRIPT), "--part", name, "--device", device, "--result", str(result),
        "--work", str(part_work), "--deadline", f"{deadline:.3f}", *(["--quick"] if quick else []),
    ]  # fmt: skip
    say(f"[{name}] running (timeout {limit:.0f} s)")
    rc, seconds = run_group(cmd, timeout=limit, log=log)
    data = read_json(result) or {}
    errors = data.get("errors", [])
    if rc is None:
        status, reason = "timeout", f"killed after {limit:.0f} s"
    elif rc != 0:
        status = "failed"
        reason = f"exit {rc}" + (f": {errors[-1]['item']}: {errors[-1]['error']}" if errors else "")
    elif errors:
        status, reason = "errors", f"{len(errors)} item(s) failed"
    else:
        status, reason = "ok", ""
    say(f"[{name}] {status} in {seconds:.1f} s" + (f" ({reason[:300]})" if reason else ""))
    return PartOutcome(name, status, seconds, limit, reason, data, tail(log, 12))


def default_device() -> str:
    return "cuda" if cuda_available() else "cpu"


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def parse_parts(text: str | None) -> list[str]:
    if not text:
        return list(PART_NAMES)
    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [n for n in names if n not in PART_NAMES]
    if unknown:
        raise SystemExit(f"error: unknown part(s) {unknown}; parts: {', '.join(PART_NAMES)}")
    return [n for n in PART_NAMES if n in names]


def build_report(
    outcomes: dict[str, PartOutcome], device: str, args: argparse.Namespace, total: float
) -> dict[str, Any]:
    facts = next((o.data["facts"] for o in outcomes.values() if o.data.get("facts")), None)
    if facts is None:  # no torch part reported: what the orchestrator can see itself
        facts = {"device_name": gpu_name_smi() if device == "cuda" else cpu_model(),
                 "torch": torch_version(), "python": platform.python_version()}  # fmt: skip
    machine = {**facts, "date": utc_now(), "commit": git_commit(), "device": device}
    return {
        "suite": "benchmarks/gpu_suite.py",
        "mode": "measurement" if device == "cuda" else "functional check on CPU (no measurement)",
        "quick": args.quick,
        "budget_seconds": args.budget_seconds,
        "total_seconds": total,
        "machine": machine,
        "parts": {
            name: {"status": o.status, "seconds": o.seconds, "timeout": o.limit,
                   "reason": o.reason, "result": o.data, "log_tail": o.log_tail}
            for name, o in outcomes.items()
        },
    }


def gpu_name_smi() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=True)  # fmt: skip
        return out.stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown GPU"


def torch_version() -> str:
    try:
        from importlib.metadata import version

        return version("torch")
    except Exception:
        return "unknown"


def part_result(report: dict[str, Any], name: str) -> dict[str, Any]:
    return report["parts"].get(name, {}).get("result") or {}


def find_variant(
    variants: list[dict[str, Any]], path: str, kind: str, batch: int
) -> dict[str, Any] | None:
    return next(
        (v for v in variants if (v["path"], v["kind"], v["batch"]) == (path, kind, batch)), None
    )


def build_calibration(report: dict[str, Any]) -> dict[str, Any]:
    """gpu_calibration.json (format 1 of study.cost): NB201 fast-path entries of the calibration
    part (+ batch 256 single from the steps part), DARTS entries of the darts part, packing."""
    machine = report["machine"]
    sizes = QUICK if report["quick"] else GPU
    steps = part_result(report, "steps").get("variants", [])
    calib = part_result(report, "calibration")
    darts = part_result(report, "darts")
    small = find_variant(steps, "fast", "single", sizes.batch)
    big = find_variant(steps, "fast", "single", sizes.big_batch)
    # Linear batch scaling is allowed when 4x the batch costs more than 2x the time (bound by
    # the GPU's work, not by launches); measured on the single-level 32 px step only.
    nb201_scales = bool(small and big and big["step_seconds"] > 2 * small["step_seconds"])
    entries: list[dict[str, Any]] = []
    for entry in calib.get("entries", []):
        entries.append({**entry, "scales_with_batch": nb201_scales and entry["image_side"] == 32})
    base = next((e for e in entries if (e["level"], e["image_side"]) == ("single", 32)), None)
    if big and base:
        entries.append({**base, "batch_size": big["batch"],
                        "step_seconds": sig(big["step_seconds"])})  # fmt: skip
    entries += darts.get("entries", [])
    inet = darts.get("imagenet") or {}
    full, half = inet.get(str(sizes.inet_batch)), inet.get(str(sizes.inet_half))
    if full:
        cifar_single = next(
            (e for e in darts.get("entries", []) if e["level"] == "single"), None
        )
        entries.append({
            "space": "darts", "level": "single", "order": "first", "image_side": 224,
            "batch_size": sizes.inet_batch, "channels": inet["channels"], "depth": inet["depth"],
            "step_seconds": sig(full["step_seconds"]),
            "eval_seconds_per_image": sig(full.get("eval_seconds_per_image")),
            "epoch_overhead_seconds": cifar_single and cifar_single["epoch_overhead_seconds"],
            "scales_with_batch": bool(half and full["step_seconds"] > 1.6 * half["step_seconds"]),
        })  # fmt: skip
    unique: dict[tuple[Any, ...], dict[str, Any]] = {}
    for e in entries:
        key = tuple(e[k] for k in ("space", "level", "order", "image_side", "batch_size",
                                   "channels", "depth"))  # fmt: skip
        if e["step_seconds"] and e["step_seconds"] > 0:
            unique.setdefault(key, e)
    packing: dict[str, float] = {"1": 1.0}
    for k, value in (part_result(report, "packing").get("packing") or {}).items():
        if int(k) > 1 and value and value > 0:
            packing[str(k)] = round(min(float(value), float(k)), 3)
    measured = [*calib.get("measured", []), *darts.get("cifar", [])]
    paths = sorted({v["exec_path"] for v in measured if v["path"] == "fast"})
    return {
        "format": 1,
        "device": machine.get("device_name", "unknown"),
        "source": f"benchmarks/gpu_suite.py {machine['date']}, commit {machine['commit']}"
        + ("" if report["machine"]["device"] == "cuda" else " (CPU functional check, not a "
           "measurement)"),
        "torch": machine.get("torch", "unknown"),
        "exec_path": "/".join(paths) or "unknown",
        "entries": list(unique.values()),
        "packing": packing,
    }  # fmt: skip


def check_calibration(path: Path) -> dict[str, Any]:
    """Whether study.cost (when present) loads the file."""
    try:
        from study.cost import load_calibration
    except Exception as exc:
        return {"loads": None, "detail": f"study.cost not importable: {exc}"}
    try:
        cal = load_calibration(path)
    except Exception as exc:
        return {"loads": False, "detail": f"{type(exc).__name__}: {exc}"}
    return {"loads": True, "detail": f"{len(cal.entries)} entries"}


# ---------------------------------------------------------------------------------- markdown
def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    ms = 1000 * seconds
    return f"{ms:.2f}" if ms < 10 else f"{ms:.1f}" if ms < 1000 else f"{ms:,.0f}"


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def _x(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


def _status_line(report: dict[str, Any], name: str) -> str | None:
    part = report["parts"].get(name)
    if part is None:
        return None
    if part["status"] in ("ok", "errors"):
        return None
    text = f"`{name}` {part['status']}: {part['reason'][:200]}"
    last = [line.strip().replace("`", "'")[:140] for line in part["log_tail"] if line.strip()]
    if part["status"] in ("failed", "timeout") and last:
        text += "; log ends: " + " / ".join(f"`{line}`" for line in last[-3:])
    return text


def render_markdown(report: dict[str, Any], calibration: dict[str, Any]) -> str:
    measure = report["machine"]["device"] == "cuda"
    m = report["machine"]
    lines: list[str] = [
        "Script: `benchmarks/gpu_suite.py` (`bash benchmarks/gpu_suite.sh --out DIR`): every "
        "figure below from one command, each part in its own time-boxed process; all figures in "
        "`gpu_suite.json`.",
        "",
    ]
    if measure:
        lines.append(
            f"Machine: {m.get('device_name')} ({m.get('gpu_memory_gib', '?')} GiB), CUDA "
            f"{m.get('cuda')}, torch {m.get('torch')}, Python {m.get('python')}, "
            f"{m.get('cores')} CPU cores; {m['date']}; commit {m['commit']}. Suite "
            f"{report['total_seconds']:.0f} s (budget {report['budget_seconds']:.0f} s)."
        )
    else:
        sizes = "tiny sizes (--quick)" if report["quick"] else "the GPU sizes"
        lines.append(
            f"**Functional check on CPU, not a measurement**: the suite's code paths ran with "
            f"{sizes}; no times are shown. "
            f"{m.get('device_name')}, torch {m.get('torch')}, Python {m.get('python')}; "
            f"{m['date']}; commit {m['commit']}; {report['total_seconds']:.0f} s."
        )
    lines.append("")
    lines += _md_tests(report)
    lines += _md_steps(report, measure)
    lines += _md_packing(report, measure)
    lines += _md_study(report, measure)
    lines += _md_darts(report, measure)
    lines += _md_evaluation(report, measure)
    lines += _md_compile(report, measure)
    lines += _md_calibration(report, calibration)
    problems = [s for s in (_status_line(report, n) for n in PART_NAMES) if s]
    for name, part in report["parts"].items():
        for err in part["result"].get("errors", [])[:4]:
            problems.append(f"`{name}` / {err['item']}: {err['error'][:160]}")
    for name in PART_NAMES:
        if name not in report["parts"]:
            problems.append(f"`{name}` not selected (--parts)")
    if problems:
        lines += ["Failed, skipped or incomplete:", ""]
        lines += [f"- {p}" for p in problems]
    return "\n".join(lines).rstrip() + "\n"


def _md_tests(report: dict[str, Any]) -> list[str]:
    r = part_result(report, "tests").get("pytest")
    if not r:
        return []
    fails = r.get("failures") or []
    text = r.get("last_line") or f"exit {r.get('exit')}"
    extra = f"; failed: {', '.join(fails[:6])}" if fails else ""
    return [f"GPU tests (`pytest -m gpu`): {text}{extra}.", ""]


def _md_steps(report: dict[str, Any], measure: bool) -> list[str]:
    res = part_result(report, "steps")
    variants = res.get("variants", [])
    if not variants:
        return []
    cfg = res.get("config", {})
    lines = [
        f"Search step, NB201 C={cfg.get('channels')} N={cfg.get('depth')}, 10 classes, 32×32. "
        f"Ours: `Search.run_epoch` on synthetic device-resident data (batch building and the "
        f"gradient-correlation probe every 10th step included); the first epoch (warm-up, graph "
        f"capture) untimed, then {cfg.get('timed_epochs')} epoch(s) of {cfg.get('fast_cap')} "
        f"(fast) / {cfg.get('eager_cap')} (eager) steps timed. Reference: xautodl "
        f"`TinyNetworkDarts` stepped as `benchmarks/step_throughput.py`, on fixed device "
        f"tensors, {cfg.get('ref_steps')} steps after warm-up (CUDA events). Images/s counts the "
        f"w batch; peak = `max_memory_allocated` of the variant (its data included).",
        "",
    ]
    if measure:
        lines += ["| variant | batch | ms/step | images/s | vs reference | peak MiB |",
                  "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    else:
        lines += ["| variant | batch | ran | exec path |", "|---|---:|---|---|"]
    order = {("fast", "single"): 0, ("eager", "single"): 1, ("ref", "single"): 2,
             ("fast", "bi-first"): 3, ("eager", "bi-first"): 4, ("ref", "bi-first"): 5,
             ("fast", "bi-second"): 6, ("eager", "bi-second"): 7}  # fmt: skip
    rows = sorted(variants, key=lambda v: (v["batch"], order.get((v["path"], v["kind"]), 9)))
    for v in rows:
        name = v["name"] + (" (warm-up epoch)" if v.get("warm_only") else "")
        if not measure:
            lines.append(f"| {name} | {v['batch']} | yes | {v.get('exec_path', 'reference')} |")
            continue
        ref = find_variant(variants, "ref", v["kind"], v["batch"]) if v["path"] != "ref" else None
        ratio = v["images_per_sec"] / ref["images_per_sec"] if ref else None
        lines.append(
            f"| {name} | {v['batch']} | {_ms(v['step_seconds'])} | {_num(v['images_per_sec'])} "
            f"| {_x(ratio)} | {_num(v.get('peak_mib'))} |"
        )
    speedups = []
    for kind in ("single", "bi-first", "bi-second"):
        for batch in sorted({v["batch"] for v in variants}):
            fast, eager = (find_variant(variants, p, kind, batch) for p in ("fast", "eager"))
            if fast and eager:
                speedups.append(
                    (f"{kind} (batch {batch})", eager["step_seconds"] / fast["step_seconds"])
                )
    lines.append("")
    if measure and speedups:
        lines += ["Fast path over eager (step time): "
                  + "; ".join(f"{k} {_x(r)}" for k, r in speedups) + ".", ""]  # fmt: skip
    firsts = [f"{v['kind']} (batch {v['batch']}) {v['first_epoch_seconds']:.1f} s"
              for v in rows if v["path"] == "fast"]  # fmt: skip
    if measure and firsts:
        lines += ["Fast path, first epoch (warm-up steps, graph capture, the rest of the epoch, "
                  "evaluation): " + "; ".join(firsts) + ".", ""]  # fmt: skip
    return lines


def _md_packing(report: dict[str, Any], measure: bool) -> list[str]:
    res = part_result(report, "packing")
    points = res.get("points", [])
    if not points:
        return []
    cfg = res.get("config", {})
    lines = [
        f"Packing: k concurrent searches on one GPU (one process each, fast path, NB201 "
        f"C={cfg.get('channels')} N={cfg.get('depth')}, single-level, batch {cfg.get('batch')}; "
        f"all warmed up, then run together for {cfg.get('window_seconds')} s; images/s from each "
        f"search's completed epochs, evaluation included).",
        "",
    ]
    agg1 = next((p["aggregate_images_per_sec"] for p in points if p["k"] == 1), None)
    if measure:
        lines += ["| k | aggregate images/s | per search | vs k=1 |", "|---:|---:|---:|---:|"]
        for p in points:
            rel = p["aggregate_images_per_sec"] / agg1 if agg1 else None
            lines.append(f"| {p['k']} | {_num(p['aggregate_images_per_sec'])} | "
                         f"{_num(p['per_search_images_per_sec'])} | {_x(rel)} |")  # fmt: skip
    else:
        lines.append("k run: " + ", ".join(str(p["k"]) for p in points) + ".")
    return [*lines, ""]


def _md_study(report: dict[str, Any], measure: bool) -> list[str]:
    res = part_result(report, "study_run")
    if not res:
        return []
    checks = res.get("checks", {})
    cli = res.get("cli", {})
    failed = [f"{k}: {c['detail']}" for k, c in checks.items() if not c["ok"]]
    verdict = (
        f"every trial present, every (trial, epoch) exactly once, no duplicate raw rows, "
        f"exec_path {res.get('expected_exec_path')} and status ok in every row "
        f"({checks['epochs']['detail'].split(';')[0]})"
        if checks and not failed
        else "FAILED: " + "; ".join(failed)
    )
    wall = f"; {cli['wall_seconds']:.0f} s wall" if measure and cli.get("wall_seconds") else ""
    return [f"`study run` of a 4-trial TOML grid (2 levels × 2 seeds, 2 epochs; "
            f"`{res.get('flags', '')}`), exit {cli.get('exit')}: {verdict}{wall}.", ""]  # fmt: skip


def _md_darts(report: dict[str, Any], measure: bool) -> list[str]:
    res = part_result(report, "darts")
    cifar = res.get("cifar", [])
    inet = res.get("imagenet") or {}
    lines: list[str] = []
    if cifar:
        v0 = cifar[0]
        parts = []
        for kind in ("single", "bi-first"):
            fast, eager = (find_variant(cifar, p, kind, v0["batch"]) for p in ("fast", "eager"))
            if not measure:
                parts.append(f"{kind}: " + ", ".join(v["path"] for v in (fast, eager) if v))
                continue
            bits = [f"{p} {_ms(v['step_seconds'])} ms (peak {_num(v.get('peak_mib'))} MiB)"
                    for p, v in (("eager", eager), ("fast", fast)) if v]  # fmt: skip
            if fast and eager:
                bits.append(_x(eager["step_seconds"] / fast["step_seconds"]))
            parts.append(f"{kind}: " + ", ".join(bits))
        lines.append(f"DARTS space, CIFAR stem, C={v0['channels']}, {v0['depth']} cells, batch "
                     f"{v0['batch']}, 32×32 (`Search.run_epoch`, ms/step): "
                     + "; ".join(parts) + ".")  # fmt: skip
    sizes = [k for k in inet if k.isdigit()]
    if sizes:
        bits = []
        for k in sizes:
            e = inet[k]
            bits.append(f"batch {k}: {_ms(e['step_seconds'])} ms/step, "
                        f"{_num(e['images_per_sec'])} images/s, peak "
                        f"{_num((e.get('peak_mib') or 0) / 1024)} GiB" if measure
                        else f"batch {k} ran")  # fmt: skip
        lines.append(f"DARTS space, ImageNet stem, C={inet.get('channels')}, "
                     f"{inet.get('depth')} cells, {inet.get('classes')} classes, 224×224, "
                     f"single-level, eager (strategy on device tensors, no JPEG decoding): "
                     + "; ".join(bits) + ".")  # fmt: skip
    return [*lines, ""] if lines else []


def _md_evaluation(report: dict[str, Any], measure: bool) -> list[str]:
    res = part_result(report, "evaluation")
    lines: list[str] = []
    c, i = res.get("cifar10"), res.get("imagenet")
    if c:
        text = (f"{_ms(c['step_seconds'])} ms/step ({_num(c['images_per_sec'])} images/s), "
                f"test {1e3 * c['test_seconds_per_image']:.3f} ms/image, peak "
                f"{_num((c.get('peak_mib') or 0) / 1024)} GiB: "
                f"{_num(c['preset_gpu_hours'])} GPU-hours for the preset's 600 epochs"
                if measure else "ran")  # fmt: skip
        lines.append(f"Evaluation, `cifar10` preset (DARTS-V2, {c['layers']} cells, "
                     f"{c['channels']} channels, batch {c['batch']}, auxiliary head, cutout, "
                     f"drop-path; `Evaluation.run_epoch` on synthetic 32×32 data): {text}.")
    if i:
        text = (f"{_ms(i['step_seconds'])} ms/step ({_num(i['images_per_sec'])} images/s), peak "
                f"{_num((i.get('peak_mib') or 0) / 1024)} GiB: "
                f"{_num(i['epoch_gpu_hours'])} GPU-hours per epoch, "
                f"{_num(i['preset_gpu_hours'])} for 250 epochs (no JPEG decoding)"
                if measure else "ran")  # fmt: skip
        lines.append(f"Evaluation, `imagenet` preset network (DARTS-V2, {i['layers']} cells, "
                     f"{i['channels']} channels, {i['classes']} classes, 224×224, batch "
                     f"{i['batch']} per GPU, auxiliary head, label smoothing): {text}.")
    return [*lines, ""] if lines else []


def _md_compile(report: dict[str, Any], measure: bool) -> list[str]:
    res = part_result(report, "compile")
    variants = res.get("variants", [])
    if not variants:
        return []
    steps = part_result(report, "steps").get("variants", [])
    batch = next((v.get("batch") for v in variants if v.get("batch")), None)
    fast = find_variant(steps, "fast", "single", batch) if batch else None
    bits = []
    eager = next((v["eager_step_seconds"] for v in variants if v.get("eager_step_seconds")), None)
    if measure and eager:
        bits.append(f"eager {_ms(eager)} ms/step")
    for v in variants:
        if v["status"] != "ok":
            bits.append(f"`{v['mode']}`: {v['status']}")
        elif measure:
            bits.append(f"`{v['mode']}`: compile + {v.get('warm_steps')} first steps "
                        f"{v['compile_seconds']:.0f} s, then {_ms(v['steady_step_seconds'])} "
                        f"ms/step")  # fmt: skip
        else:
            bits.append(f"`{v['mode']}`: ran")
    if measure and fast:
        bits.append(f"hand-captured fast path (step table, with batch building and probe) "
                    f"{_ms(fast['step_seconds'])} ms/step")  # fmt: skip
    return [f"`torch.compile` of the NB201 model in the eager single-level step (fixed random "
            f"batch {batch}, each mode in its own time-boxed process): " + "; ".join(bits) + ".",
            ""]  # fmt: skip


def _md_calibration(report: dict[str, Any], calibration: dict[str, Any]) -> list[str]:
    entries = calibration["entries"]
    check = report.get("calibration", {})
    what = ", ".join(f"{e['space']} {e['level']}/{e['order']} {e['image_side']}px b{e['batch_size']}"
                     for e in entries[:12])  # fmt: skip
    loads = {True: "loads with `study.cost.load_calibration`", False: "does NOT load with "
             f"`study.cost.load_calibration` ({check.get('detail')})", None: "not checked"}
    return [f"Calibration for `study run --dry-run` (`gpu_calibration.json`, exec path "
            f"{calibration['exec_path']}): {len(entries)} entries ({what}); packing "
            f"{json.dumps(calibration['packing'])}; {loads[check.get('loads')]}.", ""]  # fmt: skip


def docs_with_section(text: str, section: str) -> str:
    """``text`` with the section between the markers replaced, or appended under a heading."""
    block = f"{MARK_START}\n{section.rstrip()}\n{MARK_END}"
    start, end = text.find(MARK_START), text.find(MARK_END)
    if start != -1 and end > start:
        return text[:start] + block + text[end + len(MARK_END) :]
    return text.rstrip("\n") + f"\n\n{DOCS_HEADING}\n\n{block}\n"


def summary_lines(report: dict[str, Any], calibration: dict[str, Any]) -> list[str]:
    measure = report["machine"]["device"] == "cuda"
    m = report["machine"]
    head = ("measurement" if measure else "FUNCTIONAL CHECK on CPU, not a measurement")
    lines = [f"== gpu_suite summary ({head}): {m.get('device_name')}, torch {m.get('torch')}, "
             f"commit {m['commit']}, {report['total_seconds']:.0f} s =="]  # fmt: skip
    for name, part in report["parts"].items():
        line = f"{name:<12} {part['status']:<8} {part['seconds']:6.1f} s"
        if part["reason"]:
            line += f"  {part['reason'][:160]}"
        lines.append(line)
        res = part["result"]
        for err in res.get("errors", [])[:3]:
            lines.append(f"    error: {err['item']}: {err['error'][:160]}")
        for note in res.get("notes", [])[:3]:
            lines.append(f"    note: {note[:160]}")
        if part["status"] in ("failed", "timeout"):
            lines += [f"    | {t}" for t in part["log_tail"][-5:]]
        if measure:
            lines += [f"    {t}" for t in _figures(name, res)]
    cal = report.get("calibration", {})
    lines.append(f"calibration: {len(calibration['entries'])} entries, packing "
                 f"{json.dumps(calibration['packing'])}, loads: {cal.get('loads')} "
                 f"({cal.get('detail')})")  # fmt: skip
    return lines


def _figures(name: str, res: dict[str, Any]) -> list[str]:
    """A few key figures of a part for the printed summary (GPU only)."""
    if name == "steps":
        return [f"{v['name']} b{v['batch']}: {_ms(v['step_seconds'])} ms/step, "
                f"{_num(v['images_per_sec'])} img/s" for v in res.get("variants", [])]  # fmt: skip
    if name == "packing":
        return [f"k={p['k']}: {_num(p['aggregate_images_per_sec'])} img/s aggregate"
                for p in res.get("points", [])]  # fmt: skip
    if name == "compile":
        return [f"{v['mode']}: {v['status']}, steady {_ms(v.get('steady_step_seconds'))} ms"
                for v in res.get("variants", [])]  # fmt: skip
    return []


# =============================================================================================
# CLI
# =============================================================================================
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--out", default="gpu_suite_out", help="output folder (default gpu_suite_out)")
    p.add_argument("--quick", action="store_true", help="tiny sizes: check every code path")
    p.add_argument("--device", choices=("cuda", "cpu"), default=None,
                   help="default: cuda when torch sees one, else cpu")  # fmt: skip
    p.add_argument("--budget-seconds", type=float, default=330.0,
                   help="wall-clock budget of all parts together (ignored with --quick)")
    p.add_argument("--parts", default=None, help=f"comma-separated subset of {PART_NAMES}")
    docs = p.add_mutually_exclusive_group()
    docs.add_argument("--update-docs", dest="update_docs", action="store_true", default=None,
                      help="rewrite docs/benchmarks.md's suite section (default: GPU, not quick)")
    docs.add_argument("--no-update-docs", dest="update_docs", action="store_false")
    # internal: one part in this process
    p.add_argument("--part", choices=tuple(PART_FUNCS), help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    p.add_argument("--work", help=argparse.SUPPRESS)
    p.add_argument("--deadline", type=float, default=None, help=argparse.SUPPRESS)
    p.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--mode", default="default", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.part:
        args.device = args.device or "cpu"
        return run_part(args)
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
