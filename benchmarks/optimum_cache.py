"""`study tables --benchmark-dir`: the first call on a NATS-Bench folder vs every later one.

The main table's Optimal row needs the best valid accuracy of all 15,625 NAS-Bench-201 cells;
with a NATS-Bench fast-mode folder that is a scan of every record file (minutes). The optima are
then cached in the user's cache directory (``search_spaces.benchmark_cache``), so later calls,
in any process, read them back. This script times both calls of the real CLI, each in a fresh
process, with a private ``$XDG_CACHE_HOME``.

The real benchmark folder is not needed: a complete folder is built from the miniature one in
tests/fixtures (its meta file, plus 15,625 record files as symlinks to its record 0; nats_bench
does not check that a record belongs to its index), so the scan reads 15,625 records like the
real one does, from the page cache. The results folder is a small generated one (8 trials).

    python benchmarks/optimum_cache.py            # about 8 minutes on a 2-core machine
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks"), str(REPO / "tests" / "analysis")]

from machine import cpu_model  # noqa: E402  (benchmarks/machine.py)

NATS_TSS_DIRNAME = "NATS-tss-v1_0-3ffb9-simple"
NUM_ARCHS = 15_625
FAKE = REPO / "tests" / "fixtures" / "nats-fake" / NATS_TSS_DIRNAME


def complete_folder(root: Path) -> Path:
    folder = root / NATS_TSS_DIRNAME
    folder.mkdir()
    shutil.copy(FAKE / "meta.pickle.pbz2", folder)
    record = FAKE / "000000.pickle.pbz2"
    for index in range(NUM_ARCHS):
        os.symlink(record, folder / f"{index:06d}.pickle.pbz2")
    return folder


def results_folder(root: Path) -> Path:
    from builders import HEALTHY, TrialSpec, record, write_study  # tests/analysis/builders.py

    from trainables.config import SearchConfig

    trials = [
        TrialSpec(f"{level}-{seed}", SearchConfig(dataset="cifar10", level=level, seed=seed),
                  [record(epoch, genotype=HEALTHY) for epoch in (1, 2)])
        for level in ("single", "bi")
        for seed in range(4)
    ]
    write_study(root / "parquet", "bench", trials)
    return root


def timed_tables(results: Path, bench: Path, env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "study.cli", "tables", str(results), "--table", "main",
         "--benchmark-dir", str(bench)],
        capture_output=True, text=True, env=env, check=True,
    )
    return time.perf_counter() - start, done.stdout


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        bench = complete_folder(root)
        results = results_folder(root / "results")
        env = {**os.environ, "XDG_CACHE_HOME": str(root / "cache"), "PYTHONPATH": str(REPO)}
        first, first_out = timed_tables(results, bench, env)
        second, second_out = timed_tables(results, bench, env)
    assert first_out == second_out, "the cached optimum changed the table"
    optimal = next(line for line in first_out.splitlines() if line.startswith("| Optimal"))
    print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs")
    print(f"first call (scan of {NUM_ARCHS:,} records, then cached): {first:8.1f} s")
    print(f"second call (fresh process, from the cache):       {second:8.2f} s")
    print(f"ratio first / second: {first / second:.0f}x; same table both times")
    print(f"Optimal row: {optimal}")


if __name__ == "__main__":
    main()
