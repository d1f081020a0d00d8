"""Types shared by the dataset readers: image splits (in memory or file-backed), a search dataset,
the not-found error."""

from __future__ import annotations

from dataclasses import dataclass

import torch


class DatasetNotFoundError(FileNotFoundError):
    """A dataset folder or file is missing; the message names the path and what to download."""


@dataclass(frozen=True)
class ImageSplit:
    """A set of images with labels, kept on the CPU as uint8 to save memory (1 byte per pixel).

    Attributes:
        images: uint8, shape (N, 3, H, W), contiguous, pixel values 0..255.
        labels: int64, shape (N,), class indices in [0, num_classes).
    """

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        images, labels = self.images, self.labels
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(
                f"ImageSplit.images must be uint8 of shape (N, 3, H, W); got {images.dtype} "
                f"{tuple(images.shape)}"
            )
        if labels.dtype != torch.int64 or labels.shape != (images.shape[0],):
            raise ValueError(
                f"ImageSplit.labels must be int64 of shape ({images.shape[0]},) to match the "
                f"images; got {labels.dtype} {tuple(labels.shape)}"
            )

    def __len__(self) -> int:
        return int(self.images.shape[0])


@dataclass(frozen=True)
class FileSplit:
    """A set of image files with labels, decoded only when a batch needs them (ImageNet-1k).

    For datasets too large to hold in memory as uint8 tensors; :mod:`trainables.streaming` reads
    and augments the files batch by batch.

    Attributes:
        paths: image file paths (JPEG or PNG), one per image, in split order.
        labels: int64, shape (N,), class indices in [0, num_classes); ``labels[i]`` belongs to
            ``paths[i]``.
    """

    paths: tuple[str, ...]
    labels: torch.Tensor

    def __post_init__(self) -> None:
        paths, labels = self.paths, self.labels
        if not isinstance(paths, tuple) or not all(isinstance(p, str) for p in paths):
            raise ValueError(
                f"FileSplit.paths must be a tuple of str file paths; got {type(paths).__name__}"
            )
        if labels.dtype != torch.int64 or labels.shape != (len(paths),):
            raise ValueError(
                f"FileSplit.labels must be int64 of shape ({len(paths)},) to match the paths; "
                f"got {labels.dtype} {tuple(labels.shape)}"
            )

    def __len__(self) -> int:
        return len(self.paths)


@dataclass(frozen=True)
class SearchDataset:
    """Both halves of a search dataset plus what augmentation needs to know about them.

    Attributes:
        name: registry name (one of :data:`DATASET_NAMES`).
        train: the pool the weights train on (also α's pool for ``arch_data='same'`` and
            single-level search).
        held_out: α batches for bi-level ``'split'``; supernet validation accuracy for every level.
        num_classes: number of classes; labels lie in [0, num_classes).
        mean, std: per-channel statistics in [0, 1] pixel units (pixel / 255), for normalising.
        crop_padding: zero padding in pixels for the random crop (4 at 32x32, 2 at 16x16); unused
            by file-backed splits, which use a random resized crop (0 by convention).
        held_out_from_train: True when ``held_out`` is carved out of the training set, so that
            ``train`` + ``held_out`` is the whole training set (CIFAR-10, ImageNet-1k, digits,
            synthetic); False when it comes from the test set and ``train`` already is the whole
            training set (CIFAR-100, ImageNet16-120). Used by ``train_pool='full'``
            (:mod:`trainables.subsets`).
    Both halves are of one kind: in-memory :class:`ImageSplit` or file-backed :class:`FileSplit`.
    """

    name: str
    train: ImageSplit | FileSplit
    held_out: ImageSplit | FileSplit
    num_classes: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    crop_padding: int
    held_out_from_train: bool = True

    def __post_init__(self) -> None:
        for half_name, half in (("train", self.train), ("held_out", self.held_out)):
            labels = half.labels
            if labels.numel() and (labels.min() < 0 or labels.max() >= self.num_classes):
                raise ValueError(
                    f"{self.name}: {half_name} labels must lie in [0, {self.num_classes}); got "
                    f"[{int(labels.min())}, {int(labels.max())}]"
                )
        if type(self.train) is not type(self.held_out):
            raise ValueError(
                f"{self.name}: train and held_out must both be ImageSplit or both FileSplit; got "
                f"{type(self.train).__name__} and {type(self.held_out).__name__}"
            )
        if any(s <= 0 for s in self.std):
            raise ValueError(f"{self.name}: std must be positive per channel; got {self.std}")
