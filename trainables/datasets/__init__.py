"""Dataset readers: files on disk -> CPU uint8 image tensors (or file lists) with search splits.

Every reader returns a :class:`SearchDataset` with two halves:

* ``train``: the pool the supernet weights train on (and α's pool for ``arch_data='same'`` and for
  single-level search);
* ``held_out``: the α batches of classic bi-level DARTS (``arch_data='split'``) and the supernet
  validation accuracy for every level.

Which images go where follows the NAS-Bench-201 reference (``DARTS-V1`` in xautodl), using the
official split files shipped in ``trainables/splits/``. Images stay uint8 (N, 3, H, W) on the CPU
(:class:`ImageSplit`); :mod:`trainables.batching` moves them to a device once and augments there.
ImageNet-1k is too large for that: its reader returns file lists (:class:`FileSplit`) that
:mod:`trainables.streaming` decodes batch by batch.

Readers: :mod:`trainables.datasets.nb201` (the benchmark's datasets, from their raw files),
:mod:`trainables.datasets.imagenet` (``imagenet``: ImageNet-1k in the ImageFolder layout) and
:mod:`trainables.datasets.offline` (``digits``, ``synthetic``); ``load_dataset`` dispatches by name.
Readers return the official split only; a search's own pools (``train_pool``, ``data_fraction``)
are cut from it by :mod:`trainables.subsets`.

Evaluation datasets (:class:`EvaluationDataset`, ``load_evaluation_dataset``) are the data a found
genotype is trained on from scratch and then tested on: the whole training set and a separate test
set (CIFAR-10's ``test_batch``, ImageNet-1k's ``val/``; the ``held_out`` half for ``digits`` and
``synthetic``). A search never reads that test data.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from trainables.datasets.base import (
    DatasetNotFoundError,
    EvaluationDataset,
    FileSplit,
    ImageSplit,
    SearchDataset,
)
from trainables.datasets.imagenet import (
    imagenet_train_dir,
    imagenet_val_dir,
    load_imagenet,
    load_imagenet_evaluation,
)
from trainables.datasets.nb201 import (
    load_cifar10,
    load_cifar10_evaluation,
    load_cifar100,
    load_imagenet16_120,
    load_split_file,
    official_splits_dir,
    require_cifar10_evaluation_files,
    require_files,
)
from trainables.datasets.offline import (
    load_digits,
    load_digits_evaluation,
    load_synthetic,
    load_synthetic_evaluation,
)

__all__ = [
    "DATASET_NAMES",
    "EVAL_DATASET_NAMES",
    "DatasetNotFoundError",
    "EvaluationDataset",
    "FileSplit",
    "ImageSplit",
    "SearchDataset",
    "check_dataset_files",
    "check_evaluation_files",
    "load_cifar10",
    "load_cifar100",
    "load_dataset",
    "load_digits",
    "load_evaluation_dataset",
    "load_imagenet",
    "load_imagenet16_120",
    "load_split_file",
    "load_synthetic",
    "official_splits_dir",
]

# ---------------------------------------------------------------------------------------------

Loader = Callable[[str | os.PathLike[str] | None, str | os.PathLike[str] | None], SearchDataset]

_LOADERS: dict[str, Loader] = {
    "cifar10": load_cifar10,
    "cifar100": load_cifar100,
    "imagenet16-120": load_imagenet16_120,
    "imagenet": load_imagenet,
    "digits": load_digits,
    "synthetic": load_synthetic,
}

DATASET_NAMES: tuple[str, ...] = tuple(_LOADERS)


def load_dataset(
    name: str,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    splits_dir: str | os.PathLike[str] | None = None,
) -> SearchDataset:
    """Load dataset ``name`` (one of :data:`DATASET_NAMES`) from ``data_dir`` onto the CPU.

    ``data_dir`` is the folder holding the extracted raw files (ignored by ``digits`` and
    ``synthetic``). ``splits_dir`` replaces the shipped official split files (for tests).
    """
    try:
        loader = _LOADERS[name]
    except KeyError:
        raise ValueError(
            f"unknown dataset {name!r}; valid names: {', '.join(DATASET_NAMES)}"
        ) from None
    return loader(data_dir, splits_dir)


def check_dataset_files(name: str, data_dir: str | os.PathLike[str] | None = None) -> None:
    """Check, without reading them, that dataset ``name``'s raw files exist under ``data_dir``.

    Raises ``DatasetNotFoundError`` naming the missing path and what to download, or
    ``ValueError`` for an unknown name. ``digits`` and ``synthetic`` need no files. For
    ``imagenet`` only the layout is checked (``imagenet/train/`` holds a class folder), without
    listing its 1.28M files.
    """
    if name not in _LOADERS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASET_NAMES)}")
    if name == "imagenet":
        imagenet_train_dir(data_dir)
    elif name not in ("digits", "synthetic"):
        require_files(name, data_dir)


# ---------------------------------------------------------------------------------------------
# Evaluation datasets: train a genotype from scratch on the whole train set, score it on the test
# ---------------------------------------------------------------------------------------------

EvaluationLoader = Callable[[str | os.PathLike[str] | None], EvaluationDataset]

_EVAL_LOADERS: dict[str, EvaluationLoader] = {
    "cifar10": load_cifar10_evaluation,
    "imagenet": load_imagenet_evaluation,
    "digits": load_digits_evaluation,
    "synthetic": load_synthetic_evaluation,
}

# Equal to trainables.eval_config.EVAL_DATASETS (tested), which stays torch-free.
EVAL_DATASET_NAMES: tuple[str, ...] = tuple(_EVAL_LOADERS)


def _unknown_evaluation_dataset(name: str) -> ValueError:
    return ValueError(
        f"unknown evaluation dataset {name!r}; valid names: {', '.join(EVAL_DATASET_NAMES)}"
    )


def load_evaluation_dataset(
    name: str, data_dir: str | os.PathLike[str] | None = None
) -> EvaluationDataset:
    """Load evaluation dataset ``name`` (one of :data:`EVAL_DATASET_NAMES`) from ``data_dir``.

    ``data_dir`` is the folder holding the extracted raw files (ignored by ``digits`` and
    ``synthetic``). In-memory splits are uint8 on the CPU; ``imagenet`` returns file lists.
    """
    try:
        loader = _EVAL_LOADERS[name]
    except KeyError:
        raise _unknown_evaluation_dataset(name) from None
    return loader(data_dir)


def check_evaluation_files(name: str, data_dir: str | os.PathLike[str] | None = None) -> None:
    """Check, without reading image data, that evaluation dataset ``name``'s files exist.

    For running before any trial starts: ``cifar10`` needs ``data_batch_1..5`` and ``test_batch``;
    ``imagenet`` needs ``imagenet/train/`` and ``imagenet/val/`` each holding a class folder (no
    files are listed); ``digits`` and ``synthetic`` need nothing. Raises DatasetNotFoundError
    naming the missing path and what to download, or ``ValueError`` for an unknown name.
    """
    if name not in _EVAL_LOADERS:
        raise _unknown_evaluation_dataset(name)
    if name == "cifar10":
        require_cifar10_evaluation_files(data_dir)
    elif name == "imagenet":
        imagenet_train_dir(data_dir)
        imagenet_val_dir(data_dir)
