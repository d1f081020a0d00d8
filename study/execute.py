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
SUMMARY_COLUMNS = [
    "dataset",
    "level",
    "arch_data",
    "activation",
    "w_optimizer",
    "w_lr",
    "seed",
    R.EPOCH,
    R.STATUS,
    R.VALID_ACC,
    R.BENCH["cifar10_test"],
]


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
    _print_summary(parquet_root, experiment, len(results.errors), time.monotonic() - start)
    return 1 if results.errors else 0


def _print_summary(parquet_root: str, experiment: str, errors: int, seconds: float) -> None:
    from analysis.results import load_results

    try:
        final = load_results(parquet_root, experiments=[experiment], final_only=True)
    except FileNotFoundError:  # no trial reported anything (e.g. all failed at start-up)
        final = None
    count = 0 if final is None else len(final)
    print(f"\n{experiment}: {count} trials with results, {errors} errored, {seconds:.0f} s")
    if final is not None and count:
        columns = [c for c in SUMMARY_COLUMNS if c in final.columns]
        print(final[columns].to_string(index=False, max_rows=60))
    print(f"\nParquet dataset: {parquet_root}")
    print(
        f"  import analysis.results as r; df = r.load_results({parquet_root!r}, "
        f"experiments=[{experiment!r}])"
    )
