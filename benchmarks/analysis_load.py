"""Load 1,000,000 result rows and build the main table: wall time and peak memory.

Generates a results dataset in the writer's exact schema (``analysis.store.results_schema``):
``--trials`` trials × ``--epochs`` epochs (default 20,000 × 50 = 1,000,000 rows) of NAS-Bench-201
searches over 2 methods × 3 datasets × seeds, with random genotypes, α (6 × 5) and α-gradient
lists, benchmark accuracies and timings, spread over ``--files`` part files. ``--rereported``
(default 1%) of the rows are written a second time with attempt 1, as Ray does after a restart,
so de-duplication has real work to do.

Then, in a fresh Python process (so imports and memory are those of a user's session, and
neither Ray nor torch is loaded), it times::

    df = load_results(ROOT, alphas=...)   # every row, de-duplicated; with or without the α lists
    table = main_table(df)                # paper Table 1 with the Optimal row (shipped table)

for ``alphas=False`` (what ``study tables`` reads) and ``alphas=True`` (every column), interleaved,
and reports the peak resident memory of each process (``VmHWM`` of ``/proc/self/status``; not
``ru_maxrss``, which Linux carries over from the parent across fork + exec, so it would count the
generator's memory).

    python benchmarks/analysis_load.py                 # 1M rows
    python benchmarks/analysis_load.py --trials 200    # 10k rows, quick check
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MEASURE = r"""
import json, re, sys, time
t0 = time.perf_counter()
from analysis.results import load_results
from analysis.tables import main_table
t1 = time.perf_counter()
df = load_results(sys.argv[1], alphas=sys.argv[2] == "1")
t2 = time.perf_counter()
table = main_table(df)
text = table.to_markdown()
t3 = time.perf_counter()
print(json.dumps({
    "rows": len(df), "trials": int(df.trial_id.nunique()), "columns": df.shape[1],
    "import_s": t1 - t0, "load_s": t2 - t1, "table_s": t3 - t2, "total_s": t3 - t1,
    "peak_rss_mib": int(re.search(r"VmHWM:\s+(\d+) kB", open("/proc/self/status").read())[1]) / 1024,
    "frame_mib": float(df.memory_usage(deep=True).sum()) / 2**20,
    "torch_or_ray_loaded": any(m in sys.modules for m in ("torch", "ray")),
    "table": text,
}))
"""


def _nested(values: np.ndarray, edges: int, ops: int) -> pa.Array:
    """(rows, edges*ops) float64 -> list<list<double>> of edges × ops per row."""
    rows = values.shape[0]
    inner = pa.ListArray.from_arrays(
        pa.array(np.arange(0, rows * edges * ops + 1, ops, dtype=np.int32)),
        pa.array(values.reshape(-1)),
    )
    return pa.ListArray.from_arrays(
        pa.array(np.arange(0, rows * edges + 1, edges, dtype=np.int32)), inner
    )


def generate(root: Path, trials: int, epochs: int, files: int, rereported: float,
             seed: int = 0) -> int:
    """Write the dataset; returns the number of rows written (re-reports included)."""
    from analysis.store import results_schema
    from search_spaces.genotypes import NB201_OPS, nb201_to_string
    from trainables.config import SearchConfig

    rng = np.random.default_rng(seed)
    schema = results_schema()
    folder = root / "experiment=bench"
    folder.mkdir(parents=True)
    methods = [
        SearchConfig(space="nb201", level="bi", activation="softmax", epochs=epochs),
        SearchConfig(space="nb201", level="single", activation="sigmoid", w_lr=0.005,
                     epochs=epochs),
    ]
    datasets = ("cifar10", "cifar100", "imagenet16-120")
    n = trials * epochs
    trial = np.repeat(np.arange(trials), epochs)
    epoch = np.tile(np.arange(1, epochs + 1), trials)
    method = trial % 2
    dataset = (trial // 2) % 3
    seed_col = trial // 6
    genotype_pool = [
        nb201_to_string([NB201_OPS[k] for k in rng.integers(0, 5, 6)]) for _ in range(2000)
    ]
    columns: dict[str, pa.Array] = {
        "experiment": pa.array(["bench"] * n),
        "trial_id": pa.array([f"t{t:06d}" for t in range(trials)]).take(pa.array(trial)),
        "attempt": pa.array(np.zeros(n, dtype=np.int64)),
        "reported_at": pa.array(
            (np.int64(1_764_000_000_000_000) + np.arange(n, dtype=np.int64) * 1000),
            pa.timestamp("us", tz="UTC"),
        ),
    }
    config_dicts = [m.to_dict() for m in methods]
    for field in schema:
        name = field.name
        if name in columns:
            continue
        if name in config_dicts[0]:
            if name == "dataset":
                columns[name] = pa.array(datasets, pa.string()).take(pa.array(dataset))
            elif name == "seed":
                columns[name] = pa.array(seed_col.astype(np.int64))
            else:
                per_method = pa.array([c[name] for c in config_dicts], field.type)
                columns[name] = per_method.take(pa.array(method))
        elif name == "epoch":
            columns[name] = pa.array(epoch.astype(np.int64))
        elif name == "status":
            columns[name] = pa.array(["ok"] * n)
        elif name == "exec_path":
            columns[name] = pa.array(["cuda_graph"] * n)
        elif name == "steps":
            columns[name] = pa.array(np.full(n, 391, dtype=np.int64))
        elif name == "genotype":
            columns[name] = pa.array(genotype_pool).take(pa.array(rng.integers(0, 2000, n)))
        elif name in ("alpha_normal", "alpha_grad_normal"):
            columns[name] = _nested(rng.random((n, 30)), 6, 5)
        elif name in ("alpha_reduce", "alpha_grad_reduce"):
            columns[name] = pa.nulls(n, field.type)
        else:
            columns[name] = pa.array(rng.random(n) * 100)
    table = pa.table([columns[f.name] for f in schema], schema=schema)
    again = np.sort(rng.choice(n, int(n * rereported), replace=False))
    rerun = table.take(pa.array(again))
    rerun = rerun.set_column(schema.get_field_index("attempt"), schema.field("attempt"),
                             pa.array(np.ones(len(again), dtype=np.int64)))
    bounds = np.linspace(0, n, files + 1).astype(int)
    for i in range(files):
        part = table.slice(bounds[i], bounds[i + 1] - bounds[i])
        pq.write_table(part, folder / f"part-{i:05d}.parquet")
    pq.write_table(rerun, folder / "part-rerun.parquet")
    return n + len(again)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=20_000)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--rereported", type=float, default=0.01)
    parser.add_argument("--runs", type=int, default=3, help="timed loads (fresh process each)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        written = generate(root, args.trials, args.epochs, args.files, args.rereported)
        size = sum(p.stat().st_size for p in root.rglob("*.parquet")) / 2**20
        print(f"generated {written:,} rows ({args.trials:,} trials × {args.epochs} epochs + "
              f"re-reports) in {args.files + 1} files, {size:.0f} MiB, "
              f"{time.perf_counter() - start:.1f} s")
        results: dict[str, list[dict]] = {"alphas=False": [], "alphas=True": []}
        for _ in range(args.runs):  # interleaved, each in a fresh process
            for mode, flag in (("alphas=False", "0"), ("alphas=True", "1")):
                out = subprocess.run([sys.executable, "-c", MEASURE, str(root), flag], cwd=REPO,
                                     capture_output=True, text=True, check=True)
                results[mode].append(json.loads(out.stdout))
        for mode, runs in results.items():
            for r in runs:
                print(f"{mode:<13} rows {r['rows']:,}  load {r['load_s']:.2f} s  table "
                      f"{r['table_s']:.2f} s  total {r['total_s']:.2f} s  peak RSS "
                      f"{r['peak_rss_mib']:.0f} MiB  frame {r['frame_mib']:.0f} MiB  (imports "
                      f"{r['import_s']:.2f} s; torch/ray loaded: {r['torch_or_ray_loaded']})")
            totals = sorted(r["total_s"] for r in runs)
            peaks = sorted(r["peak_rss_mib"] for r in runs)
            print(f"{mode:<13} median total {totals[len(totals) // 2]:.2f} s, median peak RSS "
                  f"{peaks[len(peaks) // 2]:.0f} MiB over {len(runs)} runs")
        print(results["alphas=False"][-1]["table"])


if __name__ == "__main__":
    main()
