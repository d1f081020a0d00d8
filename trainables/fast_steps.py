"""The fast path of a search's training steps: one step recorded in a CUDA graph, then replayed.

On a GPU the eager step of a NAS-Bench-201 supernet is bound by the host: thousands of small
kernels, each launched from Python, for a few milliseconds of GPU work. :class:`FastSteps` runs
the same steps with the host out of the way:

- **The epoch's draws up front.** Before the epoch, every random draw the eager loop would make
  (the w permutation, α batches, then per step the w batch's crop offsets y, x and flips and the
  α batch's) is drawn from the search's CPU generator in exactly the eager order
  (:func:`draw_epoch`) and copied to the device once, as one int64 tensor of shape
  (steps, 4 or 8, batch). Both paths therefore see the same batches.
- **Batches on the device.** A step reads its row of that plan through a device-side cursor and
  builds its batches with ``DeviceSplit.augment`` (gather, pad, crop + flip, normalisation table)
  into static buffers: no host-to-device copy per step.
- **Three graphs, recorded once per search** after ``WARMUP_STEPS`` real steps run eagerly on a
  side stream (cuDNN/cuBLAS set-up, allocator warm-up): *gather* (batch from the plan, cursor + 1),
  *probe* (the gradient-correlation probe, on the steps that sample it) and *step* (forward,
  backward, gradient clipping, both optimizer updates with the learning rate as a device tensor
  (``trainables.capturable_optim``), and the epoch sums of loss, correct predictions, arch loss
  and α gradients). A step is then two or three graph replays.
- **No host synchronisation inside the loop** except the divergence check, which reads the
  running loss sum every ``DIVERGENCE_CHECK_EVERY`` steps, as the eager loop does.
- A last, smaller w batch (the pool is not a multiple of the batch) runs the same code eagerly.

Update strategies covered: single-level, bi-level first order and bi-level second order; the
math is that of ``trainables.strategies`` (second order through the same
``unrolled_alpha_grads``), except that the optimizer updates are ``CapturableUpdate``, equal to
torch's up to float32 rounding. Only device-resident data (``DeviceSplit``) takes this path;
streamed ImageNet batches use the eager loop.

With ``capture=False`` the identical code runs eagerly on any device, which is how the CPU tests
check it against the eager loop (same batches, same records within rounding, same resume).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from trainables import records as R
from trainables.batching import DeviceSplit, draw_augmentation
from trainables.capturable_optim import CapturableUpdate, clip_grad_norm
from trainables.probes import DIVERGENCE_CHECK_EVERY, EpochMeter, gradient_correlation
from trainables.sampling import epoch_plan
from trainables.strategies import parameter_names, unrolled_alpha_grads

if TYPE_CHECKING:
    from trainables.config import SearchConfig
    from trainables.search import Search

WARMUP_STEPS = 3  # eager steps on a side stream before the graphs are recorded
ROWS = 4  # plan rows per batch: indices, crop offset y, crop offset x, flip (0/1)

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass
class EpochDraws:
    """One epoch's random draws, on the CPU, int64: ``full`` (steps, 4 or 8, batch) for the steps
    with a whole w batch (rows: w indices, w crop offsets y, x, w flips, then the same four for
    the α batch when there is one); for a last, smaller w batch (b < batch images) ``tail_w``
    (4, b) and, bi-level, ``tail_arch`` (4, batch): α batches are always whole. None otherwise."""

    full: torch.Tensor
    tail_w: torch.Tensor | None
    tail_arch: torch.Tensor | None


def draw_epoch(
    config: SearchConfig, train: DeviceSplit, held_out: DeviceSplit, generator: torch.Generator
) -> EpochDraws:
    """Draw an epoch's batches and augmentation from ``generator`` in the eager loop's order:
    the plan's permutations as ``trainables.sampling.epoch_plan`` draws them (the α batch of a
    step before its augmentation), then per step the w batch's offsets y, x and flips, then the
    α batch's (``trainables.batching.draw_augmentation``)."""
    cfg = config
    padding = train.crop_padding
    arch_padding = (held_out if cfg.arch_data == "split" else train).crop_padding
    plan = epoch_plan(
        len(train),
        len(held_out),
        cfg.batch_size,
        level=cfg.level,
        arch_data=cfg.arch_data,
        generator=generator,
        cap=cfg.steps_per_epoch,
    )

    def rows(idx: torch.Tensor, pad: int) -> torch.Tensor:
        oy, ox, flips = draw_augmentation(len(idx), pad, generator)
        return torch.stack([idx, oy, ox, flips.long()])

    full: list[torch.Tensor] = []
    tail_w = tail_arch = None
    for w_idx, a_idx in plan:
        w = rows(w_idx, padding)
        a = None if a_idx is None else rows(a_idx, arch_padding)
        if len(w_idx) == cfg.batch_size:
            full.append(w if a is None else torch.cat([w, a]))
        else:  # only the last step can be short
            tail_w, tail_arch = w, a
    height = ROWS * (2 if cfg.level == "bi" else 1)
    stacked = torch.stack(full) if full else torch.empty(0, height, cfg.batch_size, dtype=torch.long)
    return EpochDraws(stacked, tail_w, tail_arch)


class FastSteps:
    """Runs a search's epochs of training steps on the fast path (module docstring).

    ``capture`` records and replays CUDA graphs (needs a CUDA device); without it the same code
    runs eagerly. Build it after any checkpoint restore: it binds the optimizers' state tensors.
    """

    def __init__(self, search: Search, capture: bool) -> None:
        train, held_out = search.train, search.held_out
        if not isinstance(train, DeviceSplit) or not isinstance(held_out, DeviceSplit):
            raise ValueError("the fast path needs device-resident data (DeviceSplit)")
        if capture and search.device.type != "cuda":
            raise ValueError(f"CUDA-graph capture needs a CUDA device; got {search.device}")
        self.search, self.capture = search, capture
        cfg = search.config
        self.level, self.order = cfg.level, cfg.order
        self.model = search.model
        self.weights, self.alphas = self.model.weights(), self.model.alphas()
        self.weight_names = parameter_names(self.model, self.weights)
        self.w_update = CapturableUpdate(search.w_opt)
        self.a_update = CapturableUpdate(search.a_opt)
        self.train: DeviceSplit = train
        self.held_out: DeviceSplit = held_out
        self.arch_source: DeviceSplit = held_out if cfg.arch_data == "split" else train
        device, batch = search.device, cfg.batch_size
        shape = (batch, *train.images.shape[1:])
        arch_shape = (batch, *self.arch_source.images.shape[1:])
        # Persistent tensors, allocated outside any graph: batch buffers, cursor, epoch sums.
        self.x_w = torch.zeros(shape, device=device)
        self.y_w = torch.zeros(batch, dtype=torch.long, device=device)
        self.x_a = torch.zeros(arch_shape, device=device) if self.level == "bi" else None
        self.y_a = torch.zeros(batch, dtype=torch.long, device=device) if self.level == "bi" else None
        self.cursor = torch.zeros(1, dtype=torch.long, device=device)
        self.loss_sum = torch.zeros((), device=device)
        self.arch_loss_sum = torch.zeros((), device=device)
        self.correct = torch.zeros((), dtype=torch.long, device=device)
        self.alpha_grad_sum = [torch.zeros_like(a) for a in self.alphas]
        self.probe_sum = torch.zeros(2, device=device)
        self.plan: torch.Tensor | None = None
        self.graphs: dict[str, torch.cuda.CUDAGraph] = {}
        self.eager_steps = 0  # steps run before the graphs were recorded
        self.probe_warm = False

    @property
    def exec_path(self) -> str:
        return R.EXEC_CUDA_GRAPH if self.capture else R.EXEC_EAGER

    # ------------------------------------------------------------------ one epoch
    def run_epoch(self) -> dict[str, Any]:
        """Train one epoch; returns what ``Search._train_steps`` returns."""
        cfg = self.search.config
        draws = draw_epoch(cfg, self.train, self.held_out, self.search.generator)
        self._load_plan(draws.full)
        for total in (self.loss_sum, self.arch_loss_sum, self.correct, self.probe_sum):
            total.zero_()
        for total in self.alpha_grad_sum:
            total.zero_()
        self.cursor.zero_()
        self.w_update.load_lr()
        self.a_update.load_lr()
        probes = steps = images = 0
        finite = True
        for index in range(draws.full.shape[0]):
            probe = bool(cfg.probe_every) and index % cfg.probe_every == 0
            self._full_step(probe)
            probes += probe
            steps, images = steps + 1, images + cfg.batch_size
            if steps % DIVERGENCE_CHECK_EVERY == 0 and not bool(torch.isfinite(self.loss_sum)):
                finite = False
                break
        if finite and draws.tail_w is not None:
            probe = bool(cfg.probe_every) and steps % cfg.probe_every == 0
            self._tail_step(draws.tail_w, draws.tail_arch, probe)
            probes += probe
            steps, images = steps + 1, images + draws.tail_w.shape[1]
        self.w_update.sync()
        self.a_update.sync()
        meter = EpochMeter.from_sums(
            self.model,
            [g.clone() for g in self.alpha_grad_sum],
            steps,
            self.probe_sum.clone() if probes else None,
            probes,
        )
        bi = self.level == "bi"
        return {
            "steps": steps,
            "images": images,
            "loss": self.loss_sum.item() / max(images, 1),
            "acc": 100.0 * self.correct.item() / max(images, 1),
            "arch_loss": self.arch_loss_sum.item() / steps if bi and steps else math.nan,
            "meter": meter,
        }

    def _load_plan(self, full: torch.Tensor) -> None:
        """Copy the epoch's draws to the device plan (one copy); a new shape drops the graphs."""
        if self.plan is None or self.plan.shape != full.shape:
            self.plan = torch.empty(full.shape, dtype=torch.long, device=self.search.device)
            self.graphs = {}
            self.eager_steps, self.probe_warm = 0, False
        self.plan.copy_(full)

    def _full_step(self, probe: bool) -> None:
        ready = self.eager_steps >= WARMUP_STEPS and (self.probe_warm or not self._probing)
        if self.capture and not self.graphs and ready:
            self._record()
        if self.graphs:
            self.graphs["gather"].replay()
            if probe:
                self.graphs["probe"].replay()
            self.graphs["step"].replay()
            return
        with self._side_stream():
            self._gather()
            if probe:
                self._probe()
                self.probe_warm = True
            self._step(self.x_w, self.y_w, self.x_a, self.y_a, self.search.config.batch_size)
        self.eager_steps += 1

    @property
    def _probing(self) -> bool:
        return bool(self.search.config.probe_every)

    @contextlib.contextmanager
    def _side_stream(self) -> Iterator[None]:
        """Warm-up steps before a capture run on a side stream (as torch's CUDA-graph guide
        asks); without capture, on the current stream."""
        if not self.capture:
            yield
            return
        side = torch.cuda.Stream(self.search.device)
        side.wait_stream(torch.cuda.current_stream(self.search.device))
        with torch.cuda.stream(side):
            yield
        torch.cuda.current_stream(self.search.device).wait_stream(side)

    def _record(self) -> None:
        """Record the gather, probe and step graphs (nothing runs during recording)."""
        torch.cuda.synchronize(self.search.device)
        parts = {"gather": self._gather, "step": self._graph_step}
        if self._probing:
            parts["probe"] = self._probe
        graphs = {}
        for name, fn in parts.items():
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                fn()
            graphs[name] = graph
        self.graphs = graphs

    # ------------------------------------------------------------------ recorded parts
    def _gather(self) -> None:
        """The step's batches from the device plan into the static buffers; cursor + 1."""
        assert self.plan is not None
        row = self.plan.index_select(0, self.cursor).squeeze(0)
        x, y = self.train.augment(row[0], row[1], row[2], row[3])
        self.x_w.copy_(x)
        self.y_w.copy_(y)
        if self.x_a is not None and self.y_a is not None:
            x, y = self.arch_source.augment(row[4], row[5], row[6], row[7])
            self.x_a.copy_(x)
            self.y_a.copy_(y)
        self.cursor += 1

    def _probe(self) -> None:
        self._probe_on((self.x_w, self.y_w), self._arch_batch(self.x_a, self.y_a))

    def _probe_on(self, w_batch: Batch, arch_batch: Batch | None) -> None:
        inner, cosine = gradient_correlation(self.model, w_batch, arch_batch)
        self.probe_sum += torch.stack([inner.float(), cosine.float()])

    def _graph_step(self) -> None:
        self._step(self.x_w, self.y_w, self.x_a, self.y_a, self.search.config.batch_size)

    @staticmethod
    def _arch_batch(x: torch.Tensor | None, y: torch.Tensor | None) -> Batch | None:
        return None if x is None or y is None else (x, y)

    def _step(
        self,
        x_w: torch.Tensor,
        y_w: torch.Tensor,
        x_a: torch.Tensor | None,
        y_a: torch.Tensor | None,
        n: int,
    ) -> None:
        """One update of w and α (the strategy of the config) plus the epoch sums."""
        grad_clip = self.search.config.grad_clip
        arch = self._arch_batch(x_a, y_a)
        alpha_grads: Sequence[torch.Tensor] = ()
        if self.level == "bi" and self.order == "second":
            assert arch is not None
            alpha_grads, arch_loss = self._second_order_alpha_grads((x_w, y_w), arch)
            self.a_update.apply(alpha_grads)
            self.arch_loss_sum += arch_loss
        logits = self.model(x_w)
        loss = F.cross_entropy(logits, y_w)
        if self.level == "single":
            grads = torch.autograd.grad(loss, [*self.weights, *self.alphas])
            w_grads, alpha_grads = list(grads[: len(self.weights)]), grads[len(self.weights) :]
        else:
            w_grads = list(torch.autograd.grad(loss, self.weights))
        if grad_clip > 0:
            clip_grad_norm(w_grads, grad_clip)
        self.w_update.apply(w_grads)
        if self.level == "single":
            self.a_update.apply(alpha_grads)
        elif self.order == "first":
            assert arch is not None
            arch_loss = F.cross_entropy(self.model(arch[0]), arch[1])
            alpha_grads = torch.autograd.grad(arch_loss, self.alphas)
            self.a_update.apply(alpha_grads)
            self.arch_loss_sum += arch_loss.detach()
        self.loss_sum += loss.detach() * n
        self.correct += (logits.argmax(1) == y_w).sum()
        torch._foreach_add_(self.alpha_grad_sum, list(alpha_grads))

    def _second_order_alpha_grads(
        self, w_batch: Batch, arch_batch: Batch
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        w = self.w_update
        sgd_momentum = w.kind == "sgd" and bool(w.momentum)
        buffers: list[torch.Tensor | None] = (
            list(w.buffers) if sgd_momentum else [None] * len(self.weights)
        )
        return unrolled_alpha_grads(
            self.model,
            self.weights,
            self.alphas,
            w_batch,
            arch_batch,
            xi=w.lr,
            decay=w.weight_decay,
            momentum=w.momentum if sgd_momentum else 0.0,
            momentum_buffers=buffers,
            unroll_r=self.search.config.unroll_r,
            weight_names=self.weight_names,
        )

    def _tail_step(
        self, w_rows: torch.Tensor, arch_rows: torch.Tensor | None, probe: bool
    ) -> None:
        """The epoch's last, smaller w batch: the same code, run eagerly."""
        device = self.search.device
        w = w_rows.to(device)
        x_w, y_w = self.train.augment(w[0], w[1], w[2], w[3])
        x_a = y_a = None
        if arch_rows is not None:
            a = arch_rows.to(device)
            x_a, y_a = self.arch_source.augment(a[0], a[1], a[2], a[3])
        if probe:
            self._probe_on((x_w, y_w), self._arch_batch(x_a, y_a))
        self._step(x_w, y_w, x_a, y_a, w_rows.shape[1])

