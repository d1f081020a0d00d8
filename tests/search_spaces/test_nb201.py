"""Tests of the NAS-Bench-201 search supernet: sizes, α sharing, genotype, and equivalence of the
fused cell with the reference ``TinyNetworkDarts`` (xautodl)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.activations import ACTIVATIONS
from search_spaces.genotypes import NB201_EDGES, NB201_OPS, nb201_genotype, nb201_to_string
from search_spaces.nb201 import NB201SearchCell, NB201SuperNet, ResNetBasicBlock, avg_pool_3x3


def _numel(params: list[nn.Parameter]) -> int:
    return sum(p.numel() for p in params)


# --------------------------------------------------------------------------- sizes
@pytest.mark.parametrize(
    ("num_classes", "expected"), [(10, 1_692_826), (100, 1_698_676), (120, 1_699_976)]
)
def test_benchmark_size_weight_count(num_classes: int, expected: int) -> None:
    model = NB201SuperNet(num_classes=num_classes)
    assert _numel(model.weights()) == expected
    alphas = model.alphas()
    assert len(alphas) == 1
    assert tuple(alphas[0].shape) == (6, 5)
    assert _numel(alphas) == 30


def test_weights_and_alphas_partition_parameters() -> None:
    model = NB201SuperNet(channels=4, depth=1)
    weights = {id(p) for p in model.weights()}
    alphas = {id(p) for p in model.alphas()}
    everything = [id(p) for _, p in model.named_parameters()]
    assert weights.isdisjoint(alphas)
    assert weights | alphas == set(everything)
    assert len(everything) == len(weights) + len(alphas)  # no parameter listed twice
    assert [n for n, _ in model.named_parameters() if "alpha" in n] == ["alpha_normal"]


def test_per_cell_weight_counts() -> None:
    # the reference supernet: 15,552 / 61,824 / 246,528 weights per cell at C=16/32/64.
    counts = [_numel(list(NB201SearchCell(c).parameters())) for c in (16, 32, 64)]
    assert counts == [15_552, 61_824, 246_528]


def test_reference_weight_count_agrees() -> None:
    pytest.importorskip("xautodl")
    from xautodl.models.cell_operations import NAS_BENCH_201
    from xautodl.models.cell_searchs.search_model_darts import TinyNetworkDarts

    ref = TinyNetworkDarts(16, 5, 4, 10, NAS_BENCH_201, False, True)
    assert _numel(ref.get_weights()) == 1_692_826
    assert _numel(ref.get_alphas()) == 30


# --------------------------------------------------------------------------- α sharing
def test_single_alpha_is_shared_by_all_15_cells() -> None:
    torch.manual_seed(0)
    model = NB201SuperNet(channels=4)
    cells = [m for m in model.modules() if isinstance(m, NB201SearchCell)]
    assert len(cells) == 15
    blocks = [m for m in model.modules() if isinstance(m, ResNetBasicBlock)]
    assert len(blocks) == 2
    # No cell owns an α-like parameter of its own.
    for cell in cells:
        assert all(tuple(p.shape) != (6, 5) for p in cell.parameters())
    # Every cell receives the activated shared α.
    seen: list[torch.Tensor] = []
    handles = [
        c.register_forward_pre_hook(lambda _m, args: seen.append(args[1].detach().clone()))
        for c in cells
    ]
    with torch.no_grad():
        model.alpha_normal.copy_(torch.randn(6, 5))
        model(torch.randn(2, 3, 8, 8))
    for h in handles:
        h.remove()
    expected = torch.softmax(model.alpha_normal.detach(), dim=-1)
    assert len(seen) == 15
    for w in seen:
        torch.testing.assert_close(w, expected, rtol=0, atol=0)


# --------------------------------------------------------------------------- reference equivalence
C_SMALL, N_SMALL = 8, 2


def _reference_state(ours: NB201SuperNet, ref: nn.Module) -> dict[str, torch.Tensor]:
    """Our state dict filled from the reference's parameters and buffers."""
    src = ref.state_dict()
    op_index = {name: k for k, name in enumerate(NB201_OPS)}
    out: dict[str, torch.Tensor] = {}
    for key in ours.state_dict():
        parts = key.split(".")
        if key == "alpha_normal":
            out[key] = src["arch_parameters"]
        elif parts[0] in ("stem", "classifier"):
            out[key] = src[key]
        elif parts[0] == "head":
            out[key] = src["lastact." + ".".join(parts[1:])]
        elif parts[0] == "layers":
            layer = ours.layers[int(parts[1])]
            prefix = f"cells.{parts[1]}."
            if isinstance(layer, ResNetBasicBlock):
                branch, idx, leaf = parts[2], parts[3], parts[4]
                if branch == "shortcut":
                    out[key] = src[prefix + f"downsample.{idx}.{leaf}"]
                else:
                    out[key] = src[prefix + f"{branch}.op.{idx}.{leaf}"]
            else:
                assert parts[2] == "sources"
                j, module, leaf = int(parts[3]), parts[4], parts[5]
                kernel = module[-3:]  # "1x1" / "3x3"
                op = op_index[f"nor_conv_{kernel}"]
                sub = 1 if module.startswith("conv") else 2  # ReLUConvBN.op = (ReLU, Conv, BN)
                pieces = [
                    src[prefix + f"edges.{i}<-{j}.{op}.op.{sub}.{leaf}"] for i in range(j + 1, 4)
                ]
                out[key] = pieces[0] if leaf == "num_batches_tracked" else torch.cat(pieces)
        else:
            raise AssertionError(f"unmapped key {key}")
    return out


def _fused_grad(ref: nn.Module, cell_index: int, j: int, kernel: str) -> torch.Tensor:
    op = NB201_OPS.index(f"nor_conv_{kernel}")
    edges = ref.cells[cell_index].edges
    return torch.cat([edges[f"{i}<-{j}"][op].op[1].weight.grad for i in range(j + 1, 4)])


@pytest.fixture
def twin_models() -> tuple[NB201SuperNet, nn.Module]:
    pytest.importorskip("xautodl")
    from xautodl.models.cell_operations import NAS_BENCH_201
    from xautodl.models.cell_searchs.search_model_darts import TinyNetworkDarts

    torch.manual_seed(0)
    ref = TinyNetworkDarts(C_SMALL, N_SMALL, 4, 10, NAS_BENCH_201, False, True).double()
    assert list(ref.op_names) == list(NB201_OPS)
    assert [ref.edge2index[f"{i}<-{j}"] for i, j in NB201_EDGES] == list(range(6))
    with torch.no_grad():
        # Far from uniform, so every op gets a distinct weight and a mis-wired op would show.
        ref.arch_parameters.copy_(torch.randn(6, 5, dtype=torch.float64))
        # Non-trivial biases and conv weights everywhere.
        for p in ref.get_weights():
            p.add_(0.1 * torch.randn_like(p))
    ours = NB201SuperNet(num_classes=10, channels=C_SMALL, depth=N_SMALL).double()
    return ours, ref


def test_matches_reference_train_and_eval(twin_models: tuple[NB201SuperNet, nn.Module]) -> None:
    ours, ref = twin_models
    torch.manual_seed(1)
    x = torch.randn(6, 3, 16, 16, dtype=torch.float64)
    y = torch.randint(0, 10, (6,))
    ours.train()
    ref.train()
    with torch.no_grad():  # independent initialisations disagree before the copy
        assert not torch.allclose(ours(x), ref(x)[1], atol=1e-3)
        assert ours.genotype() != ref.genotype().tostr()
    ours.load_state_dict(_reference_state(ours, ref), strict=True)
    assert ours.genotype() == ref.genotype().tostr()

    ours.zero_grad()
    ref.zero_grad()
    logits = ours(x)
    ref_logits = ref(x)[1]
    torch.testing.assert_close(logits, ref_logits, rtol=1e-9, atol=1e-9)
    F.cross_entropy(logits, y).backward()
    F.cross_entropy(ref_logits, y).backward()

    grads = [
        (ours.alpha_normal.grad, ref.arch_parameters.grad),
        (ours.stem[0].weight.grad, ref.stem[0].weight.grad),
        (ours.classifier.weight.grad, ref.classifier.weight.grad),
        (ours.layers[N_SMALL].conv_a[1].weight.grad, ref.cells[N_SMALL].conv_a.op[1].weight.grad),
        (
            ours.layers[N_SMALL].shortcut[1].weight.grad,
            ref.cells[N_SMALL].downsample[1].weight.grad,
        ),
    ]
    for index, layer in enumerate(ours.layers):
        if isinstance(layer, NB201SearchCell):
            for j, src in enumerate(layer.sources):
                grads.append((src.conv1x1.weight.grad, _fused_grad(ref, index, j, "1x1")))
                grads.append((src.conv3x3.weight.grad, _fused_grad(ref, index, j, "3x3")))
    assert ours.alpha_normal.grad.abs().min() > 0
    for ours_grad, ref_grad in grads:
        assert ours_grad is not None and ref_grad is not None
        assert ref_grad.abs().max() > 0
        torch.testing.assert_close(ours_grad, ref_grad, rtol=1e-8, atol=1e-10)

    # Running statistics after one train forward are the reference's, slice by slice.
    ours_stats = ours.state_dict()
    for key, value in _reference_state(ours, ref).items():
        torch.testing.assert_close(ours_stats[key], value, rtol=1e-9, atol=1e-12, msg=key)
    assert ours.layers[0].sources[0].bn3x3.running_mean.abs().max() > 0

    ours.eval()
    ref.eval()
    with torch.no_grad():
        x2 = torch.randn(5, 3, 16, 16, dtype=torch.float64)
        torch.testing.assert_close(ours(x2), ref(x2)[1], rtol=1e-9, atol=1e-9)


# --------------------------------------------------------------------------- genotype
def test_genotype_from_hand_set_alpha() -> None:
    # Edge order: 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2.
    chosen = ["nor_conv_3x3", "none", "skip_connect", "avg_pool_3x3", "nor_conv_1x1", "none"]
    alpha = torch.zeros(6, 5)
    for e, op in enumerate(chosen):
        alpha[e, NB201_OPS.index(op)] = 2.0
        alpha[e, (NB201_OPS.index(op) + 1) % 5] = 1.5  # a close runner-up
    expected = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|"
    for activation in ACTIVATIONS:
        model = NB201SuperNet(channels=4, depth=1, activation=activation)
        with torch.no_grad():
            model.alpha_normal.copy_(alpha)
        assert model.genotype() == expected, activation


def test_none_wins_when_largest() -> None:
    model = NB201SuperNet(channels=4, depth=1)
    with torch.no_grad():
        model.alpha_normal.zero_()
        model.alpha_normal[:, 0] = 1.0
    assert model.genotype() == "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


@pytest.mark.parametrize("activation", ["sigmoid", "sigmoid*"])
def test_sigmoid_genotype_is_raw_alpha_argmax(activation: str) -> None:
    model = NB201SuperNet(channels=4, depth=1, activation=activation)
    for seed in range(5):
        torch.manual_seed(seed)
        raw = 3 * torch.randn(6, 5) - 1
        with torch.no_grad():
            model.alpha_normal.copy_(raw)
        expected = nb201_to_string([NB201_OPS[k] for k in raw.argmax(dim=-1).tolist()])
        assert model.genotype() == expected
        assert nb201_genotype(torch.sigmoid(raw)) == expected


def test_nb201_genotype_rejects_wrong_shape() -> None:
    with pytest.raises(ValueError, match=r"\(6, 5\)"):
        nb201_genotype(torch.zeros(6, 4))
    with pytest.raises(ValueError, match=r"\(6, 5\)"):
        nb201_genotype(torch.zeros(14, 8))


# --------------------------------------------------------------------------- forward/backward
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_tiny_forward_backward(activation: str, check_gradients) -> None:
    torch.manual_seed(0)
    model = NB201SuperNet(num_classes=7, channels=4, depth=1, activation=activation)
    assert model.activation == activation
    x = torch.randn(3, 3, 8, 8)
    logits = model(x)
    assert logits.shape == (3, 7)
    assert torch.isfinite(logits).all()
    F.cross_entropy(logits, torch.tensor([0, 3, 6])).backward()
    check_gradients(model, activation)


@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (1, 2, 1, 1), (2, 2, 1, 5), (3, 4, 7, 2)])
def test_avg_pool_3x3_equals_torch_pooling(shape: tuple[int, ...]) -> None:
    x = torch.randn(*shape, dtype=torch.double, requires_grad=True)
    ours = avg_pool_3x3(x)
    ref = F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-12)
    g = torch.randn_like(ref)
    (g_ours,) = torch.autograd.grad(ours, x, g)
    (g_ref,) = torch.autograd.grad(ref, x, g)
    torch.testing.assert_close(g_ours, g_ref, rtol=0, atol=1e-12)


def test_fused_batch_norm_tracks_batches_like_the_module() -> None:
    model = NB201SuperNet(channels=4, depth=1)
    model(torch.randn(2, 3, 8, 8))
    model(torch.randn(2, 3, 8, 8))
    cell_bns = [m for n, m in model.named_modules() if ".sources." in n and "bn" in n]
    assert cell_bns and all(int(bn.num_batches_tracked) == 2 for bn in cell_bns)
    model.eval()
    model(torch.randn(2, 3, 8, 8))
    assert all(int(bn.num_batches_tracked) == 2 for bn in cell_bns)
