"""The ``study`` command: list grids, and run one as Ray Tune trials.

    study grids
    study run GRID [--dry-run] [--results DIR] [--address ADDR] [--cpus-per-trial N]
                   [--gpus-per-trial F] [--max-concurrent N] [--max-failures N]
                   [--epochs N] [--seeds N] [--data-dir DIR] [--benchmark-dir DIR] [--name NAME]

GRID is a registered grid name (``study grids``) or a TOML grid file. Every input is validated
before Ray starts or anything is written; a bad one exits with status 2 and a message naming it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from trainables.config import SearchConfig

if TYPE_CHECKING:
    from study.runner import RunOptions

EXIT_BAD_INPUT = 2


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.handler(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"study: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="study", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(required=True, metavar="COMMAND")
    grids = sub.add_parser("grids", help="list the registered grids and their trial counts")
    grids.set_defaults(handler=_grids)
    run = sub.add_parser("run", help="run a grid as Ray Tune trials (resumes if it exists)")
    run.add_argument("grid", help="registered grid name or path to a TOML grid file")
    run.add_argument("--dry-run", action="store_true", help="print the trials, run nothing")
    run.add_argument(
        "--results",
        default="results",
        help="results folder (NFS path or s3:// URI for multi-node clusters)",
    )
    run.add_argument("--address", default=None, help="Ray cluster address (default: local)")
    run.add_argument("--cpus-per-trial", type=float, default=1.0)
    run.add_argument(
        "--gpus-per-trial",
        type=float,
        default=0.0,
        help="GPUs per trial; fractions pack several trials on one GPU",
    )
    run.add_argument("--max-concurrent", type=int, default=0, help="0 = resource-limited")
    run.add_argument(
        "--max-failures",
        type=int,
        default=2,
        help="retries of a crashing trial, each from its last checkpoint",
    )
    run.add_argument("--epochs", type=int, default=None, help="override every trial's epochs")
    run.add_argument("--seeds", type=int, default=None, help="repeat each trial for seeds 0..N-1")
    run.add_argument("--data-dir", default=None, help="folder with the raw dataset files")
    run.add_argument("--benchmark-dir", default=None, help="NATS-Bench tss fast-mode folder")
    run.add_argument("--name", default=None, help="experiment name (default: the grid's name)")
    run.set_defaults(handler=_run)
    return parser


def _grids(args: argparse.Namespace) -> int:
    from study.grids import describe_grids

    rows = describe_grids()
    width = max(len(name) for name, _, _ in rows)
    for name, count, description in rows:
        print(f"{name:<{width}}  {count:>5} trials  {description}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from study.grids import build_grid
    from study.results import check_experiment_name
    from study.runner import RunOptions, check_inputs

    options = RunOptions(
        results=args.results,
        address=args.address,
        cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial,
        max_concurrent=args.max_concurrent,
        max_failures=args.max_failures,
    )
    configs = build_grid(
        args.grid,
        epochs=args.epochs,
        seeds=args.seeds,
        data_dir=args.data_dir,
        benchmark_dir=args.benchmark_dir,
    )
    experiment = check_experiment_name(args.name or Path(args.grid).stem)
    if args.dry_run:
        _print_trials(configs, options, experiment)
        try:
            check_inputs(configs)
        except FileNotFoundError as exc:
            print(f"warning: a real run would stop here: {exc}")
        return 0
    check_inputs(configs)
    from study.execute import run_experiment

    return run_experiment(configs, options, experiment)


def _print_trials(configs: Sequence[SearchConfig], options: RunOptions, experiment: str) -> None:
    """Every trial's full config (fields that differ from the defaults) and its resources."""
    default = SearchConfig().to_dict()
    for index, config in enumerate(configs):
        changed = {k: v for k, v in config.to_dict().items() if default[k] != v}
        fields = " ".join(f"{k}={v}" for k, v in changed.items())
        print(f"[{index:>4}] {fields}")
    resources = options.resources()
    print(
        f"{len(configs)} trials in experiment {experiment!r}; each uses "
        f"{resources['cpu']:g} CPU and {resources['gpu']:g} GPU; nothing was run (--dry-run)"
    )


if __name__ == "__main__":
    raise SystemExit(main())
