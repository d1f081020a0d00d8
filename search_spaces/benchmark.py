"""NAS-Bench-201 / NATS-Bench (topology) accuracy lookup for derived cells.

Two sources answer the same questions (``index``, ``accuracies``, ``optimum``):

* ``NatsBenchmark`` reads the official fast-mode benchmark directory
  ``NATS-tss-v1_0-3ffb9-simple`` through the ``nats_bench`` API and knows every column, validation
  accuracies included;
* ``TableBenchmark`` reads the test accuracies of all 15,625 cells shipped with this package
  (``data/nb201_test_accuracy.npz``, see ``data/README.md``), needs no download and knows the test
  columns only (validation columns are NaN).

``open_benchmark`` picks one. Every accuracy is in percent and is the mean over the benchmark's
seeds after the 200-epoch schedule (``hp='200'``, ``is_random=False``), as in the paper tables.
The row order of the table is the NATS-Bench index, so both sources agree on ``index``.

The optima of a NATS-Bench folder's validation columns need a full scan of its records (minutes),
so ``NatsBenchmark`` keeps the optima of all six columns in the user's cache directory (see
``search_spaces.benchmark_cache``), and later processes read them back in milliseconds.
"""

from __future__ import annotations

import functools
import math
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from search_spaces.benchmark_cache import Optimum, cached_optima
from search_spaces.genotypes import NB201_OPS, nb201_from_string, nb201_to_string

BENCH_DATASETS = ("cifar10", "cifar100", "imagenet16-120")  # our dataset names
BENCH_COLUMNS: tuple[str, ...] = (
    "cifar10_valid",
    "cifar10_test",
    "cifar100_valid",
    "cifar100_test",
    "imagenet16_120_valid",
    "imagenet16_120_test",
)  # percent
TEST_COLUMNS: tuple[str, ...] = tuple(c for c in BENCH_COLUMNS if c.endswith("_test"))
VALID_COLUMNS: tuple[str, ...] = tuple(c for c in BENCH_COLUMNS if c.endswith("_valid"))

NATS_TSS_DIRNAME = "NATS-tss-v1_0-3ffb9-simple"  # the fast-mode benchmark directory
NUM_ARCHS = 15_625  # 5 ops ** 6 edges
TABLE_PATH = Path(__file__).parent / "data" / "nb201_test_accuracy.npz"

# column -> (nats_bench dataset name, key of get_more_info's dict). CIFAR-10 "valid" is the
# cifar10-valid protocol (train on half of the train set, evaluate on the other half).
_NATS_QUERIES: tuple[tuple[str, str, str], ...] = (
    ("cifar10_valid", "cifar10-valid", "valid-accuracy"),
    ("cifar10_test", "cifar10", "test-accuracy"),
    ("cifar100_valid", "cifar100", "valid-accuracy"),
    ("cifar100_test", "cifar100", "test-accuracy"),
    ("imagenet16_120_valid", "ImageNet16-120", "valid-accuracy"),
    ("imagenet16_120_test", "ImageNet16-120", "test-accuracy"),
)
_HOW_TO_GET_VALID = (
    "download the NATS-Bench topology fast-mode benchmark directory "
    f"{NATS_TSS_DIRNAME}/ (github.com/D-X-Y/NATS-Bench) and pass its path to open_benchmark(), "
    "or put it under $TORCH_HOME (default ~/.torch)"
)


class BenchmarkRecordError(LookupError):
    """A benchmark record exists in the index but its file cannot be read (absent or damaged)."""


# --------------------------------------------------------------------------- shipped table
class _Table(NamedTuple):
    """The shipped table: row i is NATS-Bench index i (arrays are read-only)."""

    ops: np.ndarray  # (NUM_ARCHS, 6) uint8, indices into NB201_OPS in NB201_EDGES order
    test: np.ndarray  # (NUM_ARCHS, 3) float64, percent, columns TEST_COLUMNS


@functools.lru_cache(maxsize=1)
def load_table() -> _Table:
    """Load the shipped test-accuracy table once per process (it is read-only package data)."""
    try:
        with np.load(TABLE_PATH, allow_pickle=False) as data:
            ops, test = data["ops"], data["test_accuracy"]
            op_names, columns = tuple(data["op_names"]), tuple(data["columns"])
    except (OSError, KeyError, ValueError) as exc:
        raise RuntimeError(
            f"cannot read the shipped benchmark table {TABLE_PATH} ({exc}); "
            "reinstall the package so that search_spaces/data/ is complete"
        ) from exc
    shapes_ok = ops.shape == (NUM_ARCHS, 6) and test.shape == (NUM_ARCHS, len(TEST_COLUMNS))
    if op_names != NB201_OPS or columns != TEST_COLUMNS or not shapes_ok:
        raise RuntimeError(
            f"the shipped benchmark table {TABLE_PATH} does not match this code "
            f"(ops {op_names}, columns {columns}, shapes {ops.shape} / {test.shape}); "
            "regenerate it as described in search_spaces/data/README.md"
        )
    ops.setflags(write=False)
    test.setflags(write=False)
    return _Table(ops=ops, test=test)


def _check_column(column: str) -> None:
    """Raise ``ValueError`` naming the valid columns when ``column`` is not one of them."""
    if column not in BENCH_COLUMNS:
        raise ValueError(f"unknown benchmark column {column!r}; valid: {', '.join(BENCH_COLUMNS)}")


def _best_row(values: np.ndarray, column: str) -> int:
    """Index of the best (highest) finite value; ties go to the lowest NATS-Bench index."""
    if not np.isfinite(values).any():
        raise ValueError(f"no finite accuracies in benchmark column {column!r}")
    return int(np.nanargmax(values))


# --------------------------------------------------------------------------- sources
class Benchmark(ABC):
    """Accuracy lookup for NAS-Bench-201 cells written as arch strings (percent)."""

    source: str  # "nats_bench" or "table"

    @abstractmethod
    def index(self, arch: str) -> int:
        """NATS-Bench index of ``arch``; ``ValueError`` when ``arch`` is not a valid cell string."""

    @abstractmethod
    def accuracies(self, arch: str) -> dict[str, float]:
        """Every ``BENCH_COLUMNS`` key, in percent; NaN where this source does not know it."""

    @abstractmethod
    def optimum(self, column: str) -> tuple[float, str]:
        """Best accuracy of ``column`` over all cells and that cell's arch string."""

    def arch(self, index: int) -> str:
        """Arch string of NATS-Bench index ``index`` (from the shipped table: same order)."""
        if not 0 <= index < NUM_ARCHS:
            raise ValueError(f"NATS-Bench index must be in [0, {NUM_ARCHS}), got {index}")
        return nb201_to_string([NB201_OPS[k] for k in load_table().ops[index]])

    def _table_optimum(self, column: str) -> tuple[float, str]:
        """Optimum of a test column from the shipped table (same numbers as the benchmark)."""
        values = load_table().test[:, TEST_COLUMNS.index(column)]
        best = _best_row(values, column)
        return float(values[best]), self.arch(best)


class TableBenchmark(Benchmark):
    """Test accuracies of all cells from the shipped table; validation columns are NaN."""

    source = "table"

    def __init__(self) -> None:
        self._table = load_table()
        self._index_of: dict[tuple[int, ...], int] | None = None  # built on first lookup

    def __repr__(self) -> str:
        return f"TableBenchmark({TABLE_PATH.name})"

    def index(self, arch: str) -> int:
        """NATS-Bench index of ``arch`` (validated first: a bad op names the valid ops)."""
        key = tuple(NB201_OPS.index(op) for op in nb201_from_string(arch))
        if self._index_of is None:
            self._index_of = {tuple(int(k) for k in row): i for i, row in enumerate(self._table.ops)}
        if key not in self._index_of:
            raise ValueError(f"arch {arch!r} is not in the shipped NAS-Bench-201 table")
        return self._index_of[key]

    def accuracies(self, arch: str) -> dict[str, float]:
        """Test columns from the table; validation columns are NaN (not in the table)."""
        row = self._table.test[self.index(arch)]
        test = dict(zip(TEST_COLUMNS, (float(v) for v in row), strict=True))
        return {column: test.get(column, math.nan) for column in BENCH_COLUMNS}

    def optimum(self, column: str) -> tuple[float, str]:
        """Best test accuracy; a validation column raises (the table has test accuracies only)."""
        _check_column(column)
        if column in VALID_COLUMNS:
            raise ValueError(
                f"the shipped table has test accuracies only, so {column!r} is unknown; to get "
                f"validation accuracies, {_HOW_TO_GET_VALID}"
            )
        return self._table_optimum(column)


class NatsBenchmark(Benchmark):
    """Every column through the official ``nats_bench`` API on the fast-mode directory.

    Each architecture's record file is read once; its six accuracies are cached in this object and
    the API's parsed record is dropped again, so memory stays small even after a full scan.

    The API (``nats_bench`` import and ``meta.pickle.pbz2``, about a second) is created on first
    need, so an ``optimum`` answered from the on-disk optimum cache (``benchmark_cache``) costs
    neither.
    """

    source = "nats_bench"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        """Open ``path``, the ``NATS-tss-v1_0-3ffb9-simple`` directory itself (fast mode).

        Only checks that ``path`` is a directory holding ``meta.pickle.pbz2`` (``ValueError``,
        ``FileNotFoundError``); the ``nats_bench`` API is created on first need.
        """
        self.path = Path(path)
        _check_fast_mode_dir(self.path)
        self._api: Any = None  # the nats_bench API, see _nats_api()
        self._cache: dict[int, dict[str, float]] = {}
        self._scan: np.ndarray | None = None  # (NUM_ARCHS, len(BENCH_COLUMNS)) after a full scan
        self._optima: dict[str, Optimum] | None = None  # every column's optimum, once known

    def __repr__(self) -> str:
        return f"NatsBenchmark({str(self.path)!r})"

    def index(self, arch: str) -> int:
        """NATS-Bench index of ``arch`` (validated first: a bad op names the valid ops)."""
        nb201_from_string(arch)
        index = int(self._nats_api().query_index_by_arch(arch))
        if index < 0:
            raise ValueError(f"arch {arch!r} is not in the NATS-Bench benchmark at {self.path}")
        return index

    def accuracies(self, arch: str) -> dict[str, float]:
        """All six columns of ``arch``; ``BenchmarkRecordError`` if its record is unreadable."""
        return dict(self._record(self.index(arch)))

    def optimum(self, column: str) -> tuple[float, str]:
        """Best accuracy of ``column`` and its arch string; ties go to the lowest index.

        Test columns come from the shipped table (the same numbers, instantly). Validation
        columns need every record: the first call ever on this folder reads all 15,625 record
        files through the API (slow: minutes) and keeps the optima of all six columns in this
        object and in the user's cache directory (``benchmark_cache``: one small JSON file per
        folder state), so later calls, in any process, answer in milliseconds.
        """
        _check_column(column)
        if column in TEST_COLUMNS:
            return self._table_optimum(column)
        if self._optima is None:
            self._optima = cached_optima(self.path, BENCH_COLUMNS, self._scan_optima)
        best = self._optima[column]
        return best.value, best.arch

    def _nats_api(self) -> Any:
        """The ``nats_bench`` API of this directory, created on first call."""
        if self._api is None:
            self._api = _create_nats_api(self.path)
        return self._api

    def _scan_optima(self) -> dict[str, Optimum]:
        """Optimum of every column from a full scan; ties go to the lowest index."""
        scan = self._scan_all()
        optima = {}
        for k, column in enumerate(BENCH_COLUMNS):
            best = _best_row(scan[:, k], column)
            optima[column] = Optimum(float(scan[best, k]), best, self.arch(best))
        return optima

    def _record(self, index: int) -> dict[str, float]:
        """Cached accuracies of one index (read from disk the first time)."""
        if index not in self._cache:
            if self._scan is not None:
                self._cache[index] = dict(zip(BENCH_COLUMNS, map(float, self._scan[index]),
                                              strict=True))
            else:
                self._cache[index] = self._read_record(index)
        return self._cache[index]

    def _scan_all(self) -> np.ndarray:
        """Accuracies of every index, (NUM_ARCHS, len(BENCH_COLUMNS)); read once, then cached."""
        if self._scan is None:
            scan = np.empty((len(self._nats_api()), len(BENCH_COLUMNS)), dtype=np.float64)
            for index in range(len(scan)):
                record = self._cache.get(index) or self._read_record(index)
                scan[index] = [record[column] for column in BENCH_COLUMNS]
            scan.setflags(write=False)
            self._scan = scan
        return self._scan

    def _read_record(self, index: int) -> dict[str, float]:
        """Query the API for the six columns of ``index`` (one record file read)."""
        api = self._nats_api()  # outside the try: a failure to create it is not a record's fault
        try:
            record = {
                column: float(api.get_more_info(index, dataset, hp="200", is_random=False)[key])
                for column, dataset, key in _NATS_QUERIES
            }
        except Exception as exc:  # nats_bench signals a missing file with AssertionError
            raise BenchmarkRecordError(
                f"cannot read the NATS-Bench record of architecture index {index} from {self.path} "
                f"({type(exc).__name__}: {exc}); the benchmark directory is incomplete or damaged: "
                f"re-download {NATS_TSS_DIRNAME}, or use open_benchmark(use_table=True) for test "
                "accuracies"
            ) from exc
        finally:
            self._forget(index)
        return record

    def _forget(self, index: int) -> None:
        """Drop the API's parsed copy of a record (we keep only the six floats we need)."""
        self._api.arch2infos_dict.pop(index, None)
        self._api.evaluated_indexes.discard(index)


def _create_nats_api(path: Path) -> Any:
    """Open the fast-mode benchmark directory with ``nats_bench`` (imported here, lazily)."""
    try:
        import nats_bench
    except ImportError as exc:
        raise ModuleNotFoundError(
            "reading the NATS-Bench benchmark needs the nats_bench package (the 'search' extra): "
            "pip install 'single-darts-study[search]' (or use open_benchmark(use_table=True) for "
            "test accuracies only)",
            name="nats_bench",
        ) from exc
    api = nats_bench.create(str(path), "tss", fast_mode=True, verbose=False)
    if len(api) != NUM_ARCHS:
        raise ValueError(
            f"{path} holds {len(api)} architectures, expected the {NUM_ARCHS} of the NATS-Bench "
            f"topology space; pass the {NATS_TSS_DIRNAME} directory"
        )
    return api


# --------------------------------------------------------------------------- opening
def resolve_benchmark_dir(path: str | os.PathLike[str]) -> Path:
    """The fast-mode directory given itself or its parent (``nats_bench`` wants the directory).

    Raises ``FileNotFoundError`` when ``path`` does not exist or lacks the benchmark's
    ``meta.pickle.pbz2``, ``ValueError`` when it is neither the directory nor holds it.
    """
    given = Path(path).expanduser()
    if not given.exists():
        raise FileNotFoundError(
            f"NATS-Bench path {given} does not exist; pass the fast-mode directory "
            f"{NATS_TSS_DIRNAME}/ (or its parent), or path=None to fall back to the shipped table"
        )
    directory = given if given.name == NATS_TSS_DIRNAME else given / NATS_TSS_DIRNAME
    if not directory.is_dir():
        raise ValueError(
            f"NATS-Bench path {given} is neither the fast-mode directory {NATS_TSS_DIRNAME}/ nor "
            "a directory that contains it (the single-file .pickle.pbz2 benchmark is not "
            f"supported: fast mode reads per-architecture files); {_HOW_TO_GET_VALID}"
        )
    _check_meta(directory)
    return directory


def _check_meta(directory: Path) -> None:
    """``FileNotFoundError`` when ``directory`` lacks the benchmark's ``meta.pickle.pbz2``."""
    if not (directory / "meta.pickle.pbz2").is_file():
        raise FileNotFoundError(
            f"{directory} lacks meta.pickle.pbz2, so it is not a complete NATS-Bench fast-mode "
            f"directory; re-download {NATS_TSS_DIRNAME}"
        )


def _check_fast_mode_dir(directory: Path) -> None:
    """Cheap check (two ``stat`` calls) that ``directory`` can be a fast-mode benchmark."""
    if not directory.is_dir():
        raise ValueError(
            f"NATS-Bench path {directory} is not a directory; pass the fast-mode directory "
            f"{NATS_TSS_DIRNAME}/ itself (or its parent to open_benchmark()); {_HOW_TO_GET_VALID}"
        )
    _check_meta(directory)


def default_benchmark_dir() -> Path | None:
    """``$TORCH_HOME`` (else ``~/.torch``) / ``NATS-tss-v1_0-3ffb9-simple`` if it is there."""
    torch_home = os.environ.get("TORCH_HOME") or str(Path.home() / ".torch")
    candidate = Path(torch_home).expanduser() / NATS_TSS_DIRNAME
    return candidate if candidate.is_dir() else None


def open_benchmark(path: str | os.PathLike[str] | None = None, *,
                   use_table: bool = False) -> Benchmark:
    """Open the best available source; ``.source`` tells which one was chosen.

    ``use_table=True`` always gives the shipped table (``path`` is then ignored). A ``path`` must
    be the ``NATS-tss-v1_0-3ffb9-simple`` directory or its parent. Without a path the directory is
    looked up under ``$TORCH_HOME`` (else ``~/.torch``); when it is not there the shipped table is
    used silently (test accuracies only).
    """
    if use_table:
        return TableBenchmark()
    if path is not None:
        return NatsBenchmark(resolve_benchmark_dir(path))
    found = default_benchmark_dir()
    return NatsBenchmark(resolve_benchmark_dir(found)) if found is not None else TableBenchmark()
