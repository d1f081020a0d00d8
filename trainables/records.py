"""Names of every field of an epoch record: the one place the metric columns are defined.

A record is a flat dict (one Parquet row, together with the config's fields, so no record
field may share a name with a ``SearchConfig`` field). Accuracies are in
percent, losses are mean cross-entropy per image, times in seconds. α fields are nested lists
(edges × ops) in the op order of the space; ``*_reduce`` fields are None for NAS-Bench-201.
"""

from __future__ import annotations

from search_spaces.benchmark import BENCH_COLUMNS

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
