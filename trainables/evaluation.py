"""Train a DARTS genotype from scratch and test it: the evaluation that judges a DARTS-space search.

One ``Evaluation`` is one ``EvalConfig`` in progress; ``run_epoch`` trains one epoch and tests,
returning the epoch's record (``trainables.records.EVAL_FIELDS``). The network is
``search_spaces.darts_eval``'s CIFAR or ImageNet network for the genotype; training is SGD with
the config's schedule, label smoothing, the auxiliary head's loss (weight ``auxiliary_weight``),
drop-path ramped linearly from 0 to ``drop_path`` over the epochs (epoch e of E uses
``drop_path * e / E``, e from 0, as the DARTS reference), cutout, and gradient clipping. The test
set is one the search never reads (``trainables.datasets.load_evaluation_dataset``).

Schedules are per epoch, as in the reference code: ``cosine`` gives epoch e
``lr_min + (lr - lr_min) * (1 + cos(pi * e / E)) / 2``; ``linear`` warms up over
``warmup_epochs`` W (epoch e < W uses ``lr * (e + 1) / W``) and then decays linearly to zero
(epoch e >= W uses ``lr * (1 - (e - W) / (E - W))``).

Data parallel (``workers`` > 1): the trial runs ``workers`` processes, one per GPU (or sharing
the CPUs), under torch DDP (``trainables.data_parallel`` starts them). Every process draws the
same batch order (a CPU generator seeded ``seed``) and takes its equal share of each global batch
of ``batch_size`` images; gradients are averaged by DDP, so the weights stay equal. Each process
augments with its own generator (seeded from ``seed`` and its rank); the test set is cut into
``workers`` disjoint shards whose sums are added up, so every test image counts exactly once.
The last partial batch of an epoch is dropped (equal shares), so an epoch is
``len(train) // batch_size`` steps (at most ``steps_per_epoch`` when that is set).

Reproducibility: the network is initialised from ``seed`` on a forked RNG; batch order,
augmentation and drop-path come from generators and RNG states that the checkpoint holds (for
every process), so a resumed evaluation continues as the uninterrupted one would (bit for bit on
the CPU with one process).
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from search_spaces.darts_eval import (
    NetworkCIFAR,
    NetworkImageNet,
    count_multiply_adds,
    count_parameters,
)
from trainables import records as R
from trainables.checkpoints import load_state, save_state
from trainables.datasets import EvaluationDataset, FileSplit, ImageSplit, load_evaluation_dataset
from trainables.eval_config import NOMINAL_CLASSES, EvalConfig
from trainables.streaming import make_split

INPUT_SIZES = {"cifar": 32, "imagenet": 224}  # the side each network is counted at
CHECKPOINT_FILE = "evaluation.pt"
CHECKPOINT_FORMAT = 1
TEST_BATCH = 256  # images per test batch (per process)
_RANK_SEED_STRIDE = 1_000_003  # augmentation seed of rank r: seed + 1 + r * stride


def epoch_lr(config: EvalConfig, epoch: int) -> float:
    """Learning rate of (0-based) ``epoch`` under the config's schedule (module docstring)."""
    E, W = config.epochs, config.warmup_epochs
    if epoch < W:
        return config.lr * (epoch + 1) / W
    if config.schedule == "cosine":
        span = max(E - W, 1)
        return config.lr_min + (config.lr - config.lr_min) * (
            1 + math.cos(math.pi * (epoch - W) / span)
        ) / 2
    return config.lr * (1 - (epoch - W) / max(E - W, 1))


def drop_path_prob(config: EvalConfig, epoch: int) -> float:
    """Drop-path probability of (0-based) ``epoch``: ``drop_path * epoch / epochs``."""
    return config.drop_path * epoch / config.epochs


def build_network(config: EvalConfig, num_classes: int) -> NetworkCIFAR | NetworkImageNet:
    """The evaluation network of ``config`` (auxiliary head when ``auxiliary_weight`` > 0)."""
    auxiliary = config.auxiliary_weight > 0
    if config.network == "imagenet":
        return NetworkImageNet(
            config.init_channels, num_classes, config.layers, auxiliary, config.genotype
        )
    return NetworkCIFAR(config.init_channels, num_classes, config.layers, auxiliary, config.genotype)


def network_cost(config: EvalConfig) -> tuple[int, int, int]:
    """(parameters, multiply-adds per image, input side in pixels) of ``config``'s network with
    its dataset's published number of classes, auxiliary head excluded: what a user compares
    with the papers' tables before training anything."""
    side = INPUT_SIZES[config.network]
    with torch.random.fork_rng(devices=[]):
        model = build_network(config, NOMINAL_CLASSES[config.dataset])
    return count_parameters(model), count_multiply_adds(model, side), side


def apply_cutout(images: torch.Tensor, length: int, generator: torch.Generator) -> torch.Tensor:
    """Zero one ``length``-pixel square per image (normalised pixels, as the DARTS reference's
    Cutout after normalisation), centred at a position drawn uniformly over the image from the
    CPU ``generator`` (rows, then columns); squares are clipped at the border."""
    batch, _, height, width = images.shape
    centre_y = torch.randint(0, height, (batch,), generator=generator).to(images.device)
    centre_x = torch.randint(0, width, (batch,), generator=generator).to(images.device)
    half = length // 2
    rows = torch.arange(height, device=images.device)[None, :]
    cols = torch.arange(width, device=images.device)[None, :]
    in_rows = (rows >= (centre_y[:, None] - half)) & (rows < (centre_y[:, None] + half))
    in_cols = (cols >= (centre_x[:, None] - half)) & (cols < (centre_x[:, None] + half))
    square = in_rows[:, :, None] & in_cols[:, None, :]  # (B, H, W)
    return images.masked_fill(square[:, None, :, :], 0.0)


def _shard(split: ImageSplit | FileSplit, rank: int, world: int) -> ImageSplit | FileSplit:
    """Images ``rank``, ``rank + world``, ... of ``split``: one of ``world`` disjoint shards."""
    if world == 1:
        return split
    index = torch.arange(rank, len(split), world)
    if isinstance(split, FileSplit):
        return FileSplit(tuple(split.paths[i] for i in index.tolist()), split.labels[index])
    return ImageSplit(split.images[index].contiguous(), split.labels[index].contiguous())


class Evaluation:
    """An evaluation in progress. ``epoch`` counts finished epochs; ``run_epoch`` runs the next.

    ``rank`` / ``world``: this process's place among the trial's data-parallel processes; with
    ``world`` > 1 the default process group must be initialised (``trainables.data_parallel``).
    """

    def __init__(
        self,
        config: EvalConfig,
        device: torch.device | str = "cpu",
        dataset: EvaluationDataset | None = None,
        *,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        if world != config.workers:
            raise ValueError(f"world={world} differs from the config's workers={config.workers}")
        self.config, self.rank, self.world = config, rank, world
        self.device = torch.device(device)
        data = dataset if dataset is not None else load_evaluation_dataset(
            config.dataset, config.data_dir or None
        )
        if len(data.train) < config.batch_size:
            raise ValueError(
                f"batch_size={config.batch_size} exceeds the {len(data.train)} training images of "
                f"{data.name}; lower batch_size"
            )
        split = (data.mean, data.std, data.crop_padding, self.device)
        self.train = make_split(data.train, *split)
        self.test = make_split(_shard(data.test, rank, world), *split)
        self.test_images = len(data.test)
        self.input_size = data.input_size
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.model = build_network(config, data.num_classes)
        self.params = count_parameters(self.model)
        self.multiply_adds = count_multiply_adds(self.model, data.input_size)
        self.model.to(self.device)
        self.net: nn.Module = self.model
        if world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.optimizer = torch.optim.SGD(
            self.model.parameters(),
            lr=config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
            nesterov=config.nesterov,
        )
        self.order = torch.Generator().manual_seed(config.seed)  # the same in every process
        self.augment = torch.Generator().manual_seed(config.seed + 1 + rank * _RANK_SEED_STRIDE)
        torch.manual_seed(config.seed + 2 + rank * _RANK_SEED_STRIDE)  # drop-path masks
        self.epoch = 0
        self.diverged = False
        # What ``restore`` loaded (on the CPU), for rank 0 to hand to the other processes.
        self.restored_state: dict[str, Any] | None = None

    @property
    def done(self) -> bool:
        return self.diverged or self.epoch >= self.config.epochs

    def steps_per_epoch(self) -> int:
        steps = len(self.train) // self.config.batch_size
        cap = self.config.steps_per_epoch
        return min(steps, cap) if cap else steps

    # ------------------------------------------------------------------ one epoch
    def run_epoch(self) -> dict[str, Any]:
        """Train one epoch, test, and return the epoch's record (every process returns it)."""
        started = time.perf_counter()
        config, epoch = self.config, self.epoch
        lr, drop = epoch_lr(config, epoch), drop_path_prob(config, epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.drop_path_prob = drop
        train = self._train_steps()
        train_seconds = time.perf_counter() - started
        test = self._test()
        self.epoch += 1
        self.diverged = not (math.isfinite(train["loss"]) and math.isfinite(test["loss"]))
        return {
            R.EPOCH: self.epoch,
            R.STATUS: R.STATUS_DIVERGED if self.diverged else R.STATUS_OK,
            R.STEPS: train["steps"],
            R.EPOCH_LR: lr,
            R.DROP_PATH_PROB: drop,
            R.TRAIN_LOSS: train["loss"],
            R.TRAIN_ACC: train["acc"],
            R.TEST_LOSS: test["loss"],
            R.TEST_ACC: test["acc"],
            R.TEST_TOP5: test["top5"],
            R.PARAMS: self.params,
            R.MULTIPLY_ADDS: self.multiply_adds,
            R.INPUT_SIZE: self.input_size,
            R.IMAGES_PER_SEC: train["images"] / train_seconds if train_seconds > 0 else math.nan,
            R.TRAIN_SECONDS: train_seconds,
            R.EPOCH_SECONDS: time.perf_counter() - started,
        }

    def _train_steps(self) -> dict[str, float]:
        config = self.config
        share = config.batch_size // self.world
        order = torch.randperm(len(self.train), generator=self.order)
        self.net.train()
        totals = torch.zeros(3, dtype=torch.float64, device=self.device)  # loss sum, correct, n
        steps = self.steps_per_epoch()
        for step in range(steps):
            batch = order[step * config.batch_size : (step + 1) * config.batch_size]
            idx = batch[self.rank * share : (self.rank + 1) * share]
            images, labels = self.train.train_batch(idx, self.augment)
            if config.cutout:
                images = apply_cutout(images, config.cutout, self.augment)
            logits, logits_aux = self.net(images)
            loss = F.cross_entropy(logits, labels, label_smoothing=config.label_smoothing)
            total = loss
            if logits_aux is not None:
                aux = F.cross_entropy(logits_aux, labels, label_smoothing=config.label_smoothing)
                total = loss + config.auxiliary_weight * aux
            self.optimizer.zero_grad(set_to_none=True)
            total.backward()
            if config.grad_clip:
                nn.utils.clip_grad_norm_(self.model.parameters(), config.grad_clip)
            self.optimizer.step()
            with torch.no_grad():
                n = labels.numel()
                totals += torch.stack([
                    loss.detach().double() * n,
                    (logits.argmax(1) == labels).sum().double(),
                    torch.tensor(float(n), dtype=torch.float64, device=self.device),
                ])
        self._sum(totals)
        loss_sum, correct, n = totals.tolist()
        return {
            "steps": steps,
            "loss": loss_sum / n if n else math.nan,
            "acc": 100.0 * correct / n if n else math.nan,
            "images": n,
        }

    @torch.no_grad()
    def _test(self) -> dict[str, float]:
        if self.world > 1:  # BN running statistics of rank 0 (the checkpoint's) everywhere
            for buffer in self.model.buffers():
                dist.broadcast(buffer, src=0)
        self.model.eval()
        totals = torch.zeros(4, dtype=torch.float64, device=self.device)  # loss, top1, top5, n
        for images, labels in self.test.eval_batches(TEST_BATCH):
            logits, _ = self.model(images)
            top5 = logits.topk(min(5, logits.shape[1]), dim=1).indices
            totals += torch.stack([
                F.cross_entropy(logits, labels, reduction="sum").double(),
                (top5[:, 0] == labels).sum().double(),
                (top5 == labels[:, None]).any(dim=1).sum().double(),
                torch.tensor(float(labels.numel()), dtype=torch.float64, device=self.device),
            ])
        self._sum(totals)
        loss_sum, top1, top5_hits, n = totals.tolist()
        if int(n) != self.test_images:
            raise RuntimeError(f"tested {int(n)} images, the test set has {self.test_images}")
        return {"loss": loss_sum / n, "acc": 100.0 * top1 / n, "top5": 100.0 * top5_hits / n}

    def _sum(self, values: torch.Tensor) -> None:
        """Add ``values`` up over the trial's processes (in place); nothing with one process."""
        if self.world > 1:
            dist.all_reduce(values, op=dist.ReduceOp.SUM)

    # ------------------------------------------------------------------ checkpoints
    def _random_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"augment": self.augment.get_state(), "torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def state_dict(self) -> dict[str, Any]:
        """Everything to resume; with several processes a collective call (every process calls
        it; each returns the whole state, which holds every process's random state)."""
        mine = self._random_state()
        states: list[Any] = [mine]
        if self.world > 1:
            states = [None] * self.world
            dist.all_gather_object(states, mine)
        return {
            "format": CHECKPOINT_FORMAT,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "order": self.order.get_state(),
            "random": states,
            "epoch": self.epoch,
            "diverged": self.diverged,
            "workers": self.world,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"unknown evaluation checkpoint format {state.get('format')!r}")
        if state["workers"] != self.world:
            raise ValueError(
                f"the checkpoint was written by {state['workers']} worker process(es), this "
                f"evaluation runs {self.world}: resume with workers={state['workers']}"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])  # moves its tensors to the params' device
        self.order.set_state(state["order"].cpu())
        mine = state["random"][self.rank]
        self.augment.set_state(mine["augment"].cpu())
        torch.set_rng_state(mine["torch"].cpu())
        if self.device.type == "cuda" and "cuda" in mine:
            torch.cuda.set_rng_state(mine["cuda"].cpu(), self.device)
        self.epoch, self.diverged = state["epoch"], state["diverged"]

    def save(self, directory: str | os.PathLike, state: dict[str, Any] | None = None) -> Path:
        """Write the checkpoint (``state``, else ``state_dict()``) into ``directory``."""
        return save_state(
            directory, state if state is not None else self.state_dict(), CHECKPOINT_FILE,
            "evaluation",
        )

    def restore(self, directory: str | os.PathLike) -> None:
        """Load the checkpoint in ``directory`` after verifying it (``CorruptCheckpoint`` when it
        does not verify; nothing is loaded then)."""
        state = load_state(directory, CHECKPOINT_FILE, torch.device("cpu"), "evaluation")
        self.load_state_dict(state)
        self.restored_state = state


def run_evaluation(
    config: EvalConfig, device: torch.device | str = "cpu", dataset: EvaluationDataset | None = None
) -> list[dict[str, Any]]:
    """Run a whole one-process evaluation outside Ray; returns every epoch's record."""
    evaluation = Evaluation(config, device, dataset)
    records: list[dict[str, Any]] = []
    while not evaluation.done:
        records.append(evaluation.run_epoch())
    return records


