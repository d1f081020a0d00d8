"""DARTS search space supernet (reference: xautodl ``NASNetworkDARTS`` / DARTS ``model_search``).

Cells have two inputs (the outputs of the two previous cells), 4 intermediate nodes and output
the concatenation of those nodes; 14 mixed edges per cell over 8 ops. Normal and reduction cells
have their own α, shape (14, 8) each. Reduction cells sit at 1/3 and 2/3 of the depth (DARTS's
``layers // 3`` and ``2 * layers // 3``) and double the width.

Ops follow the reference's definitions so parameter counts match it: with ``affine=False`` BN,
1x1 and pointwise convolutions carry a bias (``bias = not affine``); ``sep_conv`` is two stacked
separable convolutions, ``dil_conv`` one dilated separable convolution; pooling has no BN. With 6
cells (the reference's ``N=2`` layout) at C=16 and 10 classes the network has exactly 1,343,034
weights, as the reference; the default of 8 cells is the original DARTS search network.

Stems: ``cifar`` (Conv3x3 3→3C + BN, full resolution) and ``imagenet`` (three stride-2 3x3
convolutions, ×8 downsampling, for 224-pixel input; Single-DARTS Appendix D, after PC-DARTS).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.activations import ALPHA_INIT_STD
from search_spaces.genotypes import DARTS_EDGES, DARTS_OPS, DARTS_STEPS, darts_genotype
from search_spaces.supernet import SuperNet

STEM_MULTIPLIER = 3
MULTIPLIER = 4  # nodes concatenated into a cell's output
STEMS = ("cifar", "imagenet")


def relu_conv_bn(
    c_in: int,
    c_out: int,
    kernel: int = 1,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    groups: int = 1,
) -> nn.Sequential:
    """ReLU → Conv (with bias, since the BN is not affine) → BN(affine=False)."""
    return nn.Sequential(
        nn.ReLU(),
        nn.Conv2d(c_in, c_out, kernel, stride, padding, dilation, groups=groups, bias=True),
        nn.BatchNorm2d(c_out, affine=False),
    )


def sep_conv(
    c_in: int, c_out: int, kernel: int, stride: int, padding: int, dilation: int
) -> nn.Sequential:
    """ReLU → depthwise conv (no bias) → pointwise conv (bias) → BN(affine=False)."""
    return nn.Sequential(
        nn.ReLU(),
        nn.Conv2d(c_in, c_in, kernel, stride, padding, dilation, groups=c_in, bias=False),
        nn.Conv2d(c_in, c_out, 1, bias=True),
        nn.BatchNorm2d(c_out, affine=False),
    )


class FactorizedReduce(nn.Module):
    """ReLU → two stride-2 1x1 convs on offset grids, concatenated → BN: halves H and W."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=True)
        self.conv_b = nn.Conv2d(c_in, c_out - c_out // 2, 1, stride=2, bias=True)
        self.bn = nn.BatchNorm2d(c_out, affine=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(x)
        shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        return self.bn(torch.cat([self.conv_a(x), self.conv_b(shifted)], dim=1))


_OP_BUILDERS: dict[str, Callable[[int, int], nn.Module]] = {
    "skip_connect": lambda c, s: nn.Identity() if s == 1 else FactorizedReduce(c, c),
    "sep_conv_3x3": lambda c, s: nn.Sequential(
        sep_conv(c, c, 3, s, 1, 1), sep_conv(c, c, 3, 1, 1, 1)
    ),
    "sep_conv_5x5": lambda c, s: nn.Sequential(
        sep_conv(c, c, 5, s, 2, 1), sep_conv(c, c, 5, 1, 2, 1)
    ),
    "dil_conv_3x3": lambda c, s: sep_conv(c, c, 3, s, 2, 2),
    "dil_conv_5x5": lambda c, s: sep_conv(c, c, 5, s, 4, 2),
    "avg_pool_3x3": lambda c, s: nn.AvgPool2d(3, s, 1, count_include_pad=False),
    "max_pool_3x3": lambda c, s: nn.MaxPool2d(3, s, 1),
}


class MixedEdge(nn.Module):
    """Σ_op w[op] · op(x). ``none`` outputs zeros, so it is skipped (its term is exactly 0)."""

    def __init__(self, channels: int, stride: int) -> None:
        super().__init__()
        self.op_index = [k for k, name in enumerate(DARTS_OPS) if name != "none"]
        self.ops = nn.ModuleList(
            _OP_BUILDERS[DARTS_OPS[k]](channels, stride) for k in self.op_index
        )

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        out = weights[self.op_index[0]] * self.ops[0](x)
        for k, op in zip(self.op_index[1:], self.ops[1:], strict=True):
            out = out + weights[k] * op(x)
        return out


class DartsSearchCell(nn.Module):
    """Preprocess both inputs to C channels, 4 nodes over 14 mixed edges, concat the nodes."""

    def __init__(
        self, c_pp: int, c_p: int, channels: int, reduction: bool, reduction_prev: bool
    ) -> None:
        super().__init__()
        self.reduction = reduction
        self.pre0 = (
            FactorizedReduce(c_pp, channels) if reduction_prev else relu_conv_bn(c_pp, channels)
        )
        self.pre1 = relu_conv_bn(c_p, channels)
        self.edges = nn.ModuleList(
            MixedEdge(channels, 2 if reduction and j < 2 else 1)
            for i in range(DARTS_STEPS)
            for j in range(2 + i)
        )

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        states = [self.pre0(s0), self.pre1(s1)]
        e = 0
        for _ in range(DARTS_STEPS):
            node = self.edges[e](states[0], weights[e])
            for j in range(1, len(states)):
                node = node + self.edges[e + j](states[j], weights[e + j])
            e += len(states)
            states.append(node)
        return torch.cat(states[-MULTIPLIER:], dim=1)


def _stem(kind: str, channels: int) -> tuple[nn.Module, nn.Module | None, int]:
    """The stem(s) and the channel count they output."""
    if kind == "cifar":
        c = STEM_MULTIPLIER * channels
        return nn.Sequential(nn.Conv2d(3, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)), None, c
    if kind == "imagenet":
        stem0 = nn.Sequential(
            nn.Conv2d(3, channels // 2, 3, 2, 1, bias=False),
            nn.BatchNorm2d(channels // 2),
            nn.ReLU(),
            nn.Conv2d(channels // 2, channels, 3, 2, 1, bias=False),
            nn.BatchNorm2d(channels),
        )
        stem1 = nn.Sequential(
            nn.ReLU(), nn.Conv2d(channels, channels, 3, 2, 1, bias=False), nn.BatchNorm2d(channels)
        )
        return stem0, stem1, channels
    raise ValueError(f"unknown DARTS stem {kind!r}; valid: {', '.join(STEMS)}")


class DartsSuperNet(SuperNet):
    """The DARTS-space search supernet.

    Args:
        num_classes: classifier outputs.
        channels: C, width of the first cells (16 in DARTS).
        layers: total number of cells (8 in DARTS; 6 is the reference xautodl's ``N=2``).
        stem: ``cifar`` (32-pixel input) or ``imagenet`` (×8 downsampling stem, 224-pixel input).
        activation, alpha_init, alpha_init_std: α activation and initialisation.
    """

    ops = DARTS_OPS

    def __init__(
        self,
        num_classes: int = 10,
        channels: int = 16,
        layers: int = 8,
        stem: str = "cifar",
        activation: str = "softmax",
        alpha_init: float | None = None,
        alpha_init_std: float = ALPHA_INIT_STD,
    ) -> None:
        super().__init__(("normal", "reduce"), DARTS_EDGES, activation, alpha_init, alpha_init_std)
        if layers < 3:
            raise ValueError(f"a DARTS supernet needs at least 3 cells, got layers={layers}")
        self.stem0, self.stem1, c_stem = _stem(stem, channels)
        c_pp, c_p, c = c_stem, c_stem, channels
        reduction_prev = stem == "imagenet"  # stem0 is at twice stem1's resolution
        cells = []
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            if reduction:
                c *= 2
            cells.append(DartsSearchCell(c_pp, c_p, c, reduction, reduction_prev))
            c_pp, c_p, reduction_prev = c_p, MULTIPLIER * c, reduction
        self.cells = nn.ModuleList(cells)
        self.head = nn.Sequential(nn.BatchNorm2d(c_p), nn.ReLU())
        self.classifier = nn.Linear(c_p, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.activated()
        s0 = self.stem0(x)
        s1 = s0 if self.stem1 is None else self.stem1(s0)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, w["reduce"] if cell.reduction else w["normal"])
        return self.classifier(self.head(s1).mean(dim=(2, 3)))

    def genotype(self) -> str:
        """DARTS ``Genotype(...)`` string: 2 strongest inputs per node, ``none`` excluded."""
        w = self.activated()
        return darts_genotype(w["normal"], w["reduce"]).to_string()
