"""Tests for trainables.datasets: real file formats, official splits, errors, offline datasets.

Small fake files in the real on-disk formats are written into tmp_path; because the official split
files index 25k/5k/3k images, the loaders get small split files in the official JSON format through
``splits_dir``.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from trainables.datasets import (
    DATASET_NAMES,
    DatasetNotFoundError,
    ImageSplit,
    SearchDataset,
    load_cifar10,
    load_cifar100,
    load_dataset,
    load_digits,
    load_imagenet16_120,
    load_split_file,
    load_synthetic,
    official_splits_dir,
)

# ---------------------------------------------------------------------------------------------
# Helpers: fake files in the real formats
# ---------------------------------------------------------------------------------------------


def _pattern(first: int, count: int, side: int) -> np.ndarray:
    """uint8 images (count, 3, side, side); image k has pixel (c, y, x) = 37k + 71c + 5y + 3x mod 256.

    Distinct per image and asymmetric in c, y and x, so any mix-up of order or layout shows.
    """
    k = np.arange(first, first + count)[:, None, None, None]
    c = np.arange(3)[None, :, None, None]
    y = np.arange(side)[None, None, :, None]
    x = np.arange(side)[None, None, None, :]
    return ((37 * k + 71 * c + 5 * y + 3 * x) % 256).astype(np.uint8)


def _dump(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        pickle.dump(obj, f)


def _write_split(folder: Path, filename: str, splits: dict[str, list[int]]) -> Path:
    """A split file in the official format ``{"name": ["int", ["0", "5", ...]]}``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / filename
    path.write_text(json.dumps({k: ["int", [str(i) for i in v]] for k, v in splits.items()}))
    return path


CIFAR10_PER_BATCH = 12
CIFAR10_TRAIN_IDX = [59, 0, 7, 31, 12, 44, 3, 18, 25, 50, 41, 9, 36]
CIFAR10_VALID_IDX = [i for i in range(60) if i not in CIFAR10_TRAIN_IDX][::-1]


@pytest.fixture
def cifar10_files(tmp_path: Path) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    """DATA_DIR with cifar-10-batches-py/data_batch_1..5 (12 images each) and a splits folder."""
    images = _pattern(0, 5 * CIFAR10_PER_BATCH, 32)
    labels = np.arange(len(images)) * 3 % 10
    for b in range(5):
        rows = slice(b * CIFAR10_PER_BATCH, (b + 1) * CIFAR10_PER_BATCH)
        batch = {
            b"batch_label": f"training batch {b + 1} of 5".encode(),
            b"labels": labels[rows].tolist(),
            b"data": images[rows].reshape(-1, 3072),
            b"filenames": [f"img{i}.png".encode() for i in range(CIFAR10_PER_BATCH)],
        }
        _dump(tmp_path / "data" / "cifar-10-batches-py" / f"data_batch_{b + 1}", batch)
    splits = tmp_path / "splits"
    _write_split(
        splits, "cifar-split.txt", {"train": CIFAR10_TRAIN_IDX, "valid": CIFAR10_VALID_IDX}
    )
    return tmp_path / "data", splits, images, labels


@pytest.fixture
def cifar100_files(tmp_path: Path) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    """DATA_DIR with cifar-100-python/train (20 images) and test (16); images 0..35 in that order."""
    images = _pattern(0, 36, 32)
    labels = np.arange(36) * 7 % 100
    for name, rows in (("train", slice(0, 20)), ("test", slice(20, 36))):
        entry = {
            b"filenames": [b"x.png"] * len(labels[rows]),
            b"batch_label": name.encode(),
            b"fine_labels": labels[rows].tolist(),
            b"coarse_labels": (labels[rows] // 5).tolist(),
            b"data": images[rows].reshape(-1, 3072),
        }
        _dump(tmp_path / "data" / "cifar-100-python" / name, entry)
    splits = tmp_path / "splits"
    _write_split(splits, "cifar100-test-split.txt", {"xvalid": [5, 0, 11, 2], "xtest": [1, 3]})
    return tmp_path / "data", splits, images, labels


IMAGENET_BATCH_LABELS = [1, 120, 121, 7, 1000, 60]  # 1-based; 121 and 1000 must be dropped
IMAGENET_VAL_LABELS = [3, 500, 120, 1, 121, 64, 2, 999, 17, 88]  # 7 kept


@pytest.fixture
def imagenet16_files(tmp_path: Path) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    """DATA_DIR/ImageNet16 with train_data_batch_1..10 (6 images each) and val_data (10 images).

    Str keys and list labels, as the real latin-1 pickles give. Raw images are numbered 0..69 in
    file order (train batches first, then val).
    """
    images = _pattern(0, 70, 16)
    train_labels = np.array(IMAGENET_BATCH_LABELS * 10)
    for b in range(10):
        rows = slice(6 * b, 6 * b + 6)
        entry = {
            "data": images[rows].reshape(-1, 768),
            "labels": train_labels[rows].tolist(),
            "mean": np.zeros(768),
        }
        _dump(tmp_path / "data" / "ImageNet16" / f"train_data_batch_{b + 1}", entry)
    val = {"data": images[60:].reshape(-1, 768), "labels": IMAGENET_VAL_LABELS}
    _dump(tmp_path / "data" / "ImageNet16" / "val_data", val)
    splits = tmp_path / "splits"
    _write_split(
        splits, "imagenet-16-120-test-split.txt", {"xvalid": [6, 0, 3], "xtest": [1, 2, 4, 5]}
    )
    all_labels = np.concatenate([train_labels, IMAGENET_VAL_LABELS])
    return tmp_path / "data", splits, images, all_labels


def _check_split(split: ImageSplit, images: np.ndarray, labels: np.ndarray) -> None:
    assert split.images.dtype == torch.uint8 and split.labels.dtype == torch.int64
    assert split.images.is_contiguous() and split.images.device.type == "cpu"
    np.testing.assert_array_equal(split.images.numpy(), images)
    np.testing.assert_array_equal(split.labels.numpy(), labels)


# ---------------------------------------------------------------------------------------------
# Official split files shipped with the package
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "sizes", "total"),
    [
        ("cifar-split.txt", {"train": 25_000, "valid": 25_000}, 50_000),
        ("cifar100-test-split.txt", {"xvalid": 5_000, "xtest": 5_000}, 10_000),
        ("imagenet-16-120-test-split.txt", {"xvalid": 3_000, "xtest": 3_000}, 6_000),
    ],
)
def test_official_split_files_have_documented_sizes(
    filename: str, sizes: dict[str, int], total: int
) -> None:
    splits = load_split_file(official_splits_dir() / filename)
    assert {k: len(v) for k, v in splits.items()} == sizes
    both = torch.cat(list(splits.values()))
    assert both.dtype == torch.int64
    assert torch.equal(both.sort().values, torch.arange(total))  # disjoint halves covering all


def test_cifar_split_train_valid_disjoint_and_cover_train_set() -> None:
    splits = load_split_file(official_splits_dir() / "cifar-split.txt")
    train, valid = set(splits["train"].tolist()), set(splits["valid"].tolist())
    assert not train & valid
    assert train | valid == set(range(50_000))


# ---------------------------------------------------------------------------------------------
# Readers of the real formats
# ---------------------------------------------------------------------------------------------


def test_cifar10_reads_batches_in_order_and_applies_split(cifar10_files) -> None:
    data_dir, splits, images, labels = cifar10_files
    ds = load_cifar10(data_dir, splits_dir=splits)
    _check_split(ds.train, images[CIFAR10_TRAIN_IDX], labels[CIFAR10_TRAIN_IDX])
    _check_split(ds.held_out, images[CIFAR10_VALID_IDX], labels[CIFAR10_VALID_IDX])
    # CHW layout: flat position c*1024 + y*32 + x of raw row k lands at images[., c, y, x]
    k, (c, y, x) = CIFAR10_TRAIN_IDX[3], (2, 5, 17)
    assert ds.train.images[3, c, y, x] == images.reshape(-1, 3072)[k, c * 1024 + y * 32 + x]
    assert (ds.name, ds.num_classes, ds.crop_padding) == ("cifar10", 10, 4)
    assert ds.mean == pytest.approx((125.3 / 255, 123.0 / 255, 113.9 / 255))
    assert ds.std == pytest.approx((63.0 / 255, 62.1 / 255, 66.7 / 255))


def test_load_dataset_dispatches_and_forwards_splits_dir(cifar10_files) -> None:
    data_dir, splits, images, _ = cifar10_files
    ds = load_dataset("cifar10", str(data_dir), splits_dir=splits)
    assert isinstance(ds, SearchDataset)
    np.testing.assert_array_equal(ds.held_out.images.numpy(), images[CIFAR10_VALID_IDX])


def test_cifar100_train_is_all_train_and_held_out_is_xvalid_of_test(cifar100_files) -> None:
    data_dir, splits, images, labels = cifar100_files
    ds = load_cifar100(data_dir, splits_dir=splits)
    _check_split(ds.train, images[:20], labels[:20])
    test_rows = np.array([5, 0, 11, 2]) + 20
    _check_split(ds.held_out, images[test_rows], labels[test_rows])
    assert (ds.num_classes, ds.crop_padding) == (100, 4)
    assert ds.mean == pytest.approx((125.3 / 255, 123.0 / 255, 113.9 / 255))


def test_imagenet16_keeps_first_120_classes_zero_based(imagenet16_files) -> None:
    data_dir, splits, images, labels = imagenet16_files
    ds = load_imagenet16_120(data_dir, splits_dir=splits)
    keep_train = np.flatnonzero(labels[:60] <= 120)
    assert len(keep_train) == 40  # 4 of 6 per batch
    _check_split(ds.train, images[keep_train], labels[keep_train] - 1)
    keep_val = np.flatnonzero(labels[60:] <= 120) + 60
    xvalid = keep_val[[6, 0, 3]]
    _check_split(ds.held_out, images[xvalid], labels[xvalid] - 1)
    assert ds.train.images.shape[1:] == (3, 16, 16)
    assert int(ds.train.labels.min()) == 0 and int(ds.train.labels.max()) == 119
    assert (ds.num_classes, ds.crop_padding) == (120, 2)
    assert ds.mean == pytest.approx((122.68 / 255, 116.66 / 255, 104.01 / 255))
    assert ds.std == pytest.approx((63.22 / 255, 61.26 / 255, 65.09 / 255))


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "imagenet16-120"])
def test_no_data_dir_raises_not_found_with_download_hint(name: str) -> None:
    with pytest.raises(DatasetNotFoundError, match="download"):
        load_dataset(name, None)


@pytest.mark.parametrize(
    ("name", "missing"),
    [
        ("cifar10", "cifar-10-batches-py"),
        ("cifar100", "cifar-100-python"),
        ("imagenet16-120", "ImageNet16"),
    ],
)
def test_missing_folder_raises_not_found_naming_it(tmp_path: Path, name: str, missing: str) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset(name, tmp_path)
    message = str(info.value)
    assert str(tmp_path / missing) in message and "download" in message
    assert isinstance(info.value, FileNotFoundError)


def test_missing_data_dir_raises_not_found_naming_it(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="download") as info:
        load_dataset("cifar10", tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(info.value)


def test_missing_file_is_reported_before_any_file_is_read(cifar10_files) -> None:
    data_dir, splits, _, _ = cifar10_files
    folder = data_dir / "cifar-10-batches-py"
    (folder / "data_batch_1").write_bytes(b"corrupt")  # would raise ValueError if read first
    (folder / "data_batch_5").unlink()
    with pytest.raises(DatasetNotFoundError, match="download") as info:
        load_cifar10(data_dir, splits_dir=splits)
    assert str(folder / "data_batch_5") in str(info.value)


def test_missing_imagenet16_val_file_named(imagenet16_files) -> None:
    data_dir, splits, _, _ = imagenet16_files
    (data_dir / "ImageNet16" / "val_data").unlink()
    with pytest.raises(DatasetNotFoundError, match="download") as info:
        load_imagenet16_120(data_dir, splits_dir=splits)
    assert str(data_dir / "ImageNet16" / "val_data") in str(info.value)


def test_corrupt_pickle_raises_value_error_naming_file(cifar100_files) -> None:
    data_dir, splits, _, _ = cifar100_files
    bad = data_dir / "cifar-100-python" / "test"
    bad.write_bytes(b"\x80\x04 this is not a pickle")
    with pytest.raises(ValueError, match="corrupt") as info:
        load_cifar100(data_dir, splits_dir=splits)
    assert str(bad) in str(info.value)


def test_wrong_shape_raises_value_error_naming_file(cifar10_files) -> None:
    data_dir, splits, _, _ = cifar10_files
    bad = data_dir / "cifar-10-batches-py" / "data_batch_3"
    _dump(bad, {b"data": np.zeros((12, 768), np.uint8), b"labels": [0] * 12})
    with pytest.raises(ValueError, match="3072") as info:
        load_cifar10(data_dir, splits_dir=splits)
    assert str(bad) in str(info.value)


def test_split_index_beyond_images_names_split_file_and_sizes(cifar10_files) -> None:
    data_dir, splits, _, _ = cifar10_files
    split_file = _write_split(splits, "cifar-split.txt", {"train": [0, 60], "valid": [1]})
    with pytest.raises(ValueError, match="truncated") as info:
        load_cifar10(data_dir, splits_dir=splits)
    message = str(info.value)
    assert str(split_file) in message and "60" in message


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="unknown dataset 'cifar1000'") as info:
        load_dataset("cifar1000")
    assert all(name in str(info.value) for name in DATASET_NAMES)


def test_dataset_names_are_the_product_names() -> None:
    assert DATASET_NAMES == (
        "cifar10",
        "cifar100",
        "imagenet16-120",
        "imagenet",
        "digits",
        "synthetic",
    )


# ---------------------------------------------------------------------------------------------
# Offline datasets
# ---------------------------------------------------------------------------------------------


def test_digits_is_stratified_deterministic_and_cifar_sized() -> None:
    ds = load_digits()
    again = load_dataset("digits", "/this/path/is/ignored")
    assert len(ds.train) + len(ds.held_out) == 1797
    assert abs(len(ds.train) - len(ds.held_out)) <= 10
    for half in (ds.train, ds.held_out):
        assert half.images.shape[1:] == (3, 32, 32) and half.images.dtype == torch.uint8
        assert torch.equal(torch.unique(half.labels), torch.arange(10))  # every class
        assert torch.equal(half.images[:, 0], half.images[:, 2])  # grey replicated to RGB
    assert torch.equal(ds.train.images, again.train.images)
    assert torch.equal(ds.held_out.labels, again.held_out.labels)
    assert int(ds.train.images.max()) == 255 and int(ds.train.images.min()) == 0
    pixels = ds.train.images.double() / 255
    assert ds.mean == pytest.approx((float(pixels.mean()),) * 3)
    assert ds.std == pytest.approx((float(pixels.std(correction=0)),) * 3)
    assert (ds.num_classes, ds.crop_padding) == (10, 4)


def test_synthetic_is_deterministic_with_documented_shapes() -> None:
    ds, again = load_synthetic(), load_dataset("synthetic")
    assert (len(ds.train), len(ds.held_out), ds.num_classes) == (640, 320, 10)
    assert ds.train.images.shape == (640, 3, 32, 32) and ds.train.images.dtype == torch.uint8
    assert torch.equal(ds.train.images, again.train.images)
    assert torch.equal(ds.held_out.labels, again.held_out.labels)
    assert torch.equal(torch.bincount(ds.held_out.labels), torch.full((10,), 32))
    assert (ds.mean, ds.std) == ((0.5,) * 3, (0.25,) * 3)


def test_synthetic_class_signal_is_learnable() -> None:
    """Nearest class mean (from train) classifies held_out near perfectly: the signal is real."""
    ds = load_synthetic()
    train_x = ds.train.images.float().flatten(1)
    means = torch.stack([train_x[ds.train.labels == c].mean(0) for c in range(10)])
    pred = torch.cdist(ds.held_out.images.float().flatten(1), means).argmin(1)
    assert (pred == ds.held_out.labels).float().mean() > 0.95


def test_image_split_rejects_wrong_dtype() -> None:
    with pytest.raises(ValueError, match="uint8"):
        ImageSplit(torch.zeros(2, 3, 4, 4), torch.zeros(2, dtype=torch.int64))
    with pytest.raises(ValueError, match="int64"):
        ImageSplit(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.zeros(3, dtype=torch.int64))
