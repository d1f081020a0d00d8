"""Tests of the on-disk NATS-Bench optimum cache (``search_spaces.benchmark_cache``).

The fake benchmark has records for three indices only, so a full scan fails; the default tests
give ``cached_optima`` their own scan function (computing optima from those three records, or
constants) and count its calls. The slow test builds a complete folder and scans it for real.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from search_spaces import benchmark_cache as bc
from search_spaces.benchmark import (
    BENCH_COLUMNS,
    NATS_TSS_DIRNAME,
    NUM_ARCHS,
    BenchmarkRecordError,
    NatsBenchmark,
    TableBenchmark,
    open_benchmark,
)
from search_spaces.benchmark_cache import Optimum

REPO = Path(__file__).parents[2]
FAKE_DIR = REPO / "tests" / "fixtures" / "nats-fake" / NATS_TSS_DIRNAME
RECORDED = (0, 11, 284)  # the only indices with a record file in the fake benchmark


@pytest.fixture
def cache_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A fresh ``$XDG_CACHE_HOME``; returns the folder the cache files go to."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / bc.APP_CACHE_DIRNAME


@pytest.fixture(scope="module")
def partial_optima() -> dict[str, Optimum]:
    """Optima over the three recorded cells of the fake benchmark, read through nats_bench."""
    bench = NatsBenchmark(FAKE_DIR)
    archs = {index: bench.arch(index) for index in RECORDED}
    accs = {index: bench.accuracies(arch) for index, arch in archs.items()}
    optima = {}
    for column in BENCH_COLUMNS:
        best = max(RECORDED, key=lambda i: (accs[i][column], -i))  # ties: lowest index
        optima[column] = Optimum(accs[best][column], best, archs[best])
    return optima


class CountingScan:
    """A scan function for ``cached_optima`` that returns ``optima`` and counts its calls."""

    def __init__(self, optima: dict[str, Optimum]) -> None:
        self.optima = optima
        self.calls = 0

    def __call__(self) -> dict[str, Optimum]:
        self.calls += 1
        return self.optima


CONSTANT = {c: Optimum(90.0 + k, 7 * k, TableBenchmark().arch(7 * k))
            for k, c in enumerate(BENCH_COLUMNS)}


def _copy_fake(tmp_path: Path) -> Path:
    return Path(shutil.copytree(FAKE_DIR, tmp_path / "bench" / NATS_TSS_DIRNAME))


# --------------------------------------------------------------------------- location, identity
def test_cache_dir_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert bc.cache_dir() == tmp_path / "single-darts-study"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for ignored in ("", "relative/cache"):  # the XDG spec: empty or relative means unset
        monkeypatch.setenv("XDG_CACHE_HOME", ignored)
        assert bc.cache_dir() == tmp_path / "home" / ".cache" / "single-darts-study"


def test_identity_tracks_meta_mtime_and_record_count(tmp_path: Path) -> None:
    folder = _copy_fake(tmp_path)
    first = bc.benchmark_identity(folder)
    assert first.path == str(folder.resolve()) and first.num_records == len(RECORDED)
    assert first.meta_size == (folder / "meta.pickle.pbz2").stat().st_size
    link = tmp_path / "link"
    link.symlink_to(folder)
    assert bc.benchmark_identity(link) == first  # the resolved path, not the spelling

    meta = folder / "meta.pickle.pbz2"
    stat = meta.stat()
    os.utime(meta, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    touched = bc.benchmark_identity(folder)
    assert touched._replace(meta_mtime_ns=first.meta_mtime_ns) == first
    assert touched.key() != first.key()

    dir_mtime = folder.stat().st_mtime_ns
    shutil.copy(folder / "000000.pickle.pbz2", folder / "000001.pickle.pbz2")
    os.utime(folder, ns=(dir_mtime, dir_mtime))  # only the record count tells the change
    grown = bc.benchmark_identity(folder)
    assert grown == touched._replace(num_records=len(RECORDED) + 1)
    assert grown.key() != touched.key()
    assert bc.cache_file(grown) != bc.cache_file(touched)


# --------------------------------------------------------------------------- round trip
def test_round_trip_answers_without_the_api(cache_home: Path,
                                            partial_optima: dict[str, Optimum]) -> None:
    scan = CountingScan(partial_optima)
    assert bc.cached_optima(FAKE_DIR, BENCH_COLUMNS, scan) == partial_optima
    assert bc.cached_optima(FAKE_DIR, BENCH_COLUMNS, scan) == partial_optima
    assert scan.calls == 1  # the second call read the file

    (path,) = cache_home.glob("*.json")
    identity = bc.benchmark_identity(FAKE_DIR)
    assert path == bc.cache_file(identity)
    data = json.loads(path.read_text())
    assert data["format"] == bc.CACHE_FORMAT and data["identity"] == identity._asdict()
    assert set(data["optima"]) == set(BENCH_COLUMNS)
    assert not list(cache_home.glob(".*"))  # no temporary file left behind

    bench = open_benchmark(FAKE_DIR)
    assert isinstance(bench, NatsBenchmark)
    best = partial_optima["cifar10_valid"]
    assert bench.optimum("cifar10_valid") == (best.value, best.arch)
    assert bench.optimum("imagenet16_120_valid")[0] == partial_optima["imagenet16_120_valid"].value
    assert bench._api is None  # answered from the cache: no nats_bench API was created

    code = (
        "import sys; from search_spaces.benchmark import open_benchmark; "
        f"print(repr(open_benchmark({str(FAKE_DIR)!r}).optimum('cifar10_valid'))); "
        "print('nats_bench' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, check=True,
                         capture_output=True, text=True).stdout.split("\n")
    assert out[0] == repr((best.value, best.arch)) and out[1] == "False"


def test_failed_scan_caches_nothing(cache_home: Path) -> None:
    bench = open_benchmark(FAKE_DIR)
    for _ in range(2):  # a failure is not remembered: the second call scans (and fails) again
        with pytest.raises(BenchmarkRecordError, match="index 1 "):
            bench.optimum("cifar10_valid")
    assert not cache_home.exists() or not list(cache_home.iterdir())


def test_api_is_created_on_first_need(tmp_path: Path) -> None:
    bench = NatsBenchmark(FAKE_DIR)
    assert bench._api is None
    assert bench.optimum("cifar10_test")[0] == pytest.approx(94.373, abs=1e-3)  # shipped table
    assert bench._api is None
    assert bench.index(bench.arch(11)) == 11
    assert bench._api is not None
    with pytest.raises(ValueError, match="not a directory"):
        NatsBenchmark(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match=r"lacks meta\.pickle\.pbz2"):
        NatsBenchmark(tmp_path)


# --------------------------------------------------------------------------- damaged caches
def _valid_payload(identity: bc.BenchmarkIdentity) -> dict:
    return {"format": bc.CACHE_FORMAT, "identity": identity._asdict(),
            "optima": {c: {"value": o.value, "index": o.index, "arch": o.arch}
                       for c, o in CONSTANT.items()}}


def _corrupt(kind: str, identity: bc.BenchmarkIdentity) -> bytes:
    payload = _valid_payload(identity)
    if kind == "empty":
        return b""
    if kind == "truncated":
        return json.dumps(payload).encode()[:40]
    if kind == "binary":
        return b"\xff\xfe\x00garbage"
    if kind == "list":
        return b"[1, 2]"
    if kind == "other_format":
        payload["format"] = bc.CACHE_FORMAT + 1
    elif kind == "other_identity":
        payload["identity"]["num_records"] += 1
    elif kind == "missing_column":
        del payload["optima"]["cifar100_valid"]
    elif kind == "nan_value":
        return json.dumps(payload).replace("90.0", "NaN").encode()
    elif kind == "bad_index":
        payload["optima"]["cifar10_valid"]["index"] = "7"
    return json.dumps(payload).encode()


@pytest.mark.parametrize("kind", ["empty", "truncated", "binary", "list", "other_format",
                                  "other_identity", "missing_column", "nan_value", "bad_index"])
def test_corrupt_cache_file_is_recomputed(cache_home: Path, kind: str) -> None:
    scan = CountingScan(CONSTANT)
    bc.cached_optima(FAKE_DIR, BENCH_COLUMNS, scan)
    identity = bc.benchmark_identity(FAKE_DIR)
    path = bc.cache_file(identity)
    path.write_bytes(_corrupt(kind, identity))
    assert bc.load_optima(identity, BENCH_COLUMNS) is None
    assert bc.cached_optima(FAKE_DIR, BENCH_COLUMNS, scan) == CONSTANT
    assert scan.calls == 2
    assert bc.load_optima(identity, BENCH_COLUMNS) == CONSTANT  # rewritten


def test_unwritable_cache_dir_warns_once_and_returns(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache directory's parent should be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))  # mkdir fails even for root
    scan = CountingScan(CONSTANT)
    with caplog.at_level(logging.WARNING, logger=bc.__name__):
        for _ in range(2):
            assert bc.cached_optima(FAKE_DIR, BENCH_COLUMNS, scan) == CONSTANT
    assert scan.calls == 2
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "XDG_CACHE_HOME" in warnings[0].getMessage()


def test_cache_file_that_is_a_directory(cache_home: Path) -> None:
    path = bc.cache_file(bc.benchmark_identity(FAKE_DIR))
    path.mkdir(parents=True)  # unreadable as a file and not replaceable
    scan = CountingScan(CONSTANT)
    assert bc.cached_optima(FAKE_DIR, BENCH_COLUMNS, scan) == CONSTANT
    assert bc.cached_optima(FAKE_DIR, BENCH_COLUMNS, scan) == CONSTANT
    assert scan.calls == 2 and path.is_dir()
    assert [p.name for p in cache_home.iterdir()] == [path.name]  # temporary files removed


def test_non_finite_optimum_is_not_stored(cache_home: Path) -> None:
    optima = {**CONSTANT, "cifar10_valid": Optimum(float("nan"), 0, CONSTANT["cifar10_test"].arch)}
    scan = CountingScan(optima)
    bc.cached_optima(FAKE_DIR, BENCH_COLUMNS, scan)
    bc.cached_optima(FAKE_DIR, BENCH_COLUMNS, scan)
    assert scan.calls == 2 and not cache_home.exists()


# --------------------------------------------------------------------------- end to end (slow)
@pytest.mark.slow
def test_complete_folder_scans_once_then_a_new_process_reads_the_cache(
        cache_home: Path, tmp_path: Path) -> None:
    """A complete fast-mode folder whose 15,625 records are all record 0 (nats_bench does not
    check that a record file belongs to its index): every cell ties, so index 0 is optimal."""
    folder = tmp_path / "bench" / NATS_TSS_DIRNAME
    folder.mkdir(parents=True)
    shutil.copy(FAKE_DIR / "meta.pickle.pbz2", folder)
    shutil.copy(FAKE_DIR / "000000.pickle.pbz2", folder)
    for index in range(1, NUM_ARCHS):
        (folder / f"{index:06d}.pickle.pbz2").symlink_to("000000.pickle.pbz2")
    expected = open_benchmark(FAKE_DIR).accuracies(TableBenchmark().arch(0))["cifar10_valid"]

    start = time.perf_counter()
    first = open_benchmark(folder).optimum("cifar10_valid")
    first_s = time.perf_counter() - start
    assert first == (expected, TableBenchmark().arch(0))
    (path,) = cache_home.glob("*.json")
    assert set(json.loads(path.read_text())["optima"]) == set(BENCH_COLUMNS)

    code = (
        "import sys, time; t = time.perf_counter(); "
        "from search_spaces.benchmark import open_benchmark; "
        f"v = open_benchmark({str(folder)!r}).optimum('cifar10_valid'); "
        "print(repr(v)); print(time.perf_counter() - t); print('nats_bench' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, check=True,
                         capture_output=True, text=True).stdout.split("\n")
    second_s = time.perf_counter() - start
    assert out[0] == repr(first) and out[2] == "False"
    print(f"\nfirst call (scan + cache): {first_s:.1f} s; fresh process (python -c, wall): "
          f"{second_s:.2f} s, of which import + optimum(): {float(out[1]):.2f} s")
    assert second_s < first_s
