"""Names of every field of an epoch record: the one place the metric columns are defined.

A record is a flat dict (one Parquet row, together with the config's fields, so no record
field may share a name with a ``SearchConfig`` field). Accuracies are in
percent, losses are mean cross-entropy per image, times in seconds. α fields are nested lists
(edges × ops) in the op order of the space; ``*_reduce`` fields are None for NAS-Bench-201.
``FIELDS`` gives every field's value kind, unit and meaning (``analysis.store`` builds the Parquet
schema and docs/results.md from it). Plain data: no torch.
"""

from __future__ import annotations

from typing import NamedTuple

from search_spaces.benchmark import BENCH_COLUMNS, BENCH_DATASETS

STATUS_OK = "ok"
STATUS_DIVERGED = "diverged"

EPOCH = "epoch"  # 1-based: the record describes the state after this many epochs
STATUS = "status"  # "ok" | "diverged"
STEPS = "steps"
W_LR = "epoch_w_lr"  # w learning rate used during the epoch (config w_lr is its start)
TRAIN_LOSS = "train_loss"  # mean loss of the w batches (before each step's update)
TRAIN_ACC = "train_acc"
ARCH_LOSS = "arch_loss"  # mean loss of the α batches (bi-level; NaN for single-level)
VALID_LOSS = "valid_loss"  # supernet on the whole held-out split, eval mode, after the epoch
VALID_ACC = "valid_acc"
GENOTYPE = "genotype"  # NAS-Bench-201 arch string or DARTS Genotype(...) string
ALPHA = {"normal": "alpha_normal", "reduce": "alpha_reduce"}  # activated α
ALPHA_GRAD = {"normal": "alpha_grad_normal", "reduce": "alpha_grad_reduce"}  # mean ∂L/∂α
GRAD_INNER = "grad_inner"  # gradient-correlation probe (trainables.probes), NaN when off
GRAD_COSINE = "grad_cosine"
IMAGES_PER_SEC = "images_per_sec"  # w-batch images per second of step time (eval excluded)
TRAIN_SECONDS = "train_seconds"  # wall time of the epoch's steps
EPOCH_SECONDS = "epoch_seconds"  # wall time of the whole epoch, evaluation and lookup included
EXEC_PATH = "exec_path"  # how the epoch's steps ran: EXEC_EAGER or EXEC_CUDA_GRAPH (not an axis)
EXEC_EAGER = "eager"  # one Python call per op (every CPU run; CUDA with fast=False)
EXEC_CUDA_GRAPH = "cuda_graph"  # the step captured once in a CUDA graph and replayed
EXEC_PATHS = (EXEC_EAGER, EXEC_CUDA_GRAPH)
BENCH = {col: f"bench_{col}" for col in BENCH_COLUMNS}  # NAS-Bench-201 accuracy (%), NaN unknown
_BENCH_PREFIX = {dataset: dataset.replace("-", "_") for dataset in BENCH_DATASETS}

TIMING_FIELDS = (IMAGES_PER_SEC, TRAIN_SECONDS, EPOCH_SECONDS)  # differ between identical runs
EXECUTION_FIELDS = (EXEC_PATH,)  # how a record was computed, not what it measured
METRIC_DIRECTIONS = {
    TRAIN_LOSS: "min",
    TRAIN_ACC: "max",
    ARCH_LOSS: "min",
    VALID_LOSS: "min",
    VALID_ACC: "max",
    **{name: "max" for name in BENCH.values()},
}
RECORD_FIELDS: tuple[str, ...] = (
    EPOCH,
    STATUS,
    STEPS,
    W_LR,
    TRAIN_LOSS,
    TRAIN_ACC,
    ARCH_LOSS,
    VALID_LOSS,
    VALID_ACC,
    GENOTYPE,
    *ALPHA.values(),
    *ALPHA_GRAD.values(),
    GRAD_INNER,
    GRAD_COSINE,
    *BENCH.values(),
    IMAGES_PER_SEC,
    TRAIN_SECONDS,
    EPOCH_SECONDS,
    EXEC_PATH,
)


def bench_field(dataset: str, split: str = "test") -> str:
    """The record field holding the NAS-Bench-201 ``split`` ('valid' | 'test') accuracy (%) that
    judges a search on ``dataset``: its own benchmark dataset, CIFAR-10's for any other."""
    if split not in ("valid", "test"):
        raise ValueError(f"split must be 'valid' or 'test'; got {split!r}")
    return BENCH[f"{_BENCH_PREFIX.get(dataset, _BENCH_PREFIX['cifar10'])}_{split}"]


class Field(NamedTuple):
    """What a record field holds: ``kind`` is its value type — ``int``, ``float``, ``str`` or
    ``matrix`` (a list of lists of float: edges × ops) — then its unit ("" = none) and meaning."""

    kind: str
    unit: str
    meaning: str


_PER_OP = "edges × ops, op order of the space"
FIELDS: dict[str, Field] = {
    EPOCH: Field("int", "epochs", "epochs completed; the record describes the state after it (1-based)"),
    STATUS: Field("str", "", f"'{STATUS_OK}', or '{STATUS_DIVERGED}' (non-finite loss: the search ended)"),
    STEPS: Field("int", "steps", "optimizer steps of w taken in the epoch"),
    W_LR: Field("float", "per step", "w learning rate used during the epoch (w_lr is its start)"),
    TRAIN_LOSS: Field("float", "nats/image", "mean cross-entropy of the w batches, before each step's update"),
    TRAIN_ACC: Field("float", "%", "top-1 accuracy of the w batches, before each step's update"),
    ARCH_LOSS: Field("float", "nats/image", "mean loss of the α batches (bi-level; NaN for single-level)"),
    VALID_LOSS: Field("float", "nats/image", "supernet loss on the whole held-out split, eval mode, after the epoch"),
    VALID_ACC: Field("float", "%", "supernet top-1 accuracy on the held-out split, after the epoch"),
    GENOTYPE: Field("str", "", "derived cell: NAS-Bench-201 arch string or DARTS Genotype(...) string"),
    ALPHA["normal"]: Field("matrix", "", f"activated α of the normal cell ({_PER_OP})"),
    ALPHA["reduce"]: Field("matrix", "", "activated α of the DARTS reduction cell (null for nb201)"),
    ALPHA_GRAD["normal"]: Field("matrix", "loss/α", f"epoch-mean ∂loss/∂α of the normal cell ({_PER_OP})"),
    ALPHA_GRAD["reduce"]: Field("matrix", "loss/α", "epoch-mean ∂loss/∂α of the reduction cell (null for nb201)"),
    GRAD_INNER: Field("float", "", "gradient-correlation probe: mean inner product of w-gradients (NaN when off)"),
    GRAD_COSINE: Field("float", "", "gradient-correlation probe: mean cosine of w-gradients (NaN when off)"),
    **{
        name: Field("float", "%", f"NAS-Bench-201 {column.rsplit('_', 1)[1]} accuracy of the derived cell "
                    f"on {column.rsplit('_', 1)[0]} (200-epoch mean over seeds; NaN unknown)")
        for column, name in BENCH.items()
    },
    IMAGES_PER_SEC: Field("float", "images/s", "w-batch images per second of step time (evaluation excluded)"),
    TRAIN_SECONDS: Field("float", "s", "wall time of the epoch's steps"),
    EPOCH_SECONDS: Field("float", "s", "wall time of the whole epoch, evaluation and lookup included"),
    EXEC_PATH: Field("str", "", f"how the steps ran: '{EXEC_EAGER}' or '{EXEC_CUDA_GRAPH}' (an option, not an axis)"),
}
if tuple(FIELDS) != RECORD_FIELDS:  # one entry per field, in RECORD_FIELDS order
    raise RuntimeError("trainables.records: FIELDS and RECORD_FIELDS disagree; update both")


# ---------------------------------------------------------------------- evaluation records
# One record per epoch of an evaluation (``trainables.evaluation``: a DARTS genotype trained from
# scratch). Shared names (epoch, status, steps, train_*, images_per_sec, *_seconds) mean what
# they mean above, for the evaluation network.
EPOCH_LR = "epoch_lr"  # learning rate used during the epoch (its first step's)
DROP_PATH_PROB = "drop_path_prob"  # drop-path probability used during the epoch
TEST_LOSS = "test_loss"  # on the test set the search never reads, eval mode, after the epoch
TEST_ACC = "test_acc"  # top-1 (%)
TEST_TOP5 = "test_top5"  # top-5 (%)
PARAMS = "params"  # parameters of the network without the auxiliary head
MULTIPLY_ADDS = "multiply_adds"  # per image at the dataset's input size, auxiliary head excluded
INPUT_SIZE = "input_size"  # side in pixels of the images the network was counted (and tested) at

EVAL_METRIC_DIRECTIONS = {
    TRAIN_LOSS: "min",
    TRAIN_ACC: "max",
    TEST_LOSS: "min",
    TEST_ACC: "max",
    TEST_TOP5: "max",
}
EVAL_FIELDS: dict[str, Field] = {
    EPOCH: FIELDS[EPOCH],
    STATUS: Field("str", "", f"'{STATUS_OK}', or '{STATUS_DIVERGED}' (non-finite loss: the training ended)"),
    STEPS: Field("int", "steps", "optimizer steps taken in the epoch"),
    EPOCH_LR: Field("float", "per step", "learning rate of the epoch's first step"),
    DROP_PATH_PROB: Field("float", "", "drop-path probability used during the epoch"),
    TRAIN_LOSS: Field("float", "nats/image", "mean training loss of the epoch's batches (label smoothing included, auxiliary loss not)"),
    TRAIN_ACC: Field("float", "%", "top-1 accuracy of the epoch's training batches"),
    TEST_LOSS: Field("float", "nats/image", "cross-entropy on the whole test set, eval mode, after the epoch"),
    TEST_ACC: Field("float", "%", "top-1 accuracy on the test set (CIFAR-10 test_batch, ImageNet val/)"),
    TEST_TOP5: Field("float", "%", "top-5 accuracy on the test set"),
    PARAMS: Field("int", "parameters", "parameters of the network, auxiliary head excluded"),
    MULTIPLY_ADDS: Field("int", "multiply-adds", "per image at input_size (conv and linear layers), auxiliary head excluded"),
    INPUT_SIZE: Field("int", "pixels", "side of the input images (32 CIFAR network, 224 ImageNet network)"),
    IMAGES_PER_SEC: Field("float", "images/s", "training images per second of step time, all worker processes together"),
    TRAIN_SECONDS: FIELDS[TRAIN_SECONDS],
    EPOCH_SECONDS: Field("float", "s", "wall time of the whole epoch, testing included"),
}
EVAL_RECORD_FIELDS: tuple[str, ...] = tuple(EVAL_FIELDS)
