"""Update strategies against gradients computed independently with plain autograd."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from search_spaces.nb201 import NB201SuperNet
from trainables.strategies import (
    BiLevelFirstOrder,
    BiLevelSecondOrder,
    SingleLevel,
    build_strategy,
)


def _model() -> NB201SuperNet:
    torch.manual_seed(0)
    model = NB201SuperNet(num_classes=3, channels=2, depth=1).double()
    with torch.no_grad():
        model.alphas()[0].normal_(0, 0.5)  # distinct op weights
    return model


def _batch(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(6, 3, 8, 8, generator=g, dtype=torch.double), torch.randint(
        0, 3, (6,), generator=g
    )


def _sgd(params, lr: float = 0.1) -> torch.optim.SGD:
    return torch.optim.SGD(params, lr=lr)


def _loss(model, params: dict[str, torch.Tensor], batch) -> torch.Tensor:
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    return F.cross_entropy(functional_call(model, {**params, **buffers}, (batch[0],)), batch[1])


def test_single_level_steps_both_with_gradients_of_one_loss() -> None:
    model, reference = _model(), _model()
    batch = _batch(1)
    loss = F.cross_entropy(reference(batch[0]), batch[1])
    grads = torch.autograd.grad(loss, list(reference.parameters()))
    expected = [p.detach() - 0.1 * g for p, g in zip(reference.parameters(), grads, strict=True)]
    SingleLevel(model, _sgd(model.weights()), _sgd(model.alphas()), grad_clip=0).step(batch, None)
    for p, e in zip(model.parameters(), expected, strict=True):
        torch.testing.assert_close(p.detach(), e)


def test_first_order_updates_alpha_at_the_new_weights_on_the_arch_batch() -> None:
    model, reference = _model(), _model()
    w_batch, a_batch = _batch(1), _batch(2)
    ref_w = reference.weights()
    g_w = torch.autograd.grad(F.cross_entropy(reference(w_batch[0]), w_batch[1]), ref_w)
    with torch.no_grad():
        for p, g in zip(ref_w, g_w, strict=True):
            p -= 0.1 * g
    g_a = torch.autograd.grad(
        F.cross_entropy(reference(a_batch[0]), a_batch[1]), reference.alphas()
    )
    expected_alpha = reference.alphas()[0].detach() - 0.1 * g_a[0]
    BiLevelFirstOrder(model, _sgd(model.weights()), _sgd(model.alphas()), 0).step(w_batch, a_batch)
    for p, e in zip(model.weights(), ref_w, strict=True):
        torch.testing.assert_close(p.detach(), e.detach())
    torch.testing.assert_close(model.alphas()[0].detach(), expected_alpha)


def test_second_order_alpha_gradient_matches_exact_unrolled_gradient() -> None:
    """Finite-difference DARTS-V2 gradient = the exact ∇α L_a(w − ξ∇w L_w(w, α), α).

    In float64 with a small radius (r = 1e-6) the central difference is exact to ~1e-10; the
    default r = 0.01 trades accuracy for float32 round-off on real networks."""
    model = _model()
    w_batch, a_batch = _batch(1), _batch(2)
    xi, decay = 0.1, 3e-4
    names = [n for n, p in model.named_parameters() if not n.startswith("alpha_")]
    params = dict(model.named_parameters())
    weights = [params[n] for n in names]
    alpha = model.alphas()[0]
    inner = torch.autograd.grad(_loss(model, params, w_batch), weights, create_graph=True)
    unrolled = {n: w - xi * (g + decay * w) for n, w, g in zip(names, weights, inner, strict=True)}
    outer = _loss(model, {**params, **unrolled}, a_batch)
    exact = torch.autograd.grad(outer, alpha)[0]
    first_order_only = torch.autograd.grad(
        _loss(model, {**params, **{n: u.detach() for n, u in unrolled.items()}}, a_batch), alpha
    )[0]

    copy_ = copy.deepcopy(model)
    w_opt = torch.optim.SGD(copy_.weights(), lr=xi, weight_decay=decay)
    a_opt = _sgd(copy_.alphas(), lr=0.0)  # lr 0: keep α so the gradient can be read
    BiLevelSecondOrder(copy_, w_opt, a_opt, grad_clip=0, unroll_r=1e-6)._unrolled_alpha_step(
        w_batch, a_batch
    )
    ours = copy_.alphas()[0].grad
    # The implicit (Hessian) term must matter here, or this test could not tell V1 from V2.
    assert (exact - first_order_only).norm() > 1e-3 * exact.norm()
    torch.testing.assert_close(ours, exact, rtol=1e-6, atol=1e-8)


def test_gradient_clipping_bounds_weight_gradient_norm() -> None:
    model = _model()
    strategy = SingleLevel(model, _sgd(model.weights()), _sgd(model.alphas()), grad_clip=1e-3)
    strategy.step(_batch(1), None)
    norm = torch.sqrt(sum((p.grad**2).sum() for p in model.weights()))
    assert norm <= 1e-3 * (1 + 1e-6)
    assert sum((a.grad**2).sum() for a in model.alphas()) > 1e-6  # α is never clipped


def test_unknown_strategy_lists_valid_pairs() -> None:
    model = _model()
    with pytest.raises(ValueError, match="valid"):
        build_strategy("single", "second", model, _sgd(model.weights()), _sgd(model.alphas()), 5)
