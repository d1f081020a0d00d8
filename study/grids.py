"""Named grids: the paper's experiments as lists of ``SearchConfig`` (one per Ray Tune trial).

A grid is a function returning SearchConfigs; ``GRIDS`` maps names to them and ``build_grid``
also accepts the path of a TOML grid file (``study.grid_files``). Seeds are repeats (``seed``
field), never a separate mechanism. Identical configs are one trial (``dedupe``), so a trial
shared by several tables (e.g. Table 4's bi-level row and Table 5's DARTS/softmax row) runs once.

Choices where the paper (single-darts-paper.txt) is silent or garbled — shared by every paper
grid (table1, table4, table5, darts):
  * Defaults not named below are SearchConfig's (reference DARTS-V1 on NAS-Bench-201): w SGD
    momentum 0.9, nesterov, weight decay 5e-4 (the paper's value is garbled), cosine to
    w_lr_min 0.001 (Table 5a alone scales it with w's lr, see ``table5``), grad clip 5. α lr is
    fixed (no schedule).
  * α weight decay (coupled L2, both α optimizers) by activation: 0 for every ``sigmoid`` and
    ``sigmoid*`` trial, after §5.1.2: "weight decay is set to 0 to avoid extra gradients on zero
    operations" (under sigmoid, ``none``'s α gets no loss gradient, so decay alone would move
    it); SearchConfig's 1e-3 for every ``softmax`` trial (§5.1.1 gives no α weight decay).
  * α Adam: lr 3e-4 (garbled in the paper; the reference value), betas (0.5, 0.999).
  * α SGD (Tables 4, 5): momentum 0.9 and the same lr as w (the paper: "w and α are optimized
    with SGD", one learning rate).
  * ``sigmoid*`` leaves alpha_init None = logit(1/|ops|) (the paper's value is lost).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import product

from search_spaces.benchmark import BENCH_DATASETS as NB201_DATASETS
from study.grid_files import load_grid_file
from trainables.config import SearchConfig, config_key, dedupe

__all__ = ["GRIDS", "Grid", "build_grid", "config_key", "dedupe", "describe_grids"]

SEEDS5 = (0, 1, 2, 3, 4)
TABLE5_DATASETS = ("cifar10", "cifar100")
TABLE5_LRS = (0.001, 0.005, 0.025)
ABLATION_LR = 0.005  # Tables 4/5: "the optimal value"; garbled, 0.005 as Table 5's rows agree
ADAM_ALPHA = {"arch_optimizer": "adam", "arch_lr": 3e-4, "arch_beta1": 0.5, "arch_beta2": 0.999}
# Table 5a: w's cosine ends at w_lr × 0.001 / 0.005, so every lr row anneals with the same shape
# (end / start = 0.2) and the 0.005 row (0.005 → 0.001) stays the one trial it shares with Tables
# 4, 5b and 5c, whose numbers the paper prints identically for those rows.
LR_ABLATION_MIN_RATIO = 0.001 / 0.005
ARCH_WEIGHT_DECAY = SearchConfig().arch_weight_decay  # softmax trials keep the default, 1e-3
# Appendix D's ImageNet-1k searches: (activation, data_fraction), each × seeds 0, 1, 2.
APPENDIX_D = (
    ("softmax", 1.0),
    ("sigmoid", 1.0),
    ("sigmoid*", 1.0),
    ("softmax", 0.5),
    ("sigmoid*", 0.5),
)
APPENDIX_D_SEEDS = (0, 1, 2)

# Methods on NAS-Bench-201 (C=16, 5 cells per stage, batch 64, 50 epochs = SearchConfig defaults).
NB201 = SearchConfig(space="nb201", channels=16, depth=5, batch_size=64, epochs=50)
# DARTS = reference DARTS-V1 (SearchConfig defaults): bi-level, held-out split, first order,
# softmax, w SGD lr 0.025, α Adam 3e-4.
DARTS = NB201.replace(level="bi", arch_data="split", order="first", activation="softmax")
# Single-DARTS (§5.1.1): single level, sigmoid, w SGD lr 0.005, α Adam 3e-4 betas (0.5, 0.999),
# α weight decay 0 (sigmoid: module docstring).
SINGLE = NB201.replace(
    level="single", activation="sigmoid", w_lr=0.005, arch_weight_decay=0.0, **ADAM_ALPHA
)


def _sgd_both(config: SearchConfig, lr: float) -> SearchConfig:
    """w and α both plain SGD at one learning rate (Tables 4 and 5)."""
    return config.replace(w_optimizer="sgd", w_lr=lr, arch_optimizer="sgd", arch_lr=lr)


def _alpha_decay(configs: Iterable[SearchConfig]) -> list[SearchConfig]:
    """α weight decay by activation (module docstring): 0 under sigmoid / sigmoid*, else 1e-3."""
    return [
        c.replace(arch_weight_decay=ARCH_WEIGHT_DECAY if c.activation == "softmax" else 0.0)
        for c in configs
    ]


def _lr_row(config: SearchConfig, lr: float) -> SearchConfig:
    """A Table 5a row: w and α SGD at ``lr``, w's cosine from lr to lr × 0.001 / 0.005."""
    return _sgd_both(config, lr).replace(w_lr_min=lr * LR_ABLATION_MIN_RATIO)


@dataclass(frozen=True)
class Grid:
    """A named list of trials; ``build`` makes a fresh list each call."""

    name: str
    description: str
    build: Callable[[], list[SearchConfig]]


def _repeat(configs: Iterable[SearchConfig], seeds: Iterable[int]) -> list[SearchConfig]:
    return [c.replace(seed=s) for c in configs for s in seeds]


def table1() -> list[SearchConfig]:
    """Table 1: DARTS vs Single-DARTS on NAS-Bench-201, three datasets, 5 seeds."""
    methods = (DARTS, SINGLE)
    cells = (m.replace(dataset=d) for m in methods for d in NB201_DATASETS)
    return _alpha_decay(_repeat(cells, SEEDS5))


def table4() -> list[SearchConfig]:
    """Table 4: data modes — (bi, split) different subsets + batches; (bi, same) same subset,
    different batches; (single) same subset + batch. w and α SGD lr 0.005, softmax, α weight
    decay 1e-3 (Table 4's single row equals Table 5's Single-DARTS/softmax row, its bi/split row
    DARTS/softmax)."""
    modes = (
        DARTS.replace(arch_data="split"),
        DARTS.replace(arch_data="same"),
        SINGLE.replace(activation="softmax"),
    )
    cells = (_sgd_both(m, ABLATION_LR).replace(dataset=d) for m in modes for d in NB201_DATASETS)
    return _alpha_decay(_repeat(cells, SEEDS5))


def table5() -> list[SearchConfig]:
    """Table 5 (cifar10, cifar100; 5 seeds), for DARTS (softmax) and Single-DARTS (sigmoid);
    each sub-table's reference is w and α SGD at 0.005 — Table 5 repeats one number across its
    "0.005", DARTS "Softmax" / Single-DARTS "Sigmoid" and "SGD" rows:
    (a) learning rates 0.001 / 0.005 / 0.025, SGD for w and α at that lr: only the lr varies —
        w's cosine runs from lr to lr / 5 (2e-4, 0.001, 0.005; end / start = 0.001 / 0.005, the
        reference row's own ratio), so the three rows anneal with the same shape, and α's lr is
        the row's lr too (constant, no schedule; α and w share one lr in Tables 4 and 5). The
        0.005 row is the shared reference trial below (w's cosine 0.005 → 0.001), as the paper's
        identical numbers for those rows say. (With the schedule's end fixed at 0.001 instead,
        the 0.001 row would not anneal at all: lr and schedule shape would be confounded.)
    (b) activations softmax / sigmoid / sigmoid*, SGD 0.005 for both (α weight decay 0 for the
        sigmoid rows, 1e-3 for softmax: module docstring);
    (c) α optimizer SGD 0.005 vs Adam (3e-4, betas (0.5, 0.999)); w stays SGD 0.005 (§5.3 names
        only α's Adam settings, and Single-DARTS/Adam equals Table 1's Single-DARTS row).
    Shared reference trials appear once (deduped)."""
    cells: list[SearchConfig] = []
    for method, dataset in product((DARTS, SINGLE), TABLE5_DATASETS):
        ref = _sgd_both(method.replace(dataset=dataset), ABLATION_LR)
        cells += [_lr_row(ref, lr) for lr in TABLE5_LRS]
        cells += [ref.replace(activation=a) for a in ("softmax", "sigmoid", "sigmoid*")]
        cells += [ref, ref.replace(**ADAM_ALPHA)]
    return dedupe(_alpha_decay(_repeat(cells, SEEDS5)))


def darts() -> list[SearchConfig]:
    """DARTS space (8 cells, C=16, 50 epochs): the paper's ImageNet-1k searches (Appendix D), plus
    CIFAR-10 searches of our own.

    ImageNet-1k — Appendix D ("Searched results in DARTS") lists 15 searches: "We use
    Single-DARTS to search directly on the ImageNet-1K dataset in DARTS space", one row per
    activation / data / seed: softmax, sigmoid and sigmoid* on the full data, seeds 0, 1, 2 (9),
    and softmax and sigmoid* on half of it, seeds 0, 1, 2 (6) — "In addition, for Single-DARTS,
    using half of the dataset also gains promising results". All are single level with §5.1.2's
    recipe: dataset 'imagenet' with stem 'imagenet' ("input images are downsampled third times
    by convolution layers at the beginning of the supermodel"; 224-px input streamed from the
    JPEGs), 50 epochs, "batch size as 360, learning rate as 0.025, weight decay as [lost], and
    the cosine scheduler for network weights" (w weight decay: SearchConfig's 5e-4), "Adam with
    a fixed learning rate of [lost] and a momentum of (0.5, 0.999) for architecture parameters"
    (3e-4, the reference value), "and weight decay is set to 0 to avoid extra gradients on zero
    operations" (α weight decay 0 for sigmoid / sigmoid*; the softmax rows keep 1e-3, as every
    softmax trial here). sigmoid*: "For sigmoid, [α] is initialized as [lost] such that [lost]"
    and Appendix D's "Initializing as ( ) will improve the performance" lost the value: alpha_init
    None = logit(1/|ops|). Half = ``data_fraction`` 0.5, a class-balanced half drawn with
    ``data_fraction_seed`` 0, so all three seeds search the same half (the paper does not say
    how its half was drawn). The paper: "The search phase costs 4 GPUs for about 28 hours".

    CIFAR-10 (ours, not in the paper, which reports DARTS-space results on ImageNet-1k only and
    transfers them to CIFAR-10): batch 64, seeds 0..2, DARTS = reference DARTS-V1 vs
    Single-DARTS = the ImageNet recipe above with sigmoid*."""
    base = SearchConfig(space="darts", dataset="cifar10", channels=16, depth=8, batch_size=64)
    darts_method = base.replace(level="bi", arch_data="split", order="first")
    single = base.replace(level="single", activation="sigmoid*", w_lr=0.025, **ADAM_ALPHA)
    imagenet = single.replace(dataset="imagenet", stem="imagenet", batch_size=360)
    appendix_d = (imagenet.replace(activation=a, data_fraction=f) for a, f in APPENDIX_D)
    return _alpha_decay(
        [*_repeat((darts_method, single), (0, 1, 2)), *_repeat(appendix_d, APPENDIX_D_SEEDS)]
    )


def paper() -> list[SearchConfig]:
    """Every paper grid (table1, table4, table5, darts); shared trials once."""
    return dedupe([*table1(), *table4(), *table5(), *darts()])


def smoke() -> list[SearchConfig]:
    """CPU check on digits: tiny NB201 (C=8, 1 cell per stage), 2 epochs of full passes
    (901 images / 64 = 15 steps); level single/bi × softmax/sigmoid × seeds 0, 1; the sigmoid
    trials use α weight decay 0, as the paper grids do."""
    base = SearchConfig(
        space="nb201", dataset="digits", channels=8, depth=1, batch_size=64, epochs=2
    ).replace(steps_per_epoch=0)
    cells = (
        base.replace(level=lv, activation=a)
        for lv in ("single", "bi")
        for a in ("softmax", "sigmoid")
    )
    return _alpha_decay(_repeat(cells, (0, 1)))


GRIDS: dict[str, Grid] = {
    g.name: g
    for g in (
        Grid("table1", "Table 1: DARTS vs Single-DARTS, NAS-Bench-201, 3 datasets", table1),
        Grid("table4", "Table 4: subset/batch data modes, SGD 0.005, 3 datasets", table4),
        Grid("table5", "Table 5: learning rates, activations, α optimizers", table5),
        Grid(
            "darts",
            "DARTS space: Appendix D's 15 ImageNet-1k searches + our CIFAR-10 DARTS vs "
            "Single-DARTS",
            darts,
        ),
        Grid("paper", "all paper grids (table1 + table4 + table5 + darts), deduped", paper),
        Grid("smoke", "tiny CPU grid on digits, 8 trials", smoke),
    )
}


def build_grid(
    name_or_path: str,
    *,
    epochs: int | None = None,
    seeds: int | None = None,
    data_dir: str | None = None,
    benchmark_dir: str | None = None,
) -> list[SearchConfig]:
    """Configs of a registered grid or a ``.toml`` grid file, with overrides applied:
    ``epochs``; ``seeds`` = n repeats each distinct config (seed aside) for seeds 0..n-1;
    ``data_dir`` / ``benchmark_dir`` when given. Validated and deduped."""
    for label, value in (("epochs", epochs), ("seeds", seeds)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise ValueError(f"{label}={value!r} must be a positive integer")
    configs = _lookup(name_or_path)
    changes: dict[str, object] = {}
    if epochs is not None:
        changes["epochs"] = epochs
    if data_dir is not None:
        changes["data_dir"] = data_dir
    if benchmark_dir is not None:
        changes["benchmark_dir"] = benchmark_dir
    configs = [c.replace(**changes) for c in configs]
    if seeds is not None:
        configs = _repeat(dedupe(c.replace(seed=0) for c in configs), range(seeds))
    return dedupe(configs)


def _lookup(name_or_path: str) -> list[SearchConfig]:
    if name_or_path in GRIDS:
        return GRIDS[name_or_path].build()
    if str(name_or_path).endswith(".toml") and os.path.isfile(name_or_path):
        return load_grid_file(name_or_path)
    missing = " (no such .toml file)" if str(name_or_path).endswith(".toml") else ""
    raise ValueError(
        f"unknown grid {name_or_path!r}{missing}; registered grids: {sorted(GRIDS)}, "
        "or give the path of a .toml grid file (see study.grid_files)"
    )


def describe_grids() -> list[tuple[str, int, str]]:
    """(name, trial count, description) for every registered grid."""
    return [(g.name, len(g.build()), g.description) for g in GRIDS.values()]
