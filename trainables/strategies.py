"""Update strategies: how one search step updates w and α. One interface, three strategies.

- ``single`` (Single-DARTS): one forward and one backward on the w batch give ∇w and ∇α of the
  same loss; then both optimizers step.
- ``bi`` + ``first`` (DARTS-V1): w step on the w batch, then α step on the arch batch.
- ``bi`` + ``second`` (DARTS-V2): α step first, through the unrolled weights
  w' = w − ξ·(∇w L_w(w) + λ·w + μ·m) (ξ = current w lr, λ = w weight decay, μ·m = the SGD
  momentum term when w uses SGD), with the implicit term approximated by finite differences:
  ∇α L_a(w', α) − ξ · [∇α L_w(w⁺, α) − ∇α L_w(w⁻, α)] / (2ε), w± = w ± ε·∇w' L_a(w', α),
  ε = r / ‖∇w' L_a‖. Then the usual w step. The auxiliary passes run on copies of the BN
  buffers, so only real w steps move running statistics.

Gradient clipping bounds the global norm of the w gradient only. (The reference DARTS-V1 clips
``network.parameters()``, which also holds α's stale gradient from the previous α step, since its
w step zeroes only w's gradients; that α term is negligible next to 1.7M weight gradients, but it
makes the reference's clip depend on the previous step. We leave α out.) α gradients are left
in ``.grad`` after each step, where the epoch loop reads them for the α-gradient probe.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from search_spaces.supernet import SuperNet

Batch = tuple[torch.Tensor, torch.Tensor]  # (images float (B,3,H,W), labels int64 (B,))


def side_loss(
    model: nn.Module, batch: Batch, replaced: dict[str, torch.Tensor] | None = None
) -> torch.Tensor:
    """Cross-entropy on ``batch`` that leaves BN running statistics untouched (the forward runs
    on copies of the buffers), optionally with some parameters replaced by ``replaced``. For the
    auxiliary passes of the unrolled step and of the probes."""
    state = {n: b.clone() for n, b in model.named_buffers()}
    state.update(replaced or {})
    logits = functional_call(model, state, (batch[0],), strict=False)
    return F.cross_entropy(logits, batch[1])


def dot(xs: Sequence[torch.Tensor], ys: Sequence[torch.Tensor]) -> torch.Tensor:
    """Inner product of two lists of tensors viewed as one flat vector each."""
    return torch.stack([(x * y).sum() for x, y in zip(xs, ys, strict=True)]).sum()


@dataclass
class StepResult:
    """Detached per-step outputs; tensors stay on the device (no host sync per step)."""

    loss: torch.Tensor  # mean loss on the w batch
    correct: torch.Tensor  # correct predictions on the w batch (count)
    arch_loss: torch.Tensor | None  # mean loss on the arch batch (bi-level only)


class Strategy:
    """Base: holds the model, both optimizers and the clip bound."""

    needs_arch_batch = True

    def __init__(
        self,
        model: SuperNet,
        w_opt: torch.optim.Optimizer,
        a_opt: torch.optim.Optimizer,
        grad_clip: float,
        unroll_r: float = 0.01,
    ) -> None:
        self.model, self.w_opt, self.a_opt = model, w_opt, a_opt
        self.grad_clip, self.unroll_r = grad_clip, unroll_r
        self.weights, self.alphas = model.weights(), model.alphas()

    def step(self, w_batch: Batch, arch_batch: Batch | None) -> StepResult:
        raise NotImplementedError

    def _w_step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gradient of the w-batch loss w.r.t. w only, clip, step. Returns (loss, correct)."""
        logits = self.model(x)
        loss = F.cross_entropy(logits, y)
        grads = torch.autograd.grad(loss, self.weights)
        for p, g in zip(self.weights, grads, strict=True):
            p.grad = g
        self._clip_and_step_w()
        return loss.detach(), (logits.argmax(1) == y).sum()

    def _clip_and_step_w(self) -> None:
        if self.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.weights, self.grad_clip)
        self.w_opt.step()


class SingleLevel(Strategy):
    """w and α updated together from one forward/backward on the same batch."""

    needs_arch_batch = False

    def step(self, w_batch: Batch, arch_batch: Batch | None) -> StepResult:
        x, y = w_batch
        self.w_opt.zero_grad(set_to_none=True)
        self.a_opt.zero_grad(set_to_none=True)
        logits = self.model(x)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        self._clip_and_step_w()
        self.a_opt.step()
        return StepResult(loss.detach(), (logits.argmax(1) == y).sum(), None)


class BiLevelFirstOrder(Strategy):
    """DARTS-V1: w step on the w batch, then α step on the arch batch (at the new w)."""

    def step(self, w_batch: Batch, arch_batch: Batch | None) -> StepResult:
        assert arch_batch is not None, "bi-level needs an arch batch"
        loss, correct = self._w_step(*w_batch)
        xa, ya = arch_batch
        arch_loss = F.cross_entropy(self.model(xa), ya)
        for a, g in zip(self.alphas, torch.autograd.grad(arch_loss, self.alphas), strict=True):
            a.grad = g
        self.a_opt.step()
        return StepResult(loss, correct, arch_loss.detach())


class BiLevelSecondOrder(Strategy):
    """DARTS-V2: α step through the one-step-unrolled weights, then the w step."""

    def step(self, w_batch: Batch, arch_batch: Batch | None) -> StepResult:
        assert arch_batch is not None, "bi-level needs an arch batch"
        arch_loss = self._unrolled_alpha_step(w_batch, arch_batch)
        loss, correct = self._w_step(*w_batch)
        return StepResult(loss, correct, arch_loss)

    @functools.cached_property
    def _weight_names(self) -> list[str]:
        return parameter_names(self.model, self.weights)

    def _unrolled_alpha_step(self, w_batch: Batch, arch_batch: Batch) -> torch.Tensor:
        group = self.w_opt.param_groups[0]
        momentum = group.get("momentum", 0.0) if isinstance(self.w_opt, torch.optim.SGD) else 0.0
        buffers = [self.w_opt.state.get(p, {}).get("momentum_buffer") for p in self.weights]
        alpha_grads, arch_loss = unrolled_alpha_grads(
            self.model,
            self.weights,
            self.alphas,
            w_batch,
            arch_batch,
            xi=group["lr"],
            decay=group["weight_decay"],
            momentum=momentum,
            momentum_buffers=buffers,
            unroll_r=self.unroll_r,
            weight_names=self._weight_names,
        )
        for a, g in zip(self.alphas, alpha_grads, strict=True):
            a.grad = g
        self.a_opt.step()
        return arch_loss


def parameter_names(model: nn.Module, params: Sequence[torch.Tensor]) -> list[str]:
    """The ``named_parameters`` names of ``params`` (in the model's order), for
    ``functional_call`` replacements."""
    ids = {id(p) for p in params}
    return [n for n, p in model.named_parameters() if id(p) in ids]


def unrolled_alpha_grads(
    model: SuperNet,
    weights: Sequence[torch.Tensor],
    alphas: Sequence[torch.Tensor],
    w_batch: Batch,
    arch_batch: Batch,
    *,
    xi: float | torch.Tensor,
    decay: float,
    momentum: float,
    momentum_buffers: Sequence[torch.Tensor | None],
    unroll_r: float,
    weight_names: Sequence[str],
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Second-order α gradients (module docstring) and the detached arch loss.

    ``xi`` is the current w learning rate, a number or a 0-dim device tensor (the CUDA-graph
    path); ``momentum_buffers`` are the w optimizer's SGD buffers (None before its first step)
    and ``momentum`` their coefficient (0 when w does not use SGD). Issues no host
    synchronisation, so the fast path can record it in a CUDA graph.
    """

    def loss(ws: Sequence[torch.Tensor], batch: Batch) -> torch.Tensor:
        return side_loss(model, batch, dict(zip(weight_names, ws, strict=True)))

    grads = torch.autograd.grad(loss(weights, w_batch), weights)
    unrolled = []
    with torch.no_grad():
        for p, g, buf in zip(weights, grads, momentum_buffers, strict=True):
            d = g + decay * p
            if momentum and buf is not None:
                d = d + momentum * buf
            unrolled.append((p - xi * d).requires_grad_(True))
    arch_loss = loss(unrolled, arch_batch)
    out = torch.autograd.grad(arch_loss, [*alphas, *unrolled])
    d_alpha, d_w = out[: len(alphas)], out[len(alphas) :]
    norm = torch.sqrt(dot(d_w, d_w))
    eps = unroll_r / norm.clamp_min(1e-12)
    with torch.no_grad():
        plus = [p + eps * g for p, g in zip(weights, d_w, strict=True)]
        minus = [p - eps * g for p, g in zip(weights, d_w, strict=True)]
    g_plus = torch.autograd.grad(loss(plus, w_batch), alphas)
    g_minus = torch.autograd.grad(loss(minus, w_batch), alphas)
    alpha_grads = [
        da - xi * (gp - gm) / (2 * eps)
        for da, gp, gm in zip(d_alpha, g_plus, g_minus, strict=True)
    ]
    return alpha_grads, arch_loss.detach()


STRATEGIES: dict[tuple[str, str], type[Strategy]] = {
    ("single", "first"): SingleLevel,
    ("bi", "first"): BiLevelFirstOrder,
    ("bi", "second"): BiLevelSecondOrder,
}


def build_strategy(
    level: str,
    order: str,
    model: SuperNet,
    w_opt: torch.optim.Optimizer,
    a_opt: torch.optim.Optimizer,
    grad_clip: float,
    unroll_r: float = 0.01,
) -> Strategy:
    """Strategy for (level, order); unknown pairs list the valid ones."""
    key = (level, order)
    if key not in STRATEGIES:
        raise ValueError(
            f"no update strategy for level={level!r}, order={order!r}; "
            f"valid (level, order): {sorted(STRATEGIES)}"
        )
    return STRATEGIES[key](model, w_opt, a_opt, grad_clip, unroll_r)
