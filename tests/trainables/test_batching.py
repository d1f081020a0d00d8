"""Tests for trainables.batching: device-resident batches, vectorised crop + flip, normalisation.

References are computed per image with explicit loops, reproducing the generator draws in the
documented order (offsets y, offsets x, flips).
"""

from __future__ import annotations

import pytest
import torch

from trainables.batching import DeviceSplit
from trainables.datasets import ImageSplit

MEAN = (0.49, 0.48, 0.45)
STD = (0.25, 0.24, 0.26)


def _random_split(n: int, height: int, width: int, seed: int = 0) -> ImageSplit:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, height, width), generator=g, dtype=torch.uint8)
    return ImageSplit(images, torch.randint(0, 10, (n,), generator=g))


def _normalise_reference(image: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(MEAN, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(STD, dtype=torch.float32).view(3, 1, 1)
    return (image.float() / 255 - mean) / std


def _loop_reference(
    split: ImageSplit, idx: torch.Tensor, padding: int, generator: torch.Generator
) -> torch.Tensor:
    """Per-image crop + flip + normalise, drawing from a copy of the generator as documented."""
    g = torch.Generator()
    g.set_state(generator.get_state())
    n = len(idx)
    offsets_y = torch.randint(0, 2 * padding + 1, (n,), generator=g)
    offsets_x = torch.randint(0, 2 * padding + 1, (n,), generator=g)
    flips = torch.randint(0, 2, (n,), generator=g)
    _, _, height, width = split.images.shape
    out = []
    for b, i in enumerate(idx.tolist()):
        padded = torch.zeros(3, height + 2 * padding, width + 2 * padding, dtype=torch.uint8)
        padded[:, padding : padding + height, padding : padding + width] = split.images[i]
        oy, ox = int(offsets_y[b]), int(offsets_x[b])
        crop = padded[:, oy : oy + height, ox : ox + width]
        if flips[b]:
            crop = crop.flip(-1)
        out.append(_normalise_reference(crop))
    return torch.stack(out)


def test_train_batch_dtype_shape_device() -> None:
    split = _random_split(20, 16, 16)
    ds = DeviceSplit(split, MEAN, STD, 2, "cpu")
    x, y = ds.train_batch(torch.tensor([3, 1, 3, 19]), torch.Generator().manual_seed(0))
    assert x.dtype == torch.float32 and x.shape == (4, 3, 16, 16) and x.device.type == "cpu"
    assert y.dtype == torch.int64 and torch.equal(y, split.labels[[3, 1, 3, 19]])
    assert ds.images.dtype == torch.uint8 and len(ds) == 20


def test_normalisation_exact_without_padding_on_flip_symmetric_images() -> None:
    half = _random_split(6, 8, 4).images
    symmetric = ImageSplit(torch.cat([half, half.flip(-1)], dim=-1), torch.arange(6))
    ds = DeviceSplit(symmetric, MEAN, STD, 0, "cpu")
    idx = torch.tensor([5, 0, 2])
    x, _ = ds.train_batch(idx, torch.Generator().manual_seed(3))
    expected = torch.stack([_normalise_reference(symmetric.images[i]) for i in idx.tolist()])
    assert torch.equal(x, expected)


@pytest.mark.parametrize(("padding", "height", "width"), [(4, 32, 32), (2, 12, 9), (0, 5, 7)])
def test_crop_and_flip_match_per_image_loop(padding: int, height: int, width: int) -> None:
    split = _random_split(30, height, width, seed=padding)
    ds = DeviceSplit(split, MEAN, STD, padding, "cpu")
    generator = torch.Generator().manual_seed(11)
    idx = torch.randint(0, 30, (64,), generator=torch.Generator().manual_seed(1))
    expected = _loop_reference(split, idx, padding, generator)
    x, _ = ds.train_batch(idx, generator)
    torch.testing.assert_close(x, expected, rtol=0, atol=0)


def test_generator_advances_by_exactly_the_documented_draws() -> None:
    ds = DeviceSplit(_random_split(10, 8, 8), MEAN, STD, 3, "cpu")
    generator, reference = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    ds.train_batch(torch.arange(10), generator)
    torch.randint(0, 7, (10,), generator=reference)
    torch.randint(0, 7, (10,), generator=reference)
    torch.randint(0, 2, (10,), generator=reference)
    assert torch.equal(generator.get_state(), reference.get_state())


def test_crop_offsets_span_zero_to_twice_padding_with_zero_fill() -> None:
    padding, side = 2, 8
    white = ImageSplit(
        torch.full((1, 3, side, side), 255, dtype=torch.uint8), torch.zeros(1).long()
    )
    ds = DeviceSplit(white, MEAN, STD, padding, "cpu")
    x, _ = ds.train_batch(torch.zeros(400, dtype=torch.int64), torch.Generator().manual_seed(0))
    filled = x[:, 0] > 0  # padding is 0 before normalisation, i.e. negative after it
    pad_value = (0 - MEAN[0]) / STD[0]
    assert torch.allclose(x[:, 0][~filled], torch.tensor(pad_value))
    rows_in = filled.any(dim=2)  # (B, H): rows holding image pixels
    top = rows_in.long().argmax(1)  # zero rows above the image = padding - offset_y if positive
    bottom = rows_in.flip(1).long().argmax(1)  # zero rows below = offset_y - padding if positive
    offsets_y = padding - top + bottom
    assert set(offsets_y.tolist()) == set(range(2 * padding + 1))
    assert torch.equal(rows_in.sum(1), side - (offsets_y - padding).abs())


def test_flip_happens_for_about_half_the_images() -> None:
    ramp = (torch.arange(8, dtype=torch.uint8) * 30).expand(1, 3, 8, 8).contiguous()
    ds = DeviceSplit(ImageSplit(ramp, torch.zeros(1).long()), MEAN, STD, 0, "cpu")
    x, _ = ds.train_batch(torch.zeros(4000, dtype=torch.int64), torch.Generator().manual_seed(7))
    flipped = x[:, 0, 0, 0] > x[:, 0, 0, -1]
    assert torch.equal(x[flipped], x[flipped][:1].expand(int(flipped.sum()), -1, -1, -1))
    assert 0.46 < flipped.float().mean() < 0.54


def test_same_generator_state_gives_identical_batches() -> None:
    ds = DeviceSplit(_random_split(50, 16, 16), MEAN, STD, 2, "cpu")
    idx = torch.arange(0, 50, 3)
    first, _ = ds.train_batch(idx, torch.Generator().manual_seed(42))
    second, _ = ds.train_batch(idx, torch.Generator().manual_seed(42))
    other, _ = ds.train_batch(idx, torch.Generator().manual_seed(43))
    assert torch.equal(first, second)
    assert not torch.equal(first, other)


def test_eval_batches_cover_every_image_once_in_order() -> None:
    split = _random_split(23, 6, 6)
    ds = DeviceSplit(split, MEAN, STD, 2, "cpu")
    batches = list(ds.eval_batches(5))
    assert [len(y) for _, y in batches] == [5, 5, 5, 5, 3]
    images = torch.cat([x for x, _ in batches])
    assert torch.equal(torch.cat([y for _, y in batches]), split.labels)
    expected = torch.stack([_normalise_reference(img) for img in split.images])
    assert torch.equal(images, expected)


def test_invalid_arguments_raise_with_reason() -> None:
    split = _random_split(4, 4, 4)
    with pytest.raises(ValueError, match="crop_padding"):
        DeviceSplit(split, MEAN, STD, -1, "cpu")
    with pytest.raises(ValueError, match="std"):
        DeviceSplit(split, MEAN, (0.2, 0.0, 0.2), 1, "cpu")
    with pytest.raises(ValueError, match="3 per-channel"):
        DeviceSplit(split, (0.5, 0.5), STD, 1, "cpu")
    ds = DeviceSplit(split, MEAN, STD, 1, "cpu")
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        ds.train_batch(torch.tensor([0, 4]), torch.Generator())
    with pytest.raises(ValueError, match="int64"):
        ds.train_batch(torch.tensor([0.0]), torch.Generator())
    with pytest.raises(ValueError, match="batch_size"):
        next(ds.eval_batches(0))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_batches_equal_cpu_batches() -> None:
    split = _random_split(200, 32, 32)
    cpu = DeviceSplit(split, MEAN, STD, 4, "cpu")
    gpu = DeviceSplit(split, MEAN, STD, 4, "cuda")
    assert gpu.images.device.type == "cuda" and gpu.images.dtype == torch.uint8
    idx = torch.randint(0, 200, (128,), generator=torch.Generator().manual_seed(0))
    x_cpu, y_cpu = cpu.train_batch(idx, torch.Generator().manual_seed(9))
    x_gpu, y_gpu = gpu.train_batch(idx, torch.Generator().manual_seed(9))
    assert x_gpu.device.type == "cuda"
    assert torch.equal(x_gpu.cpu(), x_cpu) and torch.equal(y_gpu.cpu(), y_cpu)
    evals = zip(cpu.eval_batches(64), gpu.eval_batches(64), strict=True)
    assert all(torch.equal(a.cpu(), b) for (b, _), (a, _) in evals)
