"""ImageNet-1k: the ImageFolder reader, its every-40th-file split, streaming batches, the config
rules and one search epoch, on a tiny real ImageFolder of JPEG/PNG files written in tmp_path."""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from PIL import Image

from trainables import records as R
from trainables.batching import DeviceSplit
from trainables.config import SearchConfig
from trainables.datasets import (
    DatasetNotFoundError,
    FileSplit,
    ImageSplit,
    SearchDataset,
    check_dataset_files,
    load_dataset,
)
from trainables.datasets.imagenet import IMAGENET_MEAN, IMAGENET_STD
from trainables.search import Search
from trainables.streaming import (
    CROP_ATTEMPTS,
    StreamingSplit,
    crop_box,
    draw_resized_crops,
    make_split,
)

# Created out of order: labels must follow the sorted names, not creation order.
WNIDS = ("n0300", "n0100", "n0200")
PER_CLASS = 41  # positions 0 and 40 of each class are held out
SIZES = ((40, 60), (80, 50), (64, 64), (50, 90), (120, 70))  # (width, height)


def _write(path: Path, size: tuple[int, int], seed: int, mode: str = "RGB") -> None:
    rng = np.random.default_rng(seed)
    width, height = size
    pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    pixels[:, : width // 2] //= 4  # a dark left half: flips are visible
    image = Image.fromarray(pixels).convert(mode)
    image.save(path)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """DATA_DIR with imagenet/train/<wnid>/ holding 41 images per class, varied sizes; class
    n0100 starts (sorted) with a greyscale JPEG, n0200 with a PNG and a lower-case .jpg; each class
    also holds a text file and a hidden file, which are not images; a hidden folder is no class."""
    root = tmp_path_factory.mktemp("imagenet_data")
    train = root / "imagenet" / "train"
    for c, wnid in enumerate(WNIDS):
        folder = train / wnid
        folder.mkdir(parents=True)
        for k in range(PER_CLASS):
            name, mode = f"{wnid}_{k:03d}.JPEG", "RGB"
            if wnid == "n0100" and k == 0:
                name, mode = "a_grey.JPEG", "L"
            if wnid == "n0200" and k == 0:
                name = "a_colour.png"
            if wnid == "n0200" and k == 1:
                name = f"{wnid}_001.jpg"
            _write(folder / name, SIZES[k % len(SIZES)], seed=100 * c + k, mode=mode)
        (folder / "notes.txt").write_text("not an image")
        (folder / ".hidden.JPEG").write_bytes(b"")
    (train / ".cache").mkdir()
    return root


@pytest.fixture(scope="module")
def dataset(data_dir: Path) -> SearchDataset:
    return load_dataset("imagenet", data_dir)


def _files(data_dir: Path, wnid: str) -> list[str]:
    folder = data_dir / "imagenet" / "train" / wnid
    return sorted(
        str(p)
        for p in folder.iterdir()
        if p.suffix.lower() in (".jpeg", ".jpg", ".png") and not p.name.startswith(".")
    )


# ---------------------------------------------------------------------------------------------
# Reader and split
# ---------------------------------------------------------------------------------------------


def test_split_every_40th_file_per_class_with_sorted_wnid_labels(data_dir, dataset) -> None:
    assert dataset.name == "imagenet" and dataset.num_classes == 3
    assert (dataset.mean, dataset.std) == (IMAGENET_MEAN, IMAGENET_STD)
    assert isinstance(dataset.train, FileSplit) and isinstance(dataset.held_out, FileSplit)
    assert len(dataset.held_out) == 3 * 2 and len(dataset.train) == 3 * 39
    expected_train, expected_held = [], []
    for label, wnid in enumerate(sorted(WNIDS)):
        files = _files(data_dir, wnid)
        assert len(files) == PER_CLASS  # notes.txt and .hidden.JPEG are not images
        expected_held += [(f, label) for i, f in enumerate(files) if i % 40 == 0]
        expected_train += [(f, label) for i, f in enumerate(files) if i % 40 != 0]
    assert list(zip(dataset.held_out.paths, dataset.held_out.labels.tolist(), strict=True)) == (
        expected_held
    )
    assert list(zip(dataset.train.paths, dataset.train.labels.tolist(), strict=True)) == (
        expected_train
    )
    assert dataset.held_out.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert Path(dataset.held_out.paths[0]).name == "a_grey.JPEG"  # n0100 sorts first: label 0
    assert Path(dataset.held_out.paths[2]).name == "a_colour.png"
    assert any(p.endswith("n0200_001.jpg") for p in dataset.train.paths)
    assert not set(dataset.train.paths) & set(dataset.held_out.paths)


def test_missing_data_dir_or_train_folder_names_path_and_layout(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="needs data_dir"):
        load_dataset("imagenet", None)
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("imagenet", tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(info.value)
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("imagenet", tmp_path)
    message = str(info.value)
    assert str(tmp_path / "imagenet" / "train") in message
    assert "imagenet/train/n01440764/" in message and "ILSVRC2012" in message


def test_no_class_folders_or_an_empty_class_is_an_error(tmp_path: Path) -> None:
    train = tmp_path / "imagenet" / "train"
    train.mkdir(parents=True)
    (train / "stray.JPEG").write_bytes(b"")
    with pytest.raises(DatasetNotFoundError, match="no class folders") as info:
        load_dataset("imagenet", tmp_path)
    assert str(train) in str(info.value)
    with pytest.raises(DatasetNotFoundError, match="no class folders"):
        check_dataset_files("imagenet", tmp_path)
    _write_class(train / "n01", 2)
    (train / "n02").mkdir()
    (train / "n02" / "readme.txt").write_text("no images here")
    check_dataset_files("imagenet", tmp_path)  # cheap: lists no class folder's files
    with pytest.raises(DatasetNotFoundError, match="holds no images") as info:
        load_dataset("imagenet", tmp_path)
    assert str(train / "n02") in str(info.value)


def _write_class(folder: Path, n: int) -> None:
    folder.mkdir(parents=True)
    for k in range(n):
        _write(folder / f"img_{k}.JPEG", (48, 40), seed=k)


def test_check_dataset_files(data_dir: Path, tmp_path: Path) -> None:
    check_dataset_files("imagenet", data_dir)
    with pytest.raises(DatasetNotFoundError) as info:
        check_dataset_files("imagenet", tmp_path)
    assert str(tmp_path / "imagenet" / "train") in str(info.value)


def test_file_split_and_dataset_validation(dataset) -> None:
    with pytest.raises(ValueError, match="labels must be int64 of shape \\(2,\\)"):
        FileSplit(("a.JPEG", "b.JPEG"), torch.zeros(3, dtype=torch.int64))
    with pytest.raises(ValueError, match="tuple of str"):
        FileSplit(["a.JPEG"], torch.zeros(1, dtype=torch.int64))  # type: ignore[arg-type]
    images = ImageSplit(
        torch.zeros(2, 3, 8, 8, dtype=torch.uint8), torch.zeros(2, dtype=torch.long)
    )
    with pytest.raises(ValueError, match="must both be ImageSplit or both FileSplit"):
        SearchDataset("mixed", dataset.train, images, 3, IMAGENET_MEAN, IMAGENET_STD, 0)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        SearchDataset("few", dataset.train, dataset.held_out, 2, IMAGENET_MEAN, IMAGENET_STD, 0)


# ---------------------------------------------------------------------------------------------
# Streaming batches
# ---------------------------------------------------------------------------------------------


def _stream(dataset: SearchDataset, half: str = "train", workers: int = 1) -> StreamingSplit:
    return StreamingSplit(getattr(dataset, half), dataset.mean, dataset.std, "cpu", workers)


def _normalised(pil: Image.Image) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (TF.pil_to_tensor(pil).float() / 255 - mean) / std


def test_train_batch_shape_labels_and_range(dataset) -> None:
    split = _stream(dataset)
    idx = torch.tensor([0, 50, 116, 3], dtype=torch.int64)
    images, labels = split.train_batch(idx, torch.Generator().manual_seed(0))
    assert images.shape == (4, 3, 224, 224) and images.dtype == torch.float32
    assert images.is_contiguous()
    assert torch.equal(labels, dataset.train.labels[idx]) and labels.dtype == torch.int64
    low = torch.tensor([-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)])
    high = torch.tensor([(1 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)])
    per_channel = images.transpose(0, 1).flatten(1)
    assert bool((per_channel.min(1).values >= low - 1e-5).all())
    assert bool((per_channel.max(1).values <= high + 1e-5).all())
    assert float(images.std()) > 0.3  # real pixels, not a constant


def test_train_batch_is_torchvision_resized_crop_from_documented_draws(dataset) -> None:
    split = _stream(dataset)
    idx = torch.arange(10, 20, dtype=torch.int64)
    generator = torch.Generator().manual_seed(3)
    draw = draw_resized_crops(len(idx), torch.Generator().set_state(generator.get_state()))
    images, _ = split.train_batch(idx, generator)
    for b, i in enumerate(idx.tolist()):
        pil = Image.open(dataset.train.paths[i]).convert("RGB")
        left, top, right, bottom = crop_box(
            *pil.size,
            draw.scale[b].tolist(),
            draw.log_ratio[b].tolist(),
            float(draw.pos_y[b]),
            float(draw.pos_x[b]),
        )
        expected = TF.resized_crop(pil, top, left, bottom - top, right - left, [224, 224])
        if draw.flips[b]:
            expected = TF.hflip(expected)
        torch.testing.assert_close(images[b], _normalised(expected), rtol=0, atol=1e-5)
    assert draw.flips.any() and not draw.flips.all()  # both branches checked


def test_draw_order_is_documented_and_generator_must_be_cpu() -> None:
    g = torch.Generator().manual_seed(11)
    draw = draw_resized_crops(5, g)
    ref = torch.Generator().manual_seed(11)
    scale = 0.08 + 0.92 * torch.rand((5, CROP_ATTEMPTS), generator=ref)
    log_ratio = math.log(3 / 4) + math.log(16 / 9) * torch.rand((5, CROP_ATTEMPTS), generator=ref)
    pos_y, pos_x = torch.rand(5, generator=ref), torch.rand(5, generator=ref)
    flips = torch.randint(0, 2, (5,), generator=ref).bool()
    torch.testing.assert_close(draw.scale, scale)
    torch.testing.assert_close(draw.log_ratio, log_ratio)
    assert torch.equal(draw.pos_y, pos_y) and torch.equal(draw.pos_x, pos_x)
    assert torch.equal(draw.flips, flips)
    assert torch.equal(g.get_state(), ref.get_state())  # nothing else drawn
    assert float(draw.scale.min()) >= 0.08 and float(draw.scale.max()) < 1.0
    if torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"CPU torch\.Generator"):
            draw_resized_crops(2, torch.Generator(device="cuda"))


def test_crop_box_fits_first_attempt_and_falls_back_to_centre() -> None:
    no_fit, fit = (1.0, math.log(4 / 3)), (0.25, 0.0)
    # 100x100: scale 1 at ratio 4/3 is 115x87 (too wide); the second attempt, 50x50, fits.
    box = crop_box(100, 100, [no_fit[0], fit[0]], [no_fit[1], fit[1]], 0.0, 0.999)
    assert box == (50, 0, 100, 50)
    assert crop_box(100, 100, [fit[0]], [fit[1]], 0.5, 0.5) == (25, 25, 75, 75)
    # nothing fits: tall image -> full width, height at ratio 3/4, centred
    assert crop_box(40, 200, [1.0], [math.log(4 / 3)], 0.9, 0.9) == (0, 73, 40, 126)
    # wide image -> full height, width at ratio 4/3
    assert crop_box(300, 60, [1.0], [math.log(3 / 4)], 0.1, 0.1) == (110, 0, 190, 60)


def test_train_batch_reproducible_from_generator_state(dataset) -> None:
    split = _stream(dataset)
    idx = torch.tensor([5, 6, 7, 8], dtype=torch.int64)
    g = torch.Generator().manual_seed(1)
    state = g.get_state()
    first, _ = split.train_batch(idx, g)
    after_first = g.get_state()
    again, _ = split.train_batch(idx, torch.Generator().set_state(state))
    assert torch.equal(first, again)
    threaded, _ = _stream(dataset, workers=3).train_batch(idx, torch.Generator().set_state(state))
    assert torch.equal(first, threaded)  # thread timing does not matter
    second, _ = split.train_batch(idx, g)  # the generator moved on
    assert not torch.equal(first, second)
    other, _ = split.train_batch(idx, torch.Generator().manual_seed(2))
    assert not torch.equal(first, other)
    assert not torch.equal(after_first, g.get_state())


def test_eval_batches_deterministic_in_order_last_smaller(dataset) -> None:
    split = _stream(dataset, "held_out", workers=2)
    batches = list(split.eval_batches(4))
    assert [len(y) for _, y in batches] == [4, 2]
    images = torch.cat([x for x, _ in batches])
    assert torch.equal(torch.cat([y for _, y in batches]), dataset.held_out.labels)
    assert torch.equal(images, torch.cat([x for x, _ in split.eval_batches(5)]))
    resize_crop = T.Compose([T.Resize(256), T.CenterCrop(224)])
    for b, path in enumerate(dataset.held_out.paths):
        expected = _normalised(resize_crop(Image.open(path).convert("RGB")))
        torch.testing.assert_close(images[b], expected, rtol=0, atol=1e-5)
    grey = images[0] * torch.tensor(IMAGENET_STD).view(3, 1, 1)
    grey += torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    torch.testing.assert_close(grey[0], grey[1], rtol=0, atol=1e-5)  # greyscale -> R = G = B
    with pytest.raises(ValueError, match="batch_size"):
        next(split.eval_batches(0))


def test_bad_indices_and_workers_are_rejected(dataset) -> None:
    split = _stream(dataset)
    g = torch.Generator()
    with pytest.raises(ValueError, match=r"idx must lie in \[0, 117\)"):
        split.train_batch(torch.tensor([117]), g)
    with pytest.raises(ValueError, match="1-D int64"):
        split.train_batch(torch.tensor([0.0]), g)
    with pytest.raises(ValueError, match="workers"):
        StreamingSplit(dataset.train, IMAGENET_MEAN, IMAGENET_STD, "cpu", 0)
    assert StreamingSplit(dataset.train, IMAGENET_MEAN, IMAGENET_STD, "cpu").workers == (
        torch.get_num_threads()
    )


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_image_error_names_the_file(tmp_path: Path, damage: str) -> None:
    train = tmp_path / "imagenet" / "train"
    _write_class(train / "n01", 3)
    bad = train / "n01" / "img_1.JPEG"
    data = bad.read_bytes()
    bad.write_bytes(b"not a jpeg at all" if damage == "garbage" else data[: len(data) // 2])
    ds = load_dataset("imagenet", tmp_path)  # listing decodes nothing
    assert str(bad) in ds.train.paths
    for workers in (1, 2):
        split = StreamingSplit(ds.train, ds.mean, ds.std, "cpu", workers)
        with pytest.raises(ValueError, match="cannot decode image file") as info:
            split.train_batch(torch.tensor([0, 1]), torch.Generator())
        assert str(bad) in str(info.value)
    bad.unlink()
    with pytest.raises(DatasetNotFoundError, match="does not exist") as info:
        next(StreamingSplit(ds.train, ds.mean, ds.std, "cpu").eval_batches(8))
    assert str(bad) in str(info.value)


def test_make_split_picks_streaming_for_files(dataset) -> None:
    stats = (IMAGENET_MEAN, IMAGENET_STD, 4, "cpu")
    assert isinstance(make_split(dataset.train, *stats), StreamingSplit)
    images = ImageSplit(
        torch.zeros(2, 3, 8, 8, dtype=torch.uint8), torch.zeros(2, dtype=torch.long)
    )
    assert isinstance(make_split(images, *stats), DeviceSplit)
    with pytest.raises(TypeError, match="ImageSplit or a FileSplit"):
        make_split(torch.zeros(2), *stats)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Config rules and one search epoch
# ---------------------------------------------------------------------------------------------


def test_config_ties_imagenet_dataset_stem_and_space() -> None:
    with pytest.raises(ValueError, match=r"stem='imagenet'.*needs dataset='imagenet'"):
        SearchConfig(space="darts", dataset="cifar10", stem="imagenet")
    with pytest.raises(ValueError, match=r"dataset='imagenet'.*needs space='darts'"):
        SearchConfig(space="darts", dataset="imagenet", stem="cifar")
    with pytest.raises(ValueError, match=r"dataset='imagenet'.*got space='nb201'"):
        SearchConfig(space="nb201", dataset="imagenet")
    config = SearchConfig(space="darts", dataset="imagenet", stem="imagenet")
    assert SearchConfig.from_dict(config.to_dict()) == config


def test_one_search_epoch_on_imagenet(data_dir: Path) -> None:
    config = SearchConfig(
        space="darts",
        dataset="imagenet",
        stem="imagenet",
        data_dir=str(data_dir),
        level="single",
        activation="sigmoid*",
        channels=4,
        depth=3,
        batch_size=4,
        steps_per_epoch=1,
        epochs=1,
        probe_every=0,
    )
    start = time.perf_counter()
    search = Search(config)
    assert isinstance(search.train, StreamingSplit) and isinstance(search.held_out, StreamingSplit)
    record = search.run_epoch()
    elapsed = time.perf_counter() - start
    assert list(record) == list(R.RECORD_FIELDS)
    assert record[R.STATUS] == R.STATUS_OK and record[R.STEPS] == 1 and search.done
    assert math.isfinite(record[R.TRAIN_LOSS]) and math.isfinite(record[R.VALID_LOSS])
    assert 0 <= record[R.VALID_ACC] <= 100
    assert record[R.GENOTYPE]
    assert elapsed < 60  # one 4-image step and 6 eval images; a few seconds on 2 CPUs


def test_copy_of_tree_lists_the_same_split(data_dir: Path, tmp_path: Path) -> None:
    # the split depends on names only, not on directory iteration order or the root path
    shutil.copytree(data_dir / "imagenet", tmp_path / "imagenet")
    a, b = load_dataset("imagenet", data_dir), load_dataset("imagenet", tmp_path)
    strip = len(str(data_dir)), len(str(tmp_path))
    assert [p[strip[0] :] for p in a.held_out.paths] == [p[strip[1] :] for p in b.held_out.paths]
    assert torch.equal(a.train.labels, b.train.labels)
