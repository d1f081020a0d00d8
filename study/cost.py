"""Cost estimate of a grid on GPUs, from measured step and evaluation times (a calibration table).

``study run GRID --dry-run`` prints it under the trial list. Nothing here reads data or touches
a GPU: dataset sizes are the constants of :data:`DATASET_SHAPES`, times come from a calibration
JSON (:func:`load_calibration`; the shipped one is :data:`DEFAULT_CALIBRATION`).

Cost model (units: seconds unless named otherwise):

* One trial, run alone on one GPU ("solo"):
  ``epochs × (steps_per_epoch × step_seconds + held_out_images × eval_seconds_per_image
  + epoch_overhead_seconds)``, where ``steps_per_epoch`` = ceil(train pool / batch_size), or the
  config's ``steps_per_epoch`` cap when > 0 (as :func:`trainables.sampling.steps_per_epoch`), and
  every epoch evaluates the whole held-out split; both after ``train_pool`` and ``data_fraction``
  (:func:`pool_sizes`). A bi-level step's time already includes both
  its batches (w and α).
* ``step_seconds`` etc. come from the calibration entry whose key (space, level, order,
  image_side, batch_size, channels, depth) equals the trial's. Without an exact entry, and only
  when the entry with the same key except ``batch_size`` says ``"scales_with_batch": true``, the
  step time is scaled linearly by batch_size (eval time per image and epoch overhead are kept);
  when several such entries exist the nearest batch size is used (the larger on a tie).
  Otherwise the trial has no calibration entry: it is reported and left out of every total,
  never guessed.
* ``eval_seconds_per_image`` / ``epoch_overhead_seconds`` may be null (not measured): that part
  is left out, and the estimate says so.
* GPU-hours = the sum of the trials' solo times (no packing).
* Packing: ``k`` searches sharing one GPU (``--gpus-per-trial`` 1/k) together reach
  ``packing[k]`` times the throughput of one search alone, so each runs ``k / packing[k]`` times
  slower than solo. ``packing`` is interpolated linearly between the listed k; beyond the largest
  listed k its value is kept (no further gain). One packing table per calibration (per device),
  applied to every trial.
* Wall time on N GPUs: the makespan of list scheduling (longest trial first, each onto the slot
  that frees first) onto N × k slots, each trial lasting solo × k / packing[k]. A slot is busy for
  a trial's whole duration even when its GPU's other slots sit idle at the end of the grid, so
  this is an upper bound of the model. ``--gpus-per-trial`` 0 (CPU trials) is estimated as
  1 trial per GPU; above 1, a trial reserves that many GPUs but a search uses one.
"""

from __future__ import annotations

import heapq
import json
import math
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

from trainables.config import HELD_OUT_FROM_TEST, LEVELS, ORDERS, SPACES, SearchConfig
from trainables.datasets.imagenet import HELD_OUT_EVERY
from trainables.sampling import steps_per_epoch

CALIBRATION_FORMAT = 1
DEFAULT_CALIBRATION = Path(__file__).resolve().parent / "data" / "gpu_calibration.json"
SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True)
class DatasetShape:
    """What the cost model needs of a dataset: split sizes in images, input side in pixels."""

    train: int  # images in the pool the weights train on (one epoch = one pass over it)
    held_out: int  # images evaluated at the end of every epoch (and α's pool for bi/split)
    image_side: int  # pixels; inputs are image_side × image_side


IMAGENET_TRAIN_IMAGES = 1_281_167  # ImageNet-1k (ILSVRC2012) train set, all 1,000 classes
# trainables.datasets.imagenet holds out every HELD_OUT_EVERY-th file of each class (ceil(n/40)
# per class, about 32.5k in all); ceil(total / 40) = 32,030 is its lower bound, at most 1,000
# images (0.08% of the train pool) below the real split.
IMAGENET_HELD_OUT = math.ceil(IMAGENET_TRAIN_IMAGES / HELD_OUT_EVERY)

# The search splits of trainables.datasets (numbers from trainables/splits/ and the readers'
# docstrings; tests/study/test_cost.py checks them against the split files and offline loaders).
DATASET_SHAPES: dict[str, DatasetShape] = {
    # cifar-split.txt: train / valid, 25,000 indices each into the 50k CIFAR-10 train set
    "cifar10": DatasetShape(train=25_000, held_out=25_000, image_side=32),
    # all 50k train images; held out: cifar100-test-split.txt xvalid, 5,000 of the test set
    "cifar100": DatasetShape(train=50_000, held_out=5_000, image_side=32),
    # 151,700 kept train images; held out: imagenet-16-120-test-split.txt xvalid, 3,000
    "imagenet16-120": DatasetShape(train=151_700, held_out=3_000, image_side=16),
    "imagenet": DatasetShape(
        train=IMAGENET_TRAIN_IMAGES - IMAGENET_HELD_OUT, held_out=IMAGENET_HELD_OUT, image_side=224
    ),
    # trainables.datasets.offline: 1,797 digits split 901 / 896; synthetic 640 / 320
    "digits": DatasetShape(train=901, held_out=896, image_side=32),
    "synthetic": DatasetShape(train=640, held_out=320, image_side=32),
}


def dataset_shape(dataset: str) -> DatasetShape:
    """The :class:`DatasetShape` of ``dataset``; ValueError for a name the table lacks."""
    try:
        return DATASET_SHAPES[dataset]
    except KeyError:
        raise ValueError(
            f"no dataset sizes for {dataset!r} in study.cost.DATASET_SHAPES (known: "
            f"{sorted(DATASET_SHAPES)}); add its train / held-out sizes there"
        ) from None


def pool_sizes(config: SearchConfig) -> tuple[int, int]:
    """(training pool, held-out split) of ``config`` in images, after ``train_pool`` and
    ``data_fraction`` (trainables.subsets; the class-balanced rounding is approximated by rounding
    the whole split, off by at most one image per class)."""
    shape = dataset_shape(config.dataset)
    train = shape.train
    if config.train_pool == "full" and config.dataset not in HELD_OUT_FROM_TEST:
        train += shape.held_out  # the held-out half comes back into the pool (trainables.subsets)
    fraction = config.data_fraction
    return max(1, round(train * fraction)), max(1, round(shape.held_out * fraction))


def epoch_steps(config: SearchConfig) -> int:
    """Search steps of one epoch of ``config``: ceil(train pool / batch) or its cap when > 0."""
    return steps_per_epoch(pool_sizes(config)[0], config.batch_size, config.steps_per_epoch)


# ---------------------------------------------------------------------------------------------
# Calibration
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CalibrationKey:
    """What a step time depends on: search space, update level and order, input side (pixels),
    batch size (images), supernet channels C and depth (cells per stage / cells in all)."""

    space: str
    level: str
    order: str
    image_side: int
    batch_size: int
    channels: int
    depth: int

    @classmethod
    def of(cls, config: SearchConfig) -> CalibrationKey:
        """The key of a search config (``depth`` None is resolved by SearchConfig already)."""
        assert config.depth is not None  # SearchConfig fills in the space default
        return cls(
            space=config.space,
            level=config.level,
            order=config.order,
            image_side=dataset_shape(config.dataset).image_side,
            batch_size=config.batch_size,
            channels=config.channels,
            depth=config.depth,
        )

    def describe(self) -> str:
        """Short human form, e.g. ``nb201 bi/first 32px batch 64 C=16 depth 5``."""
        return (
            f"{self.space} {self.level}/{self.order} {self.image_side}px batch {self.batch_size} "
            f"C={self.channels} depth {self.depth}"
        )


@dataclass(frozen=True)
class CalibrationEntry:
    """Measured times of one key. Seconds per search step (a bi-level step includes both its
    batches), seconds per evaluated image, seconds of fixed cost per epoch; None = not measured.
    ``scales_with_batch``: the step time may be scaled linearly to other batch sizes."""

    key: CalibrationKey
    step_seconds: float
    eval_seconds_per_image: float | None
    epoch_overhead_seconds: float | None
    scales_with_batch: bool


@dataclass(frozen=True)
class Calibration:
    """A validated calibration file (see :func:`load_calibration`).

    ``packing`` maps k (searches sharing one GPU) to their aggregate throughput relative to one
    search alone (``packing[1] == 1``), sorted by k.
    """

    device: str
    source: str
    torch: str
    exec_path: str
    entries: tuple[CalibrationEntry, ...]
    packing: tuple[tuple[int, float], ...]
    path: str = ""

    def entry_for(self, key: CalibrationKey) -> tuple[CalibrationEntry, float] | None:
        """(entry used, step seconds for ``key``), or None when no entry covers the key.

        An exact entry wins; otherwise an entry equal but for batch size and marked
        ``scales_with_batch`` gives step_seconds × key.batch_size / entry.batch_size (the
        nearest batch size, the larger on a tie).
        """
        for entry in self.entries:
            if entry.key == key:
                return entry, entry.step_seconds
        scalable = [
            e
            for e in self.entries
            if e.scales_with_batch and _without_batch(e.key) == _without_batch(key)
        ]
        if not scalable:
            return None
        entry = min(
            scalable, key=lambda e: (abs(e.key.batch_size - key.batch_size), -e.key.batch_size)
        )
        return entry, entry.step_seconds * key.batch_size / entry.key.batch_size

    def packing_factor(self, k: int) -> float:
        """Aggregate throughput of ``k`` searches on one GPU relative to one alone: linear
        between the listed k, the largest listed k's value beyond it."""
        if k < 1:
            raise ValueError(f"searches per GPU k={k} must be >= 1")
        points = self.packing
        for (k0, a0), (k1, a1) in pairwise(points):
            if k0 <= k <= k1:
                return a0 + (a1 - a0) * (k - k0) / (k1 - k0)
        return points[-1][1]  # k beyond the largest listed one (k=1 is always listed)

    def slowdown(self, k: int) -> float:
        """How many times longer a search takes when ``k`` share one GPU: k / packing[k]."""
        return k / self.packing_factor(k)


def _without_batch(key: CalibrationKey) -> tuple[object, ...]:
    return (key.space, key.level, key.order, key.image_side, key.channels, key.depth)


_Fail = Callable[[str], ValueError]  # message -> error naming the file
_TOP_KEYS = ("format", "device", "source", "torch", "exec_path", "entries", "packing")
_KEY_FIELDS: dict[str, tuple[str, ...]] = {"space": SPACES, "level": LEVELS, "order": ORDERS}
_INT_FIELDS = ("image_side", "batch_size", "channels", "depth")
_ENTRY_KEYS = (
    *_KEY_FIELDS,
    *_INT_FIELDS,
    "step_seconds",
    "eval_seconds_per_image",
    "epoch_overhead_seconds",
    "scales_with_batch",
)


def load_calibration(path: str | os.PathLike[str] = DEFAULT_CALIBRATION) -> Calibration:
    """Read and validate a calibration JSON (format 1; see ``study/data/gpu_calibration.json``).

    Raises FileNotFoundError when ``path`` does not exist, ValueError naming the file and the
    bad key (e.g. ``entries[2].step_seconds``) for anything unreadable, missing, unknown,
    mistyped or out of range.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(
            f"calibration file {path} does not exist; give a calibration JSON (format "
            f"{CALIBRATION_FORMAT}) with --calibration, or leave it out to use the shipped one"
        )
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot read calibration file {path}: {err}") from err
    except json.JSONDecodeError as err:
        raise ValueError(f"calibration file {path} is not valid JSON: {err}") from err
    return _parse_calibration(raw, str(path))


def _parse_calibration(raw: Any, where: str) -> Calibration:
    """Validate the decoded JSON ``raw``; ``where`` (the file) prefixes every error."""

    def fail(message: str) -> ValueError:
        return ValueError(f"calibration file {where}: {message}")

    if not isinstance(raw, dict):
        raise fail(f"must hold a JSON object with keys {list(_TOP_KEYS)}")
    _check_keys(raw, _TOP_KEYS, "the top level", fail)
    if raw["format"] != CALIBRATION_FORMAT or isinstance(raw["format"], bool):
        raise fail(f"format={raw['format']!r} is not supported; expected {CALIBRATION_FORMAT}")
    for name in ("device", "source", "torch", "exec_path"):
        if not isinstance(raw[name], str) or not raw[name].strip():
            raise fail(f"{name} must be a non-empty string (got {raw[name]!r})")
    entries = raw["entries"]
    if not isinstance(entries, list) or not entries:
        raise fail("entries must be a non-empty list of objects")
    parsed = tuple(_parse_entry(item, f"entries[{i}]", fail) for i, item in enumerate(entries))
    first_index: dict[CalibrationKey, int] = {}
    for i, entry in enumerate(parsed):
        if entry.key in first_index:
            raise fail(
                f"entries[{first_index[entry.key]}] and entries[{i}] have the same key "
                f"({entry.key.describe()}); keep one"
            )
        first_index[entry.key] = i
    return Calibration(
        device=raw["device"],
        source=raw["source"],
        torch=raw["torch"],
        exec_path=raw["exec_path"],
        entries=parsed,
        packing=_parse_packing(raw["packing"], fail),
        path=where,
    )


def _check_keys(obj: dict[str, Any], expected: Sequence[str], what: str, fail: _Fail) -> None:
    missing = [k for k in expected if k not in obj]
    if missing:
        raise fail(f"{what} lacks key(s) {missing}; required: {list(expected)}")
    unknown = sorted(set(obj) - set(expected))
    if unknown:
        raise fail(f"{what} has unknown key(s) {unknown}; allowed: {list(expected)}")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _parse_entry(item: Any, name: str, fail: _Fail) -> CalibrationEntry:
    if not isinstance(item, dict):
        raise fail(f"{name} must be an object with keys {list(_ENTRY_KEYS)}")
    _check_keys(item, _ENTRY_KEYS, name, fail)
    for field, allowed in _KEY_FIELDS.items():
        if item[field] not in allowed:
            raise fail(f"{name}.{field}={item[field]!r} is not one of {list(allowed)}")
    for field in _INT_FIELDS:
        value = item[field]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise fail(f"{name}.{field}={value!r} must be a positive integer")
    if not _is_number(item["step_seconds"]) or item["step_seconds"] <= 0:
        raise fail(f"{name}.step_seconds={item['step_seconds']!r} must be a number > 0 (seconds)")
    for field in ("eval_seconds_per_image", "epoch_overhead_seconds"):
        value = item[field]
        if value is not None and (not _is_number(value) or value < 0):
            raise fail(f"{name}.{field}={value!r} must be a number >= 0 (seconds) or null")
    if not isinstance(item["scales_with_batch"], bool):
        raise fail(f"{name}.scales_with_batch={item['scales_with_batch']!r} must be true or false")
    key = CalibrationKey(**{f: item[f] for f in (*_KEY_FIELDS, *_INT_FIELDS)})
    return CalibrationEntry(
        key=key,
        step_seconds=float(item["step_seconds"]),
        eval_seconds_per_image=_optional_float(item["eval_seconds_per_image"]),
        epoch_overhead_seconds=_optional_float(item["epoch_overhead_seconds"]),
        scales_with_batch=item["scales_with_batch"],
    )


def _optional_float(value: float | None) -> float | None:
    return None if value is None else float(value)


def _parse_packing(raw: Any, fail: _Fail) -> tuple[tuple[int, float], ...]:
    if not isinstance(raw, dict) or not raw:
        raise fail('packing must be an object like {"1": 1.0, "4": 3.2} (k -> throughput)')
    points: list[tuple[int, float]] = []
    for text, value in raw.items():
        if not (text.isascii() and text.isdigit()) or int(text) < 1:
            raise fail(f"packing key {text!r} must be a positive integer k (searches per GPU)")
        k = int(text)
        if not _is_number(value) or not 0 < value <= k:
            raise fail(
                f'packing["{text}"]={value!r} must be a number in (0, {k}]: the aggregate '
                f"throughput of {k} searches on one GPU relative to one search alone"
            )
        points.append((k, float(value)))
    points.sort()
    if points[0] != (1, 1.0):
        raise fail('packing must list "1": 1.0 (one search alone is the reference)')
    if len({k for k, _ in points}) != len(points):
        raise fail("packing lists the same k twice")
    return tuple(points)


# ---------------------------------------------------------------------------------------------
# Estimate
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialCost:
    """Solo (one search alone on one GPU) seconds of one trial, by part; None = not measured."""

    config: SearchConfig
    epochs: int
    step_seconds: float
    eval_seconds: float | None
    overhead_seconds: float | None

    @property
    def seconds(self) -> float:
        """Solo seconds of the parts that were measured."""
        return self.step_seconds + (self.eval_seconds or 0.0) + (self.overhead_seconds or 0.0)


def trial_cost(config: SearchConfig, calibration: Calibration) -> TrialCost | None:
    """Solo cost of ``config``, or None when the calibration has no entry for it."""
    found = calibration.entry_for(CalibrationKey.of(config))
    if found is None:
        return None
    entry, step_seconds = found
    epochs = config.epochs
    held_out = pool_sizes(config)[1]
    per_image = entry.eval_seconds_per_image
    overhead = entry.epoch_overhead_seconds
    return TrialCost(
        config=config,
        epochs=epochs,
        step_seconds=epochs * epoch_steps(config) * step_seconds,
        eval_seconds=None if per_image is None else epochs * held_out * per_image,
        overhead_seconds=None if overhead is None else epochs * overhead,
    )


@dataclass(frozen=True)
class Placement:
    """How trials sit on GPUs for a given ``--gpus-per-trial`` (``gpus_per_trial``)."""

    gpus_per_trial: float
    per_gpu: int  # k: searches sharing one GPU (1 for CPU trials and for >= 1 GPU per trial)

    @classmethod
    def of(cls, gpus_per_trial: float) -> Placement:
        """k = floor(1 / gpus_per_trial) for a fraction; 1 for 0 (CPU trials) and for >= 1."""
        if not gpus_per_trial >= 0 or not math.isfinite(gpus_per_trial):
            raise ValueError(f"gpus_per_trial={gpus_per_trial} must be a finite number >= 0")
        if 0 < gpus_per_trial < 1:
            return cls(gpus_per_trial, math.floor(1 / gpus_per_trial + 1e-9))
        return cls(gpus_per_trial, 1)

    def slots(self, gpus: int) -> int:
        """Trials running at once on ``gpus`` GPUs; ValueError when not even one fits."""
        if gpus < 1:
            raise ValueError(f"--gpus {gpus}: the number of GPUs must be >= 1")
        if self.gpus_per_trial > 1:
            slots = math.floor(gpus / self.gpus_per_trial + 1e-9)
            if slots < 1:
                raise ValueError(
                    f"--gpus {gpus} is fewer than --gpus-per-trial {self.gpus_per_trial:g}: "
                    "no trial fits; estimate for more GPUs"
                )
            return slots
        return gpus * self.per_gpu


def makespan(durations: Sequence[float], slots: int) -> float:
    """Finish time of list scheduling: longest first, each onto the slot that frees first."""
    if slots < 1:
        raise ValueError(f"slots={slots} must be >= 1")
    free_at = [0.0] * min(slots, len(durations))
    if not free_at:
        return 0.0
    for duration in sorted(durations, reverse=True):
        heapq.heapreplace(free_at, free_at[0] + duration)
    return max(free_at)


@dataclass(frozen=True)
class CostEstimate:
    """Costs of a grid's calibrated trials and the configs left out (no calibration entry)."""

    calibration: Calibration
    placement: Placement
    trials: tuple[TrialCost, ...]
    excluded: tuple[SearchConfig, ...]

    @property
    def gpu_hours(self) -> float:
        """Sum of the calibrated trials' solo times, in hours (measured parts only)."""
        return sum(t.seconds for t in self.trials) / SECONDS_PER_HOUR

    def wall_hours(self, gpus: int) -> float:
        """Makespan in hours on ``gpus`` GPUs, each trial slowed by k / packing[k]."""
        slots = self.placement.slots(gpus)
        slowdown = self.calibration.slowdown(self.placement.per_gpu)
        return makespan([t.seconds * slowdown for t in self.trials], slots) / SECONDS_PER_HOUR


def estimate_cost(
    configs: Sequence[SearchConfig], calibration: Calibration, gpus_per_trial: float
) -> CostEstimate:
    """Cost of every config that the calibration covers; the others go to ``excluded``."""
    placement = Placement.of(gpus_per_trial)
    trials: list[TrialCost] = []
    excluded: list[SearchConfig] = []
    for config in configs:
        cost = trial_cost(config, calibration)
        if cost is None:
            excluded.append(config)
        else:
            trials.append(cost)
    return CostEstimate(calibration, placement, tuple(trials), tuple(excluded))


# ---------------------------------------------------------------------------------------------
# Text
# ---------------------------------------------------------------------------------------------


def _hours(value: float) -> str:
    """Hours with one decimal (thousands separated), two significant digits below 0.1."""
    return f"{value:,.1f}" if value >= 0.1 or value == 0 else f"{value:.2g}"


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def format_estimate(estimate: CostEstimate, gpus: Sequence[int]) -> list[str]:
    """The lines ``study run --dry-run`` prints: totals, wall time for each GPU count in
    ``gpus``, parts not measured, trials without a calibration entry."""
    cal = estimate.calibration
    trials = estimate.trials
    total = len(trials) + len(estimate.excluded)
    lines = [f"Estimated cost on {cal.device} (calibration: {cal.source}, {cal.exec_path} path):"]
    if trials:
        epochs = sum(t.epochs for t in trials)
        counted = f"{len(trials):,} of {total:,} trials" if estimate.excluded else (
            _plural(len(trials), "trial")
        )
        lines.append(f"  {counted}, {_plural(epochs, 'epoch')}; {_gpu_hours(trials)}")
        lines.append(f"  {_wall_line(estimate, gpus)}")
        lines += [f"  {note}" for note in _unmeasured(trials)]
    else:
        lines.append("  no trial has a calibration entry: nothing to estimate")
    lines += _excluded_lines(estimate.excluded)
    return lines


def _gpu_hours(trials: Sequence[TrialCost]) -> str:
    hours = SECONDS_PER_HOUR
    parts = [f"{_hours(sum(t.step_seconds for t in trials) / hours)} GPU-hours of search steps"]
    evals = [t.eval_seconds for t in trials if t.eval_seconds is not None]
    if evals:
        parts.append(f"{_hours(sum(evals) / hours)} of evaluation")
    overheads = [t.overhead_seconds for t in trials if t.overhead_seconds is not None]
    if overheads:
        parts.append(f"{_hours(sum(overheads) / hours)} of per-epoch overhead")
    text = " + ".join(parts)
    if len(parts) > 1:
        text += f" = {_hours(sum(t.seconds for t in trials) / hours)} GPU-hours"
    return text


def _wall_line(estimate: CostEstimate, gpus: Sequence[int]) -> str:
    """``wall time with 1 GPU, <placement>: X h;  with 8 GPUs: Y h``."""
    g = estimate.placement.gpus_per_trial
    if g == 0:
        how = "1 trial per GPU (--gpus-per-trial 0 means CPU trials; estimated as GPU runs)"
    elif g > 1:
        how = f"{g:g} GPUs reserved per trial, a search uses one (--gpus-per-trial {g:g})"
    else:
        how = f"{_plural(estimate.placement.per_gpu, 'trial')} per GPU (--gpus-per-trial {g:g})"
    times = [f"with {_plural(n, 'GPU')}" for n in gpus]
    times[0] += f", {how}"
    return "wall time " + ";  ".join(
        f"{label}: {_hours(estimate.wall_hours(n))} h" for label, n in zip(times, gpus, strict=True)
    )


def _unmeasured(trials: Sequence[TrialCost]) -> list[str]:
    """Notes on the parts (evaluation, per-epoch overhead) the calibration did not measure."""
    parts = {
        "evaluation": sum(t.eval_seconds is None for t in trials),
        "per-epoch overhead": sum(t.overhead_seconds is None for t in trials),
    }
    everywhere = [part for part, missing in parts.items() if missing == len(trials)]
    notes = []
    if everywhere:
        notes.append(f"{' and '.join(everywhere)} not included (not measured in this calibration)")
    notes += [
        f"{part} not included for {_plural(missing, 'trial')} (not measured for them)"
        for part, missing in parts.items()
        if 0 < missing < len(trials)
    ]
    return notes


def _excluded_lines(excluded: Sequence[SearchConfig]) -> list[str]:
    if not excluded:
        return []
    datasets = sorted({c.dataset for c in excluded})
    spaces = sorted({c.space for c in excluded})
    lines = [
        f"  {_plural(len(excluded), 'trial')} ({', '.join(spaces)} space, {', '.join(datasets)}) "
        f"{'has' if len(excluded) == 1 else 'have'} no calibration entry: not included; "
        "missing keys:"
    ]
    keys = Counter(CalibrationKey.of(c) for c in excluded)
    for key, count in sorted(keys.items(), key=lambda item: -item[1]):
        lines.append(f"    {count:>4} × {key.describe()}")
    return lines
