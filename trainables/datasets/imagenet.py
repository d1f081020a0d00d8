"""Reader of ImageNet-1k (ILSVRC2012) for the paper's DARTS-space search, as a list of files.

The paper (Appendix D) searches directly on ImageNet-1k. Its 1.28M JPEGs (~140 GB; ~190 GB
even as uint8 tensors cut to 224 px) cannot be device-resident like the other datasets, so this
reader only lists file names (no decoding) and returns :class:`FileSplit` halves;
:mod:`trainables.streaming` decodes and augments each batch.

Layout (torchvision's ImageFolder): ``DATA_DIR/imagenet/train/<wnid>/<file>``, one folder per
class named by its WordNet id (``n01440764``, ...), image files ending in ``.JPEG``, ``.jpg``,
``.jpeg`` or ``.png`` (any case). Classes are the sorted folder names; a class's label is its
position in that order (0..999 for the full dataset). Folders and files whose names start with
``.`` are ignored, as are files with other extensions.

Search split (our choice; the paper does not say how it holds images out): within each class,
sorted file names; the files at positions 0, 40, 80, ... (every 40th, 2.5%: ceil(n / 40) of a
class's n files, about 32.5k of the 1,281,167) go to ``held_out`` (α batches for bi-level
``split``, supernet validation accuracy), the rest to ``train``. Both halves list classes in
label order, files in name order. The official validation set (``val/``) is not read by a search:
it stays untouched for evaluating the retrained network.

Evaluation (:func:`load_imagenet_evaluation`): train = every file of ``train/``, test = the
official validation set in the same layout, ``DATA_DIR/imagenet/val/<wnid>/<file>``, labelled by
the train classes; both folders must hold the same classes.

Normalisation: the standard ImageNet mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from trainables.datasets.base import (
    DatasetNotFoundError,
    EvaluationDataset,
    FileSplit,
    SearchDataset,
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HELD_OUT_EVERY = 40  # every 40th file of each class (sorted by name) is held out: 2.5%
IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png")  # compared lower-cased

IMAGENET_HINT = (
    "download ILSVRC2012 (ImageNet-1k, https://image-net.org/download.php; the training "
    "tarball ILSVRC2012_img_train.tar) and extract it in the ImageFolder layout, one folder per "
    "class named by its WordNet id, so that DATA_DIR/imagenet/train/n01440764/"
    "n01440764_10026.JPEG exists (extract each per-class tar inside into its own folder)"
)
IMAGENET_VAL_HINT = (
    "download the ILSVRC2012 validation tarball ILSVRC2012_img_val.tar "
    "(https://image-net.org/download.php) and extract it into DATA_DIR/imagenet/val/; it holds "
    "50,000 images in one flat folder, so sort them into one folder per class named by its "
    "WordNet id, as in train/ (e.g. run the widely used valprep.sh, "
    "https://raw.githubusercontent.com/soumith/imagenetloader.torch/master/valprep.sh, inside "
    "val/), so that DATA_DIR/imagenet/val/n01440764/ILSVRC2012_val_00000293.JPEG exists"
)


def imagenet_train_dir(data_dir: str | os.PathLike[str] | None) -> Path:
    """``DATA_DIR/imagenet/train``, checked cheaply: it exists and holds a class folder.

    Lists no files (the full dataset has 1.28M); used by the loaders and, before any trial
    starts, by ``check_dataset_files``. Raises DatasetNotFoundError naming the path.
    """
    return _imagenet_dir(data_dir, "train", IMAGENET_HINT)


def imagenet_val_dir(data_dir: str | os.PathLike[str] | None) -> Path:
    """``DATA_DIR/imagenet/val``, checked cheaply: it exists and holds a class folder.

    Lists no files; used by the evaluation loader and, before any trial starts, by
    ``check_evaluation_files``. Raises DatasetNotFoundError naming the path and how to sort the
    flat official val tarball into class folders.
    """
    return _imagenet_dir(data_dir, "val", IMAGENET_VAL_HINT)


def _imagenet_dir(data_dir: str | os.PathLike[str] | None, part: str, hint: str) -> Path:
    """``DATA_DIR/imagenet/<part>`` if it exists and holds a class folder, else the error."""
    if data_dir is None:
        raise DatasetNotFoundError(
            f"dataset 'imagenet' needs data_dir (the folder that holds imagenet/{part}/); {hint}"
        )
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise DatasetNotFoundError(f"data_dir {root} does not exist; {hint}")
    folder = root / "imagenet" / part
    if not folder.is_dir():
        raise DatasetNotFoundError(f"dataset folder {folder} does not exist: {hint}")
    with os.scandir(folder) as entries:
        if not any(_is_class_dir(e) for e in entries):
            raise DatasetNotFoundError(f"dataset folder {folder} holds no class folders: {hint}")
    return folder


def _is_class_dir(entry: os.DirEntry[str]) -> bool:
    return not entry.name.startswith(".") and entry.is_dir()


def _image_names(folder: Path) -> list[str]:
    """Sorted names of the image files directly inside ``folder``."""
    with os.scandir(folder) as entries:
        names = [
            e.name
            for e in entries
            if not e.name.startswith(".")
            and e.name.lower().endswith(IMAGE_EXTENSIONS)
            and e.is_file()
        ]
    return sorted(names)


def _class_names(folder: Path) -> list[str]:
    """Sorted names of the class folders directly inside ``folder`` (WordNet ids)."""
    with os.scandir(folder) as entries:
        return sorted(e.name for e in entries if _is_class_dir(e))


def _class_files(folder: Path, hint: str) -> list[str]:
    """Paths of the image files in class folder ``folder``, sorted by name; none is an error."""
    names = _image_names(folder)
    if not names:
        raise DatasetNotFoundError(
            f"class folder {folder} holds no images (.JPEG/.jpg/.jpeg/.png): {hint}"
        )
    return [str(folder / name) for name in names]


def load_imagenet(
    data_dir: str | os.PathLike[str] | None,
    splits_dir: str | os.PathLike[str] | None = None,
) -> SearchDataset:
    """ImageNet-1k train images as file lists: ``train`` and every-40th-file ``held_out``.

    ``splits_dir`` is accepted for the loader signature and ignored (the split is computed, see
    the module docstring). Raises DatasetNotFoundError when the folder is missing, holds no class
    folders, or a class folder holds no images.
    """
    del splits_dir
    train_dir = imagenet_train_dir(data_dir)
    classes = _class_names(train_dir)
    parts: dict[str, tuple[list[str], list[int]]] = {"train": ([], []), "held_out": ([], [])}
    for label, wnid in enumerate(classes):
        for position, path in enumerate(_class_files(train_dir / wnid, IMAGENET_HINT)):
            half = "held_out" if position % HELD_OUT_EVERY == 0 else "train"
            parts[half][0].append(path)
            parts[half][1].append(label)
    train, held_out = (
        FileSplit(tuple(paths), torch.tensor(labels, dtype=torch.int64))
        for paths, labels in (parts["train"], parts["held_out"])
    )
    return SearchDataset(
        name="imagenet",
        train=train,
        held_out=held_out,
        num_classes=len(classes),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        crop_padding=0,
    )


# ---------------------------------------------------------------------------------------------
# Evaluation data: every train file, and the official validation set as the test set
# ---------------------------------------------------------------------------------------------


def _check_same_classes(classes: list[str], val_classes: list[str], val_dir: Path) -> None:
    """Raise naming the first class folder that is in only one of ``train/`` and ``val/``.

    A val class without a train class has no label (ValueError); a train class without a val
    folder means val was not fully sorted into class folders (DatasetNotFoundError).
    """
    extra = sorted(set(val_classes) - set(classes))
    if extra:
        raise ValueError(
            f"val class folder {val_dir / extra[0]} ({len(extra)} such) has no class folder in "
            f"{val_dir.parent / 'train'}: train/ and val/ must hold the same WordNet ids"
        )
    missing = sorted(set(classes) - set(val_classes))
    if missing:
        raise DatasetNotFoundError(
            f"class folder {val_dir / missing[0]} ({len(missing)} train classes missing in val/) "
            f"does not exist: {IMAGENET_VAL_HINT}"
        )


def _labelled_files(folder: Path, classes: list[str], hint: str) -> FileSplit:
    """Every image of ``folder/<wnid>/`` for each class in ``classes``, labelled by position."""
    paths: list[str] = []
    labels: list[int] = []
    for label, wnid in enumerate(classes):
        files = _class_files(folder / wnid, hint)
        paths.extend(files)
        labels.extend([label] * len(files))
    return FileSplit(tuple(paths), torch.tensor(labels, dtype=torch.int64))


def load_imagenet_evaluation(data_dir: str | os.PathLike[str] | None) -> EvaluationDataset:
    """ImageNet-1k for evaluating a genotype, as file lists: train = every file of ``train/``
    (no held-out carve-out), test = every file of ``val/`` (the official validation set).

    Labels are positions in the sorted train class list, for both halves; classes in label order,
    files in name order. Raises DatasetNotFoundError when a folder is missing, holds no class
    folders, a train class has no val folder, or a class folder holds no images; ValueError when
    a val class folder has no train class.
    """
    train_dir = imagenet_train_dir(data_dir)
    val_dir = imagenet_val_dir(data_dir)
    classes = _class_names(train_dir)
    _check_same_classes(classes, _class_names(val_dir), val_dir)
    return EvaluationDataset(
        name="imagenet",
        train=_labelled_files(train_dir, classes, IMAGENET_HINT),
        test=_labelled_files(val_dir, classes, IMAGENET_VAL_HINT),
        num_classes=len(classes),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        crop_padding=0,
        input_size=224,
    )
