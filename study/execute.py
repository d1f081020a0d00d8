"""Execute a grid on a Ray cluster: start or join Ray, run the Tuner, write Parquet, summarise."""

from __future__ import annotations

import time
from collections.abc import Sequence

import ray
from ray import tune

from study.results import ParquetResultsWriter
from study.runner import RunOptions, build_tuner, ray_init_kwargs
from trainables import records as R
from trainables.config import SearchConfig

PROGRESS_METRICS = {
    R.EPOCH: "epoch",
    R.TRAIN_LOSS: "loss",
    R.VALID_ACC: "valid",
    R.BENCH["cifar10_test"]: "nb201 c10",
    R.STATUS: "status",
}
PROGRESS_PARAMETERS = {"dataset": "data", "level": "level", "activation": "act", "seed": "seed"}


def run_experiment(configs: Sequence[SearchConfig], options: RunOptions, experiment: str) -> int:
    """Run (or resume) ``experiment``; print progress and a summary. Exit status: 0 if every
    trial finished, 1 if some errored (rerun the same command to resume them)."""
    start = time.monotonic()
    ray.init(**ray_init_kwargs(options), log_to_driver=False)
    try:
        parquet_root = options.storage("parquet")
        writer = ParquetResultsWriter(parquet_root, experiment)
        progress = tune.CLIReporter(
            metric_columns=PROGRESS_METRICS,
            parameter_columns=PROGRESS_PARAMETERS,
            max_report_frequency=30,
        )
        results = build_tuner(configs, options, experiment, [writer], progress).fit()
    finally:
        ray.shutdown()
    benchmark_dir = next((c.benchmark_dir for c in configs if c.benchmark_dir), None)
    _print_summary(
        parquet_root, experiment, len(results.errors), time.monotonic() - start, benchmark_dir
    )
    return 1 if results.errors else 0


def _print_summary(
    parquet_root: str, experiment: str, errors: int, seconds: float, benchmark_dir: str | None
) -> None:
    """Trial counts, the main table (paper Table 1 layout) and how to load the results."""
    from analysis.results import load_results
    from analysis.tables import main_table

    try:
        df = load_results(parquet_root, experiments=[experiment], alphas=False)
    except FileNotFoundError:  # no trial reported anything (e.g. all failed at start-up)
        df = None
    count = 0 if df is None else df["trial_id"].nunique()
    print(f"\n{experiment}: {count} trials with results, {errors} errored, {seconds:.0f} s\n")
    if df is not None and count:
        print(main_table(df, benchmark_dir=benchmark_dir).to_markdown())
    print(f"Parquet dataset: {parquet_root}")
    print("  from analysis.results import load_results")
    print(f"  df = load_results({parquet_root!r}, experiments=[{experiment!r}])")
    print(f"  more tables: study tables {parquet_root}; figures: study plots {parquet_root} --out DIR")
