"""Device-resident batching with vectorised augmentation (random crop with zero padding + flip).

A search step needs one or two small batches; on a GPU a DataLoader with per-image PIL transforms
is the bottleneck for NAS-Bench-201-sized supernets. :class:`DeviceSplit` therefore copies a whole
:class:`~trainables.datasets.ImageSplit` to the device once as uint8 (1 byte per pixel: 150 MB for
50k CIFAR images) and builds each augmented batch with a handful of tensor ops. Only the selected
batch is converted to float32.

Randomness comes only from a CPU ``torch.Generator`` passed in by the caller, drawn as small CPU
int tensors and moved to the device afterwards, so a batch depends only on the generator state and
the indices: bit-identical on CPU and GPU, and reproducible after a checkpoint restore.

Normalisation is a table lookup: a uint8 pixel has 256 values per channel, so the 3 × 256
normalised values are computed once on the CPU (``(v / 255 - mean) / std`` in float32) and every
batch gathers from that table. Arithmetic on the device would not be bit-equal to the CPU's
(CUDA's division by a scalar is a multiplication by its reciprocal, so the last bit differs);
a gather is exact on every device, and one kernel instead of four.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F

from trainables.datasets import ImageSplit

__all__ = [
    "DeviceSplit",
    "channel_stats",
    "check_indices",
    "draw_augmentation",
    "normalisation_table",
    "normalise",
]


def draw_augmentation(
    batch_size: int, crop_padding: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw the random crop offsets and flip flags for one batch, on the CPU.

    The draw order is fixed, and part of the reproducibility contract:
    1. ``offsets_y = torch.randint(0, 2 * crop_padding + 1, (batch_size,), generator=generator)``
    2. ``offsets_x``: the same call again;
    3. ``flips = torch.randint(0, 2, (batch_size,), generator=generator)`` (1 = flip), i.e. p = 0.5.
    All three are drawn even when ``crop_padding`` is 0, so the generator advances the same way for
    every dataset. Offsets are in pixels of the padded image (0..2p), as torchvision's
    ``RandomCrop(size, padding=p)``.

    Returns:
        int64 offsets_y (B,), int64 offsets_x (B,), bool flips (B,), all on the CPU.
    """
    if generator.device.type != "cpu":
        raise ValueError(
            f"the augmentation generator must be a CPU torch.Generator (got one on "
            f"{generator.device}); create it with torch.Generator() so batches match on any device"
        )
    high = 2 * crop_padding + 1
    offsets_y = torch.randint(0, high, (batch_size,), generator=generator)
    offsets_x = torch.randint(0, high, (batch_size,), generator=generator)
    flips = torch.randint(0, 2, (batch_size,), generator=generator).bool()
    return offsets_y, offsets_x, flips


def normalise(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 images (B, 3, H, W) -> float32 ``(pixel / 255 - mean) / std``.

    ``mean`` and ``std`` are float32 tensors of shape (1, 3, 1, 1) in [0, 1] pixel units, on the
    images' device.
    """
    return images.to(torch.float32).div_(255).sub_(mean).div_(std)


def normalisation_table(mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """The (3 · 256,) float32 table of :func:`normalise` over every uint8 value, channel-major:
    entry ``c · 256 + v`` is channel c's normalised value of pixel v. Computed on the CPU, so the
    table (and every batch gathered from it) is the same on every device."""
    values = torch.arange(256, dtype=torch.uint8).view(1, 1, 1, 256).expand(1, 3, 1, 256)
    return normalise(values, mean.cpu(), std.cpu()).reshape(-1)


def _lookup(images: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """uint8 images (B, 3, H, W) -> their normalised float32 values from ``table``."""
    channel_base = torch.arange(0, 3 * 256, 256, device=images.device).view(1, 3, 1, 1)
    return table[images.to(torch.int64) + channel_base]


def _crop_flip_index(
    offsets_y: torch.Tensor, offsets_x: torch.Tensor, flips: torch.Tensor, height: int, width: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Row (B, H) and column (B, W) indices into the padded batch for crop + optional flip.

    Output pixel (y, x) of image b reads padded pixel (offsets_y[b] + y, offsets_x[b] + x), or
    column offsets_x[b] + W - 1 - x when the image is flipped (flip after crop).
    """
    ys = torch.arange(height, device=offsets_y.device)
    xs = torch.arange(width, device=offsets_x.device)
    rows = offsets_y[:, None] + ys[None, :]
    cols_kept = xs.expand(len(flips), width)
    cols = torch.where(flips[:, None], width - 1 - cols_kept, cols_kept) + offsets_x[:, None]
    return rows, cols


def _as_channel_tensor(values: Sequence[float], name: str, device: torch.device) -> torch.Tensor:
    """Three per-channel floats as a float32 (1, 3, 1, 1) tensor on ``device``."""
    t = torch.as_tensor(values, dtype=torch.float32).flatten()
    if t.numel() != 3:
        raise ValueError(f"{name} must hold 3 per-channel values; got {list(values)}")
    return t.view(1, 3, 1, 1).to(device)


def check_indices(idx: torch.Tensor, size: int) -> None:
    """``idx`` must be a 1-D int64 tensor of positions in [0, size) (a split's batch indices)."""
    if idx.dtype != torch.int64 or idx.dim() != 1:
        raise ValueError(
            f"idx must be a 1-D int64 tensor; got {idx.dtype} of shape {tuple(idx.shape)}"
        )
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= size):
        raise ValueError(f"idx must lie in [0, {size}); got [{int(idx.min())}, {int(idx.max())}]")


def channel_stats(
    mean: Sequence[float], std: Sequence[float], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel normalisation statistics as float32 (1, 3, 1, 1) tensors on ``device``, for
    :func:`normalise`; ``std`` must be positive per channel."""
    mean_t = _as_channel_tensor(mean, "mean", device)
    std_t = _as_channel_tensor(std, "std", device)
    if bool((std_t <= 0).any()):
        raise ValueError(f"std must be positive per channel; got {list(std)}")
    return mean_t, std_t


class DeviceSplit:
    """One ImageSplit resident on a device as a single uint8 tensor, with augmentation.

    Args:
        split: the CPU images (uint8, (N, 3, H, W)) and labels (int64, (N,)).
        mean, std: per-channel normalisation in [0, 1] pixel units (``SearchDataset.mean/std``).
        crop_padding: zero padding in pixels for the random crop (``SearchDataset.crop_padding``).
        device: where the images live and batches are built.
    """

    def __init__(
        self,
        split: ImageSplit,
        mean: Sequence[float],
        std: Sequence[float],
        crop_padding: int,
        device: torch.device | str,
    ) -> None:
        if isinstance(crop_padding, bool) or not isinstance(crop_padding, int) or crop_padding < 0:
            raise ValueError(f"crop_padding must be an int >= 0 (pixels); got {crop_padding!r}")
        self.device = torch.device(device)
        self.crop_padding = crop_padding
        self.mean, self.std = channel_stats(mean, std, self.device)
        self.table = normalisation_table(self.mean, self.std).to(self.device)
        self.images = split.images.to(self.device).contiguous()
        self.labels = split.labels.to(self.device)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def _check_indices(self, idx: torch.Tensor) -> torch.Tensor:
        """Validate a 1-D int64 index tensor against the split size and move it to the device."""
        check_indices(idx, len(self))
        return idx.to(self.device)

    def train_batch(
        self, idx: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Augmented, normalised batch of the images at ``idx``.

        idx: CPU int64 indices. Returns float32 images (B, 3, H, W) and int64 labels (B,), on the
        device: random crop of the original size from the image zero-padded by ``crop_padding``
        px in uint8 space (as torchvision's ``RandomCrop(padding=p)``), horizontal flip with
        p = 0.5, then ``(pixel / 255 - mean) / std``. The random draws come from ``generator`` in
        the order documented in :func:`draw_augmentation` (offsets y, offsets x, flips). Crop and
        flip are one advanced-indexing gather over the padded batch; no loop over images.
        """
        dev_idx = self._check_indices(idx)
        offsets_y, offsets_x, flips = draw_augmentation(len(idx), self.crop_padding, generator)
        return self.augment(
            dev_idx, offsets_y.to(self.device), offsets_x.to(self.device), flips.to(self.device)
        )

    def augment(
        self,
        idx: torch.Tensor,
        offsets_y: torch.Tensor,
        offsets_x: torch.Tensor,
        flips: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch of :meth:`train_batch` from already drawn augmentation, all on the device.

        ``idx`` (B,) int64, ``offsets_*`` (B,) int64, ``flips`` (B,) bool or 0/1 ints. No checks
        and no host synchronisation: fit for CUDA-graph capture (the caller validated the
        indices when it drew them).
        """
        height, width = self.images.shape[2], self.images.shape[3]
        rows, cols = _crop_flip_index(offsets_y, offsets_x, flips.bool(), height, width)
        pad = self.crop_padding
        padded = F.pad(self.images.index_select(0, idx), (pad, pad, pad, pad), value=0)
        batch_pos = torch.arange(len(idx), device=self.device)[:, None, None, None]
        channels = torch.arange(padded.shape[1], device=self.device)[None, :, None, None]
        cropped = padded[batch_pos, channels, rows[:, None, :, None], cols[:, None, None, :]]
        return _lookup(cropped, self.table), self.labels.index_select(0, idx)

    def eval_batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """All images in order, no augmentation, normalised; the last batch may be smaller.

        Yields float32 images (b, 3, H, W) and int64 labels (b,) on the device.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1; got {batch_size!r}")
        for start in range(0, len(self), batch_size):
            stop = start + batch_size
            yield _lookup(self.images[start:stop], self.table), self.labels[start:stop]
