"""NAS-Bench-201 search supernet, structurally identical to the reference ``TinyNetworkDarts``.

Macro (the reference, xautodl TinyNetworkDarts): stem Conv3x3(3→C)+BN; ``depth`` search cells at C; ResNet basic block C→2C
(stride 2); ``depth`` cells at 2C; block 2C→4C; ``depth`` cells at 4C; BN+ReLU → global average
pool → Linear. One α of shape (6, 5) is shared by every cell.

Cells compute the same function with the same parameters as the reference's per-edge MixedOps,
but grouped by source node: every edge leaving node j applies ReLU to the same input, so the
ReLU, the average pooling and the identity are computed once per source node, and the 1x1 and
3x3 convolutions of all edges leaving j run as one convolution with ``k·C`` output channels
(each edge owns a C-channel slice of the weight). BatchNorm with ``affine=False`` normalises each
channel on its own, so one BN over ``k·C`` channels equals k separate BNs, and each edge's α
weight of a conv op is applied as that BN's per-channel weight (one fused pass instead of a
separate multiply). Average pooling is a separable box sum (same function, about 2x faster on
CPU). ``none`` contributes exactly zero and is never computed; its α still gets the
softmax-coupled gradient through the activation, as in the reference. Equivalence with the
reference, outputs, gradients and BN statistics, is tested in tests/search_spaces/test_nb201.py.
Parameter count at C=16, depth 5, 10 classes: 1,692,826.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.activations import ALPHA_INIT_STD
from search_spaces.genotypes import (
    NB201_EDGES,
    NB201_NODES,
    NB201_OPS,
    check_genotype_none,
    nb201_genotype,
)
from search_spaces.supernet import SuperNet

_OP = {name: k for k, name in enumerate(NB201_OPS)}
_EDGE = {edge: e for e, edge in enumerate(NB201_EDGES)}


def avg_pool_3x3(x: torch.Tensor) -> torch.Tensor:
    """3x3 average pooling, stride 1, padding 1, padded cells not counted.

    The same function as ``F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)``, computed as a
    separable box sum (two shifted adds per axis) divided by the per-pixel count of real
    neighbours; forward plus backward run about 2x faster on CPU than the pooling kernel.
    """
    h, w = x.shape[-2:]
    padded = F.pad(x, (1, 1, 1, 1))
    rows = padded[..., :-2, :] + padded[..., 1:-1, :] + padded[..., 2:, :]
    box = rows[..., :-2] + rows[..., 1:-1] + rows[..., 2:]
    return box / (_neighbours(h, x)[:, None] * _neighbours(w, x)[None, :])


def _neighbours(n: int, like: torch.Tensor) -> torch.Tensor:
    """Real cells in each 3-wide window along an axis of length n (2 at the borders, else 3)."""
    i = torch.arange(n, device=like.device)
    return ((i + 1).clamp(max=n - 1) - (i - 1).clamp(min=0) + 1).to(like.dtype)


class _SourceOps(nn.Module):
    """The parametric ops of every edge leaving one source node, fused across edges.

    Conv weights are stored as one tensor per kernel size, ``k·C`` output channels, edge t owning
    channels ``[t·C, (t+1)·C)``. Convs have a bias because their BN is not affine (reference:
    ``bias = not affine``).
    """

    def __init__(self, channels: int, num_targets: int, track_running_stats: bool) -> None:
        super().__init__()
        out = channels * num_targets
        self.conv1x1 = nn.Conv2d(channels, out, 1, bias=True)
        self.conv3x3 = nn.Conv2d(channels, out, 3, padding=1, bias=True)
        self.bn1x1 = nn.BatchNorm2d(out, affine=False, track_running_stats=track_running_stats)
        self.bn3x3 = nn.BatchNorm2d(out, affine=False, track_running_stats=track_running_stats)

    def forward(
        self, x: torch.Tensor, scale1x1: torch.Tensor, scale3x3: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Both convs' outputs, each edge's slice already multiplied by its α weight.

        ``scale*``: (k,) activated α of that op on the k outgoing edges. The product is folded
        into BatchNorm as its per-channel weight: BN(z)·a equals batch_norm(z, weight=a), and it
        saves a full multiply pass forward and backward.
        """
        r = F.relu(x)
        return (
            _scaled_batch_norm(self.bn1x1, self.conv1x1(r), scale1x1),
            _scaled_batch_norm(self.bn3x3, self.conv3x3(r), scale3x3),
        )


def _scaled_batch_norm(bn: nn.BatchNorm2d, z: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``bn(z)`` (affine=False) times ``scale[t]`` on channel block t, in one batch_norm call.

    Mirrors ``nn.BatchNorm2d.forward`` (running statistics, ``num_batches_tracked``, eval mode)
    so buffers evolve exactly as with the module; the statistics do not depend on the weight.
    """
    track = bn.training and bn.track_running_stats
    if track and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
    use_batch_stats = bn.training or (bn.running_mean is None and bn.running_var is None)
    keep_stats = not bn.training or bn.track_running_stats
    weight = scale.repeat_interleave(z.shape[1] // scale.shape[0])
    return F.batch_norm(
        z,
        bn.running_mean if keep_stats else None,
        bn.running_var if keep_stats else None,
        weight,
        None,
        use_batch_stats,
        bn.momentum if bn.momentum is not None else 0.0,
        bn.eps,
    )


class NB201SearchCell(nn.Module):
    """Four nodes; node i = Σ_{j<i} mixed_edge(i←j)(node j); output = node 3."""

    def __init__(self, channels: int, track_running_stats: bool = True) -> None:
        super().__init__()
        self.channels = channels
        self.sources = nn.ModuleList(
            _SourceOps(channels, NB201_NODES - 1 - j, track_running_stats)
            for j in range(NB201_NODES - 1)
        )
        # Per source node j, the α rows of its outgoing edges (targets j+1 .. 3), in order.
        for j in range(NB201_NODES - 1):
            rows = [_EDGE[(i, j)] for i in range(j + 1, NB201_NODES)]
            self.register_buffer(f"rows{j}", torch.tensor(rows), persistent=False)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """``weights``: activated α, shape (6, 5)."""
        b, c, h, w = x.shape
        partial: list[torch.Tensor | None] = [x] + [None] * (NB201_NODES - 1)
        for j, ops in enumerate(self.sources):
            s = partial[j]
            assert s is not None
            k = NB201_NODES - 1 - j
            a = weights[getattr(self, f"rows{j}")]  # (k, 5)
            c1, c3 = ops(s, a[:, _OP["nor_conv_1x1"]], a[:, _OP["nor_conv_3x3"]])
            pool = avg_pool_3x3(s)
            coef = a.view(1, k, len(NB201_OPS), 1, 1, 1)
            mixed = (
                c1.view(b, k, c, h, w)
                + c3.view(b, k, c, h, w)
                + s.unsqueeze(1) * coef[:, :, _OP["skip_connect"]]
                + pool.unsqueeze(1) * coef[:, :, _OP["avg_pool_3x3"]]
            )
            for t in range(k):
                i = j + 1 + t
                prev = partial[i]
                partial[i] = mixed[:, t] if prev is None else prev + mixed[:, t]
        out = partial[-1]
        assert out is not None
        return out


class ResNetBasicBlock(nn.Module):
    """ReLU-Conv3x3(stride)-BN, ReLU-Conv3x3-BN; shortcut AvgPool2d(2,2) → Conv1x1 (no bias)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv_a = _relu_conv_bn(c_in, c_out, 3, stride)
        self.conv_b = _relu_conv_bn(c_out, c_out, 3, 1)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


def _relu_conv_bn(c_in: int, c_out: int, kernel: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ReLU(),
        nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False),
        nn.BatchNorm2d(c_out),
    )


class NB201SuperNet(SuperNet):
    """The NAS-Bench-201 search supernet (15 cells at the default depth 5).

    Args:
        num_classes: classifier outputs.
        channels: C, the width of the first stage (16 in the benchmark).
        depth: N, search cells per stage (5 in the benchmark).
        activation: ``softmax`` | ``sigmoid`` | ``sigmoid*``.
        alpha_init: mean of the α initialisation; None = the activation's default.
        alpha_init_std: standard deviation of the α initialisation.
        genotype_none: derivation rule of ``genotype()``: ``include`` (the reference, ``none``
            takes part in each edge's argmax) | ``exclude`` (argmax over the other ops, as DARTS).
    """

    ops = NB201_OPS

    def __init__(
        self,
        num_classes: int = 10,
        channels: int = 16,
        depth: int = 5,
        activation: str = "softmax",
        alpha_init: float | None = None,
        alpha_init_std: float = ALPHA_INIT_STD,
        genotype_none: str = "include",
    ) -> None:
        check_genotype_none(genotype_none)
        super().__init__(("normal",), len(NB201_EDGES), activation, alpha_init, alpha_init_std)
        self.genotype_none = genotype_none
        self.stem = nn.Sequential(
            nn.Conv2d(3, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels)
        )
        layers: list[nn.Module] = []
        c = channels
        for stage in range(3):
            if stage > 0:
                layers.append(ResNetBasicBlock(c, 2 * c, 2))
                c *= 2
            layers.extend(NB201SearchCell(c) for _ in range(depth))
        self.layers = nn.ModuleList(layers)
        self.head = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU())
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.activated()["normal"]
        h = self.stem(x)
        for layer in self.layers:
            h = layer(h, weights) if isinstance(layer, NB201SearchCell) else layer(h)
        h = self.head(h).mean(dim=(2, 3))
        return self.classifier(h)

    def genotype(self) -> str:
        """NAS-Bench-201 arch string: argmax per edge, ``none`` in it or not per ``genotype_none``."""
        return nb201_genotype(self.activated()["normal"], none=self.genotype_none)
