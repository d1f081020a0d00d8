"""``EvalConfig``: one evaluation, training a DARTS-space genotype from scratch; and its presets.

A search in the DARTS space ends in a genotype; its worth is the test accuracy of the network
built from it and trained from scratch (the paper's Tables 2 and 3). An ``EvalConfig`` says
everything such a training consumes, validated on construction like ``SearchConfig`` (an
unknown key, a wrong type or an impossible value raises ``ValueError`` naming the field). It
travels as a flat dict (a Tune trial's config, every evaluation Parquet row) and is rebuilt with
``EvalConfig.from_dict``.

``PRESETS`` holds the paper's two protocols; every value is a field, so any of them can be
changed (``study evaluate --set epochs=300``):

* ``cifar10`` (transfer to CIFAR-10, as P-DARTS): 14 cells (the paper shortens 20 to 14 to stay
  under 3.5 M parameters), 36 initial channels, 600 epochs, batch 128, SGD momentum 0.9, lr
  0.025 cosine to 0, weight decay 3e-4, cutout 16, drop-path 0.3, auxiliary weight 0.4;
* ``imagenet`` (ImageNet-1k, mobile setting): 14 cells, 48 initial channels, 250 epochs, batch
  1024, lr 0.5 (the paper scaled both by 0.75, to 768 and 0.375, for its GPUs' memory), SGD
  momentum 0.9, weight decay 3e-5, label smoothing 0.1, auxiliary head (weight 0.4), 5 warm-up
  epochs then linear decay to 0.

Top-1 is measured on data the search never reads: CIFAR-10's ``test_batch`` and ImageNet's
``val/`` folder (``trainables.datasets.load_evaluation_dataset``). ``digits`` and ``synthetic``
are the offline datasets of tests and tiny runs.

Provenance fields (``arch``, ``source_experiment``, ``source_trial_id``) name where the
genotype came from, so ``analysis.evaluation`` can join an evaluation with the search that
produced it. Plain data: no torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from search_spaces.genotypes import DartsGenotype
from search_spaces.published import PUBLISHED, published_genotype
from trainables.config import FieldType, FlatConfig, checked_value, field_types, shown

EVAL_DATASETS = ("cifar10", "imagenet", "digits", "synthetic")  # load_evaluation_dataset
NETWORKS = ("cifar", "imagenet")  # search_spaces.darts_eval: NetworkCIFAR, NetworkImageNet
# Classes of each dataset as published (the dry run counts parameters with these; a training
# counts them with the classes its data holds).
NOMINAL_CLASSES = {"cifar10": 10, "imagenet": 1000, "digits": 10, "synthetic": 10}
SCHEDULES = ("cosine", "linear")  # cosine to lr_min | warm-up then linear decay to 0
EVAL_FIELD_CHOICES: dict[str, tuple[str, ...]] = {
    "dataset": EVAL_DATASETS,
    "network": NETWORKS,
    "schedule": SCHEDULES,
}


@dataclass(frozen=True)
class EvalConfig(FlatConfig):
    """One evaluation. Units: learning rates per step, epochs, images (global batch), steps."""

    genotype: str = ""
    arch: str = ""
    source_experiment: str = ""
    source_trial_id: str = ""
    preset: str = ""
    dataset: str = "cifar10"
    data_dir: str = ""
    network: str = "cifar"
    layers: int = 14
    init_channels: int = 36
    epochs: int = 600
    batch_size: int = 128
    lr: float = 0.025
    lr_min: float = 0.0
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 3e-4
    schedule: str = "cosine"
    warmup_epochs: int = 0
    label_smoothing: float = 0.0
    auxiliary_weight: float = 0.4
    drop_path: float = 0.3
    cutout: int = 16
    grad_clip: float = 5.0
    seed: int = 0
    workers: int = 1
    steps_per_epoch: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = checked_value(f.name, getattr(self, f.name), EVAL_FIELD_TYPES[f.name])
            object.__setattr__(self, f.name, value)
        for name, allowed in EVAL_FIELD_CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"{name}={shown(getattr(self, name))} is not allowed; choose one of "
                    f"{list(allowed)}"
                )
        self._check_values()
        object.__setattr__(self, "genotype", normalise_genotype(self.genotype))

    def _check_values(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{f.name}={value!r} must be a finite number")
        for name in ("layers", "init_channels", "epochs", "batch_size", "lr", "workers"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}={getattr(self, name)!r} must be > 0")
        for name in ("lr_min", "weight_decay", "warmup_epochs", "auxiliary_weight", "cutout",
                     "grad_clip", "seed", "steps_per_epoch"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name}={getattr(self, name)!r} must be >= 0")
        for name in ("momentum", "label_smoothing", "drop_path"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)!r} must be in [0, 1)")
        if self.layers < 3:
            raise ValueError(f"layers={self.layers} is too small: a DARTS network needs >= 3 cells")
        if self.lr_min > self.lr:
            raise ValueError(f"lr_min={self.lr_min} must not exceed lr={self.lr}")
        if self.warmup_epochs >= self.epochs and self.warmup_epochs:
            raise ValueError(
                f"warmup_epochs={self.warmup_epochs} must be fewer than epochs={self.epochs}"
            )
        if self.batch_size % self.workers:
            raise ValueError(
                f"batch_size={self.batch_size} must divide evenly among workers={self.workers} "
                "(it is the global batch; each worker process takes an equal share)"
            )
        if (self.network == "imagenet") != (self.dataset == "imagenet"):
            raise ValueError(
                f"network={self.network!r} does not fit dataset={self.dataset!r}: the imagenet "
                "network (x8 stem, 224-pixel input) is for dataset 'imagenet', the cifar "
                "network (32-pixel input) for the others"
            )
        if not self.genotype:
            raise ValueError(
                "genotype is empty: give a DARTS Genotype(...) string or a published name "
                f"({', '.join(PUBLISHED)})"
            )


def normalise_genotype(text: str) -> str:
    """The canonical ``Genotype(...)`` string of a genotype string or a published name
    (``DARTS_V2``, any case); ``ValueError`` saying what is accepted otherwise."""
    if not isinstance(text, str) or not text.strip():
        return ""
    if not text.strip().startswith("Genotype("):
        try:
            return published_genotype(text).to_string()
        except KeyError as error:
            raise ValueError(
                f"genotype={shown(text)} is neither a DARTS Genotype(...) string nor a "
                f"published name ({', '.join(PUBLISHED)})"
            ) from error
    try:
        return DartsGenotype.from_string(text).to_string()
    except ValueError as error:
        raise ValueError(f"genotype={shown(text)} is not a DARTS genotype: {error}") from error


EVAL_FIELD_TYPES: dict[str, FieldType] = field_types(EvalConfig)
# Fields that ``arch`` already names (a long genotype string, its source): progress lines and
# listings show ``arch`` instead.
NAMED_BY_ARCH = ("genotype", "source_experiment", "source_trial_id")

# Unit and meaning of every field (docs/results.md's evaluation table is generated from these).
EVAL_FIELD_DOCS: dict[str, tuple[str, str]] = {
    "genotype": ("", "the DARTS cell trained: Genotype(...) string"),
    "arch": ("", "label of the architecture: a published name, or '<search experiment>/<trial>'"),
    "source_experiment": ("", "search experiment the genotype came from ('' = given by hand)"),
    "source_trial_id": ("", "search trial the genotype came from ('' = given by hand)"),
    "preset": ("", "protocol the values started from: cifar10 | imagenet ('' = none)"),
    "dataset": ("", f"training and test data: {' | '.join(EVAL_DATASETS)}"),
    "data_dir": ("path", "folder of the raw dataset files ('' = unused or default)"),
    "network": ("", f"evaluation network: {' | '.join(NETWORKS)}"),
    "layers": ("cells", "cells of the network (reductions at 1/3 and 2/3)"),
    "init_channels": ("", "channels of the first cells (C)"),
    "epochs": ("epochs", "length of the training"),
    "batch_size": ("images", "global batch (split evenly among the worker processes)"),
    "lr": ("per step", "learning rate at the start (after warm-up)"),
    "lr_min": ("per step", "learning rate at the end of the cosine schedule"),
    "momentum": ("", "SGD momentum"),
    "nesterov": ("", "SGD uses Nesterov momentum"),
    "weight_decay": ("", "weight decay (coupled L2)"),
    "schedule": ("", "'cosine' (to lr_min) | 'linear' (warm-up, then linear decay to 0)"),
    "warmup_epochs": ("epochs", "linear warm-up from lr/warmup_epochs to lr (0 = none)"),
    "label_smoothing": ("", "label smoothing of the training loss (0 = none)"),
    "auxiliary_weight": ("", "weight of the auxiliary head's loss (0 = no auxiliary head)"),
    "drop_path": ("", "drop-path probability at the last epoch (ramped linearly from 0)"),
    "cutout": ("pixels", "side of the cutout square (0 = off)"),
    "grad_clip": ("", "bound on the global norm of the gradient (0 = off)"),
    "seed": ("", "random seed of the training (a repeat)"),
    "workers": ("processes", "data-parallel processes of the trial (torch DDP; 1 = none)"),
    "steps_per_epoch": ("steps", "cap on steps per epoch (0 = one pass over the training set)"),
}
if tuple(EVAL_FIELD_DOCS) != EvalConfig.field_names():
    raise RuntimeError("trainables.eval_config: EVAL_FIELD_DOCS must list every field in order")

# The paper's two protocols (module docstring). A preset fills every training field; the
# genotype and its provenance come from the command.
PRESETS: dict[str, dict[str, Any]] = {
    "cifar10": {
        "preset": "cifar10",
        "dataset": "cifar10",
        "network": "cifar",
        "layers": 14,
        "init_channels": 36,
        "epochs": 600,
        "batch_size": 128,
        "lr": 0.025,
        "lr_min": 0.0,
        "momentum": 0.9,
        "nesterov": False,
        "weight_decay": 3e-4,
        "schedule": "cosine",
        "warmup_epochs": 0,
        "label_smoothing": 0.0,
        "auxiliary_weight": 0.4,
        "drop_path": 0.3,
        "cutout": 16,
        "grad_clip": 5.0,
    },
    "imagenet": {
        "preset": "imagenet",
        "dataset": "imagenet",
        "network": "imagenet",
        "layers": 14,
        "init_channels": 48,
        "epochs": 250,
        "batch_size": 1024,
        "lr": 0.5,
        "lr_min": 0.0,
        "momentum": 0.9,
        "nesterov": False,
        "weight_decay": 3e-5,
        "schedule": "linear",
        "warmup_epochs": 5,
        "label_smoothing": 0.1,
        "auxiliary_weight": 0.4,
        "drop_path": 0.0,
        "cutout": 0,
        "grad_clip": 5.0,
    },
}
# The paper's scaled ImageNet setting (its GPUs' memory): --set batch_size=768 --set lr=0.375.
PAPER_SCALED_IMAGENET = {"batch_size": 768, "lr": 0.375}


def preset_config(name: str, genotype: str, **changes: Any) -> EvalConfig:
    """The EvalConfig of preset ``name`` for ``genotype`` with ``changes`` applied (validated);
    ``ValueError`` naming the presets for an unknown name."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {list(PRESETS)}")
    return EvalConfig.from_dict({**PRESETS[name], "genotype": genotype, **changes})
