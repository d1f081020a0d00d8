"""Optimizers and the w learning-rate schedule, built from a ``SearchConfig``.

Both w and α take ``sgd`` (momentum; Nesterov for w when ``w_nesterov``) or ``adam`` (betas),
each with coupled L2 weight decay (``weight_decay`` of torch's SGD/Adam, not AdamW), as the
reference. The w learning rate follows a cosine over epochs from ``w_lr`` to ``w_lr_min``
(stepped once per epoch); α's learning rate is constant.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from trainables.config import SearchConfig

OptimizerFactory = Callable[
    [Iterable[nn.Parameter], float, float, tuple[float, float], float, bool], torch.optim.Optimizer
]

OPTIMIZER_FACTORIES: dict[str, OptimizerFactory] = {
    "sgd": lambda params, lr, momentum, betas, wd, nesterov: torch.optim.SGD(
        params, lr=lr, momentum=momentum, weight_decay=wd, nesterov=nesterov and momentum > 0
    ),
    "adam": lambda params, lr, momentum, betas, wd, nesterov: torch.optim.Adam(
        params, lr=lr, betas=betas, weight_decay=wd
    ),
}


def build_optimizer(
    name: str,
    params: Iterable[nn.Parameter],
    *,
    lr: float,
    momentum: float,
    betas: tuple[float, float],
    weight_decay: float,
    nesterov: bool = False,
) -> torch.optim.Optimizer:
    """One optimizer from the registry; unknown names list the valid ones."""
    if name not in OPTIMIZER_FACTORIES:
        raise ValueError(f"unknown optimizer {name!r}; valid: {', '.join(OPTIMIZER_FACTORIES)}")
    return OPTIMIZER_FACTORIES[name](params, lr, momentum, betas, weight_decay, nesterov)


def build_optimizers(
    config: SearchConfig, weights: list[nn.Parameter], alphas: list[nn.Parameter]
) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """(w optimizer, α optimizer, per-epoch cosine schedule of the w learning rate)."""
    w_opt = build_optimizer(
        config.w_optimizer,
        weights,
        lr=config.w_lr,
        momentum=config.w_momentum,
        betas=(config.w_beta1, config.w_beta2),
        weight_decay=config.w_weight_decay,
        nesterov=config.w_nesterov,
    )
    a_opt = build_optimizer(
        config.arch_optimizer,
        alphas,
        lr=config.arch_lr,
        momentum=config.arch_momentum,
        betas=(config.arch_beta1, config.arch_beta2),
        weight_decay=config.arch_weight_decay,
    )
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
        w_opt, T_max=config.epochs, eta_min=config.w_lr_min
    )
    return w_opt, a_opt, schedule
