"""Readers of the NAS-Bench-201 datasets (CIFAR-10, CIFAR-100, ImageNet16-120), official splits.

Which images go to ``train`` and ``held_out`` follows the reference (``DARTS-V1`` in xautodl)
with the split files shipped in ``trainables/splits/``: CIFAR-10 halves its train set
(``cifar-split.txt``); CIFAR-100 and ImageNet16-120 train on their train set and hold out the
``xvalid`` half of their test / val set. Each reader checks every file exists before reading any.
:func:`load_cifar10_evaluation` reads CIFAR-10 for evaluating a genotype instead: the whole train
set and the official test set (``test_batch``), which no search reads.

The raw files are Python pickles (the format the datasets are distributed in). Unpickling runs
code chosen by whoever wrote the file, so only point ``data_dir`` at files from a trusted source.
"""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainables.datasets.base import (
    DatasetNotFoundError,
    EvaluationDataset,
    ImageSplit,
    SearchDataset,
)

CIFAR_MEAN = (125.3 / 255, 123.0 / 255, 113.9 / 255)
CIFAR_STD = (63.0 / 255, 62.1 / 255, 66.7 / 255)
IMAGENET16_MEAN = (122.68 / 255, 116.66 / 255, 104.01 / 255)
IMAGENET16_STD = (63.22 / 255, 61.26 / 255, 65.09 / 255)
IMAGENET16_NUM_CLASSES = 120

CIFAR10_SPLIT_FILE = "cifar-split.txt"
CIFAR100_SPLIT_FILE = "cifar100-test-split.txt"
IMAGENET16_SPLIT_FILE = "imagenet-16-120-test-split.txt"

CIFAR10_HINT = (
    'download the "CIFAR-10 python version" tarball (cifar-10-python.tar.gz) from '
    "https://www.cs.toronto.edu/~kriz/cifar.html and extract it into DATA_DIR, so that "
    "DATA_DIR/cifar-10-batches-py/data_batch_1 exists"
)
CIFAR100_HINT = (
    'download the "CIFAR-100 python version" tarball (cifar-100-python.tar.gz) from '
    "https://www.cs.toronto.edu/~kriz/cifar.html and extract it into DATA_DIR, so that "
    "DATA_DIR/cifar-100-python/train exists"
)
IMAGENET16_HINT = (
    "download the ImageNet16 downsampled files used by NAS-Bench-201 (train_data_batch_1..10 and "
    "val_data, 16x16 pixels) and place them in DATA_DIR/ImageNet16/"
)


# ---------------------------------------------------------------------------------------------
# Official split files
# ---------------------------------------------------------------------------------------------


def official_splits_dir() -> Path:
    """The folder of the official NAS-Bench-201 split files shipped as package data."""
    return Path(__file__).resolve().parents[1] / "splits"


def load_split_file(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a split file in the official format ``{"name": ["int", ["0", "5", ...]]}``.

    Returns each named split as an int64 CPU tensor of indices, in file order.
    """
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"split file {path} is not valid JSON ({err}); restore it") from err
    if not isinstance(raw, dict):
        raise ValueError(f"split file {path} must hold a JSON object of named splits")
    return {name: _parse_split_entry(path, name, entry) for name, entry in raw.items()}


def _parse_split_entry(path: Path, name: str, entry: Any) -> torch.Tensor:
    """Turn one ``["int", ["0", "5", ...]]`` entry into an int64 tensor."""
    if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], list)):
        raise ValueError(f'split file {path}: entry "{name}" must be ["int", [indices...]]')
    try:
        return torch.tensor([int(i) for i in entry[1]], dtype=torch.int64)
    except (TypeError, ValueError) as err:
        raise ValueError(f'split file {path}: entry "{name}" holds a non-integer index') from err


def _split_indices(path: Path, name: str, num_images: int) -> torch.Tensor:
    """Indices of split ``name`` from ``path``, checked to lie in [0, num_images)."""
    splits = load_split_file(path)
    if name not in splits:
        raise ValueError(f'split file {path} has no split "{name}"; it holds {sorted(splits)}')
    idx = splits[name]
    if idx.numel() and (idx.min() < 0 or idx.max() >= num_images):
        raise ValueError(
            f'split "{name}" of {path} indexes image {int(idx.max())} (min {int(idx.min())}) but '
            f"only {num_images} images were read; the data files look truncated or are the "
            "wrong dataset: re-download them"
        )
    return idx


# ---------------------------------------------------------------------------------------------
# Raw pickle files
# ---------------------------------------------------------------------------------------------


def _require_files(paths: Sequence[Path], hint: str) -> None:
    """Raise DatasetNotFoundError for the first missing folder or file, before anything is read."""
    for path in paths:
        if not path.parent.is_dir():
            raise DatasetNotFoundError(f"dataset folder {path.parent} does not exist: {hint}")
        if not path.is_file():
            raise DatasetNotFoundError(f"dataset file {path} does not exist: {hint}")


def _require_data_dir(data_dir: str | os.PathLike[str] | None, name: str, hint: str) -> Path:
    """``data_dir`` as a Path, or DatasetNotFoundError if it is None or not a folder."""
    if data_dir is None:
        raise DatasetNotFoundError(
            f"dataset {name!r} needs data_dir (the folder that holds its files); {hint}"
        )
    path = Path(data_dir).expanduser()
    if not path.is_dir():
        raise DatasetNotFoundError(f"data_dir {path} does not exist; {hint}")
    return path


def _cifar10_files(root: Path) -> list[Path]:
    return [root / "cifar-10-batches-py" / f"data_batch_{i}" for i in range(1, 6)]


def _cifar10_test_file(root: Path) -> Path:
    return root / "cifar-10-batches-py" / "test_batch"


def _cifar100_files(root: Path) -> list[Path]:
    return [root / "cifar-100-python" / "train", root / "cifar-100-python" / "test"]


def _imagenet16_files(root: Path) -> list[Path]:
    folder = root / "ImageNet16"
    return [*(folder / f"train_data_batch_{i}" for i in range(1, 11)), folder / "val_data"]


_RAW_FILES: dict[str, tuple[Callable[[Path], list[Path]], str]] = {
    "cifar10": (_cifar10_files, CIFAR10_HINT),
    "cifar100": (_cifar100_files, CIFAR100_HINT),
    "imagenet16-120": (_imagenet16_files, IMAGENET16_HINT),
}


def require_files(name: str, data_dir: str | os.PathLike[str] | None) -> Path:
    """Check that every raw file of dataset ``name`` is under ``data_dir``, reading nothing.

    Returns ``data_dir`` as a Path; raises DatasetNotFoundError naming the first missing folder or
    file and what to download. Used by the loaders and, before any trial starts, by the study.
    """
    files, hint = _RAW_FILES[name]
    root = _require_data_dir(data_dir, name, hint)
    _require_files(files(root), hint)
    return root


def _unpickle(path: Path) -> dict[Any, Any]:
    """Load one raw pickle (latin-1, as the Python 2 originals need) into a dict."""
    try:
        with path.open("rb") as f:
            obj = pickle.load(f, encoding="latin1")
    except MemoryError:
        raise
    except Exception as err:  # any unpickling failure means a corrupt or foreign file
        raise ValueError(
            f"cannot read {path}: {err!r}; the file is corrupt, re-download it"
        ) from err
    if not isinstance(obj, dict):
        raise ValueError(f"{path} holds a {type(obj).__name__}, expected a dict; re-download it")
    return obj


def _field(entry: dict[Any, Any], key: str, path: Path) -> Any:
    """``entry[key]`` whether the pickle stored the key as str or as bytes."""
    for candidate in (key, key.encode("latin1")):
        if candidate in entry:
            return entry[candidate]
    raise ValueError(f"{path} has no {key!r} entry (keys: {sorted(map(str, entry))})")


def _read_batch(path: Path, label_key: str, side: int) -> tuple[np.ndarray, np.ndarray]:
    """Read one pickle batch: uint8 images (N, 3, side, side) and int64 labels (N,)."""
    entry = _unpickle(path)
    data = np.asarray(_field(entry, "data", path))
    labels = np.asarray(_field(entry, label_key, path))
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * side * side:
        raise ValueError(
            f"{path}: 'data' must be uint8 of shape (N, {3 * side * side}); got {data.dtype} "
            f"{data.shape}; the file is corrupt or from another dataset"
        )
    if labels.shape != (data.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"{path}: {label_key!r} must be {data.shape[0]} integers; got {labels.dtype} "
            f"{labels.shape}"
        )
    return data.reshape(-1, 3, side, side), labels.astype(np.int64)


def _make_split(images: np.ndarray, labels: np.ndarray, idx: torch.Tensor | None) -> ImageSplit:
    """Select ``idx`` (all images when None) into a contiguous CPU ImageSplit."""
    img_t, lab_t = torch.from_numpy(images), torch.from_numpy(labels)
    if idx is not None:
        img_t, lab_t = img_t[idx], lab_t[idx]
    return ImageSplit(img_t.contiguous(), lab_t.contiguous())


def _splits_dir(splits_dir: str | os.PathLike[str] | None) -> Path:
    return official_splits_dir() if splits_dir is None else Path(splits_dir)


# ---------------------------------------------------------------------------------------------
# Per-dataset loaders
# ---------------------------------------------------------------------------------------------


def load_cifar10(
    data_dir: str | os.PathLike[str] | None, splits_dir: str | os.PathLike[str] | None = None
) -> SearchDataset:
    """CIFAR-10 ``cifar10-valid``: the 50k train images split 25k/25k by ``cifar-split.txt``.

    train = split ``train``, held_out = split ``valid``; both index the train images in the order of
    ``data_batch_1..5``. ``splits_dir`` overrides the folder holding ``cifar-split.txt`` (tests).
    """
    root = require_files("cifar10", data_dir)
    split_file = _splits_dir(splits_dir) / CIFAR10_SPLIT_FILE
    batches = _cifar10_files(root)
    _require_files([split_file], "restore the official split files in trainables/splits/")
    parts = [_read_batch(p, "labels", 32) for p in batches]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return SearchDataset(
        name="cifar10",
        train=_make_split(images, labels, _split_indices(split_file, "train", len(images))),
        held_out=_make_split(images, labels, _split_indices(split_file, "valid", len(images))),
        num_classes=10,
        mean=CIFAR_MEAN,
        std=CIFAR_STD,
        crop_padding=4,
    )


def load_cifar100(
    data_dir: str | os.PathLike[str] | None, splits_dir: str | os.PathLike[str] | None = None
) -> SearchDataset:
    """CIFAR-100: train = all 50k train images; held_out = the 5k ``xvalid`` half of the test set.

    The reference normalises CIFAR-100 with the CIFAR-10 mean/std, so we do too.
    ``splits_dir`` overrides the folder holding ``cifar100-test-split.txt`` (tests).
    """
    root = require_files("cifar100", data_dir)
    split_file = _splits_dir(splits_dir) / CIFAR100_SPLIT_FILE
    train_path, test_path = _cifar100_files(root)
    _require_files([split_file], "restore the official split files in trainables/splits/")
    train_images, train_labels = _read_batch(train_path, "fine_labels", 32)
    test_images, test_labels = _read_batch(test_path, "fine_labels", 32)
    xvalid = _split_indices(split_file, "xvalid", len(test_images))
    return SearchDataset(
        name="cifar100",
        train=_make_split(train_images, train_labels, None),
        held_out=_make_split(test_images, test_labels, xvalid),
        num_classes=100,
        mean=CIFAR_MEAN,
        std=CIFAR_STD,
        crop_padding=4,
        held_out_from_train=False,
    )


def _read_imagenet16(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One ImageNet16 batch restricted to the first 120 classes, labels shifted to 0-based."""
    images, labels = _read_batch(path, "labels", 16)
    keep = labels <= IMAGENET16_NUM_CLASSES
    return images[keep], labels[keep] - 1


def load_imagenet16_120(
    data_dir: str | os.PathLike[str] | None, splits_dir: str | os.PathLike[str] | None = None
) -> SearchDataset:
    """ImageNet16-120: 16x16 images of the first 120 classes (1-based labels <= 120, minus 1).

    train = every kept train image (151,700 with the real files, in batch order 1..10);
    held_out = the 3k ``xvalid`` half of the 6k kept val images. Each train batch is filtered as it
    is read, so peak memory stays near one raw batch plus the kept images.
    ``splits_dir`` overrides the folder holding ``imagenet-16-120-test-split.txt`` (tests).
    """
    root = require_files("imagenet16-120", data_dir)
    split_file = _splits_dir(splits_dir) / IMAGENET16_SPLIT_FILE
    *train_paths, val_path = _imagenet16_files(root)
    _require_files([split_file], "restore the official split files in trainables/splits/")
    parts = [_read_imagenet16(p) for p in train_paths]
    val_images, val_labels = _read_imagenet16(val_path)
    xvalid = _split_indices(split_file, "xvalid", len(val_images))
    return SearchDataset(
        name="imagenet16-120",
        train=_make_split(
            np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), None
        ),
        held_out=_make_split(val_images, val_labels, xvalid),
        num_classes=IMAGENET16_NUM_CLASSES,
        mean=IMAGENET16_MEAN,
        std=IMAGENET16_STD,
        crop_padding=2,
        held_out_from_train=False,
    )


# ---------------------------------------------------------------------------------------------
# Evaluation data: the whole train set and the test set
# ---------------------------------------------------------------------------------------------


def require_cifar10_evaluation_files(data_dir: str | os.PathLike[str] | None) -> Path:
    """Check that CIFAR-10's five train batches and ``test_batch`` are under ``data_dir``.

    Reads nothing; returns ``data_dir`` as a Path, or raises DatasetNotFoundError naming the first
    missing folder or file and what to download. Used by the loader and, before any trial starts,
    by ``check_evaluation_files``.
    """
    root = require_files("cifar10", data_dir)
    _require_files([_cifar10_test_file(root)], CIFAR10_HINT)
    return root


def load_cifar10_evaluation(data_dir: str | os.PathLike[str] | None) -> EvaluationDataset:
    """CIFAR-10 for evaluating a genotype: train = all 50k train images, test = the 10k test images.

    train keeps the order of ``data_batch_1..5``, test the order of ``test_batch``; 32x32 pixels,
    the search's CIFAR mean/std and crop padding 4.
    """
    root = require_cifar10_evaluation_files(data_dir)
    parts = [_read_batch(p, "labels", 32) for p in _cifar10_files(root)]
    test_images, test_labels = _read_batch(_cifar10_test_file(root), "labels", 32)
    return EvaluationDataset(
        name="cifar10",
        train=_make_split(
            np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), None
        ),
        test=_make_split(test_images, test_labels, None),
        num_classes=10,
        mean=CIFAR_MEAN,
        std=CIFAR_STD,
        crop_padding=4,
        input_size=32,
    )


# ---------------------------------------------------------------------------------------------
# Offline datasets: real handwritten digits from scikit-learn, and synthetic images for tests
