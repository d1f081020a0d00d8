"""Tests of the DARTS evaluation networks, the parameter and multiply-add counters and the
published genotypes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from search_spaces.darts_eval import (
    EvalCell,
    NetworkCIFAR,
    NetworkImageNet,
    count_multiply_adds,
    count_parameters,
)
from search_spaces.genotypes import DARTS_OPS, DartsGenotype
from search_spaces.published import DARTS_V2, PUBLISHED, published_genotype


# --------------------------------------------------------------------------- reference figures
def test_cifar_darts_v2_has_the_papers_parameter_count() -> None:
    model = NetworkCIFAR(36, 10, 20, True, DARTS_V2)
    params = count_parameters(model)
    print(f"NetworkCIFAR(36, 10, 20, DARTS_V2): {params:,} parameters without the aux head")
    assert round(params / 1e6, 1) == 3.3  # DARTS paper, Table 1
    assert params == 3_349_342
    assert count_multiply_adds(model, 32) == 528_359_040  # conv + linear, 32x32 input
    with_aux = count_parameters(model, exclude_auxiliary=False)
    assert with_aux == sum(p.numel() for p in model.parameters()) > params


def test_imagenet_darts_v2_parameters_and_multiply_adds() -> None:
    model = NetworkImageNet(48, 1000, 14, True, DARTS_V2)
    params = count_parameters(model)
    macs = count_multiply_adds(model, 224)
    print(f"NetworkImageNet(48, 1000, 14, DARTS_V2): {params:,} parameters, {macs:,} MACs")
    assert abs(params - 4.7e6) / 4.7e6 < 0.01  # DARTS paper, Table 3: 4.7 M
    assert params == 4_718_752
    # Conv + linear multiply-adds. The paper's 574 M comes from an unpublished counter that
    # conv + linear counting does not reproduce; pin our own figure and bound the gap.
    assert macs == 529_911_552
    assert abs(macs - 574e6) / 574e6 < 0.10
    assert macs < 600e6  # the mobile setting's limit


@pytest.mark.parametrize(
    ("name", "millions"), [("DARTS_V2", 3.3), ("PC_DARTS", 3.6), ("P_DARTS", 3.4)]
)
def test_published_genotypes_have_their_papers_cifar_sizes(name: str, millions: float) -> None:
    params = count_parameters(NetworkCIFAR(36, 10, 20, True, PUBLISHED[name]))
    print(f"{name}: {params:,} parameters")
    assert round(params / 1e6, 1) == millions


def test_published_genotypes_are_valid_and_round_trip() -> None:
    assert {"DARTS_V1", "DARTS_V2", "PC_DARTS", "P_DARTS"} <= set(PUBLISHED)
    for genotype in PUBLISHED.values():
        assert isinstance(genotype, DartsGenotype)
        assert len(genotype.normal) == len(genotype.reduce) == 8
        assert genotype.normal_concat == genotype.reduce_concat == (2, 3, 4, 5)
        assert DartsGenotype.from_string(genotype.to_string()) == genotype
    assert PUBLISHED["DARTS_V2"].normal[-1] == ("dil_conv_3x3", 2)


# --------------------------------------------------------------------------- counters
def test_multiply_adds_match_a_hand_count() -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False),  # 3x16x16 -> 8x8x8
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, groups=8),  # depthwise, 8x8x8
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 5),
    )
    conv = 8 * 8 * 8 * 3 * 3 * 3
    depthwise = 8 * 8 * 8 * 1 * 3 * 3
    linear = 8 * 5
    model.train()
    assert count_multiply_adds(model, 16) == conv + depthwise + linear == 18_472
    assert count_multiply_adds(model, (16, 16)) == 18_472
    assert model.training  # mode restored


def test_auxiliary_head_is_not_counted() -> None:
    with_aux = NetworkCIFAR(8, 10, 5, True, DARTS_V2)
    without = NetworkCIFAR(8, 10, 5, False, DARTS_V2)
    assert count_multiply_adds(with_aux, 32) == count_multiply_adds(without, 32)
    assert count_parameters(with_aux) == count_parameters(without)
    assert count_parameters(with_aux, exclude_auxiliary=False) > count_parameters(without)


# --------------------------------------------------------------------------- forward passes
def test_cifar_forward_shapes_and_auxiliary_only_in_training() -> None:
    x = torch.randn(2, 3, 32, 32)
    model = NetworkCIFAR(8, 10, 5, True, DARTS_V2)
    model.train()
    logits, aux = model(x)
    assert logits.shape == (2, 10)
    assert aux is not None and aux.shape == (2, 10)
    model.eval()
    logits, aux = model(x)
    assert logits.shape == (2, 10) and aux is None
    no_aux = NetworkCIFAR(8, 10, 5, False, DARTS_V2).train()
    logits, aux = no_aux(x)
    assert logits.shape == (2, 10) and aux is None


def test_imagenet_forward_shapes() -> None:
    x = torch.randn(2, 3, 224, 224)
    model = NetworkImageNet(8, 7, 5, True, DARTS_V2).train()
    logits, aux = model(x)
    assert logits.shape == (2, 7)
    assert aux is not None and aux.shape == (2, 7)
    model.eval()
    logits, aux = model(x)
    assert logits.shape == (2, 7) and aux is None


@pytest.mark.parametrize("name", ["DARTS_V1", "PC_DARTS", "P_DARTS"])
def test_every_published_genotype_runs(name: str) -> None:
    model = NetworkCIFAR(8, 10, 5, False, PUBLISHED[name].to_string()).eval()
    logits, _ = model(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 10)


def test_drop_path_changes_training_outputs_only() -> None:
    torch.manual_seed(0)
    model = NetworkCIFAR(8, 10, 5, False, DARTS_V2)
    x = torch.randn(4, 3, 32, 32)

    def run(prob: float) -> torch.Tensor:
        model.drop_path_prob = prob
        torch.manual_seed(1)
        with torch.no_grad():
            return model(x)[0]

    model.train()
    assert torch.equal(run(0.0), run(0.0))
    assert not torch.allclose(run(0.0), run(0.5))
    model.eval()
    assert torch.equal(run(0.0), run(0.5))


def test_cell_handles_none_and_every_op() -> None:
    ops = list(DARTS_OPS)
    genes = tuple((ops[k % len(ops)], k % 2) for k in range(8))
    genotype = DartsGenotype(genes, (2, 3, 4, 5), genes, (2, 3, 4, 5))
    s0, s1 = torch.randn(2, 6, 8, 8), torch.randn(2, 6, 8, 8)
    normal = EvalCell(genotype, 6, 6, 4, reduction=False, reduction_prev=False).eval()
    assert normal(s0, s1).shape == (2, 16, 8, 8)
    reduce = EvalCell(genotype, 6, 6, 4, reduction=True, reduction_prev=False).eval()
    assert reduce(s0, s1).shape == (2, 16, 4, 4)
    after_reduce = EvalCell(genotype, 6, 6, 4, reduction=False, reduction_prev=True).eval()
    assert after_reduce(torch.randn(2, 6, 16, 16), s1).shape == (2, 16, 8, 8)


def test_cell_rejects_bad_genes() -> None:
    bad = (("sep_conv_3x3", 0), ("sep_conv_3x3", 3), *DARTS_V2.normal[2:])
    genotype = DartsGenotype(bad, (2, 3, 4, 5), DARTS_V2.reduce, (2, 3, 4, 5))
    with pytest.raises(ValueError, match="does not exist"):
        EvalCell(genotype, 8, 8, 8, reduction=False, reduction_prev=False)
    unknown = (("conv_7x7", 0), *DARTS_V2.normal[1:])
    genotype = DartsGenotype(unknown, (2, 3, 4, 5), DARTS_V2.reduce, (2, 3, 4, 5))
    with pytest.raises(ValueError, match="unknown DARTS op"):
        EvalCell(genotype, 8, 8, 8, reduction=False, reduction_prev=False)


def test_published_names_are_found_in_any_spelling_and_unknown_ones_listed() -> None:
    assert published_genotype("darts-v2") == DARTS_V2
    with pytest.raises(KeyError, match="DARTS_V1, DARTS_V2, PC_DARTS, P_DARTS"):
        published_genotype("darts_v3")
