"""On-disk cache of the NATS-Bench column optima, one small JSON file per benchmark folder.

Why: the optimum of a validation column (e.g. ``cifar10_valid``) needs every one of the 15,625
record files of the fast-mode folder, read through the ``nats_bench`` API: minutes of wall time,
paid again by every new process (each ``study tables`` call). One scan gives the optima of all
columns at once, so they are computed once and kept in the user's cache directory,
``$XDG_CACHE_HOME/single-darts-study/`` (default ``~/.cache/single-darts-study/``).

A cache file belongs to one folder *state*, its ``BenchmarkIdentity``: the resolved absolute
path, the size (bytes) and modification time (ns) of ``meta.pickle.pbz2``, the number of
``*.pickle.pbz2`` record files and the folder's own modification time (ns). The identity is hashed
into the file name and stored in the file; any mismatch (a re-downloaded or completed folder)
means recompute. The cache is best effort and never fails a lookup: a corrupt or unreadable
file is ignored and rewritten, a cache directory that cannot be written logs one warning and the
freshly computed optima are returned all the same. A scan that raises caches nothing.

This module knows nothing about ``nats_bench`` or the benchmark's columns: the caller passes the
column names and the scan (a function computing the optima), see ``cached_optima``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

__all__ = [
    "APP_CACHE_DIRNAME",
    "CACHE_FORMAT",
    "BenchmarkIdentity",
    "Optimum",
    "benchmark_identity",
    "cache_dir",
    "cache_file",
    "cached_optima",
    "load_optima",
    "store_optima",
]

APP_CACHE_DIRNAME = "single-darts-study"  # under $XDG_CACHE_HOME (default ~/.cache)
CACHE_FORMAT = 1  # bump when the file layout or the meaning of a stored optimum changes
META_FILENAME = "meta.pickle.pbz2"
RECORD_SUFFIX = ".pickle.pbz2"
_FILE_PREFIX = "nats-tss-optima-"

_log = logging.getLogger(__name__)
_warned: set[str] = set()  # cache directories already warned about in this process


@dataclasses.dataclass(frozen=True)
class Optimum:
    """Best cell of one benchmark column: accuracy in percent, NATS-Bench index, arch string."""

    value: float  # percent
    index: int  # NATS-Bench index, 0 .. 15,624
    arch: str  # NAS-Bench-201 arch string of ``index``


class BenchmarkIdentity(NamedTuple):
    """State of a NATS-Bench fast-mode folder that decides whether cached optima still hold."""

    path: str  # resolved absolute path of the folder
    meta_size: int  # bytes of meta.pickle.pbz2
    meta_mtime_ns: int  # modification time of meta.pickle.pbz2, ns since the epoch
    num_records: int  # *.pickle.pbz2 files other than meta.pickle.pbz2
    dir_mtime_ns: int  # modification time of the folder itself, ns since the epoch

    def key(self) -> str:
        """16 hex digits of SHA-256 over the identity and ``CACHE_FORMAT`` (the file name's key)."""
        text = json.dumps({"format": CACHE_FORMAT, **self._asdict()}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def benchmark_identity(directory: str | os.PathLike[str]) -> BenchmarkIdentity:
    """Identity of the fast-mode folder ``directory`` (a few ``stat`` calls and one listing).

    Raises ``OSError`` when the folder or its ``meta.pickle.pbz2`` cannot be read.
    """
    path = Path(directory).resolve()
    meta = os.stat(path / META_FILENAME)
    with os.scandir(path) as entries:
        names = [entry.name for entry in entries]
    num_records = sum(1 for name in names if name.endswith(RECORD_SUFFIX) and name != META_FILENAME)
    return BenchmarkIdentity(
        path=str(path),
        meta_size=meta.st_size,
        meta_mtime_ns=meta.st_mtime_ns,
        num_records=num_records,
        dir_mtime_ns=os.stat(path).st_mtime_ns,
    )


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/single-darts-study`` (default ``~/.cache/single-darts-study``).

    As the XDG base-directory spec says, an empty or relative ``$XDG_CACHE_HOME`` is ignored.
    Nothing is created here. ``RuntimeError`` when there is no home directory to fall back to.
    """
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / APP_CACHE_DIRNAME


def cache_file(identity: BenchmarkIdentity) -> Path:
    """Path of the cache file of ``identity`` in ``cache_dir()`` (it may not exist)."""
    return cache_dir() / f"{_FILE_PREFIX}{identity.key()}.json"


def load_optima(identity: BenchmarkIdentity, columns: Iterable[str]) -> dict[str, Optimum] | None:
    """Cached optima of every one of ``columns`` for ``identity``; ``None`` on any miss.

    A miss is: no file, an unreadable or corrupt file, another format or identity, a column
    absent or malformed (value not a finite number, index not a non-negative int, arch not a
    non-empty string). Never raises for the file's sake.
    """
    try:
        path = cache_file(identity)
        with path.open(encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, RuntimeError, ValueError) as exc:  # ValueError covers bad JSON and UTF-8
        _log.info("ignoring the unreadable NATS-Bench optimum cache (%s: %s)",
                  type(exc).__name__, exc)
        return None
    optima = _parse(data, identity, columns)
    if optima is None:
        _log.info("ignoring the stale or corrupt NATS-Bench optimum cache %s", path)
    return optima


def _parse(data: Any, identity: BenchmarkIdentity,
           columns: Iterable[str]) -> dict[str, Optimum] | None:
    """The optima stored in ``data`` (a parsed cache file) if it is valid for ``identity``."""
    if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT:
        return None
    if data.get("identity") != identity._asdict():
        return None
    stored = data.get("optima")
    if not isinstance(stored, dict):
        return None
    optima: dict[str, Optimum] = {}
    for column in columns:
        entry = stored.get(column)
        if not isinstance(entry, dict):
            return None
        value, index, arch = entry.get("value"), entry.get("index"), entry.get("arch")
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            return None
        if not isinstance(arch, str) or not arch or not math.isfinite(value):
            return None
        optima[column] = Optimum(float(value), index, arch)
    return optima


def store_optima(identity: BenchmarkIdentity, optima: Mapping[str, Optimum]) -> Path | None:
    """Write ``optima`` as the cache file of ``identity``, atomically; its path, or ``None``.

    The JSON goes to a temporary file in the cache directory, which then replaces the cache file
    (``os.replace``), so a reader sees the old file or the new one, never half of one. When the
    directory cannot be created or written, one warning per directory and process is logged and
    ``None`` is returned: the cache is an optimisation, never an error.
    """
    try:
        text = json.dumps(
            {
                "format": CACHE_FORMAT,
                "identity": identity._asdict(),
                "optima": {c: dataclasses.asdict(o) for c, o in optima.items()},
            },
            indent=1,
            allow_nan=False,
        ) + "\n"
    except ValueError as exc:  # a NaN or infinite value: not an optimum worth keeping
        _log.warning("not caching NATS-Bench optima with a non-finite value (%s)", exc)
        return None
    directory: Path | None = None
    tmp_name: str | None = None
    try:
        target = cache_file(identity)
        directory = target.parent
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{target.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp_name, target)
        tmp_name = None
        return target
    except (OSError, RuntimeError) as exc:
        where = str(directory) if directory is not None else "(no cache directory)"
        if where not in _warned:
            _warned.add(where)
            _log.warning(
                "cannot write the NATS-Bench optimum cache in %s (%s: %s); the optima are "
                "recomputed (minutes) in every new process. Set XDG_CACHE_HOME to a writable "
                "directory to cache them", where, type(exc).__name__, exc,
            )
        return None
    finally:
        if tmp_name is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)


def cached_optima(
    directory: str | os.PathLike[str],
    columns: Iterable[str],
    scan: Callable[[], Mapping[str, Optimum]],
) -> dict[str, Optimum]:
    """Optima of ``columns`` for the folder ``directory``: from the cache, else ``scan()``.

    ``scan`` computes the optima of (at least) every one of ``columns``; it is called only on a
    cache miss, and its result is stored for the next process. An exception from ``scan``
    propagates and nothing is cached; a result lacking a column raises ``KeyError``. When the
    folder's identity cannot be read (``OSError``) the scan runs without the cache.
    """
    columns = tuple(columns)
    try:
        identity: BenchmarkIdentity | None = benchmark_identity(directory)
    except OSError as exc:
        _log.info("not caching NATS-Bench optima: cannot read %s (%s)", directory, exc)
        identity = None
    if identity is not None:
        cached = load_optima(identity, columns)
        if cached is not None:
            return cached
    computed = scan()
    optima = {column: computed[column] for column in columns}
    if identity is not None:
        store_optima(identity, optima)
    return optima
