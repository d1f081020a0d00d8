"""The ``study`` command: list grids, run one as Ray Tune trials, and build tables and figures.

    study grids
    study run GRID [--dry-run [--gpus N] [--calibration FILE]] [--results DIR] [--address ADDR]
                   [--cpus-per-trial N] [--gpus-per-trial F] [--max-concurrent N]
                   [--max-failures N] [--epochs N] [--seeds N] [--data-dir DIR]
                   [--benchmark-dir DIR] [--name NAME] [--eager]
    study tune SPEC [--dry-run] [--storage URL] [--results DIR] [... the cluster options of run]
    study evaluate (RESULTS [--experiment NAME] | GENOTYPE ...) --preset cifar10|imagenet
                   [--reference NAME ...] [--seeds N] [--set KEY=VALUE ...] [--workers N]
                   [--dry-run] [... the cluster options of run, without --benchmark-dir/--eager]
    study tables RESULTS [--table NAME] [--format markdown|latex|csv] [--experiment NAME ...]
                         [--benchmark-dir DIR] [--with-reported] [--skip-bad-files]
    study plots RESULTS --out DIR [--experiment NAME ...] [--skip-bad-files]
    study compact RESULTS [--experiment NAME ...]

GRID is a registered grid name (``study grids``) or a TOML grid file (the experiment is named by
``--name``, else the file's ``name`` key, else the file's stem); RESULTS is a ``--results``
folder of ``study run`` (or its ``parquet`` subfolder, or an ``s3://`` URI). Every input is
validated before Ray starts or anything is written; a bad one exits with status 2 and a message
naming it and the fix (``study.inputs``): a local ``--results`` (or ``plots --out``) that is a
file, lies under a file or cannot be written; an empty ``--name``; a ``--data-dir`` no trial's
dataset reads, or a ``--benchmark-dir`` no trial's search space uses; trial resources
(``--cpus-per-trial`` / ``--gpus-per-trial``) that this machine cannot give when the cluster is
local (no ``--address``; ``--autoscaling`` skips this). ``--dry-run`` skips the checks of the
results folder and of the resources, since it may plan a run for another machine. ``tables``,
``plots`` and ``compact`` import neither Ray nor torch (they run on a base install: pandas,
pyarrow, matplotlib); ``grids`` and ``run`` need the ``search`` and ``study``
extras, and say so when they are missing. ``run --dry-run`` ends with the grid's estimated
GPU-hours and wall time (``study.cost``). ``run`` (with or without ``--dry-run``) warns on stderr,
before Ray starts, about settings ``study.checks`` flags (e.g. sigmoid with α weight decay).
``evaluate`` trains DARTS genotypes from scratch (``study.evaluate``, docs/evaluation.md): a
search experiment's final genotypes, written beside it as ``<search>-eval-<preset>``, or genotype
strings and published names, as ``eval-<preset>``; ``tables --table evaluation`` prints their
table.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the CLI imports only what a command needs: tables and plots need no torch
    from study.runner import RunOptions
    from study.tune_spec import TuneSpec
    from trainables.config import SearchConfig
    from trainables.eval_config import EvalConfig

EXIT_BAD_INPUT = 2
# Top-level packages of the install extras (pyproject.toml), for a clear error when one is absent.
_EXTRA_OF_PACKAGE = {
    "torch": "search",
    "torchvision": "search",
    "sklearn": "search",
    "nats_bench": "search",
    "PIL": "search",
    "ray": "study",
    "optuna": "study",
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.handler(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"study: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ModuleNotFoundError as exc:
        package = (exc.name or "").split(".")[0]
        if package not in _EXTRA_OF_PACKAGE:
            raise
        extra = _EXTRA_OF_PACKAGE[package]
        print(
            f"study: error: this command needs {package!r} (install extra '{extra}'), which is not "
            "installed; searches need the 'search' and 'study' extras: "
            "pip install 'single-darts-study[all]'",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT


def _parser() -> argparse.ArgumentParser:
    from search_spaces.published import PUBLISHED  # plain data: no torch
    parser = argparse.ArgumentParser(prog="study", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(required=True, metavar="COMMAND")
    grids = sub.add_parser("grids", help="list the registered grids and their trial counts")
    grids.set_defaults(handler=_grids)
    run = sub.add_parser("run", help="run a grid as Ray Tune trials (resumes if it exists)")
    run.add_argument("grid", help="registered grid name or path to a TOML grid file")
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="print the trials and their estimated GPU cost, run nothing",
    )
    run.add_argument(
        "--gpus",
        type=int,
        default=None,
        metavar="N",
        help="with --dry-run: estimate the wall time on N GPUs (default: 1 and 8); trials "
        "per GPU follow --gpus-per-trial",
    )
    run.add_argument(
        "--calibration",
        default=None,
        metavar="FILE",
        help="with --dry-run: calibration JSON of measured GPU step times (default: the shipped "
        "study/data/gpu_calibration.json)",
    )
    _cluster_arguments(run)
    run.add_argument("--epochs", type=int, default=None, help="override every trial's epochs")
    run.add_argument("--seeds", type=int, default=None, help="repeat each trial for seeds 0..N-1")
    run.set_defaults(handler=_run)
    tune_cmd = sub.add_parser(
        "tune",
        help="tune each cell's hyperparameters with Optuna on Ray Tune (resumes if it exists)",
    )
    tune_cmd.add_argument("spec", help="TOML tuning spec ([base], [axes] or [[cells]], [tune])")
    tune_cmd.add_argument(
        "--dry-run", action="store_true", help="print the cells and the search space, run nothing"
    )
    tune_cmd.add_argument(
        "--storage",
        default=None,
        metavar="URL",
        help="Optuna storage (SQLAlchemy URL, e.g. postgresql://...); default: SQLite "
        "RESULTS/optuna.db; required when --results is a URI",
    )
    _cluster_arguments(tune_cmd)
    tune_cmd.set_defaults(handler=_tune)
    evaluate = sub.add_parser(
        "evaluate",
        help="train searched (or published) DARTS genotypes from scratch as Ray Tune trials",
    )
    evaluate.add_argument(
        "source",
        nargs="+",
        help="a results folder holding a DARTS-space search experiment, or genotype strings "
        f"'Genotype(...)' / published names ({', '.join(PUBLISHED)})",
    )
    evaluate.add_argument(
        "--preset", required=True, choices=("cifar10", "imagenet"),
        help="the paper's protocol: cifar10 (600 epochs, 14 cells, 36 channels) or imagenet "
        "(250 epochs, 14 cells, 48 channels)",
    )
    evaluate.add_argument(
        "--experiment", default=None,
        help="the search experiment under the results folder (default: its only one)",
    )
    evaluate.add_argument(
        "--reference", action="append", default=[], metavar="NAME",
        help="also train this published genotype in the same experiment (repeatable)",
    )
    evaluate.add_argument("--seeds", type=int, default=1, help="train each genotype for seeds 0..N-1")
    evaluate.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", dest="settings",
        help="change one value of the preset, e.g. --set epochs=300 --set batch_size=768 "
        "(repeatable)",
    )
    evaluate.add_argument(
        "--workers", type=int, default=None,
        help="data-parallel processes per trial (torch DDP; one GPU each with --gpus-per-trial)",
    )
    evaluate.add_argument(
        "--dry-run", action="store_true",
        help="print the trials and each network's parameters and multiply-adds, run nothing",
    )
    _cluster_arguments(evaluate, search=False)
    evaluate.set_defaults(handler=_evaluate)

    tables = sub.add_parser("tables", help="print the paper's tables from a results folder")
    _results_arguments(tables)
    tables.add_argument(
        "--table",
        default="all",
        choices=TABLE_CHOICES,
        help="main = paper Table 1; data_mode / lr / activation / optimizer = ablations (Tables 4, "
        "5); collapse = collapse indicators; tuning = study tune's best values and "
        "hyperparameter importances; all (default) = main, every ablation whose axis varies, "
        "collapse, and tuning when there are study tune rows (paper tables leave those out)",
    )
    tables.add_argument("--format", default="markdown", choices=("markdown", "latex", "csv"))
    tables.add_argument("--benchmark-dir", default=None, help="NATS-Bench tss fast-mode folder "
                        "(for the Optimal row's valid columns)")
    tables.add_argument(
        "--with-reported",
        action="store_true",
        help="the main table also shows the rows the paper's Table 1 prints (other methods and "
        "Single-DARTS as reported), marked '(reported)'",
    )
    tables.set_defaults(handler=_tables)
    plots = sub.add_parser("plots", help="write the paper's figures (PNG) from a results folder")
    _results_arguments(plots)
    plots.add_argument("--out", required=True, help="folder for the PNG files")
    plots.set_defaults(handler=_plots)
    compact = sub.add_parser(
        "compact",
        help="merge each experiment's small part files into one, losslessly (a run does this "
        "at its end; use it when the driver was killed)",
    )
    _results_arguments(compact, skip_bad_files=False)
    compact.set_defaults(handler=_compact)
    return parser


def _cluster_arguments(parser: argparse.ArgumentParser, *, search: bool = True) -> None:
    """Options shared by ``run``, ``tune`` and ``evaluate`` (``search=False``: no benchmark
    folder, no execution path): where results go, the cluster, trial resources."""
    parser.add_argument(
        "--results",
        default="results" if search else None,
        help="results folder (NFS path or s3:// URI for multi-node clusters)"
        + ("" if search else "; default: the source results folder, else 'results'"),
    )
    parser.add_argument("--address", default=None, help="Ray cluster address (default: local)")
    parser.add_argument("--cpus-per-trial", type=float, default=1.0)
    parser.add_argument(
        "--gpus-per-trial",
        type=float,
        default=0.0,
        help="GPUs per trial; fractions pack several trials on one GPU",
    )
    parser.add_argument("--max-concurrent", type=int, default=0, help="0 = resource-limited")
    parser.add_argument(
        "--max-failures",
        type=int,
        default=2,
        help="retries of a crashing trial, each from its last checkpoint",
    )
    parser.add_argument("--data-dir", default=None, help="folder with the raw dataset files")
    parser.add_argument("--name", default=None, help="experiment name (default: the grid's name)")
    if search:
        _search_arguments(parser)
    _run_arguments(parser)


def _search_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--benchmark-dir", default=None, help="NATS-Bench tss fast-mode folder")
    parser.add_argument(
        "--eager",
        action="store_true",
        help="GPU trials run each search step op by op instead of replaying it as a CUDA graph "
        "(the default on CUDA; same batches and records up to float rounding; each row's "
        "exec_path says which path ran)",
    )


def _run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="show Ray Tune's own console output and the trials' logs instead of study's "
        "progress lines",
    )
    parser.add_argument(
        "--restart",
        action="store_true",
        help="start an experiment whose saved Tune state is damaged afresh: the damaged state "
        "is moved aside, every Parquet row already written is kept, and trials that finished "
        "are not run again",
    )
    parser.add_argument(
        "--autoscaling",
        action="store_true",
        help="the cluster can grow: do not refuse trial resources larger than its current "
        "total",
    )


TABLE_CHOICES = (
    "all", "main", "data_mode", "lr", "activation", "optimizer", "collapse", "tuning",
    "evaluation",
)


def _results_arguments(parser: argparse.ArgumentParser, *, skip_bad_files: bool = True) -> None:
    parser.add_argument("results", help="results folder of study run (or an s3:// URI)")
    parser.add_argument(
        "--experiment",
        action="append",
        default=None,
        help="only this experiment (repeatable; default: all)",
    )
    if not skip_bad_files:
        return
    parser.add_argument(
        "--skip-bad-files",
        action="store_true",
        help="skip unreadable or foreign files with a warning instead of stopping",
    )


def _load(
    args: argparse.Namespace, alphas: bool, experiments: list[str] | None = None
):  # -> pd.DataFrame (pandas imported lazily)
    """The search rows of RESULTS: of ``experiments`` when given, else of ``--experiment``."""
    from analysis.results import load_results

    return load_results(
        args.results,
        experiments=experiments if experiments is not None else args.experiment,
        on_bad_file="skip" if args.skip_bad_files else "raise",
        alphas=alphas,
    )


def _tables(args: argparse.Namespace) -> int:
    """The search tables (``analysis.tables``) and, for ``all`` or ``evaluation``, the
    evaluation tables (``analysis.evaluation``) of the experiments of each kind under RESULTS."""
    from analysis import store
    from analysis.evaluation import evaluation_tables
    from analysis.tables import paper_tables

    kinds = _experiments_by_kind(args.results, args.experiment)
    tables = []
    if args.table != "evaluation" and (kinds["search"] or args.table != "all"):
        searches = kinds["search"] if args.experiment is not None else None
        df = _load(args, alphas=False, experiments=searches)  # tables need no α
        names = None if args.table == "all" else [args.table]
        tuning = store.read_tuning(args.results, searches)  # study tune's sidecars
        tables += paper_tables(df, names, args.benchmark_dir, tuning=tuning,
                               with_reported=args.with_reported)
    if args.table in ("all", "evaluation") and (kinds["evaluation"] or args.table != "all"):
        only = kinds["evaluation"] if args.experiment is not None else None
        tables += evaluation_tables(args.results, experiments=only)
    rendered = [t.render(args.format) for t in tables]
    separator = "\n" if args.format == "csv" else "\n\n"
    print(separator.join(text.rstrip("\n") for text in rendered))
    return 0


def _experiments_by_kind(results: str, experiments: list[str] | None) -> dict[str, list[str]]:
    """The experiments under ``results`` (or those named) by result kind: search, evaluation."""
    from analysis import store

    fs, folders = store.experiment_folders(results, experiments)
    kinds: dict[str, list[str]] = {kind: [] for kind in store.FORMATS}
    for name, folder in sorted(folders.items()):
        kinds[store.experiment_kind(fs, folder)].append(name)
    return kinds


def _plots(args: argparse.Namespace) -> int:
    from analysis import store
    from analysis.figures import save_figures
    from study.inputs import check_out_folder

    check_out_folder(args.out)  # before anything is read or drawn
    df = _load(args, alphas=True)
    tuning = store.read_tuning(args.results, args.experiment)  # study tune's sidecars
    for name, path in save_figures(df, args.out, tuning=tuning).items():
        print(f"{name}: {path}")
    return 0


def _compact(args: argparse.Namespace) -> int:
    from study.compaction import compact_results

    for report in compact_results(args.results, args.experiment):
        if report.output is None:
            print(f"{report.experiment}: nothing to compact (fewer than 2 part files)")
        else:
            print(
                f"{report.experiment}: {report.files} part files -> {report.output} "
                f"({report.rows} rows)"
            )
    return 0


def _grids(args: argparse.Namespace) -> int:
    from study.grids import describe_grids

    rows = describe_grids()
    width = max(len(name) for name, _, _ in rows)
    for name, count, description in rows:
        print(f"{name:<{width}}  {count:>5} trials  {description}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from study.grids import build_grid
    from study.inputs import check_locations_used
    from study.runner import check_inputs

    options = _run_options(args)
    configs = build_grid(
        args.grid,
        epochs=args.epochs,
        seeds=args.seeds,
        data_dir=args.data_dir,
        benchmark_dir=args.benchmark_dir,
    )
    experiment = _experiment_name(args.name, lambda: _grid_name(args.grid))
    check_locations_used(configs, data_dir=args.data_dir, benchmark_dir=args.benchmark_dir)
    from study.checks import sigmoid_none_warning

    warning = sigmoid_none_warning(configs)
    if warning:
        print(f"study: warning: {warning}", file=sys.stderr)
    if not args.dry_run and (args.gpus is not None or args.calibration is not None):
        raise ValueError(
            "--gpus and --calibration only shape the cost estimate of --dry-run; add --dry-run, "
            "or leave them out (a real run uses the cluster's GPUs, --gpus-per-trial each)"
        )
    if args.dry_run:
        estimate = _estimate_lines(configs, args)  # a bad --gpus / calibration exits 2 here
        _print_trials(configs, options, experiment)
        print("\n".join(["", *estimate]))
        try:
            check_inputs(configs)
        except FileNotFoundError as exc:
            print(f"warning: a real run would stop here: {exc}")
        return 0
    check_inputs(configs)
    _check_before_ray(options)
    from study.execute import run_experiment

    return run_experiment(configs, options, experiment)


def _experiment_name(given: str | None, default: Callable[[], str]) -> str:
    """``--name`` when given (an empty one is refused, not replaced), else ``default()``;
    checked as an experiment name."""
    from analysis.store import check_experiment_name

    if given is None:
        return check_experiment_name(default())
    try:
        return check_experiment_name(given)
    except ValueError as err:
        raise ValueError(
            f"--name {given!r}: {err}; give another name, or leave --name out to use the "
            "default (the grid's or the spec's name)"
        ) from err


def _check_before_ray(options: RunOptions) -> None:
    """The checks of a real run (not of ``--dry-run``, which may plan a run for another
    machine): one trial fits on this machine when the cluster is local, and a local results
    folder can be written."""
    from study.inputs import check_local_resources, check_results_location

    check_local_resources(options)
    check_results_location(options.results)


def _grid_name(grid: str) -> str:
    """The experiment name of ``study run GRID``: a registered grid's name; for a TOML grid
    file, its ``name`` key, else the file's stem."""
    from study.grids import GRIDS

    if grid in GRIDS or not grid.endswith(".toml"):
        return Path(grid).stem
    from study.grid_files import read_toml

    _, doc = read_toml(grid, "grid file")  # build_grid has checked the file and its name key
    name = doc.get("name")
    return name if isinstance(name, str) and name else Path(grid).stem


def _tune(args: argparse.Namespace) -> int:
    from study.inputs import check_locations_used
    from study.runner import check_inputs
    from study.tune_spec import load_tune_spec

    given = {"data_dir": args.data_dir, "benchmark_dir": args.benchmark_dir}
    spec = load_tune_spec(args.spec, overrides={k: v for k, v in given.items() if v is not None})
    options = _run_options(args)
    experiment = _experiment_name(args.name, lambda: spec.name)
    check_locations_used(
        [cell.config for cell in spec.cells],
        data_dir=args.data_dir,
        benchmark_dir=args.benchmark_dir,
        source="the spec",
    )
    if args.dry_run:
        _print_tuning_plan(spec, options, experiment)
        return 0
    check_inputs([cell.config for cell in spec.cells])
    _check_before_ray(options)
    from study.tune_execute import check_storage, default_storage, run_tuning

    storage = default_storage(options, args.storage)
    check_storage(storage)
    if spec.uses_test_split:
        print("note: the objective is a NAS-Bench-201 test accuracy: tuning on the test split "
              "(every tuning table says so)")
    return run_tuning(spec, options, experiment, storage)


def _evaluate(args: argparse.Namespace) -> int:
    from study import evaluate as E

    changes = E.parse_settings(args.settings)
    if args.workers is not None:
        changes["workers"] = args.workers
    if args.data_dir is not None:
        changes["data_dir"] = args.data_dir
    if args.seeds < 1:
        raise ValueError(f"--seeds {args.seeds} must be >= 1")
    notes: list[str] = []
    if len(args.source) == 1 and E.is_results_location(args.source[0]):
        search, targets, notes = E.search_targets(args.source[0], args.experiment)
        default_name = f"{search}-eval-{args.preset}"
        default_results = E.results_folder(args.source[0])
    elif args.experiment is not None:
        raise ValueError("--experiment names a search under a results folder; the sources "
                         f"{args.source} are not one results folder")
    else:
        targets = E.given_targets(args.source)
        default_name, default_results = f"eval-{args.preset}", "results"
    targets += E.given_targets(args.reference)
    if args.results is None:
        args.results = default_results
    configs = E.evaluation_configs(targets, args.preset, range(args.seeds), changes)
    options = _run_options(args)
    experiment = _experiment_name(args.name, lambda: default_name)
    E.check_workers(configs, options.gpus_per_trial)
    for note in notes:
        print(f"note: {note}")
    if args.dry_run:
        _print_evaluations(configs, options, experiment)
        return 0
    from trainables.datasets import check_evaluation_files

    for dataset, data_dir in sorted({(c.dataset, c.data_dir) for c in configs}):
        check_evaluation_files(dataset, data_dir or None)
    _check_before_ray(options)
    from study.execute import run_experiment

    return run_experiment(configs, options, experiment)


def _print_evaluations(configs: Sequence[EvalConfig], options: RunOptions, experiment: str) -> None:
    """Each evaluation trial, then each network's size in the units of the papers' tables."""
    from trainables.eval_config import NAMED_BY_ARCH, PRESETS
    from trainables.evaluation import network_cost

    preset = PRESETS[configs[0].preset]
    for index, config in enumerate(configs):
        hidden = (*NAMED_BY_ARCH, "preset", "arch")
        changed = {k: v for k, v in config.to_dict().items()
                   if k not in hidden and preset.get(k, v) != v}
        fields = " ".join(f"{k}={v}" for k, v in changed.items() if v != "")
        print(f"[{index:>4}] {config.arch} seed={config.seed} {fields}".rstrip())
    print("\n| architecture | FLOPs/M | Params/M |\n|---|---|---|")
    seen = set()
    for config in configs:
        if config.arch in seen:
            continue
        seen.add(config.arch)
        params, macs, side = network_cost(config)
        print(f"| {config.arch} | {macs / 1e6:.0f} | {params / 1e6:.2f} |")
    first = configs[0]
    print(
        f"(multiply-adds per {side}x{side} image and parameters, auxiliary head excluded, of "
        f"the {first.network} network with {first.layers} cells and {first.init_channels} "
        "initial channels)"
    )
    resources = options.resources()
    print(
        f"{len(configs)} trials in experiment {experiment!r}; each uses {resources['cpu']:g} CPU "
        f"and {resources['gpu']:g} GPU; nothing was run (--dry-run)"
    )


def _run_options(args: argparse.Namespace) -> RunOptions:
    from study.runner import RunOptions

    return RunOptions(
        results=args.results,
        address=args.address,
        cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial,
        max_concurrent=args.max_concurrent,
        max_failures=args.max_failures,
        fast=False if getattr(args, "eager", False) else None,
        verbose=args.verbose,
        restart=args.restart,
        autoscaling=args.autoscaling,
    )


def _print_tuning_plan(spec: TuneSpec, options: RunOptions, experiment: str) -> None:
    """The cells, the search space and the budget of a tuning spec."""
    print(f"tuning experiment {experiment!r}: {len(spec.cells)} cells x {spec.samples} samples")
    for cell in spec.cells:
        print(f"  cell {cell.label}: objective {cell.objective_column} ({spec.epoch} epoch, "
              f"{spec.direction}), {cell.config.epochs} epochs per sample")
    for param in spec.params:
        shown = (f"choices {list(param.choices)}" if param.choices is not None
                 else f"[{param.low:g}, {param.high:g}]{' log' if param.log else ''}")
        print(f"  {param.name}: {shown}")
    resources = options.resources()
    print(f"sampler {spec.sampler} (seed {spec.seed}); each trial uses {resources['cpu']:g} CPU "
          f"and {resources['gpu']:g} GPU; nothing was run (--dry-run)")


def _estimate_lines(configs: Sequence[SearchConfig], args: argparse.Namespace) -> list[str]:
    """The dry run's cost estimate (``study.cost``) for ``--gpus`` (default 1 and 8) GPUs, from
    ``--calibration`` (default the shipped file); computed before anything is printed."""
    from study.cost import DEFAULT_CALIBRATION, estimate_cost, format_estimate, load_calibration

    calibration = load_calibration(args.calibration or DEFAULT_CALIBRATION)
    estimate = estimate_cost(configs, calibration, args.gpus_per_trial)
    return format_estimate(estimate, [1, 8] if args.gpus is None else [args.gpus])


def _print_trials(configs: Sequence[SearchConfig], options: RunOptions, experiment: str) -> None:
    """Every trial's full config (fields that differ from the defaults) and its resources."""
    from trainables.config import SearchConfig

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
