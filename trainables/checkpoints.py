"""Checkpoint files of a trainable (a search or an evaluation): atomic writes, a manifest, checks.

A checkpoint folder holds one ``torch.save`` file of the trainable's state and ``MANIFEST_FILE``
(each file's size and sha256), written last. ``save_state`` writes the state under a temporary
name, renames it into place, then writes the manifest the same way, so a folder whose manifest
is there was written completely; the previous manifest is removed before the file is replaced,
so a save cut short in between leaves a complete file without a manifest, which ``load_state``
accepts after loading it. ``load_state`` verifies before it loads: ``CorruptCheckpoint`` names
what is wrong (a file cut short by a full disk, a flipped byte), and the Tune trainables then
fall back to an earlier checkpoint (``trainables.tune_trainable.restore_intact``). A full disk
(ENOSPC, EDQUOT) while saving raises ``CheckpointDiskFull`` naming the folder.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

MANIFEST_FILE = "manifest.json"  # written last by ``save_state``: each file's size and sha256
MANIFEST_FORMAT = 1


def save_state(
    directory: str | os.PathLike, state: dict[str, Any], file_name: str, what: str
) -> Path:
    """Write ``state`` (``torch.save``) as ``directory/file_name``, then its manifest; returns
    the file. ``what`` names the trainable in messages ("search", "evaluation")."""
    folder = Path(directory)
    path = folder / file_name
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getbuffer()
    manifest = {
        "format": MANIFEST_FORMAT,
        "files": {file_name: {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}},
    }
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _write_atomically(path, data, before_replace=lambda: _remove(folder / MANIFEST_FILE))
        _write_atomically(folder / MANIFEST_FILE, json.dumps(manifest, indent=1).encode() + b"\n")
        _sync_folder(folder)
    except OSError as error:
        if is_disk_full(error):
            raise CheckpointDiskFull(
                error.errno,
                f"the disk is full: could not write the {what} checkpoint into {folder} "
                f"({error.strerror or error})",
                str(folder),
            ) from error
        raise
    return path


def load_state(
    directory: str | os.PathLike, file_name: str, device: torch.device, what: str
) -> dict[str, Any]:
    """The state ``save_state`` wrote into ``directory``, verified first.

    Raises ``CorruptCheckpoint`` when the manifest is unreadable or a file it lists is missing or
    differs from it (size, sha256), and ``FileNotFoundError`` when ``directory`` holds no
    checkpoint at all. A checkpoint written before manifests existed (a file, no manifest) is
    accepted when it loads, and refused as corrupt when it does not (a truncated file never
    loads: torch's zip format ends with its central directory).
    """
    folder = Path(directory)
    path = folder / file_name
    manifest = folder / MANIFEST_FILE
    if manifest.is_file():
        verify_checkpoint(folder)
    elif not path.is_file():
        raise FileNotFoundError(f"no {what} checkpoint at {path}")
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError) as error:
        if manifest.is_file():
            raise  # verified bytes that do not load: not corruption (another torch?)
        raise CorruptCheckpoint(
            folder, f"{file_name} (no {MANIFEST_FILE}) does not load: {error}"
        ) from error


class CorruptCheckpoint(RuntimeError):
    """A checkpoint folder whose files are incomplete or damaged (e.g. cut short by a full disk).

    ``path``: the checkpoint folder; ``reason``: what is wrong, in words."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        super().__init__(f"corrupt checkpoint at {path}: {reason}")
        self.path = str(path)
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:  # pickles across Ray processes with its fields
        return (type(self), (self.path, self.reason))


class CheckpointDiskFull(OSError):
    """Writing a checkpoint failed because its disk is full (``errno`` ENOSPC or EDQUOT);
    ``filename`` is the checkpoint folder."""


DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})
_DISK_FULL_TEXTS = tuple(os.strerror(code).lower() for code in sorted(DISK_FULL_ERRNOS))


def is_disk_full(error: BaseException) -> bool:
    """Whether ``error`` says that its disk is full: an ``OSError`` with errno ENOSPC or EDQUOT
    (or, from libraries that drop the errno, the system's text for them)."""
    if not isinstance(error, OSError):
        return False
    if error.errno in DISK_FULL_ERRNOS:
        return True
    text = str(error).lower()
    return any(t in text for t in _DISK_FULL_TEXTS)


def verify_checkpoint(directory: str | os.PathLike) -> None:
    """Check every file that the manifest of checkpoint folder ``directory`` lists against its
    size and sha256; raises ``CorruptCheckpoint`` naming the first problem."""
    folder = Path(directory)
    try:
        manifest = json.loads((folder / MANIFEST_FILE).read_text())
        files = manifest["files"]
        if manifest.get("format") != MANIFEST_FORMAT or not isinstance(files, dict) or not files:
            raise ValueError(f"unexpected content {manifest!r}")
    except FileNotFoundError:
        raise CorruptCheckpoint(folder, f"{MANIFEST_FILE} is missing") from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CorruptCheckpoint(folder, f"{MANIFEST_FILE} is unreadable ({error})") from error
    for name, expected in files.items():
        path = folder / name
        if not path.is_file():
            raise CorruptCheckpoint(folder, f"{name} is missing")
        size = path.stat().st_size
        if size != expected["size"]:
            raise CorruptCheckpoint(
                folder, f"{name} has {size} bytes, the manifest says {expected['size']}"
            )
        digest = hashlib.sha256()
        with path.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() != expected["sha256"]:
            raise CorruptCheckpoint(folder, f"{name} does not match its sha256 in the manifest")


def _write_atomically(
    path: Path, data: bytes | memoryview, before_replace: Callable[[], None] | None = None
) -> None:
    """Write ``data`` to a temporary file next to ``path``, flush it to disk, then rename it
    to ``path`` (after calling ``before_replace``); the temporary file never stays behind."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
    finally:
        _remove(tmp)


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _sync_folder(folder: Path) -> None:
    """Flush ``folder``'s entries (the renames) to disk where the platform allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as error:
        if is_disk_full(error):
            raise
    finally:
        os.close(fd)


