"""Checkpoint integrity without Ray: ``Search.save`` writes a manifest last, ``Search.restore``
verifies it (a cut-short file, a flipped byte, a missing file or manifest), accepts a checkpoint
written before manifests existed when it loads, and a full disk at checkpointing says so."""

from __future__ import annotations

import errno
import json
import math
import os
from pathlib import Path
from typing import Any

import pytest
import torch

from trainables import records as R
from trainables.checkpoints import (
    MANIFEST_FILE,
    CheckpointDiskFull,
    CorruptCheckpoint,
    is_disk_full,
)
from trainables.config import SearchConfig
from trainables.search import CHECKPOINT_FILE, Search, run_search

CONFIG = SearchConfig(
    dataset="synthetic",
    channels=4,
    depth=1,
    batch_size=16,
    steps_per_epoch=2,
    probe_every=0,
    epochs=3,
)


def _comparable(record: dict[str, Any]) -> dict[str, Any]:
    return {
        k: ("nan" if isinstance(v, float) and math.isnan(v) else v)
        for k, v in record.items()
        if k not in R.TIMING_FIELDS
    }


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    """A checkpoint folder after one epoch (never modified: tests copy it)."""
    folder = tmp_path_factory.mktemp("saved")
    search = Search(CONFIG)
    search.run_epoch()
    search.save(folder)
    return folder


@pytest.fixture
def checkpoint(saved, tmp_path) -> Path:
    """A private copy of the saved checkpoint folder, free to damage."""
    folder = tmp_path / "checkpoint"
    folder.mkdir()
    for item in saved.iterdir():
        (folder / item.name).write_bytes(item.read_bytes())
    return folder


def _state(search: Search) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in search.model.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------------- what save writes
def test_save_writes_the_manifest_last_with_size_and_sha256(checkpoint) -> None:
    import hashlib

    data = (checkpoint / CHECKPOINT_FILE).read_bytes()
    manifest = json.loads((checkpoint / MANIFEST_FILE).read_text())
    assert manifest["files"] == {
        CHECKPOINT_FILE: {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    }
    assert sorted(p.name for p in checkpoint.iterdir()) == sorted([CHECKPOINT_FILE, MANIFEST_FILE])
    search = Search(CONFIG)
    search.restore(checkpoint)
    assert search.epoch == 1


def test_the_manifest_is_written_after_the_checkpoint_file(tmp_path, monkeypatch) -> None:
    """Every rename into place, in order: the checkpoint file, then the manifest; and the old
    manifest is gone before the file of a resave replaces the old file."""
    events: list[str] = []
    real_replace, real_unlink = os.replace, Path.unlink

    def replace(src, dst):
        events.append(f"replace {Path(dst).name}")
        return real_replace(src, dst)

    def unlink(self, *args, **kwargs):
        if self.name == MANIFEST_FILE and self.exists():
            events.append(f"unlink {self.name}")
        return real_unlink(self, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(Path, "unlink", unlink)
    search = Search(CONFIG)
    search.save(tmp_path)
    search.save(tmp_path)
    assert events == [
        f"replace {CHECKPOINT_FILE}",
        f"replace {MANIFEST_FILE}",
        f"unlink {MANIFEST_FILE}",
        f"replace {CHECKPOINT_FILE}",
        f"replace {MANIFEST_FILE}",
    ]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


# ---------------------------------------------------------------------- damaged checkpoints
def test_a_truncated_checkpoint_file_is_refused_and_the_search_is_untouched(checkpoint) -> None:
    path = checkpoint / CHECKPOINT_FILE
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    search = Search(CONFIG)
    before = _state(search)
    with pytest.raises(CorruptCheckpoint, match=r"has \d+ bytes, the manifest says") as caught:
        search.restore(checkpoint)
    assert caught.value.path == str(checkpoint)
    assert str(checkpoint) in str(caught.value)
    assert search.epoch == 0 and _same(_state(search), before)


def test_a_flipped_byte_is_refused(checkpoint) -> None:
    path = checkpoint / CHECKPOINT_FILE
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptCheckpoint, match="does not match its sha256"):
        Search(CONFIG).restore(checkpoint)


def test_a_missing_checkpoint_file_is_refused(checkpoint) -> None:
    (checkpoint / CHECKPOINT_FILE).unlink()
    with pytest.raises(CorruptCheckpoint, match=f"{CHECKPOINT_FILE} is missing"):
        Search(CONFIG).restore(checkpoint)


@pytest.mark.parametrize("content", ["", '{"format": 1, "fi', '{"format": 1, "files": {}}'])
def test_an_unreadable_manifest_is_refused(checkpoint, content) -> None:
    (checkpoint / MANIFEST_FILE).write_text(content)
    with pytest.raises(CorruptCheckpoint, match=f"{MANIFEST_FILE} is unreadable"):
        Search(CONFIG).restore(checkpoint)


def test_an_empty_folder_is_no_checkpoint(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="no search checkpoint"):
        Search(CONFIG).restore(tmp_path)


def test_corrupt_checkpoint_pickles_with_its_fields() -> None:
    import pickle

    error = pickle.loads(pickle.dumps(CorruptCheckpoint("/x/checkpoint_000001", "cut short")))
    assert (error.path, error.reason) == ("/x/checkpoint_000001", "cut short")
    assert str(error) == "corrupt checkpoint at /x/checkpoint_000001: cut short"


# ---------------------------------------------------------------------- no manifest (older)
def test_a_checkpoint_without_manifest_is_accepted_when_it_loads(checkpoint) -> None:
    """Checkpoints written before manifests existed: accepted without verification, as long as
    the file loads (a truncated one never does)."""
    (checkpoint / MANIFEST_FILE).unlink()
    search = Search(CONFIG)
    search.restore(checkpoint)
    assert search.epoch == 1


def test_a_checkpoint_without_manifest_that_does_not_load_is_refused(checkpoint) -> None:
    (checkpoint / MANIFEST_FILE).unlink()
    path = checkpoint / CHECKPOINT_FILE
    path.write_bytes(path.read_bytes()[:-100])
    search = Search(CONFIG)
    before = _state(search)
    with pytest.raises(CorruptCheckpoint, match=f"no {MANIFEST_FILE}.*does not load"):
        search.restore(checkpoint)
    assert search.epoch == 0 and _same(_state(search), before)


def test_a_save_cut_short_between_file_and_manifest_leaves_a_loadable_checkpoint(
    tmp_path, monkeypatch
) -> None:
    """Killed after the new checkpoint file replaced the old one, before the new manifest was
    written: no manifest, a complete file, accepted; resuming gives the undisturbed records."""
    undisturbed = [_comparable(r) for r in run_search(CONFIG)]
    search = Search(CONFIG)
    search.run_epoch()
    search.save(tmp_path)
    search.run_epoch()
    real_replace = os.replace

    def replace(src, dst):
        if Path(dst).name == MANIFEST_FILE:
            raise KeyboardInterrupt  # the process dies here
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        search.save(tmp_path)
    monkeypatch.undo()
    assert not (tmp_path / MANIFEST_FILE).exists()
    resumed = [_comparable(r) for r in run_search(CONFIG, checkpoint_dir=tmp_path, resume=True)]
    assert resumed == undisturbed[2:]


# ---------------------------------------------------------------------- a full disk
def _disk_full_at_write(monkeypatch) -> None:
    """Every file that ``trainables.checkpoints`` opens for writing fails as on a full disk."""
    import builtins

    import trainables.checkpoints as module

    def full_open(file, mode="r", *args, **kwargs):
        if "w" in mode:
            Path(file).touch()  # created, then nothing fits
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return builtins.open(file, mode, *args, **kwargs)

    monkeypatch.setattr(module, "open", full_open, raising=False)


def test_a_full_disk_at_save_says_so_and_names_the_folder(tmp_path, monkeypatch) -> None:
    search = Search(CONFIG)
    search.run_epoch()
    search.save(tmp_path)  # an intact checkpoint of epoch 1
    search.run_epoch()
    _disk_full_at_write(monkeypatch)
    with pytest.raises(CheckpointDiskFull) as caught:
        search.save(tmp_path)
    error = caught.value
    assert error.errno == errno.ENOSPC and is_disk_full(error)
    assert error.filename == str(tmp_path)
    assert f"the disk is full: could not write the search checkpoint into {tmp_path}" in str(error)
    assert isinstance(error.__cause__, OSError)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([CHECKPOINT_FILE, MANIFEST_FILE])
    restored = Search(CONFIG)
    restored.restore(tmp_path)  # the earlier checkpoint is still intact
    assert restored.epoch == 1


def test_is_disk_full() -> None:
    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert is_disk_full(OSError("Error writing bytes to file. Detail: No space left on device"))
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not is_disk_full(RuntimeError("No space left on device"))


@pytest.fixture
def small_disk(small_tmpfs) -> Path:
    """A 1 MiB tmpfs (``small_tmpfs``; skipped where it cannot be mounted)."""
    return small_tmpfs(1)


@pytest.mark.slow
def test_a_really_full_disk_at_save(small_disk) -> None:
    """A real full disk: a ballast file leaves too little room for the next checkpoint."""
    search = Search(CONFIG)
    search.run_epoch()
    search.save(small_disk / "ok")
    size = (small_disk / "ok" / CHECKPOINT_FILE).stat().st_size
    free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
    (small_disk / "ballast").write_bytes(b"\0" * max(0, free - size // 2))
    with pytest.raises(CheckpointDiskFull, match="the disk is full") as caught:
        search.save(small_disk / "next")
    assert caught.value.filename == str(small_disk / "next")
    assert not (small_disk / "next" / MANIFEST_FILE).exists()
    assert not [p for p in (small_disk / "next").iterdir() if p.name.endswith(".tmp")]
    restored = Search(CONFIG)
    restored.restore(small_disk / "ok")
    assert restored.epoch == 1
