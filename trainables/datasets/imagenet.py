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
label order, files in name order. The official validation set (``val/``) is not read: it stays
untouched for evaluating the retrained network.

Normalisation: the standard ImageNet mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from trainables.datasets.base import DatasetNotFoundError, FileSplit, SearchDataset

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


def imagenet_train_dir(data_dir: str | os.PathLike[str] | None) -> Path:
    """``DATA_DIR/imagenet/train``, checked cheaply: it exists and holds a class folder.

    Lists no files (the full dataset has 1.28M); used by the loader and, before any trial
    starts, by ``check_dataset_files``. Raises DatasetNotFoundError naming the path.
    """
    if data_dir is None:
        raise DatasetNotFoundError(
            f"dataset 'imagenet' needs data_dir (the folder that holds imagenet/train/); "
            f"{IMAGENET_HINT}"
        )
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise DatasetNotFoundError(f"data_dir {root} does not exist; {IMAGENET_HINT}")
    train = root / "imagenet" / "train"
    if not train.is_dir():
        raise DatasetNotFoundError(f"dataset folder {train} does not exist: {IMAGENET_HINT}")
    with os.scandir(train) as entries:
        if not any(_is_class_dir(e) for e in entries):
            raise DatasetNotFoundError(
                f"dataset folder {train} holds no class folders: {IMAGENET_HINT}"
            )
    return train


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
    with os.scandir(train_dir) as entries:
        classes = sorted(e.name for e in entries if _is_class_dir(e))
    parts: dict[str, tuple[list[str], list[int]]] = {"train": ([], []), "held_out": ([], [])}
    for label, wnid in enumerate(classes):
        folder = train_dir / wnid
        names = _image_names(folder)
        if not names:
            raise DatasetNotFoundError(
                f"class folder {folder} holds no images (.JPEG/.jpg/.jpeg/.png): {IMAGENET_HINT}"
            )
        for position, name in enumerate(names):
            half = "held_out" if position % HELD_OUT_EVERY == 0 else "train"
            parts[half][0].append(str(folder / name))
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
