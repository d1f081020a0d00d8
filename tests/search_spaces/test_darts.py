"""Tests of the DARTS-space search supernet: sizes, layouts, stems, genotype derivation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from search_spaces.activations import ACTIVATIONS
from search_spaces.darts import DartsSearchCell, DartsSuperNet
from search_spaces.genotypes import DARTS_OPS, DartsGenotype, darts_genotype


def _numel(params) -> int:
    return sum(p.numel() for p in params)


# --------------------------------------------------------------------------- sizes and layout
def test_reference_layout_weight_count() -> None:
    model = DartsSuperNet(layers=6)
    assert _numel(model.weights()) == 1_343_034
    alphas = model.alphas()
    assert [tuple(a.shape) for a in alphas] == [(14, 8), (14, 8)]
    assert _numel(alphas) == 224
    assert [n for n, _ in model.named_parameters() if "alpha" in n] == [
        "alpha_normal",
        "alpha_reduce",
    ]
    weights = {id(p) for p in model.weights()}
    alpha_ids = {id(p) for p in alphas}
    assert weights.isdisjoint(alpha_ids)
    assert weights | alpha_ids == {id(p) for p in model.parameters()}


def test_reference_xautodl_weight_count_agrees() -> None:
    pytest.importorskip("xautodl")
    from xautodl.models.cell_operations import DARTS_SPACE
    from xautodl.models.cell_searchs.search_model_darts_nasnet import NASNetworkDARTS

    ref = NASNetworkDARTS(
        C=16,
        N=2,
        steps=4,
        multiplier=4,
        stem_multiplier=3,
        num_classes=10,
        search_space=DARTS_SPACE,
        affine=False,
        track_running_stats=True,
    )
    assert _numel(ref.get_weights()) == 1_343_034
    assert _numel(ref.get_alphas()) == 224
    ours = DartsSuperNet(layers=6)
    assert [c.reduction for c in ours.cells] == [c.reduction for c in ref.cells]


def test_default_is_eight_cells_with_reductions_at_2_and_5() -> None:
    model = DartsSuperNet()
    assert len(model.cells) == 8
    assert [i for i, c in enumerate(model.cells) if c.reduction] == [2, 5]
    assert _numel(model.weights()) == 1_959_418
    assert _numel(model.alphas()) == 224
    # Cell widths: C=16, doubled at each reduction; each cell outputs 4·C channels.
    assert model.classifier.in_features == 4 * 64


def test_too_few_layers_raise() -> None:
    with pytest.raises(ValueError, match="at least 3 cells"):
        DartsSuperNet(channels=4, layers=2)


# --------------------------------------------------------------------------- stems
@pytest.mark.parametrize("layers", [3, 5])
def test_imagenet_stem_downsamples_by_8(layers: int) -> None:
    torch.manual_seed(0)
    model = DartsSuperNet(num_classes=13, channels=8, layers=layers, stem="imagenet")
    seen: dict[str, tuple[int, ...]] = {}

    def pre_hook(_module, args):
        s0, s1, _w = args
        seen["s0"], seen["s1"] = tuple(s0.shape), tuple(s1.shape)

    def pre0_hook(_module, _args, out):
        seen["pre0"] = tuple(out.shape)

    model.cells[0].register_forward_pre_hook(pre_hook)
    model.cells[0].pre0.register_forward_hook(pre0_hook)
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 224, 224))
    assert out.shape == (2, 13)
    assert torch.isfinite(out).all()
    assert seen["s1"] == (2, 8, 28, 28)  # ×8 downsampling before the cells
    assert seen["s0"] == (2, 8, 56, 56)  # the ×4 stem output, reduced by the cell's pre0
    assert seen["pre0"] == (2, 8, 28, 28)


def test_cifar_stem_keeps_resolution() -> None:
    model = DartsSuperNet(channels=4, layers=3)
    seen: list[tuple[int, ...]] = []
    model.cells[0].register_forward_pre_hook(
        lambda _m, args: seen.extend([tuple(args[0].shape), tuple(args[1].shape)])
    )
    with torch.no_grad():
        assert model(torch.randn(2, 3, 8, 8)).shape == (2, 10)
    assert seen == [(2, 12, 8, 8), (2, 12, 8, 8)]  # stem multiplier 3


def test_unknown_stem_raises() -> None:
    with pytest.raises(ValueError, match="cifar, imagenet"):
        DartsSuperNet(channels=4, layers=3, stem="mnist")


# --------------------------------------------------------------------------- genotype
def _alpha(spec: dict[int, dict[str, float]], base: float = -5.0) -> torch.Tensor:
    alpha = torch.full((14, 8), base)
    for edge, ops in spec.items():
        for op, value in ops.items():
            alpha[edge, DARTS_OPS.index(op)] = value
    return alpha


# Edges per node: node 0 ← inputs 0,1 (edges 0-1); node 1 ← 0,1,2 (2-4);
# node 2 ← 0..3 (5-8); node 3 ← 0..4 (9-13).
NORMAL_ALPHA = {
    0: {"none": 9.0, "max_pool_3x3": 2.0},  # `none` largest: still never chosen
    1: {"sep_conv_3x3": 3.0},
    2: {"skip_connect": 1.0},
    3: {"dil_conv_3x3": 4.0},
    4: {"none": 10.0},  # only `none` strong: the edge is weak
    5: {"avg_pool_3x3": 0.5},
    6: {"sep_conv_5x5": 2.0},
    7: {"dil_conv_5x5": 3.0, "sep_conv_3x3": 2.9},
    8: {"skip_connect": 2.5},
    9: {"sep_conv_3x3": 1.5},  # three-way tie in strength: lower inputs win
    11: {"max_pool_3x3": 1.5},
    13: {"avg_pool_3x3": 1.5},
}
NORMAL_GENES = (
    ("sep_conv_3x3", 1),
    ("max_pool_3x3", 0),
    ("dil_conv_3x3", 1),
    ("skip_connect", 0),
    ("dil_conv_5x5", 2),
    ("skip_connect", 3),
    ("sep_conv_3x3", 0),
    ("max_pool_3x3", 2),
)
REDUCE_ALPHA = {
    0: {"max_pool_3x3": 1.0},
    1: {"avg_pool_3x3": 2.0},
    2: {"none": 8.0},
    3: {"skip_connect": 0.2},
    4: {"sep_conv_5x5": 0.1},
    5: {"dil_conv_3x3": -1.0},
    6: {"none": 6.0, "dil_conv_5x5": -2.0},
    7: {"max_pool_3x3": -0.5},
    8: {"none": 7.0},
    10: {"sep_conv_3x3": 3.0},
    12: {"sep_conv_5x5": 0.0},
    13: {"none": 9.0, "skip_connect": 3.5},
}
REDUCE_GENES = (
    ("avg_pool_3x3", 1),
    ("max_pool_3x3", 0),
    ("skip_connect", 1),
    ("sep_conv_5x5", 2),
    ("max_pool_3x3", 2),
    ("dil_conv_3x3", 0),
    ("skip_connect", 4),
    ("sep_conv_3x3", 1),
)
EXPECTED = DartsGenotype(NORMAL_GENES, (2, 3, 4, 5), REDUCE_GENES, (2, 3, 4, 5))
EXPECTED_STRING = (
    "Genotype(normal=[('sep_conv_3x3', 1), ('max_pool_3x3', 0), ('dil_conv_3x3', 1), "
    "('skip_connect', 0), ('dil_conv_5x5', 2), ('skip_connect', 3), ('sep_conv_3x3', 0), "
    "('max_pool_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('avg_pool_3x3', 1), "
    "('max_pool_3x3', 0), ('skip_connect', 1), ('sep_conv_5x5', 2), ('max_pool_3x3', 2), "
    "('dil_conv_3x3', 0), ('skip_connect', 4), ('sep_conv_3x3', 1)], reduce_concat=[2, 3, 4, 5])"
)


def _set_alphas(model: DartsSuperNet, normal: torch.Tensor, reduce: torch.Tensor) -> None:
    with torch.no_grad():
        model.alpha_normal.copy_(normal)
        model.alpha_reduce.copy_(reduce)


@pytest.mark.parametrize("activation", ["sigmoid", "sigmoid*"])
def test_genotype_from_hand_set_alpha(activation: str) -> None:
    # Sigmoid is elementwise and monotone, so the ranking is the raw α's.
    model = DartsSuperNet(channels=4, layers=3, activation=activation)
    _set_alphas(model, _alpha(NORMAL_ALPHA), _alpha(REDUCE_ALPHA))
    text = model.genotype()
    assert text == EXPECTED_STRING
    assert DartsGenotype.from_string(text) == EXPECTED
    assert all(op != "none" for op, _ in EXPECTED.normal + EXPECTED.reduce)


def _original_darts_parse(weights: torch.Tensor) -> list[tuple[str, int]]:
    """``Network.genotype._parse`` of the original DARTS repository (model_search.py)."""
    w = weights.tolist()
    none = DARTS_OPS.index("none")
    gene, n, start = [], 2, 0
    for i in range(4):
        rows = w[start : start + n]
        edges = sorted(
            range(i + 2),
            key=lambda x: -max(rows[x][k] for k in range(len(rows[x])) if k != none),
        )[:2]
        for j in edges:
            k_best = None
            for k in range(len(rows[j])):
                if k != none and (k_best is None or rows[j][k] > rows[j][k_best]):
                    k_best = k
            gene.append((DARTS_OPS[k_best], j))
        start, n = start + n, n + 1
    return gene


@pytest.mark.parametrize("seed", range(4))
def test_softmax_genotype_matches_original_darts_parse(seed: int) -> None:
    torch.manual_seed(seed)
    model = DartsSuperNet(channels=4, layers=3)
    normal, reduce = 2 * torch.randn(14, 8), 2 * torch.randn(14, 8)
    normal[:, 0] += 3  # `none` often the largest
    _set_alphas(model, normal, reduce)
    genotype = DartsGenotype.from_string(model.genotype())
    assert list(genotype.normal) == _original_darts_parse(torch.softmax(normal, dim=-1))
    assert list(genotype.reduce) == _original_darts_parse(torch.softmax(reduce, dim=-1))
    assert genotype.normal_concat == genotype.reduce_concat == (2, 3, 4, 5)


def test_genotype_string_round_trip() -> None:
    assert DartsGenotype.from_string(EXPECTED.to_string()) == EXPECTED
    assert EXPECTED.to_string() == EXPECTED_STRING
    g = darts_genotype(torch.rand(14, 8), torch.rand(14, 8))
    assert DartsGenotype.from_string(g.to_string()) == g
    assert len(g.normal) == len(g.reduce) == 8


# --------------------------------------------------------------------------- forward/backward
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_tiny_forward_backward(activation: str, check_gradients) -> None:
    torch.manual_seed(0)
    model = DartsSuperNet(num_classes=5, channels=4, layers=3, activation=activation)
    assert [c.reduction for c in model.cells] == [False, True, True]
    assert all(isinstance(c, DartsSearchCell) for c in model.cells)
    x = torch.randn(2, 3, 8, 8)
    logits = model(x)
    assert logits.shape == (2, 5)
    F.cross_entropy(logits, torch.tensor([1, 4])).backward()
    check_gradients(model, activation)
