"""Types shared by the dataset readers: image splits (in memory or file-backed), a search dataset,
an evaluation dataset, the not-found error."""

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


def check_halves(
    name: str,
    halves: dict[str, ImageSplit | FileSplit],
    num_classes: int,
    std: tuple[float, float, float],
) -> None:
    """``ValueError`` naming the problem unless every half's labels lie in [0, num_classes),
    the halves are of one kind (in memory or file-backed) and ``std`` is positive."""
    for half_name, half in halves.items():
        labels = half.labels
        if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(
                f"{name}: {half_name} labels must lie in [0, {num_classes}); got "
                f"[{int(labels.min())}, {int(labels.max())}]"
            )
    kinds = {type(half).__name__ for half in halves.values()}
    if len(kinds) > 1:
        named = " and ".join(halves)
        raise ValueError(
            f"{name}: {named} must both be ImageSplit or both FileSplit; got "
            f"{' and '.join(type(h).__name__ for h in halves.values())}"
        )
    if any(s <= 0 for s in std):
        raise ValueError(f"{name}: std must be positive per channel; got {std}")


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
        check_halves(self.name, {"train": self.train, "held_out": self.held_out},
                     self.num_classes, self.std)


@dataclass(frozen=True)
class EvaluationDataset:
    """The data a DARTS genotype is trained on from scratch and then tested on (never searched on).

    Attributes:
        name: registry name (one of :data:`EVAL_DATASET_NAMES`).
        train: the whole training set the network trains on.
        test: the separate test set the trained network is scored on; a search never reads it.
        num_classes: number of classes; labels lie in [0, num_classes).
        mean, std: per-channel statistics in [0, 1] pixel units (pixel / 255), for normalising.
        crop_padding: zero padding in pixels for the random crop (4 at 32x32); unused by
            file-backed splits, which use a random resized crop (0 by convention).
        input_size: side in pixels of the square images the network sees (32, or 224 for
            ImageNet-1k); in-memory splits hold images of exactly that side, file-backed ones are
            cropped and resized to it.
    Both halves are of one kind: in-memory :class:`ImageSplit` or file-backed :class:`FileSplit`.
    """

    name: str
    train: ImageSplit | FileSplit
    test: ImageSplit | FileSplit
    num_classes: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    crop_padding: int
    input_size: int

    def __post_init__(self) -> None:
        halves = {"train": self.train, "test": self.test}
        check_halves(self.name, halves, self.num_classes, self.std)
        for half_name, half in halves.items():
            if isinstance(half, ImageSplit) and tuple(half.images.shape[2:]) != (
                self.input_size,
                self.input_size,
            ):
                raise ValueError(
                    f"{self.name}: {half_name} images must be {self.input_size}x{self.input_size} "
                    f"(input_size); got {tuple(half.images.shape[2:])}"
                )
        if self.input_size <= 0 or self.crop_padding < 0:
            raise ValueError(
                f"{self.name}: input_size must be positive and crop_padding non-negative; got "
                f"{self.input_size} and {self.crop_padding}"
            )
