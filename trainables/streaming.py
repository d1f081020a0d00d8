"""Streaming batches from image files (ImageNet-1k), with the same interface as ``DeviceSplit``.

Why: every other dataset lives on the device as one uint8 tensor (:mod:`trainables.batching`).
ImageNet-1k's 1.28M JPEGs do not fit, so :class:`StreamingSplit` decodes the images of each batch
from disk when the search loop asks for it: ``len(split)``, ``train_batch(idx, generator)`` and
``eval_batches(batch_size)`` behave as in :class:`~trainables.batching.DeviceSplit`.

Augmentation (torchvision's ImageNet recipe, on PIL images, output 224x224):
  * train: RandomResizedCrop(224, scale=(0.08, 1), ratio=(3/4, 4/3)), bilinear, then horizontal
    flip with p = 0.5;
  * eval: resize the shorter side to 256 (bilinear), centre crop 224.
Both end with ``(pixel / 255 - mean) / std`` on the device (:func:`~trainables.batching.normalise`).

Randomness: as in ``DeviceSplit``, only from the caller's CPU ``torch.Generator``, drawn per batch
in this fixed order before any file is read (:func:`draw_resized_crops`): areas (B, 10), log
aspect ratios (B, 10), vertical positions (B,), horizontal positions (B,), flips (B,). Image b
tries its 10 (area, ratio) pairs in order, as torchvision's 10 attempts, and takes the first box
that fits inside the image, placed at ``floor(u * (room + 1))`` pixels for its position uniform u;
if none fits it takes torchvision's fallback, the largest centred box with a ratio in range. So a
batch depends only on the generator state, the indices and the files, not on thread timing, and
it is reproducible after a checkpoint restore.

Decoding: PIL (``convert('RGB')`` handles greyscale, CMYK and palette files; ImageNet has a few)
in a ``ThreadPoolExecutor`` of ``workers`` threads (default ``torch.get_num_threads()``, the
trial's CPUs; a pool per batch, so no thread outlives a call) — PIL releases the GIL while
decoding and resizing. Crops are cut, then resized,
pixel for pixel as torchvision's PIL transforms do, into one uint8 (B, 224, 224, 3) buffer,
pinned when the device is CUDA and copied with ``non_blocking=True``; channels are moved first
and the batch normalised on the device. An unreadable or corrupt file raises
``ValueError`` naming it (a vanished one, ``DatasetNotFoundError``).

Cost model: decoding a synthetic ImageNet-sized JPEG (500x375 px, ~100 KB) and cutting its 224
crop took 2.6 ms of one core of this project's CPU machine (3.0 ms for the eval resize), so a
batch of 360 costs ~1 core-second: ~0.12 s with 8 threads, ~7 min per 3,470-step epoch, if the
disk keeps up (a network file
system may not: 360 files of ~110 KB per step). There is no prefetching: the next batch is not
decoded while the device runs the current step, so this time adds to every step. A background
prefetch (decode batch k+1 during step k) would hide it and is left for later. Evaluation decodes
the whole held-out split (~32.5k images, ~1.5 core-minutes) once per epoch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image

from trainables.batching import DeviceSplit, channel_stats, check_indices, normalise
from trainables.datasets import DatasetNotFoundError, FileSplit, ImageSplit

__all__ = [
    "CropDraw",
    "StreamingSplit",
    "crop_box",
    "decode_rgb",
    "draw_resized_crops",
    "eval_box",
    "make_split",
]

CROP_SIZE = 224
EVAL_RESIZE = 256
CROP_SCALE = (0.08, 1.0)
CROP_RATIO = (3 / 4, 4 / 3)
CROP_ATTEMPTS = 10  # as torchvision's RandomResizedCrop

Box = tuple[int, int, int, int]  # left, top, right, bottom in pixels of the decoded image


class CropDraw(NamedTuple):
    """Random draws of one batch (all CPU tensors, B images).

    scale: float32 (B, 10), area fractions in [0.08, 1); log_ratio: float32 (B, 10), log aspect
    ratios (width / height) in [log 3/4, log 4/3); pos_y, pos_x: float32 (B,) in [0, 1); flips:
    bool (B,), True = mirror left-right.
    """

    scale: torch.Tensor
    log_ratio: torch.Tensor
    pos_y: torch.Tensor
    pos_x: torch.Tensor
    flips: torch.Tensor


def draw_resized_crops(batch_size: int, generator: torch.Generator) -> CropDraw:
    """Draw one batch's crop parameters from the CPU ``generator`` in the documented order:
    ``torch.rand`` of (B, 10) for the areas, (B, 10) for the log ratios, (B,) for the vertical
    and (B,) for the horizontal positions, then ``torch.randint(0, 2, (B,))`` for the flips."""
    if generator.device.type != "cpu":
        raise ValueError(
            f"the augmentation generator must be a CPU torch.Generator (got one on "
            f"{generator.device}); create it with torch.Generator() so batches match on any device"
        )
    shape = (batch_size, CROP_ATTEMPTS)
    lo, hi = CROP_SCALE
    scale = lo + (hi - lo) * torch.rand(shape, generator=generator)
    log_lo, log_hi = math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1])
    log_ratio = log_lo + (log_hi - log_lo) * torch.rand(shape, generator=generator)
    pos_y = torch.rand(batch_size, generator=generator)
    pos_x = torch.rand(batch_size, generator=generator)
    flips = torch.randint(0, 2, (batch_size,), generator=generator).bool()
    return CropDraw(scale, log_ratio, pos_y, pos_x, flips)


def crop_box(
    width: int,
    height: int,
    scales: Sequence[float],
    log_ratios: Sequence[float],
    pos_y: float,
    pos_x: float,
) -> Box:
    """RandomResizedCrop's box in a ``width`` x ``height`` image from one image's draws.

    The first (area, ratio) attempt whose box fits is placed at ``floor(pos * (room + 1))``;
    without one, the largest centred box whose aspect ratio is clamped to [3/4, 4/3].
    """
    area = width * height
    for scale, log_ratio in zip(scales, log_ratios, strict=True):
        ratio = math.exp(log_ratio)
        w = round(math.sqrt(area * scale * ratio))
        h = round(math.sqrt(area * scale / ratio))
        if 0 < w <= width and 0 < h <= height:
            top = min(int(pos_y * (height - h + 1)), height - h)
            left = min(int(pos_x * (width - w + 1)), width - w)
            return left, top, left + w, top + h
    in_ratio = width / height
    if in_ratio < CROP_RATIO[0]:
        w, h = width, round(width / CROP_RATIO[0])
    elif in_ratio > CROP_RATIO[1]:
        w, h = round(height * CROP_RATIO[1]), height
    else:
        w, h = width, height
    top, left = (height - h) // 2, (width - w) // 2
    return left, top, left + w, top + h


def eval_box(width: int, height: int) -> tuple[tuple[int, int], Box]:
    """Size after resizing the shorter side to 256 (torchvision's rounding), and the centred
    224 box in that resized image."""
    if width <= height:
        size = (EVAL_RESIZE, int(EVAL_RESIZE * height / width))
    else:
        size = (int(EVAL_RESIZE * width / height), EVAL_RESIZE)
    top = round((size[1] - CROP_SIZE) / 2.0)
    left = round((size[0] - CROP_SIZE) / 2.0)
    return size, (left, top, left + CROP_SIZE, top + CROP_SIZE)


def decode_rgb(path: str) -> Image.Image:
    """The image at ``path`` as an 8-bit RGB PIL image; errors name the file."""
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except FileNotFoundError as err:
        raise DatasetNotFoundError(
            f"image file {path} does not exist (any more); the dataset folder changed after it "
            "was listed: restore the file or restart the search"
        ) from err
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise ValueError(
            f"cannot decode image file {path}: {err}; the file is corrupt or not an image: "
            "re-extract it from the dataset archive, or delete it"
        ) from err


class StreamingSplit:
    """A :class:`FileSplit` read from disk batch by batch, with ImageNet augmentation.

    Args:
        split: image paths and int64 labels.
        mean, std: per-channel normalisation in [0, 1] pixel units (``SearchDataset.mean/std``).
        device: where batches are delivered (decoding is on the CPU).
        workers: decoding threads; None = ``torch.get_num_threads()`` at construction.
    """

    def __init__(
        self,
        split: FileSplit,
        mean: Sequence[float],
        std: Sequence[float],
        device: torch.device | str,
        workers: int | None = None,
    ) -> None:
        workers = torch.get_num_threads() if workers is None else workers
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be an int >= 1 (decoding threads); got {workers!r}")
        self.device = torch.device(device)
        self.workers = workers
        self.mean, self.std = channel_stats(mean, std, self.device)
        self.paths = split.paths
        self.labels = split.labels

    def __len__(self) -> int:
        return len(self.paths)

    def _check_indices(self, idx: torch.Tensor) -> list[int]:
        check_indices(idx, len(self))
        return [int(i) for i in idx.tolist()]

    def train_batch(
        self, idx: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Augmented, normalised batch of the images at CPU int64 ``idx``: float32
        (B, 3, 224, 224) and int64 labels (B,), on the device. Draws from ``generator`` as
        :func:`draw_resized_crops` documents."""
        positions = self._check_indices(idx)
        draw = draw_resized_crops(len(positions), generator)
        scales, log_ratios = draw.scale.tolist(), draw.log_ratio.tolist()
        pos_y, pos_x, flips = draw.pos_y.tolist(), draw.pos_x.tolist(), draw.flips.tolist()

        def crop(b: int, img: Image.Image) -> Image.Image:
            box = crop_box(*img.size, scales[b], log_ratios[b], pos_y[b], pos_x[b])
            out = img.crop(box).resize((CROP_SIZE, CROP_SIZE), Image.Resampling.BILINEAR)
            return out.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if flips[b] else out

        return self._batch(positions, crop), self.labels[idx].to(self.device)

    def eval_batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """All images in order: shorter side to 256, centre 224 crop, normalised; the last batch
        may be smaller. Yields float32 (b, 3, 224, 224) and int64 labels (b,) on the device."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1; got {batch_size!r}")

        def centre(b: int, img: Image.Image) -> Image.Image:
            size, box = eval_box(*img.size)
            return img.resize(size, Image.Resampling.BILINEAR).crop(box)

        for start in range(0, len(self), batch_size):
            stop = min(start + batch_size, len(self))
            images = self._batch(list(range(start, stop)), centre)
            yield images, self.labels[start:stop].to(self.device)

    def _batch(
        self, positions: list[int], transform: Callable[[int, Image.Image], Image.Image]
    ) -> torch.Tensor:
        """Decode ``paths[positions]``, apply ``transform(b, image)`` (-> 224x224 RGB) in the
        thread pool, and return the normalised float32 (B, 3, 224, 224) batch on the device."""
        pin = self.device.type == "cuda"
        buffer = torch.empty(
            (len(positions), CROP_SIZE, CROP_SIZE, 3), dtype=torch.uint8, pin_memory=pin
        )

        def load(b: int) -> None:
            img = transform(b, decode_rgb(self.paths[positions[b]]))
            buffer[b].numpy()[...] = np.asarray(img)  # (224, 224, 3) uint8

        if self.workers == 1 or len(positions) <= 1:
            for b in range(len(positions)):
                load(b)
        else:
            with ThreadPoolExecutor(min(self.workers, len(positions))) as pool:
                list(pool.map(load, range(len(positions))))  # re-raises the first error
        images = buffer.to(self.device, non_blocking=pin).permute(0, 3, 1, 2).contiguous()
        return normalise(images, self.mean, self.std)


def make_split(
    split: ImageSplit | FileSplit,
    mean: Sequence[float],
    std: Sequence[float],
    crop_padding: int,
    device: torch.device | str,
) -> DeviceSplit | StreamingSplit:
    """The batch source for ``split``: device-resident :class:`DeviceSplit` for an in-memory
    :class:`ImageSplit`, :class:`StreamingSplit` for a file-backed :class:`FileSplit` (which
    ignores ``crop_padding``: it uses a random resized crop)."""
    if isinstance(split, FileSplit):
        return StreamingSplit(split, mean, std, device)
    if isinstance(split, ImageSplit):
        return DeviceSplit(split, mean, std, crop_padding, device)
    raise TypeError(f"split must be an ImageSplit or a FileSplit; got {type(split).__name__}")
