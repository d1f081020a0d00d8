"""Evaluation datasets: the whole train set plus a separate test set, per name.

CIFAR-10 pickles and an ImageNet ImageFolder of JPEGs are written in tmp_path in the real formats
(tiny: 4 images per CIFAR batch, 8x8 JPEGs); the offline datasets are compared with the search
loaders they are built from.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from trainables import eval_config
from trainables.datasets import (
    EVAL_DATASET_NAMES,
    DatasetNotFoundError,
    EvaluationDataset,
    FileSplit,
    ImageSplit,
    check_evaluation_files,
    load_digits,
    load_evaluation_dataset,
    load_synthetic,
)
from trainables.datasets.imagenet import IMAGENET_MEAN, IMAGENET_STD
from trainables.datasets.nb201 import CIFAR_MEAN, CIFAR_STD

# ---------------------------------------------------------------------------------------------
# Helpers: fake files in the real formats
# ---------------------------------------------------------------------------------------------


def _pattern(first: int, count: int, side: int) -> np.ndarray:
    """uint8 images (count, 3, side, side), distinct per image k and asymmetric in c, y, x."""
    k = np.arange(first, first + count)[:, None, None, None]
    c = np.arange(3)[None, :, None, None]
    y = np.arange(side)[None, None, :, None]
    x = np.arange(side)[None, None, None, :]
    return ((37 * k + 71 * c + 5 * y + 3 * x) % 256).astype(np.uint8)


def _dump_cifar_batch(path: Path, images: np.ndarray, labels: np.ndarray, name: str) -> None:
    """One CIFAR-10 python batch: a pickled dict with bytes keys, rows of 3072 uint8."""
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {
        b"batch_label": name.encode(),
        b"labels": labels.tolist(),
        b"data": images.reshape(-1, 3072),
        b"filenames": [f"img{i}.png".encode() for i in range(len(labels))],
    }
    with path.open("wb") as f:
        pickle.dump(entry, f)


PER_BATCH = 4
NUM_TEST = 6


@pytest.fixture
def cifar10_dir(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """DATA_DIR with data_batch_1..5 (4 images each: images 0..19) and test_batch (images
    20..25); returns it with all 26 images and labels in that order."""
    images = _pattern(0, 5 * PER_BATCH + NUM_TEST, 32)
    labels = (np.arange(len(images)) * 3 + 1) % 10
    folder = tmp_path / "cifar-10-batches-py"
    for b in range(5):
        rows = slice(b * PER_BATCH, (b + 1) * PER_BATCH)
        _dump_cifar_batch(folder / f"data_batch_{b + 1}", images[rows], labels[rows], f"b{b}")
    test_rows = slice(5 * PER_BATCH, None)
    _dump_cifar_batch(folder / "test_batch", images[test_rows], labels[test_rows], "test")
    return tmp_path, images, labels


def _write_jpeg(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


# Created out of order: labels must follow the sorted train class names.
WNIDS = ("n0300", "n0100", "n0200")
TRAIN_PER_CLASS = 3
VAL_PER_CLASS = 2


def _write_imagefolder(root: Path, part: str, wnids: tuple[str, ...], per_class: int) -> None:
    """``root/imagenet/<part>/<wnid>/`` with ``per_class`` JPEGs each, plus a non-image file."""
    for c, wnid in enumerate(wnids):
        folder = root / "imagenet" / part / wnid
        for k in range(per_class):
            _write_jpeg(folder / f"{part}_{wnid}_{k}.JPEG", seed=1000 * c + k)
        (folder / "notes.txt").parent.mkdir(parents=True, exist_ok=True)
        (folder / "notes.txt").write_text("not an image")


@pytest.fixture
def imagenet_dir(tmp_path: Path) -> Path:
    _write_imagefolder(tmp_path, "train", WNIDS, TRAIN_PER_CLASS)
    _write_imagefolder(tmp_path, "val", WNIDS, VAL_PER_CLASS)
    return tmp_path


def _jpegs(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.iterdir() if p.suffix == ".JPEG")


# ---------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------


def test_names_equal_the_eval_config_choices() -> None:
    assert EVAL_DATASET_NAMES == eval_config.EVAL_DATASETS


@pytest.mark.parametrize("check", [load_evaluation_dataset, check_evaluation_files])
def test_unknown_name_lists_the_valid_ones(check) -> None:
    with pytest.raises(ValueError, match=r"cifar100.*valid names: cifar10, imagenet, digits"):
        check("cifar100", None)


# ---------------------------------------------------------------------------------------------
# CIFAR-10: all 50k train images, the 10k of test_batch
# ---------------------------------------------------------------------------------------------


def test_cifar10_train_is_every_batch_in_order_and_test_is_test_batch(cifar10_dir) -> None:
    data_dir, images, labels = cifar10_dir
    check_evaluation_files("cifar10", data_dir)
    ds = load_evaluation_dataset("cifar10", data_dir)
    assert isinstance(ds.train, ImageSplit) and isinstance(ds.test, ImageSplit)
    n_train = 5 * PER_BATCH
    assert torch.equal(ds.train.images, torch.from_numpy(images[:n_train]))
    assert torch.equal(ds.train.labels, torch.from_numpy(labels[:n_train]))
    assert torch.equal(ds.test.images, torch.from_numpy(images[n_train:]))
    assert torch.equal(ds.test.labels, torch.from_numpy(labels[n_train:]))
    assert (ds.name, ds.num_classes, ds.crop_padding, ds.input_size) == ("cifar10", 10, 4, 32)
    assert (ds.mean, ds.std) == (CIFAR_MEAN, CIFAR_STD)


def test_cifar10_missing_test_batch_is_named_before_anything_is_read(cifar10_dir) -> None:
    data_dir, _, _ = cifar10_dir
    test_batch = data_dir / "cifar-10-batches-py" / "test_batch"
    test_batch.unlink()
    # A corrupt train batch: reading it would raise ValueError, so the check must come first.
    (data_dir / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"not a pickle")
    for check in (check_evaluation_files, load_evaluation_dataset):
        with pytest.raises(DatasetNotFoundError, match=r"cifar-10-python\.tar\.gz") as err:
            check("cifar10", data_dir)
        assert str(test_batch) in str(err.value)


def test_cifar10_missing_train_batch_or_data_dir_is_named(cifar10_dir) -> None:
    data_dir, _, _ = cifar10_dir
    batch = data_dir / "cifar-10-batches-py" / "data_batch_3"
    batch.unlink()
    with pytest.raises(DatasetNotFoundError) as err:
        check_evaluation_files("cifar10", data_dir)
    assert str(batch) in str(err.value)
    with pytest.raises(DatasetNotFoundError, match="needs data_dir"):
        check_evaluation_files("cifar10", None)


# ---------------------------------------------------------------------------------------------
# ImageNet-1k: every train file, val/ in class folders
# ---------------------------------------------------------------------------------------------


def test_imagenet_lists_all_train_files_and_val_labelled_by_sorted_train_classes(
    imagenet_dir,
) -> None:
    check_evaluation_files("imagenet", imagenet_dir)
    ds = load_evaluation_dataset("imagenet", imagenet_dir)
    assert isinstance(ds.train, FileSplit) and isinstance(ds.test, FileSplit)
    assert (ds.num_classes, ds.crop_padding, ds.input_size) == (3, 0, 224)
    assert (ds.mean, ds.std) == (IMAGENET_MEAN, IMAGENET_STD)
    for split, part, per_class in ((ds.train, "train", TRAIN_PER_CLASS), (ds.test, "val", 2)):
        expected = [
            path
            for wnid in sorted(WNIDS)
            for path in _jpegs(imagenet_dir / "imagenet" / part / wnid)
        ]
        assert list(split.paths) == expected  # every image, no carve-out, no notes.txt
        assert split.labels.tolist() == [c for c in range(3) for _ in range(per_class)]


def test_imagenet_val_class_not_in_train_is_named(imagenet_dir) -> None:
    _write_imagefolder(imagenet_dir, "val", ("n0999",), 1)
    with pytest.raises(ValueError, match="n0999") as err:
        load_evaluation_dataset("imagenet", imagenet_dir)
    assert not isinstance(err.value, DatasetNotFoundError)


def test_imagenet_train_class_missing_in_val_is_named(imagenet_dir) -> None:
    _write_imagefolder(imagenet_dir, "train", ("n0050",), 1)
    with pytest.raises(DatasetNotFoundError, match=r"val/n0050.*valprep"):
        load_evaluation_dataset("imagenet", imagenet_dir)


def test_imagenet_empty_val_class_folder_is_an_error(imagenet_dir) -> None:
    for path in (imagenet_dir / "imagenet" / "val" / "n0200").glob("*.JPEG"):
        path.unlink()
    with pytest.raises(DatasetNotFoundError, match="val/n0200 holds no images"):
        load_evaluation_dataset("imagenet", imagenet_dir)


def test_imagenet_missing_or_flat_val_names_the_folder_and_how_to_sort_it(tmp_path) -> None:
    _write_imagefolder(tmp_path, "train", WNIDS, 1)
    val = tmp_path / "imagenet" / "val"
    for check in (check_evaluation_files, load_evaluation_dataset):
        with pytest.raises(DatasetNotFoundError, match=r"ILSVRC2012_img_val\.tar.*valprep") as e:
            check("imagenet", tmp_path)
        assert f"{val} does not exist" in str(e.value)
    # The official tarball extracted as it is: flat files, no class folders.
    _write_jpeg(val / "ILSVRC2012_val_00000001.JPEG", seed=0)
    with pytest.raises(DatasetNotFoundError, match=r"no class folders.*one folder per class"):
        check_evaluation_files("imagenet", tmp_path)


def test_imagenet_missing_train_is_named_before_val(tmp_path) -> None:
    _write_imagefolder(tmp_path, "val", WNIDS, 1)
    with pytest.raises(DatasetNotFoundError, match="imagenet/train does not exist"):
        check_evaluation_files("imagenet", tmp_path)


# ---------------------------------------------------------------------------------------------
# Offline datasets: the search's train half to train on, its held_out half to test on
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "search_loader"), [("digits", load_digits),
                                                     ("synthetic", load_synthetic)])
def test_offline_test_set_is_the_disjoint_held_out_half(name, search_loader) -> None:
    check_evaluation_files(name, None)  # needs no files
    ds = load_evaluation_dataset(name)
    search = search_loader()
    assert isinstance(ds.train, ImageSplit) and isinstance(ds.test, ImageSplit)
    assert isinstance(search.train, ImageSplit) and isinstance(search.held_out, ImageSplit)
    assert torch.equal(ds.train.images, search.train.images)
    assert torch.equal(ds.train.labels, search.train.labels)
    assert torch.equal(ds.test.images, search.held_out.images)
    assert torch.equal(ds.test.labels, search.held_out.labels)
    assert (ds.mean, ds.std, ds.crop_padding) == (search.mean, search.std, search.crop_padding)
    assert (ds.name, ds.num_classes, ds.input_size) == (name, 10, 32)


def test_digits_halves_partition_the_dataset() -> None:
    """Every one of scikit-learn's 1,797 digits is in exactly one half."""
    from sklearn.datasets import load_digits as sklearn_load_digits

    ds = load_evaluation_dataset("digits")
    assert len(ds.train) + len(ds.test) == 1797
    counts = torch.bincount(torch.cat([ds.train.labels, ds.test.labels]), minlength=10)
    assert counts.tolist() == np.bincount(sklearn_load_digits().target).tolist()


def test_synthetic_train_and_test_share_no_image() -> None:
    ds = load_evaluation_dataset("synthetic")
    assert isinstance(ds.train, ImageSplit) and isinstance(ds.test, ImageSplit)
    train = {bytes(img.numpy()) for img in ds.train.images}
    assert not any(bytes(img.numpy()) in train for img in ds.test.images)


# ---------------------------------------------------------------------------------------------
# EvaluationDataset checks
# ---------------------------------------------------------------------------------------------


def _images(n: int, side: int = 32) -> ImageSplit:
    return ImageSplit(torch.zeros(n, 3, side, side, dtype=torch.uint8), torch.zeros(n).long())


def _dataset(**overrides) -> EvaluationDataset:
    fields = {
        "name": "toy",
        "train": _images(2),
        "test": _images(1),
        "num_classes": 10,
        "mean": (0.5, 0.5, 0.5),
        "std": (0.25, 0.25, 0.25),
        "crop_padding": 4,
        "input_size": 32,
    }
    return EvaluationDataset(**(fields | overrides))


def test_evaluation_dataset_rejects_inconsistent_fields() -> None:
    _dataset()  # valid
    bad_labels = ImageSplit(torch.zeros(1, 3, 32, 32, dtype=torch.uint8), torch.tensor([10]))
    with pytest.raises(ValueError, match=r"test labels must lie in \[0, 10\)"):
        _dataset(test=bad_labels)
    files = FileSplit(("a.JPEG",), torch.zeros(1).long())
    with pytest.raises(ValueError, match="must both be ImageSplit or both FileSplit"):
        _dataset(test=files)
    with pytest.raises(ValueError, match="must be 32x32"):
        _dataset(train=_images(2, side=16))
    with pytest.raises(ValueError, match="std must be positive"):
        _dataset(std=(0.25, 0.0, 0.25))
