"""One architecture search: build everything from a ``SearchConfig``, run epochs, checkpoint.

``Search`` composes data (``datasets`` + ``batching``), the supernet (``search_spaces``), the
optimizers, an update strategy and the probes, and runs one epoch at a time, returning the
epoch's record (``trainables.records``). ``run_search`` is the plain-Python entry for notebooks
and for the Ray Tune trainable: a generator of epoch records, optionally checkpointing.

Reproducibility: the supernet is initialised from ``seed`` (on a forked RNG, leaving torch's
global RNG untouched), and every data draw (batch order, α batches, crops, flips) comes from one
CPU ``torch.Generator`` seeded with ``seed``. A checkpoint holds the model (w and α, BN
statistics), both optimizers, the schedule, that generator's state and the epoch, so a resumed
search continues bit-identically on CPU. ``Search.save`` writes a manifest (each file's size and
sha256) last, and ``Search.restore`` verifies it: a checkpoint cut short (e.g. by a full disk)
raises ``CorruptCheckpoint`` instead of loading.

Execution paths (an execution option, never part of a search's identity; every record names the
path in ``exec_path``): ``eager`` runs each step op by op from Python (always on the CPU);
on CUDA the fast path (``trainables.fast_steps``) records the whole step in CUDA graphs and
replays them, with the same batches and the same records up to float rounding. ``fast=None``
takes the device's default (``FAST_BY_DEFAULT`` on CUDA); ``fast=False`` forces eager.
Data that is not device-resident (streamed ImageNet) always runs eagerly.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from search_spaces import build_supernet
from search_spaces.benchmark import Benchmark, BenchmarkRecordError, open_benchmark
from search_spaces.supernet import SuperNet
from trainables import records as R
from trainables.checkpoints import load_state, save_state
from trainables.config import SearchConfig
from trainables.datasets import FileSplit, SearchDataset, load_dataset
from trainables.fast_steps import FastSteps
from trainables.optim import build_optimizers
from trainables.probes import DIVERGENCE_CHECK_EVERY, EpochMeter, gradient_correlation
from trainables.sampling import epoch_plan
from trainables.strategies import build_strategy
from trainables.streaming import make_split
from trainables.subsets import search_pools

CHECKPOINT_FILE = "search.pt"
CHECKPOINT_FORMAT = 1
EVAL_BATCH = 256
EVAL_BATCH_FAST = 1024  # the fast path evaluates in fewer, larger batches
FAST_BY_DEFAULT = True  # CUDA runs take the fast path unless fast=False (its gpu tests pass)


def uses_fast_path(fast: bool | None, device: torch.device, data: SearchDataset) -> bool:
    """Whether a search with option ``fast`` on ``device`` takes the CUDA-graph path: only on
    CUDA, only for in-memory (device-resident) data; ``fast=None`` means ``FAST_BY_DEFAULT``."""
    wanted = FAST_BY_DEFAULT if fast is None else fast
    return wanted and device.type == "cuda" and not isinstance(data.train, FileSplit)


class Search:
    """A search in progress. ``epoch`` counts finished epochs; ``run_epoch`` runs the next one."""

    def __init__(
        self,
        config: SearchConfig,
        device: torch.device | str = "cpu",
        dataset: SearchDataset | None = None,
        benchmark: Benchmark | None = None,
        *,
        fast: bool | None = None,
    ) -> None:
        self.config = config
        self.device = torch.device(device)
        # The official split, then this search's pools (train_pool, data_fraction: see
        # trainables.subsets); ``dataset`` (e.g. one cached per worker) is never modified.
        data = search_pools(
            dataset
            if dataset is not None
            else load_dataset(config.dataset, config.data_dir or None),
            data_fraction=config.data_fraction,
            data_fraction_seed=config.data_fraction_seed,
            train_pool=config.train_pool,
        )
        split = (data.mean, data.std, data.crop_padding, self.device)
        self.train = make_split(data.train, *split)
        self.held_out = make_split(data.held_out, *split)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.model: SuperNet = build_supernet(
                config.space,
                num_classes=data.num_classes,
                channels=config.channels,
                depth=config.depth or 0,
                activation=config.activation,
                alpha_init=config.alpha_init,
                alpha_init_std=config.alpha_init_std,
                stem=config.stem,
                genotype_none=config.genotype_none,
            ).to(self.device)
        self.w_opt, self.a_opt, self.schedule = build_optimizers(
            config, self.model.weights(), self.model.alphas()
        )
        self.strategy = build_strategy(
            config.level,
            config.order,
            self.model,
            self.w_opt,
            self.a_opt,
            config.grad_clip,
            config.unroll_r,
        )
        self.generator = torch.Generator().manual_seed(config.seed)
        self.benchmark = benchmark if benchmark is not None else _default_benchmark(config)
        self.epoch = 0
        self.diverged = False
        self.fast = uses_fast_path(fast, self.device, data)
        self.fast_steps: FastSteps | None = None  # built at the first fast epoch, after restores

    @property
    def exec_path(self) -> str:
        """How this search's steps run: ``records.EXEC_CUDA_GRAPH`` or ``records.EXEC_EAGER``."""
        if self.fast_steps is not None:
            return self.fast_steps.exec_path
        return R.EXEC_CUDA_GRAPH if self.fast else R.EXEC_EAGER

    # ------------------------------------------------------------------ one epoch
    def run_epoch(self) -> dict[str, Any]:
        """Train one epoch, evaluate, derive the genotype, and return the epoch record."""
        if self.done:
            raise RuntimeError(
                f"search is finished ({self.epoch}/{self.config.epochs} epochs, "
                f"diverged={self.diverged})"
            )
        start = time.perf_counter()
        lr = self.w_opt.param_groups[0]["lr"]
        train = self._train_steps()
        train_seconds = time.perf_counter() - start
        self.schedule.step()
        self.epoch += 1
        finite = math.isfinite(train["loss"]) and all(
            bool(torch.isfinite(p).all()) for p in self.model.parameters()
        )
        self.diverged = not finite
        valid_loss, valid_acc = self._evaluate() if finite else (math.nan, math.nan)
        record = {
            R.EPOCH: self.epoch,
            R.STATUS: R.STATUS_OK if finite else R.STATUS_DIVERGED,
            R.STEPS: train["steps"],
            R.W_LR: lr,
            R.TRAIN_LOSS: train["loss"],
            R.TRAIN_ACC: train["acc"],
            R.ARCH_LOSS: train["arch_loss"],
            R.VALID_LOSS: valid_loss,
            R.VALID_ACC: valid_acc,
            **self._architecture_fields(finite, train["meter"]),
            R.IMAGES_PER_SEC: train["images"] / max(train_seconds, 1e-9),
            R.TRAIN_SECONDS: train_seconds,
            R.EXEC_PATH: self.exec_path,
        }
        record[R.EPOCH_SECONDS] = time.perf_counter() - start
        return {name: record[name] for name in R.RECORD_FIELDS}

    @property
    def done(self) -> bool:
        return self.diverged or self.epoch >= self.config.epochs

    def _train_steps(self) -> dict[str, Any]:
        cfg = self.config
        self.model.train()
        if self.fast and self.fast_steps is None:
            self.fast_steps = FastSteps(self, capture=True)
        if self.fast_steps is not None:
            return self.fast_steps.run_epoch()
        meter = EpochMeter(self.model)
        loss_sum = torch.zeros((), device=self.device)
        arch_loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        images = steps = 0
        plan = epoch_plan(
            len(self.train),
            len(self.held_out),
            cfg.batch_size,
            level=cfg.level,
            arch_data=cfg.arch_data,
            generator=self.generator,
            cap=cfg.steps_per_epoch,
        )
        arch_source = self.held_out if cfg.arch_data == "split" else self.train
        for steps, (w_idx, a_idx) in enumerate(plan, start=1):
            w_batch = self.train.train_batch(w_idx, self.generator)
            a_batch = None if a_idx is None else arch_source.train_batch(a_idx, self.generator)
            if cfg.probe_every and (steps - 1) % cfg.probe_every == 0:
                meter.add_probe(*gradient_correlation(self.model, w_batch, a_batch))
            out = self.strategy.step(w_batch, a_batch)
            meter.add_alpha_grad()
            n = len(w_idx)
            loss_sum += out.loss * n
            correct += out.correct
            if out.arch_loss is not None:
                arch_loss_sum += out.arch_loss
            images += n
            if steps % DIVERGENCE_CHECK_EVERY == 0 and not bool(torch.isfinite(loss_sum)):
                break
        return {
            "steps": steps,
            "images": images,
            "loss": loss_sum.item() / max(images, 1),
            "acc": 100.0 * correct.item() / max(images, 1),
            "arch_loss": arch_loss_sum.item() / steps if cfg.level == "bi" and steps else math.nan,
            "meter": meter,
        }

    @torch.no_grad()
    def _evaluate(self) -> tuple[float, float]:
        """Supernet loss and accuracy (%) on the whole held-out split, eval mode."""
        self.model.eval()
        loss = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        batch = EVAL_BATCH_FAST if self.fast else EVAL_BATCH
        for x, y in self.held_out.eval_batches(batch):
            logits = self.model(x)
            loss += F.cross_entropy(logits, y, reduction="sum")
            correct += (logits.argmax(1) == y).sum()
        self.model.train()
        n = len(self.held_out)
        return loss.item() / n, 100.0 * correct.item() / n

    def _architecture_fields(self, finite: bool, meter: EpochMeter) -> dict[str, Any]:
        """Activated α, mean α-gradient, probe, genotype and its benchmark accuracies."""
        with torch.no_grad():
            activated = self.model.activated()
        fields: dict[str, Any] = {}
        grads = dict(zip(self.model.cell_types, meter.mean_alpha_grad(), strict=True))
        for cell in ("normal", "reduce"):
            fields[R.ALPHA[cell]] = activated[cell].tolist() if cell in activated else None
            fields[R.ALPHA_GRAD[cell]] = grads[cell].tolist() if cell in grads else None
        fields[R.GRAD_INNER], fields[R.GRAD_COSINE] = meter.mean_probe()
        genotype = self.model.genotype() if finite else ""
        fields[R.GENOTYPE] = genotype
        bench = self._lookup(genotype)
        fields.update({R.BENCH[col]: bench.get(col, math.nan) for col in R.BENCH})
        return fields

    def _lookup(self, genotype: str) -> dict[str, float]:
        if self.benchmark is None or not genotype:
            return {}
        try:
            return self.benchmark.accuracies(genotype)
        except BenchmarkRecordError:
            return {}  # the benchmark has no record for this cell: accuracies stay unknown

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "config": self.config.to_dict(),
            "epoch": self.epoch,
            "diverged": self.diverged,
            "model": self.model.state_dict(),
            "w_opt": self.w_opt.state_dict(),
            "a_opt": self.a_opt.state_dict(),
            "schedule": self.schedule.state_dict(),
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(
                f"checkpoint format {state.get('format')!r} is not "
                f"{CHECKPOINT_FORMAT}; it was written by another version"
            )
        saved = SearchConfig.from_dict(state["config"])
        if saved != self.config:
            diff = {
                k: (v, getattr(self.config, k))
                for k, v in saved.to_dict().items()
                if getattr(self.config, k) != v
            }
            raise ValueError(
                f"checkpoint belongs to another config; differing fields "
                f"(checkpoint, current): {diff}"
            )
        self.model.load_state_dict(state["model"])
        self.w_opt.load_state_dict(state["w_opt"])
        self.a_opt.load_state_dict(state["a_opt"])
        self.schedule.load_state_dict(state["schedule"])
        self.generator.set_state(state["generator"].cpu())  # map_location moved it to the device
        self.epoch, self.diverged = state["epoch"], state["diverged"]
        self.fast_steps = None  # rebuilt on the restored optimizer state (and graphs recorded anew)

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the checkpoint into ``directory``; returns the checkpoint file
        (``trainables.checkpoints.save_state``: written atomically, its manifest last; a full
        disk raises ``CheckpointDiskFull`` naming ``directory``)."""
        return save_state(directory, self.state_dict(), CHECKPOINT_FILE, "search")

    def restore(self, directory: str | os.PathLike) -> None:
        """Load the checkpoint that ``save`` wrote into ``directory``, after verifying it
        (``trainables.checkpoints.load_state``: ``CorruptCheckpoint`` when it does not verify,
        ``FileNotFoundError`` when there is none). A refused checkpoint leaves the search as it
        was (nothing is loaded into it)."""
        self.load_state_dict(load_state(directory, CHECKPOINT_FILE, self.device, "search"))


def _default_benchmark(config: SearchConfig) -> Benchmark | None:
    """NAS-Bench-201 lookup for the nb201 space (``benchmark_dir``, $TORCH_HOME, or the table)."""
    if config.space != "nb201":
        return None
    return open_benchmark(config.benchmark_dir or None)


def run_search(
    config: SearchConfig,
    *,
    device: torch.device | str = "cpu",
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = False,
    fast: bool | None = None,
) -> Iterator[dict[str, Any]]:
    """Run a search, yielding each epoch's record; stops after a diverged epoch.

    With ``checkpoint_dir``, the search is checkpointed there after every epoch (before the
    record is yielded); with ``resume=True`` it continues from the checkpoint found there.
    ``fast``: the execution path (module docstring); None = the device's default.
    """
    search = Search(config, device, fast=fast)
    if resume:
        if checkpoint_dir is None:
            raise ValueError("resume=True needs checkpoint_dir")
        search.restore(checkpoint_dir)
    while not search.done:
        record = search.run_epoch()
        if checkpoint_dir is not None:
            search.save(checkpoint_dir)
        yield record
