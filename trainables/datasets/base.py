"""Types shared by the dataset readers: an image split, a search dataset, the not-found error."""

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
class SearchDataset:
    """Both halves of a search dataset plus what augmentation needs to know about them.

    Attributes:
        name: registry name (one of :data:`DATASET_NAMES`).
        train: the pool the weights train on (also α's pool for ``arch_data='same'`` and
            single-level search).
        held_out: α batches for bi-level ``'split'``; supernet validation accuracy for every level.
        num_classes: number of classes; labels lie in [0, num_classes).
        mean, std: per-channel statistics in [0, 1] pixel units (pixel / 255), for normalising.
        crop_padding: zero padding in pixels for the random crop (4 at 32x32, 2 at 16x16).
    """

    name: str
    train: ImageSplit
    held_out: ImageSplit
    num_classes: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    crop_padding: int

    def __post_init__(self) -> None:
        for half_name, half in (("train", self.train), ("held_out", self.held_out)):
            labels = half.labels
            if labels.numel() and (labels.min() < 0 or labels.max() >= self.num_classes):
                raise ValueError(
                    f"{self.name}: {half_name} labels must lie in [0, {self.num_classes}); got "
                    f"[{int(labels.min())}, {int(labels.max())}]"
                )
        if any(s <= 0 for s in self.std):
            raise ValueError(f"{self.name}: std must be positive per channel; got {self.std}")
