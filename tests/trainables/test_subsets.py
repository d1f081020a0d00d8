"""The search pools: ``data_fraction`` (class-balanced, deterministic, nested subsets) and
``train_pool`` (the whole training set), on the real digits data, small files in the real CIFAR
formats and a tiny real ImageFolder of JPEGs."""

from __future__ import annotations

import json
import pickle
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from trainables import records as R
from trainables.config import SearchConfig
from trainables.datasets import FileSplit, ImageSplit, SearchDataset, load_dataset
from trainables.sampling import epoch_plan
from trainables.search import Search
from trainables.streaming import StreamingSplit
from trainables.subsets import class_balanced_indices, search_pools, subset

FRACTIONS = (0.05, 0.1, 0.25, 0.5, 0.75)


@pytest.fixture(scope="module")
def digits() -> SearchDataset:
    return load_dataset("digits")


def _counts(labels: torch.Tensor | np.ndarray) -> Counter[int]:
    return Counter(np.asarray(labels).tolist())


def _rows(split: ImageSplit) -> set[bytes]:
    """Each image with its label as bytes, to compare splits as sets of items."""
    return {
        x.numpy().tobytes() + bytes([int(y)])
        for x, y in zip(split.images, split.labels, strict=True)
    }


def _search(**overrides: object) -> SearchConfig:
    base = {"dataset": "digits", "channels": 4, "depth": 1, "epochs": 1, "probe_every": 0}
    return SearchConfig(**{**base, **overrides})  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# class_balanced_indices on real labels
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fraction", FRACTIONS)
def test_subset_is_class_balanced(digits, fraction) -> None:
    labels = digits.train.labels
    idx = class_balanced_indices(labels, fraction, seed=3)
    full, kept = _counts(labels), _counts(labels[idx])
    assert kept == {c: max(1, round(fraction * n)) for c, n in full.items()}
    assert idx.dtype == np.int64 and np.all(np.diff(idx) > 0)  # distinct, in pool order


def test_every_present_class_keeps_at_least_one_item() -> None:
    labels = np.array([0] * 50 + [2] * 3 + [5])  # classes 1, 3, 4 absent
    kept = _counts(labels[class_balanced_indices(labels, 0.02, seed=0)])
    assert kept == {0: 1, 2: 1, 5: 1}


def test_subset_is_deterministic_in_its_seed_only(digits) -> None:
    labels = digits.train.labels
    a = class_balanced_indices(labels, 0.3, seed=7)
    np.testing.assert_array_equal(a, class_balanced_indices(labels.clone(), 0.3, seed=7))
    assert not np.array_equal(a, class_balanced_indices(labels, 0.3, seed=8))
    # a tensor or a numpy array of the same labels gives the same subset
    np.testing.assert_array_equal(a, class_balanced_indices(labels.numpy(), 0.3, seed=7))


@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_subsets_are_nested_in_the_fraction(digits, seed) -> None:
    labels = digits.train.labels
    previous: set[int] = set()
    for fraction in (*FRACTIONS, 1.0):
        current = set(class_balanced_indices(labels, fraction, seed).tolist())
        assert previous <= current
        previous = current
    assert previous == set(range(len(labels)))


def test_fraction_one_is_the_identity(digits) -> None:
    labels = digits.train.labels
    np.testing.assert_array_equal(class_balanced_indices(labels, 1.0, 5), np.arange(len(labels)))
    assert subset(digits.train, 1.0, 5) is digits.train
    assert search_pools(digits, data_fraction=1.0, data_fraction_seed=5) is digits


def test_bad_arguments_are_rejected(digits) -> None:
    with pytest.raises(ValueError, match="fraction"):
        class_balanced_indices(digits.train.labels, 0.0, 0)
    with pytest.raises(ValueError, match="seed"):
        class_balanced_indices(digits.train.labels, 0.5, -1)
    with pytest.raises(ValueError, match="train_pool"):
        search_pools(digits, train_pool="train")


def test_selected_images_keep_their_labels(digits) -> None:
    small = subset(digits.train, 0.2, 1)
    idx = class_balanced_indices(digits.train.labels, 0.2, 1)
    assert torch.equal(small.images, digits.train.images[idx])
    assert torch.equal(small.labels, digits.train.labels[idx])


# ---------------------------------------------------------------------------------------------
# In a Search (digits)
# ---------------------------------------------------------------------------------------------


def test_search_on_half_the_digits_has_half_the_pool_and_steps(digits) -> None:
    full = Search(_search(steps_per_epoch=0, batch_size=32), dataset=digits)
    half = Search(_search(steps_per_epoch=0, batch_size=32, data_fraction=0.5), dataset=digits)
    want = sum(round(0.5 * n) for n in _counts(digits.train.labels).values())
    assert len(full.train) == len(digits.train) == 901
    assert len(half.train) == want and abs(want - 901 / 2) <= 5
    want_held = sum(round(0.5 * n) for n in _counts(digits.held_out.labels).values())
    assert len(half.held_out) == want_held  # the held-out split follows the same rule
    assert _counts(half.train.labels.cpu()) == _counts(
        digits.train.labels[class_balanced_indices(digits.train.labels, 0.5, 0)]
    )
    plans = [
        epoch_plan(
            len(s.train),
            len(s.held_out),
            32,
            level="single",
            arch_data="split",
            generator=torch.Generator().manual_seed(0),
            cap=0,
        )
        for s in (full, half)
    ]
    assert [len(list(p)) for p in plans] == [29, 15]  # ceil(901 / 32), ceil(451 / 32)


def test_search_epoch_is_one_pass_over_the_subset(digits) -> None:
    search = Search(_search(steps_per_epoch=0, batch_size=16, data_fraction=0.05), dataset=digits)
    want = sum(max(1, round(0.05 * n)) for n in _counts(digits.train.labels).values())
    assert len(search.train) == want and 40 <= want <= 50
    record = search.run_epoch()
    assert record[R.STATUS] == R.STATUS_OK and record[R.STEPS] == -(-want // 16) == 3


def test_search_seed_does_not_change_the_subset(digits) -> None:
    a = Search(_search(data_fraction=0.25, seed=0), dataset=digits)
    b = Search(_search(data_fraction=0.25, seed=9), dataset=digits)
    c = Search(_search(data_fraction=0.25, seed=0, data_fraction_seed=1), dataset=digits)
    assert torch.equal(a.train.labels, b.train.labels)
    assert torch.equal(a.held_out.labels, b.held_out.labels)
    pools = [
        search_pools(digits, data_fraction=0.25, data_fraction_seed=s).train for s in (0, 0, 1)
    ]
    assert torch.equal(pools[0].images, pools[1].images)
    assert not torch.equal(pools[0].images, pools[2].images)
    assert len(c.train) == len(a.train)


def test_full_pool_is_the_whole_training_set(digits) -> None:
    search = Search(_search(train_pool="full"), dataset=digits)
    assert len(search.train) == 1797 == len(digits.train) + len(digits.held_out)
    pools = search_pools(digits, train_pool="full")
    assert _rows(pools.train) == _rows(digits.train) | _rows(digits.held_out)
    assert pools.held_out is digits.held_out  # still the validation accuracy's images
    assert digits.train.images.shape[0] == 901  # the given dataset is not modified
    # a fraction of the full pool: class-balanced over all 1797 images
    half = search_pools(digits, train_pool="full", data_fraction=0.5, data_fraction_seed=2)
    all_counts = _counts(torch.cat([digits.train.labels, digits.held_out.labels]))
    assert _counts(half.train.labels) == {c: round(n / 2) for c, n in all_counts.items()}


# ---------------------------------------------------------------------------------------------
# CIFAR formats: cifar10's held-out half is part of the training set, cifar100's is not
# ---------------------------------------------------------------------------------------------


def _dump(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj))


def _split_file(path: Path, splits: dict[str, list[int]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({k: ["int", [str(i) for i in v]] for k, v in splits.items()}))


def _images(n: int) -> np.ndarray:
    return (np.arange(n)[:, None] * 7 + np.arange(3072)[None, :] % 251).astype(np.uint8)


def test_full_pool_on_cifar10_is_all_training_images(tmp_path: Path) -> None:
    data, splits = tmp_path / "data", tmp_path / "splits"
    images, labels = _images(20), np.arange(20) % 10
    for b in range(5):
        rows = slice(4 * b, 4 * b + 4)
        entry = {b"labels": labels[rows].tolist(), b"data": images[rows]}
        _dump(data / "cifar-10-batches-py" / f"data_batch_{b + 1}", entry)
    _split_file(
        splits / "cifar-split.txt", {"train": list(range(0, 20, 2)), "valid": list(range(1, 20, 2))}
    )
    ds = load_dataset("cifar10", data, splits_dir=splits)
    assert ds.held_out_from_train
    full = search_pools(ds, train_pool="full").train
    assert isinstance(full, ImageSplit) and len(full) == 20
    got = sorted(
        full.images.reshape(20, -1).numpy().tobytes()[i * 3072 : (i + 1) * 3072] for i in range(20)
    )
    assert got == sorted(images[i].tobytes() for i in range(20))


def test_full_pool_on_cifar100_keeps_the_training_set_and_no_test_image(tmp_path: Path) -> None:
    data, splits = tmp_path / "data", tmp_path / "splits"
    images, labels = _images(14), np.arange(14) % 3
    for name, rows in (("train", slice(0, 10)), ("test", slice(10, 14))):
        entry = {b"fine_labels": labels[rows].tolist(), b"data": images[rows]}
        _dump(data / "cifar-100-python" / name, entry)
    _split_file(splits / "cifar100-test-split.txt", {"xvalid": [0, 2], "xtest": [1, 3]})
    ds = load_dataset("cifar100", data, splits_dir=splits)
    assert not ds.held_out_from_train
    pools = search_pools(ds, train_pool="full")
    assert pools.train is ds.train and len(pools.train) == 10  # already the whole training set
    half = search_pools(ds, train_pool="full", data_fraction=0.5)
    assert len(half.train) == sum(round(n / 2) for n in _counts(ds.train.labels).values())


# ---------------------------------------------------------------------------------------------
# ImageNet-1k file lists
# ---------------------------------------------------------------------------------------------

PER_CLASS = {"n02": 41, "n01": 20, "n03": 12}  # held out: positions 0 (and 40) of each class


@pytest.fixture(scope="module")
def imagenet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("imagenet_subsets")
    rng = np.random.default_rng(0)
    for wnid, n in PER_CLASS.items():
        folder = root / "imagenet" / "train" / wnid
        folder.mkdir(parents=True)
        for k in range(n):
            pixels = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{wnid}_{k:03d}.JPEG")
    return root


def test_imagenet_file_lists_are_subset_per_class(imagenet_dir: Path) -> None:
    ds = load_dataset("imagenet", imagenet_dir)
    assert _counts(ds.train.labels) == {0: 19, 1: 39, 2: 11}  # n01, n02, n03 minus held-out
    quarter = search_pools(ds, data_fraction=0.25, data_fraction_seed=4)
    half = search_pools(ds, data_fraction=0.5, data_fraction_seed=4)
    assert isinstance(quarter.train, FileSplit) and isinstance(quarter.held_out, FileSplit)
    assert _counts(quarter.train.labels) == {0: 5, 1: 10, 2: 3}
    assert _counts(quarter.held_out.labels) == {0: 1, 1: 1, 2: 1}  # at least one per class
    assert set(quarter.train.paths) <= set(half.train.paths) <= set(ds.train.paths)
    names = ("n01", "n02", "n03")
    for path, label in zip(quarter.train.paths, quarter.train.labels.tolist(), strict=True):
        assert Path(path).parent.name == names[label]  # paths and labels stay paired
    again = search_pools(
        load_dataset("imagenet", imagenet_dir), data_fraction=0.25, data_fraction_seed=4
    )
    assert again.train.paths == quarter.train.paths


def test_imagenet_full_pool_lists_every_file(imagenet_dir: Path) -> None:
    ds = load_dataset("imagenet", imagenet_dir)
    full = search_pools(ds, train_pool="full").train
    every = sorted(str(p) for p in (imagenet_dir / "imagenet" / "train").rglob("*.JPEG"))
    assert isinstance(full, FileSplit) and sorted(full.paths) == every
    assert _counts(full.labels) == {0: 20, 1: 41, 2: 12}
    config = SearchConfig(
        space="darts",
        dataset="imagenet",
        stem="imagenet",
        data_dir=str(imagenet_dir),
        channels=4,
        depth=3,
        batch_size=8,
        epochs=1,
        probe_every=0,
        train_pool="full",
        data_fraction=0.5,
    )
    search = Search(config)
    assert isinstance(search.train, StreamingSplit)
    assert len(search.train) == 10 + 20 + 6
