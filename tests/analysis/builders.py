"""Results folders with known numbers, written through the real ``ParquetResultsWriter``.

``write_study(root, experiment, trials)`` feeds the writer exactly what Ray Tune gives it (a trial
with ``trial_id``, ``config`` and ``num_failures``, and each epoch's result dict), so the files
the analysis tests read are the files a real run writes. ``record(...)`` builds one complete epoch
record (every ``trainables.records`` field) from a few numbers the test chooses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analysis import store
from search_spaces.genotypes import NB201_EDGES, NB201_OPS
from study.results import ParquetResultsWriter
from trainables import records as R
from trainables.config import SearchConfig

# A NAS-Bench-201 cell with four parameter-free edges (none, skip x2, pool) and two convs.
COLLAPSED = "|skip_connect~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_3x3~1|nor_conv_1x1~2|"
HEALTHY = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


@dataclass
class FakeTrial:
    """What the writer reads from a Ray Tune ``Trial``: its id, config and failure count."""

    trial_id: str
    config: dict[str, Any]
    num_failures: int = 0


@dataclass
class TrialSpec:
    """One trial: its config, its epoch records in order, the attempt that reports them (Ray's
    ``num_failures``: 1 = re-reported after one crash), and bookkeeping keys added to the trial
    config (``"_" + name``, e.g. ``tuning_context``'s), which the writer reads but no
    SearchConfig sees."""

    trial_id: str
    config: SearchConfig
    records: list[dict[str, Any]] = field(default_factory=list)
    attempt: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def tuning_context(
    experiment: str,
    cell: str,
    sample: int,
    *,
    objective: str = R.BENCH["cifar10_test"],
    epoch: str = "final",
    direction: str = "max",
    sampler_seed: int = 0,
) -> dict[str, Any]:
    """The trial-config keys ``study tune`` adds to a sample's trial: each tuning column of the
    store (``store.TUNING_COLUMNS``) as ``"_" + column``; the study is ``"<experiment>:<cell>"``."""
    values = {
        "tune_study": f"{experiment}:{cell}",
        "tune_cell": cell,
        "tune_sample": sample,
        "tune_sampler_seed": sampler_seed,
        "tune_objective": objective,
        "tune_epoch": epoch,
        "tune_direction": direction,
    }
    assert set(values) == set(store.TUNING_COLUMNS)
    return {f"_{name}": value for name, value in values.items()}


def nb201_alpha(favourite: int, weight: float = 0.6) -> list[list[float]]:
    """A (6 edges x 5 ops) activated α with ``weight`` on op ``favourite`` on every edge."""
    rest = (1.0 - weight) / (len(NB201_OPS) - 1)
    return [
        [weight if k == favourite else rest for k in range(len(NB201_OPS))]
        for _ in NB201_EDGES
    ]


def record(
    epoch: int,
    *,
    genotype: str = HEALTHY,
    bench: dict[str, float] | None = None,
    alpha: list[list[float]] | None = None,
    alpha_grad: list[list[float]] | None = None,
    grad_inner: float = math.nan,
    grad_cosine: float = math.nan,
    valid_acc: float = 50.0,
    status: str = R.STATUS_OK,
) -> dict[str, Any]:
    """A complete epoch record; bench columns not given are NaN (unknown)."""
    bench = bench or {}
    values: dict[str, Any] = {
        R.EPOCH: epoch,
        R.STATUS: status,
        R.STEPS: 10,
        R.W_LR: 0.025,
        R.TRAIN_LOSS: 1.0 / epoch,
        R.TRAIN_ACC: 40.0 + epoch,
        R.ARCH_LOSS: math.nan,
        R.VALID_LOSS: 1.5 / epoch,
        R.VALID_ACC: valid_acc,
        R.GENOTYPE: genotype,
        R.ALPHA["normal"]: alpha if alpha is not None else nb201_alpha(3),
        R.ALPHA["reduce"]: None,
        R.ALPHA_GRAD["normal"]: alpha_grad if alpha_grad is not None else nb201_alpha(1, 0.2),
        R.ALPHA_GRAD["reduce"]: None,
        R.GRAD_INNER: grad_inner,
        R.GRAD_COSINE: grad_cosine,
        R.IMAGES_PER_SEC: 100.0,
        R.TRAIN_SECONDS: 1.0,
        R.EPOCH_SECONDS: 1.2,
        R.EXEC_PATH: R.EXEC_EAGER,
    }
    for column, name in R.BENCH.items():
        values[name] = bench.get(column, math.nan)
    assert set(values) == set(R.RECORD_FIELDS)
    return values


def write_study(root: str | Path, experiment: str, trials: list[TrialSpec]) -> Path:
    """Write every trial's records through the writer (one flush per trial); returns the folder."""
    writer = ParquetResultsWriter(root, experiment)
    writer.setup()
    for spec in trials:
        trial = FakeTrial(spec.trial_id, {**spec.config.to_dict(), **spec.extra},
                          spec.attempt)
        for result in spec.records:
            writer.on_trial_result(0, [], trial, result)
        writer.on_trial_complete(0, [], trial)
    writer.on_experiment_end([])
    return Path(root) / f"experiment={experiment}"
