"""Probes recorded each epoch: the gradient-correlation probe and the mean α-gradient.

Gradient correlation (Single-DARTS §5.2.1, Figure 2). At every ``probe_every``-th step of an epoch
(steps 0, k, 2k, … counted from 0 within the epoch), before that step's update, with the current
w and α and the network in train mode (BN batch statistics; running statistics untouched):

    g_w = ∇w L(w, α; B_w)      (B_w: the batch w is updated on)
    g_α = ∇w L(w, α; B_α)      (B_α: the batch α is updated on; B_α = B_w for single-level)
    inner  = ⟨g_w, g_α⟩                    summed over every weight tensor
    cosine = inner / (‖g_w‖ · ‖g_α‖)

The epoch's value is the mean over its sampled steps. For single-level g_α = g_w by definition,
so inner = ‖g_w‖² and cosine = 1: the probe measures how far bi-level's two gradients are from
that. Cost: one extra forward+backward per sampled step for single-level, two for bi-level.

Mean α-gradient: after every step, the gradient α's optimizer stepped with (``α.grad``, before
weight decay), averaged over the epoch's steps, per cell type × edge × op.
"""

from __future__ import annotations

import torch

from search_spaces.supernet import SuperNet
from trainables.strategies import Batch, dot, side_loss

# Steps between host reads of an epoch's running loss sum (is it still finite?): the only host
# synchronisation inside the epoch loops, eager and fast alike.
DIVERGENCE_CHECK_EVERY = 20


def _weight_grad(model: SuperNet, batch: Batch) -> list[torch.Tensor]:
    """∇w of the batch loss, with BN running statistics left as they are."""
    return list(torch.autograd.grad(side_loss(model, batch), model.weights()))


def gradient_correlation(
    model: SuperNet, w_batch: Batch, arch_batch: Batch | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(inner, cosine) of ∇w on the w batch and on the α batch (see module docstring)."""
    g_w = _weight_grad(model, w_batch)
    g_a = g_w if arch_batch is None else _weight_grad(model, arch_batch)
    inner = dot(g_w, g_a)
    norm_w = torch.sqrt(dot(g_w, g_w))
    norm_a = norm_w if arch_batch is None else torch.sqrt(dot(g_a, g_a))
    return inner.detach(), (inner / (norm_w * norm_a).clamp_min(1e-30)).detach()


class EpochMeter:
    """Device-side sums of one epoch's step outputs; read once at the end of the epoch."""

    def __init__(self, model: SuperNet) -> None:
        self.model = model
        self.alpha_grad = [torch.zeros_like(a) for a in model.alphas()]
        self.steps = 0
        self.probe_sum: torch.Tensor | None = None  # (inner, cosine) summed over samples
        self.probe_count = 0

    @classmethod
    def from_sums(
        cls,
        model: SuperNet,
        alpha_grad: list[torch.Tensor],
        steps: int,
        probe_sum: torch.Tensor | None,
        probe_count: int,
    ) -> EpochMeter:
        """A meter holding sums gathered elsewhere (the fast path sums on the device)."""
        meter = cls(model)
        meter.alpha_grad, meter.steps = alpha_grad, steps
        meter.probe_sum, meter.probe_count = probe_sum, probe_count
        return meter

    def add_alpha_grad(self) -> None:
        for acc, a in zip(self.alpha_grad, self.model.alphas(), strict=True):
            if a.grad is not None:
                acc += a.grad.detach()
        self.steps += 1

    def add_probe(self, inner: torch.Tensor, cosine: torch.Tensor) -> None:
        pair = torch.stack([inner.float(), cosine.float()])
        self.probe_sum = pair if self.probe_sum is None else self.probe_sum + pair
        self.probe_count += 1

    def mean_alpha_grad(self) -> list[torch.Tensor]:
        return [g / max(self.steps, 1) for g in self.alpha_grad]

    def mean_probe(self) -> tuple[float, float]:
        if self.probe_sum is None:
            return float("nan"), float("nan")
        inner, cosine = (self.probe_sum / self.probe_count).tolist()
        return inner, cosine
