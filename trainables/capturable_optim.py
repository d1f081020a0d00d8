"""Capturable optimizer updates: torch's SGD and Adam as a few foreach kernels, lr on the device.

The fast path (``trainables.fast_steps``) records a whole search step in a CUDA graph and replays
it. A replay cannot read Python numbers that change: the w learning rate follows a per-epoch
cosine, Adam's bias corrections change every step, and torch's non-capturable optimizers read
both on the host. :class:`CapturableUpdate` applies the same update rule as the
``torch.optim.SGD`` / ``torch.optim.Adam`` it wraps, but with the learning rate and Adam's step
count held in device tensors, so one recorded step stays right for every step and epoch.

The state lives where torch keeps it: SGD's ``momentum_buffer``, Adam's ``exp_avg`` /
``exp_avg_sq`` are the tensors in ``optimizer.state`` (created as zeros before the first step,
which gives exactly torch's first update), updated in place; Adam's per-parameter ``step`` is
written back by :meth:`sync` as torch's CPU float32 scalar. So ``optimizer.state_dict()`` after
:meth:`sync` is a checkpoint the eager path can resume from, and the other way round.

Update rules (one parameter group, coupled L2 weight decay, dampening 0, no amsgrad), g the
gradient, p the parameter, lr read from the device tensor :attr:`lr`:
- SGD: d = g + wd·p; with momentum μ: b = μ·b + d, then d = d + μ·b (Nesterov) or d = b;
  p = p − lr·d.
- Adam: d = g + wd·p; m = lerp(m, d, 1 − β1); v = β2·v + (1 − β2)·d²; t = t + 1;
  p = p − (lr / (1 − β1^t)) · m / (√v / √(1 − β2^t) + eps), the bias corrections in float64.
The results equal torch's to float32 rounding (the last kernel multiplies, then subtracts,
where torch fuses both): checked against torch.optim in tests/trainables/test_fast_steps.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


class CapturableUpdate:
    """The update of one ``torch.optim.SGD`` or ``torch.optim.Adam`` with one parameter group.

    ``apply(grads)`` issues device work only (no host synchronisation), so it can be recorded in
    a CUDA graph. Call :meth:`load_lr` whenever the optimizer's ``lr`` changed (once per epoch)
    and :meth:`sync` before reading ``optimizer.state_dict()``.
    """

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        if len(optimizer.param_groups) != 1:
            raise ValueError(
                f"capturable updates take one parameter group; got {len(optimizer.param_groups)}"
            )
        group = optimizer.param_groups[0]
        self.optimizer = optimizer
        self.params: list[torch.Tensor] = list(group["params"])
        device = self.params[0].device
        self.weight_decay = float(group["weight_decay"])
        self.lr = torch.tensor(float(group["lr"]), dtype=torch.float32, device=device)
        state = optimizer.state
        if isinstance(optimizer, torch.optim.SGD):
            self.kind = "sgd"
            if group["dampening"] != 0 or group["maximize"]:
                raise ValueError("capturable SGD supports dampening=0, maximize=False only")
            self.momentum = float(group["momentum"])
            self.nesterov = bool(group["nesterov"])
            self.buffers: list[torch.Tensor] = []
            if self.momentum:
                for p in self.params:
                    buf = state[p].get("momentum_buffer")
                    if buf is None:
                        buf = torch.zeros_like(p, memory_format=torch.preserve_format)
                        state[p]["momentum_buffer"] = buf
                    self.buffers.append(buf)
        elif isinstance(optimizer, torch.optim.Adam):
            self.kind = "adam"
            if group["amsgrad"] or group["maximize"]:
                raise ValueError("capturable Adam supports amsgrad=False, maximize=False only")
            self.beta1, self.beta2 = (float(b) for b in group["betas"])
            self.eps = float(group["eps"])
            steps = set()
            self.exp_avg: list[torch.Tensor] = []
            self.exp_avg_sq: list[torch.Tensor] = []
            for p in self.params:
                s = state[p]
                if "exp_avg" not in s:
                    s["step"] = torch.tensor(0.0, dtype=torch.float32)
                    s["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    s["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                steps.add(float(s["step"]))
                self.exp_avg.append(s["exp_avg"])
                self.exp_avg_sq.append(s["exp_avg_sq"])
            if len(steps) != 1:
                raise ValueError(f"Adam parameters disagree on their step count: {sorted(steps)}")
            self.step = torch.tensor(steps.pop(), dtype=torch.float64, device=device)
        else:
            raise ValueError(
                f"no capturable update for {type(optimizer).__name__}; supported: SGD, Adam"
            )

    def load_lr(self) -> None:
        """Copy the optimizer's current learning rate into :attr:`lr` (outside any capture)."""
        self.lr.fill_(float(self.optimizer.param_groups[0]["lr"]))

    @torch.no_grad()
    def apply(self, grads: Sequence[torch.Tensor]) -> None:
        """One update of every parameter from ``grads`` (same order as the group's params)."""
        grads = list(grads)
        if self.weight_decay:
            grads = list(torch._foreach_add(grads, self.params, alpha=self.weight_decay))
        if self.kind == "sgd":
            self._sgd(grads)
        else:
            self._adam(grads)

    def _sgd(self, d: list[torch.Tensor]) -> None:
        if self.momentum:
            torch._foreach_mul_(self.buffers, self.momentum)
            torch._foreach_add_(self.buffers, d)
            if self.nesterov:
                d = list(torch._foreach_add(d, self.buffers, alpha=self.momentum))
            else:
                d = self.buffers
        torch._foreach_sub_(self.params, torch._foreach_mul(d, self.lr))

    def _adam(self, d: list[torch.Tensor]) -> None:
        torch._foreach_lerp_(self.exp_avg, d, 1 - self.beta1)
        torch._foreach_mul_(self.exp_avg_sq, self.beta2)
        torch._foreach_addcmul_(self.exp_avg_sq, d, d, value=1 - self.beta2)
        self.step += 1
        correction1 = 1 - torch.pow(self.beta1, self.step)
        correction2 = 1 - torch.pow(self.beta2, self.step)
        step_size = (self.lr.double() / correction1).float()
        denom = torch._foreach_sqrt(self.exp_avg_sq)
        torch._foreach_div_(denom, correction2.sqrt().float())
        torch._foreach_add_(denom, self.eps)
        update = torch._foreach_div(self.exp_avg, denom)
        torch._foreach_mul_(update, step_size)
        torch._foreach_sub_(self.params, update)

    def sync(self) -> None:
        """Write Adam's step count back as torch keeps it (a CPU float32 scalar per parameter);
        the other state tensors are torch's own, updated in place. Synchronises with the device."""
        # The optimizer did step, through these updates: tell its lr scheduler, which otherwise
        # warns that it was stepped before the optimizer (torch checks this private flag).
        self.optimizer._opt_called = True  # type: ignore[attr-defined]
        if self.kind == "adam":
            step = float(self.step)
            for p in self.params:
                self.optimizer.state[p]["step"] = torch.tensor(step, dtype=torch.float32)


@torch.no_grad()
def clip_grad_norm(grads: Sequence[torch.Tensor], max_norm: float) -> None:
    """Scale ``grads`` in place so their global L2 norm is at most ``max_norm``, as
    ``torch.nn.utils.clip_grad_norm_`` does (coefficient max_norm / (norm + 1e-6), capped at 1),
    on a list of gradient tensors and without host synchronisation."""
    norms = torch._foreach_norm(list(grads))
    total = torch.linalg.vector_norm(torch.stack(list(norms)))
    torch._foreach_mul_(list(grads), torch.clamp(max_norm / (total + 1e-6), max=1.0))
