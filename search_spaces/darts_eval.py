"""Evaluation (retraining) networks for a DARTS genotype, with parameter and multiply-add counts.

The networks follow the DARTS paper's evaluation setting (Liu et al., "DARTS: Differentiable
Architecture Search", ICLR 2019) and its reference evaluation code: every BN is affine, no
convolution has a bias, ``sep_conv`` is two stacked ReLU → depthwise → pointwise → BN blocks,
``dil_conv`` one dilated ReLU → depthwise → pointwise → BN block. Only the genotype's two
chosen inputs per node are built, so the search supernet's ops (non-affine BN with biased
convolutions) in :mod:`search_spaces.darts` are not reused.

With the DARTS (second order) genotype this gives the paper's parameter counts:
``NetworkCIFAR(36, 10, 20, True)`` has 3,349,342 parameters without the auxiliary head (3.3 M)
and ``NetworkImageNet(48, 1000, 14, True)`` 4,718,752 (4.7 M). Its multiply-adds at 224x224,
counted over convolutions and linear layers by :func:`count_multiply_adds`, are 529,911,552;
the paper reports 574 M (under the mobile setting's 600 M) without publishing its counter, and
conv + linear counts of the reference network do not reproduce that figure.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.genotypes import DartsGenotype
from search_spaces.published import Genes


# --------------------------------------------------------------------------- ops
class ReLUConvBN(nn.Sequential):
    """ReLU → Conv (no bias) → BN (affine)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int) -> None:
        super().__init__(
            nn.ReLU(),
            nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=False),
            nn.BatchNorm2d(c_out),
        )


class DilConv(nn.Sequential):
    """ReLU → depthwise conv (dilated, strided) → pointwise conv → BN (affine); no biases."""

    def __init__(
        self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, dilation: int
    ) -> None:
        super().__init__(
            nn.ReLU(),
            nn.Conv2d(c_in, c_in, kernel, stride, padding, dilation, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out),
        )


class SepConv(nn.Sequential):
    """Two stacked separable blocks; only the first is strided and the second sets ``c_out``."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int) -> None:
        super().__init__(
            DilConv(c_in, c_in, kernel, stride, padding, 1),
            DilConv(c_in, c_out, kernel, 1, padding, 1),
        )


class Zero(nn.Module):
    """The ``none`` op: zeros with the output shape of a stride-``stride`` op."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class FactorizedReduce(nn.Module):
    """ReLU → two stride-2 1x1 convs (no bias) on grids offset by one pixel, concat → BN (affine).

    The offset grid is taken from a copy padded by one pixel at the bottom/right, so odd sizes
    work too; for even sizes this equals the reference's ``x[:, :, 1:, 1:]``.
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even number of outputs, got {c_out}")
        self.conv_a = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_b = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(x)
        shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        return self.bn(torch.cat([self.conv_a(x), self.conv_b(shifted)], dim=1))


EVAL_OPS: dict[str, Callable[[int, int], nn.Module]] = {
    "none": lambda c, s: Zero(s),
    "skip_connect": lambda c, s: nn.Identity() if s == 1 else FactorizedReduce(c, c),
    "sep_conv_3x3": lambda c, s: SepConv(c, c, 3, s, 1),
    "sep_conv_5x5": lambda c, s: SepConv(c, c, 5, s, 2),
    "dil_conv_3x3": lambda c, s: DilConv(c, c, 3, s, 2, 2),
    "dil_conv_5x5": lambda c, s: DilConv(c, c, 5, s, 4, 2),
    "avg_pool_3x3": lambda c, s: nn.AvgPool2d(3, s, 1, count_include_pad=False),
    "max_pool_3x3": lambda c, s: nn.MaxPool2d(3, s, 1),
}


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Zero whole samples with probability ``drop_prob``, scaling the kept ones by 1/keep."""
    if drop_prob <= 0.0:
        return x
    keep = 1.0 - drop_prob
    mask = torch.empty(x.size(0), 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x / keep * mask


# --------------------------------------------------------------------------- cell
class EvalCell(nn.Module):
    """One cell of a derived DARTS network.

    Both inputs are preprocessed to C channels (``FactorizedReduce`` on the older input when the
    previous cell reduced, so both are at the same resolution; otherwise ReLU-Conv1x1-BN). Node
    ``i`` sums the genotype's two genes ``2i`` and ``2i + 1``; in a reduction cell, ops reading a
    cell input (index 0 or 1) have stride 2. The output concatenates the ``*_concat`` nodes.
    In training with ``drop_prob > 0``, drop-path is applied to the output of every op that is
    not an identity.
    """

    def __init__(
        self,
        genotype: DartsGenotype,
        C_prev_prev: int,
        C_prev: int,
        C: int,
        reduction: bool,
        reduction_prev: bool,
    ) -> None:
        super().__init__()
        self.reduction = reduction
        genes: Genes = genotype.reduce if reduction else genotype.normal
        concat = genotype.reduce_concat if reduction else genotype.normal_concat
        if len(genes) % 2 or not genes:
            raise ValueError(f"a DARTS cell needs 2 genes per node, got {len(genes)} genes")
        self.steps = len(genes) // 2
        for k, (op, j) in enumerate(genes):
            if op not in EVAL_OPS:
                raise ValueError(f"unknown DARTS op {op!r}; valid ops: {', '.join(EVAL_OPS)}")
            if not 0 <= j < 2 + k // 2:
                raise ValueError(f"gene {k} ({op!r}, {j}) reads a node that does not exist yet")
        for n in concat:
            if not 0 <= n < 2 + self.steps:
                raise ValueError(f"concat node {n} does not exist in a {self.steps}-node cell")
        self.concat = tuple(concat)
        self.multiplier = len(self.concat)
        self.indices = tuple(j for _, j in genes)
        self.preprocess0: nn.Module = (
            FactorizedReduce(C_prev_prev, C)
            if reduction_prev
            else ReLUConvBN(C_prev_prev, C, 1, 1, 0)
        )
        self.preprocess1 = ReLUConvBN(C_prev, C, 1, 1, 0)
        self.ops = nn.ModuleList(
            EVAL_OPS[op](C, 2 if reduction and j < 2 else 1) for op, j in genes
        )

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float = 0.0) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for i in range(self.steps):
            node = None
            for k in (2 * i, 2 * i + 1):
                op = self.ops[k]
                h = op(states[self.indices[k]])
                if self.training and drop_prob > 0 and not isinstance(op, nn.Identity):
                    h = drop_path(h, drop_prob)
                node = h if node is None else node + h
            assert node is not None
            states.append(node)
        return torch.cat([states[n] for n in self.concat], dim=1)


# --------------------------------------------------------------------------- auxiliary heads
class AuxiliaryHeadCIFAR(nn.Sequential):
    """Auxiliary classifier for 8x8 features: pool to 2x2, 1x1 conv to 128, 2x2 conv to 768."""

    def __init__(self, C: int, num_classes: int) -> None:
        super().__init__(
            nn.ReLU(),
            nn.AvgPool2d(5, stride=3, padding=0, count_include_pad=False),  # 8x8 -> 2x2
            nn.Conv2d(C, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(),
            nn.Conv2d(128, 768, 2, bias=False),  # 2x2 -> 1x1
            nn.BatchNorm2d(768),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(768, num_classes),
        )


class AuxiliaryHeadImageNet(nn.Sequential):
    """Auxiliary classifier of the ImageNet network (stride-2 5x5 pooling, as the reference).

    As in the reference evaluation code, the 2x2 convolution is not followed by BN. The head
    reads the output of the ``2 * layers // 3`` cell, which is 7x7 for 224-pixel input (pooled
    to 2x2, then 1x1 after the 2x2 convolution); a final global average makes other sizes work.
    """

    def __init__(self, C: int, num_classes: int) -> None:
        super().__init__(
            nn.ReLU(),
            nn.AvgPool2d(5, stride=2, padding=0, count_include_pad=False),
            nn.Conv2d(C, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(768, num_classes),
        )


# --------------------------------------------------------------------------- networks
def _as_genotype(genotype: DartsGenotype | str) -> DartsGenotype:
    return DartsGenotype.from_string(genotype) if isinstance(genotype, str) else genotype


class _EvalNetwork(nn.Module):
    """Cells, auxiliary head position and forward pass shared by both networks."""

    auxiliary_head: nn.Module | None
    cells: nn.ModuleList
    classifier: nn.Linear
    _aux_index: int
    num_classes: int

    def __init__(self) -> None:
        super().__init__()
        self.drop_path_prob = 0.0  # set by the trainer, typically ramped up over epochs

    def _build_cells(
        self,
        genotype: DartsGenotype,
        C: int,
        layers: int,
        c_stem: int,
        reduction_prev: bool,
    ) -> int:
        """Build ``self.cells``; returns the channels of the auxiliary head's input."""
        if layers < 3:
            raise ValueError(f"a DARTS evaluation network needs at least 3 cells, got {layers}")
        c_pp, c_p, c_curr = c_stem, c_stem, C
        self._aux_index = 2 * layers // 3
        c_aux = 0
        cells = []
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            if reduction:
                c_curr *= 2
            cell = EvalCell(genotype, c_pp, c_p, c_curr, reduction, reduction_prev)
            cells.append(cell)
            c_pp, c_p, reduction_prev = c_p, cell.multiplier * c_curr, reduction
            if i == self._aux_index:
                c_aux = c_p
        self.cells = nn.ModuleList(cells)
        self.classifier = nn.Linear(c_p, self.num_classes)
        return c_aux

    def _stems(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(logits, logits_aux)``; ``logits_aux`` is None unless training with the aux head."""
        logits_aux = None
        s0, s1 = self._stems(x)
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == self._aux_index and self.auxiliary_head is not None and self.training:
                logits_aux = self.auxiliary_head(s1)
        logits = self.classifier(torch.flatten(self._pool(s1), 1))
        return logits, logits_aux


class NetworkCIFAR(_EvalNetwork):
    """DARTS evaluation network for 32-pixel input.

    Stem: 3x3 conv 3→3C + BN. ``layers`` cells; reduction cells (doubling the width) at
    ``layers // 3`` and ``2 * layers // 3``; optional auxiliary head after the
    ``2 * layers // 3`` cell (8x8 features); global average pool + linear classifier.
    ``genotype`` is a :class:`DartsGenotype` or its ``Genotype(...)`` string.
    """

    def __init__(
        self,
        C: int,
        num_classes: int,
        layers: int,
        auxiliary: bool,
        genotype: DartsGenotype | str,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        c_stem = 3 * C
        self.stem = nn.Sequential(
            nn.Conv2d(3, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem)
        )
        c_aux = self._build_cells(_as_genotype(genotype), C, layers, c_stem, False)
        self.auxiliary_head = AuxiliaryHeadCIFAR(c_aux, num_classes) if auxiliary else None
        self.global_pooling = nn.AdaptiveAvgPool2d(1)

    def _stems(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.stem(x)
        return s, s

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        return self.global_pooling(x)


class NetworkImageNet(_EvalNetwork):
    """DARTS evaluation network for 224-pixel input (the paper's mobile setting).

    stem0: 3x3 conv s2 3→C/2, BN, ReLU, 3x3 conv s2 C/2→C, BN; stem1: ReLU, 3x3 conv s2 C→C,
    BN. The stems downsample like a reduction, so the first cell preprocesses its older input
    with ``FactorizedReduce``. Reduction cells at ``layers // 3`` and ``2 * layers // 3``;
    optional auxiliary head after the ``2 * layers // 3`` cell; 7x7 average pool + linear.
    """

    def __init__(
        self,
        C: int,
        num_classes: int,
        layers: int,
        auxiliary: bool,
        genotype: DartsGenotype | str,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.stem0 = nn.Sequential(
            nn.Conv2d(3, C // 2, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(C // 2),
            nn.ReLU(),
            nn.Conv2d(C // 2, C, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(C),
        )
        self.stem1 = nn.Sequential(
            nn.ReLU(), nn.Conv2d(C, C, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(C)
        )
        c_aux = self._build_cells(_as_genotype(genotype), C, layers, C, True)
        self.auxiliary_head = AuxiliaryHeadImageNet(c_aux, num_classes) if auxiliary else None
        self.global_pooling = nn.AvgPool2d(7)

    def _stems(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s0 = self.stem0(x)
        return s0, self.stem1(s0)

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        return self.global_pooling(x)


# --------------------------------------------------------------------------- counting
def _auxiliary_modules(model: nn.Module) -> set[int]:
    head = getattr(model, "auxiliary_head", None)
    return {id(m) for m in head.modules()} if isinstance(head, nn.Module) else set()


def count_parameters(model: nn.Module, exclude_auxiliary: bool = True) -> int:
    """Number of parameters (weights, BN affine parameters) of ``model``.

    With ``exclude_auxiliary`` (the convention of the DARTS paper's tables), the parameters of
    ``model.auxiliary_head`` are left out; a model without one is counted whole.
    """
    skip: set[int] = set()
    if exclude_auxiliary:
        head = getattr(model, "auxiliary_head", None)
        if isinstance(head, nn.Module):
            skip = {id(p) for p in head.parameters()}
    return sum(p.numel() for p in model.parameters() if id(p) not in skip)


def count_multiply_adds(model: nn.Module, input_size: int | tuple[int, int]) -> int:
    """Multiply-adds (MACs) of one forward pass of a single ``3 x H x W`` image.

    Counted: every ``nn.Conv2d`` as ``output elements * (in_channels / groups) * kh * kw`` and
    every ``nn.Linear`` as ``in_features * out_features`` per output row, measured with forward
    hooks on a zero input in eval mode (so drop-path is off and the auxiliary head, which is
    also excluded explicitly, does not run). Not counted: biases, BN, ReLU, pooling, the
    additions that join a node's inputs, concatenations and drop-path. This is the convention
    behind the DARTS paper's "multiply-add operations" figures. The model's training mode is
    restored afterwards.
    """
    h, w = (input_size, input_size) if isinstance(input_size, int) else input_size
    skip = _auxiliary_modules(model)
    total = 0

    def conv_hook(module: nn.Module, _inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        assert isinstance(module, nn.Conv2d)
        kh, kw = module.kernel_size
        total += out.numel() * (module.in_channels // module.groups) * kh * kw

    def linear_hook(
        module: nn.Module, _inputs: tuple[torch.Tensor, ...], out: torch.Tensor
    ) -> None:
        nonlocal total
        assert isinstance(module, nn.Linear)
        total += out.numel() * module.in_features

    handles = []
    for m in model.modules():
        if id(m) in skip:
            continue
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, 3, h, w, device=device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return total
