"""Offline datasets: ``digits`` (real handwritten digits shipped inside scikit-learn), ``synthetic`` (tests).

Their evaluation datasets reuse the search split: train = the search's ``train`` half, test = its
``held_out`` half (disjoint images), as neither has a separate official test set.
"""

from __future__ import annotations

import os

import torch

from trainables.datasets.base import EvaluationDataset, ImageSplit, SearchDataset

# ---------------------------------------------------------------------------------------------


def _stratified_halves(
    labels: torch.Tensor, num_classes: int, seed: int
) -> tuple[torch.Tensor, ...]:
    """Split indices into two halves holding every class (train gets the extra one if odd).

    A torch.Generator seeded ``seed`` permutes all indices once; each class's members, in that
    order, go first to train (ceil(n/2)) then to held_out. Both halves are returned sorted, so the
    images keep the source order.
    """
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    train_parts, held_parts = [], []
    for c in range(num_classes):
        members = perm[labels[perm] == c]
        n_train = (len(members) + 1) // 2
        train_parts.append(members[:n_train])
        held_parts.append(members[n_train:])
    return torch.cat(train_parts).sort().values, torch.cat(held_parts).sort().values


def _channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and population std of uint8 images, in [0, 1] pixel units."""
    x = images.to(torch.float64) / 255
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3), correction=0)
    return tuple(mean.tolist()), tuple(std.tolist())


def load_digits(
    data_dir: str | os.PathLike[str] | None = None,
    splits_dir: str | os.PathLike[str] | None = None,
) -> SearchDataset:
    """The offline real dataset: scikit-learn's 1,797 8x8 handwritten digits as 32x32 RGB.

    Pixels 0..16 are scaled to 0..255, upsampled bilinearly (on the float image) to 32x32, rounded
    and clamped to uint8, and replicated to 3 channels, so the CIFAR-sized supernets run unchanged.
    The split is deterministic and stratified (seed 0; see :func:`_stratified_halves`): 901 train,
    896 held_out, every class in both. mean/std are computed on the train half (all three channels
    equal). No download: the data ships inside scikit-learn. ``data_dir`` and ``splits_dir`` are
    accepted for a uniform loader signature and ignored.
    """
    from sklearn.datasets import load_digits as sklearn_load_digits

    raw = sklearn_load_digits()
    small = torch.as_tensor(raw.images, dtype=torch.float32).unsqueeze(1) * (255.0 / 16.0)
    big = torch.nn.functional.interpolate(
        small, size=(32, 32), mode="bilinear", align_corners=False
    )
    gray = big.round().clamp(0, 255).to(torch.uint8)
    images = gray.expand(-1, 3, -1, -1).contiguous()
    labels = torch.as_tensor(raw.target, dtype=torch.int64)
    train_idx, held_idx = _stratified_halves(labels, 10, seed=0)
    train = ImageSplit(images[train_idx].contiguous(), labels[train_idx].contiguous())
    mean, std = _channel_stats(train.images)
    return SearchDataset(
        name="digits",
        train=train,
        held_out=ImageSplit(images[held_idx].contiguous(), labels[held_idx].contiguous()),
        num_classes=10,
        mean=(mean[0], mean[1], mean[2]),
        std=(std[0], std[1], std[2]),
        crop_padding=4,
    )


def _synthetic_prototypes(num_classes: int, side: int) -> torch.Tensor:
    """One float image (3, side, side) per class, pixel units 0..255: a colour plus stripes.

    Class c has a colour on a hue wheel (angle 2πc/num_classes) and sinusoidal stripes of amplitude
    40 whose period (4..12 px) and orientation (horizontal for the first half of the classes,
    vertical for the rest) depend on c. The colour survives crops and flips, so a tiny network
    learns it in a few dozen steps.
    """
    c = torch.arange(num_classes, dtype=torch.float32)[:, None]
    phase = 2 * torch.pi * torch.arange(3, dtype=torch.float32)[None, :] / 3
    colour = 128 + 80 * torch.cos(2 * torch.pi * c / num_classes - phase)  # (classes, 3)
    coord = torch.arange(side, dtype=torch.float32)
    period = 4 + 2 * (torch.arange(num_classes) % 5).float()
    wave = 40 * torch.sin(2 * torch.pi * coord[None, :] / period[:, None])  # (classes, side)
    horizontal = (torch.arange(num_classes) < num_classes // 2)[:, None, None]
    stripes = torch.where(
        horizontal, wave[:, :, None].expand(-1, side, side), wave[:, None, :].expand(-1, side, side)
    )
    return colour[:, :, None, None] + stripes[:, None, :, :]


def _synthetic_split(n: int, prototypes: torch.Tensor, generator: torch.Generator) -> ImageSplit:
    """``n`` class-balanced images: prototype of the label plus Gaussian noise (std 20 px)."""
    num_classes = prototypes.shape[0]
    labels = (torch.arange(n) % num_classes)[torch.randperm(n, generator=generator)]
    noise = 20 * torch.randn((n, *prototypes.shape[1:]), generator=generator)
    images = (prototypes[labels] + noise).round().clamp(0, 255).to(torch.uint8)
    return ImageSplit(images.contiguous(), labels.to(torch.int64))


def load_synthetic(
    data_dir: str | os.PathLike[str] | None = None,
    splits_dir: str | os.PathLike[str] | None = None,
) -> SearchDataset:
    """Deterministic synthetic 32x32 RGB images for tests: 10 classes, 640 train / 320 held_out.

    Drawn from a CPU generator seeded 0, so every call returns identical tensors. mean/std are the
    nominal 0.5 / 0.25. ``data_dir`` and ``splits_dir`` are accepted for a uniform loader signature
    and ignored.
    """
    generator = torch.Generator().manual_seed(0)
    prototypes = _synthetic_prototypes(10, 32)
    return SearchDataset(
        name="synthetic",
        train=_synthetic_split(640, prototypes, generator),
        held_out=_synthetic_split(320, prototypes, generator),
        num_classes=10,
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.25, 0.25),
        crop_padding=4,
    )


# ---------------------------------------------------------------------------------------------
# Evaluation data: the search's train half to train on, its held_out half to test on
# ---------------------------------------------------------------------------------------------

OFFLINE_INPUT_SIZE = 32  # both offline datasets are 32x32 RGB


def _evaluation_from_search(search: SearchDataset) -> EvaluationDataset:
    """``search`` as an evaluation dataset: train = its train half, test = its held_out half."""
    return EvaluationDataset(
        name=search.name,
        train=search.train,
        test=search.held_out,
        num_classes=search.num_classes,
        mean=search.mean,
        std=search.std,
        crop_padding=search.crop_padding,
        input_size=OFFLINE_INPUT_SIZE,
    )


def load_digits_evaluation(data_dir: str | os.PathLike[str] | None = None) -> EvaluationDataset:
    """``digits`` for evaluating a genotype: train 901 images, test the disjoint 896 held out.

    The halves, mean/std and padding are those of :func:`load_digits`; ``data_dir`` is ignored.
    """
    del data_dir
    return _evaluation_from_search(load_digits())


def load_synthetic_evaluation(
    data_dir: str | os.PathLike[str] | None = None,
) -> EvaluationDataset:
    """``synthetic`` for evaluating a genotype: train 640 images, test the separate 320.

    The halves, mean/std and padding are those of :func:`load_synthetic`; ``data_dir`` is ignored.
    """
    del data_dir
    return _evaluation_from_search(load_synthetic())


# ---------------------------------------------------------------------------------------------
# Registry
