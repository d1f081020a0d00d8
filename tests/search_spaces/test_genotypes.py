"""Tests of the genotype string forms and the DARTS cell derivation."""

from __future__ import annotations

import pytest
import torch

from search_spaces.genotypes import (
    DARTS_OPS,
    NB201_EDGES,
    NB201_OPS,
    DartsGenotype,
    darts_cell_genes,
    darts_genotype,
    nb201_from_string,
    nb201_to_string,
)

ALL_SKIP = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"
BEST_CIFAR10 = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+"
    "|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
)
MIXED = "|none~0|+|avg_pool_3x3~0|nor_conv_1x1~1|+|nor_conv_3x3~0|none~1|skip_connect~2|"
# The original DARTS repository's DARTS_V2 genotype line.
DARTS_V2 = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
    "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), "
    "('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
    "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
    "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])"
)


# --------------------------------------------------------------------------- NAS-Bench-201
def test_edge_order_is_reference_order() -> None:
    assert NB201_EDGES == ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
    assert NB201_OPS == ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


@pytest.mark.parametrize(
    ("arch", "ops"),
    [
        (ALL_SKIP, ("skip_connect",) * 6),
        (
            BEST_CIFAR10,
            (
                "nor_conv_3x3",  # 1<-0
                "nor_conv_3x3",  # 2<-0
                "nor_conv_3x3",  # 2<-1
                "skip_connect",  # 3<-0
                "nor_conv_3x3",  # 3<-1
                "nor_conv_1x1",  # 3<-2
            ),
        ),
        (
            MIXED,
            ("none", "avg_pool_3x3", "nor_conv_1x1", "nor_conv_3x3", "none", "skip_connect"),
        ),
    ],
)
def test_nb201_round_trip(arch: str, ops: tuple[str, ...]) -> None:
    assert nb201_from_string(arch) == ops
    assert nb201_to_string(ops) == arch
    assert nb201_to_string(list(ops)) == arch


def test_nb201_round_trip_every_single_op_cell() -> None:
    for op in NB201_OPS:
        for e in range(6):
            ops = ["skip_connect"] * 6
            ops[e] = op
            assert nb201_from_string(nb201_to_string(ops)) == tuple(ops)


@pytest.mark.parametrize(
    ("arch", "message"),
    [
        # unknown op: the message names every valid op
        (ALL_SKIP.replace("skip_connect~1", "conv~1", 1), "valid ops: " + ", ".join(NB201_OPS)),
        # wrong node count
        ("|skip_connect~0|+|skip_connect~0|skip_connect~1|", r"2 '\+'-separated node groups"),
        (ALL_SKIP + "+|skip_connect~0|", r"4 '\+'-separated node groups"),
        ("", "expected 3"),
        # wrong input index in the first group
        (ALL_SKIP.replace("|skip_connect~0|+", "|skip_connect~1|+", 1), "should read 'op~0'"),
        # wrong input order in the last group
        (
            "|none~0|+|none~0|none~1|+|none~0|none~2|none~1|",
            "should read 'op~1'",
        ),
        # no '~'
        (ALL_SKIP.replace("skip_connect~0", "skip_connect", 1), "should read 'op~0'"),
        # missing bars
        (ALL_SKIP[1:], "must be"),
        (ALL_SKIP[:-1], "must be"),
        (ALL_SKIP.replace("|+|", "+", 1), "must be"),
        # wrong input count within a group
        (
            "|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|+"
            "|skip_connect~0|skip_connect~1|skip_connect~2|",
            "node 1 .* needs 1 inputs, got 2",
        ),
        # surrounding whitespace is not a valid cell
        (" " + ALL_SKIP, "must be"),
    ],
)
def test_nb201_invalid_strings_raise(arch: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        nb201_from_string(arch)


@pytest.mark.parametrize("bad", [None, 42, b"|skip_connect~0|", ("skip_connect",) * 6])
def test_nb201_non_string_raises(bad: object) -> None:
    with pytest.raises(ValueError, match="must be a string"):
        nb201_from_string(bad)  # type: ignore[arg-type]


def test_nb201_to_string_checks_ops() -> None:
    with pytest.raises(ValueError, match="6 edges, got 5"):
        nb201_to_string(["skip_connect"] * 5)
    with pytest.raises(ValueError, match="unknown NAS-Bench-201 op 'sep_conv_3x3'; valid ops"):
        nb201_to_string(["skip_connect"] * 5 + ["sep_conv_3x3"])


# --------------------------------------------------------------------------- DARTS strings
def test_darts_repo_line_round_trip() -> None:
    g = DartsGenotype.from_string(DARTS_V2)
    assert g.normal[:2] == (("sep_conv_3x3", 0), ("sep_conv_3x3", 1))
    assert g.reduce[-1] == ("max_pool_3x3", 1)
    assert g.normal_concat == g.reduce_concat == (2, 3, 4, 5)
    assert len(g.normal) == len(g.reduce) == 8
    assert g.to_string() == DARTS_V2
    assert DartsGenotype.from_string(g.to_string()) == g
    assert DartsGenotype.from_string("  " + DARTS_V2 + "\n") == g


def _with(normal: str) -> str:
    return f"Genotype(normal={normal}, normal_concat=[2, 3, 4, 5], reduce=[], reduce_concat=[2])"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not a DARTS genotype string"),
        ("hello world", "not a DARTS genotype string"),
        ("Genotype(normal=[", "not a DARTS genotype string"),
        ("[('skip_connect', 0)]", "expected Genotype"),
        (DARTS_V2.replace("Genotype(", "dict(", 1), "expected Genotype"),
        (DARTS_V2.replace("Genotype(", "genotypes.Genotype(", 1), "expected Genotype"),
        (DARTS_V2.replace(", reduce_concat=[2, 3, 4, 5]", ""), "reduce_concat"),
        (_with("[('none', 0)]"), "may not use 'none'"),
        (_with("[('sep_conv_7x7', 0)]"), "unknown DARTS op 'sep_conv_7x7'; valid ops"),
        (_with("[('skip_connect', -1)]"), "negative input node"),
        (_with("[('skip_connect',)]"), "not a DARTS genotype string"),
        (_with("[('skip_connect', 'x')]"), "not a DARTS genotype string"),
        (_with("__import__('os').getcwd()"), "not a DARTS genotype string"),
        (_with("[(op, 0)]"), "not a DARTS genotype string"),
    ],
)
def test_darts_from_string_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DartsGenotype.from_string(text)


def test_darts_from_string_does_not_run_code(tmp_path) -> None:
    marker = tmp_path / "ran"
    text = _with(f"open({str(marker)!r}, 'w').write('x') or [('skip_connect', 0)]")
    with pytest.raises(ValueError, match="not a DARTS genotype string"):
        DartsGenotype.from_string(text)
    assert not marker.exists()


def test_darts_unknown_op_lists_valid_ops() -> None:
    with pytest.raises(ValueError) as info:
        DartsGenotype.from_string(_with("[('conv', 1)]"))
    for op in DARTS_OPS:
        assert op in str(info.value)


# --------------------------------------------------------------------------- DARTS derivation
def test_darts_cell_genes_tie_break_lower_input_wins() -> None:
    w = torch.zeros(14, 8)
    genes = darts_cell_genes(w)
    # All equal: both the edge ranking and the op argmax fall to the lowest index (none excluded).
    assert genes == (("skip_connect", 0), ("skip_connect", 1)) * 4

    w = torch.zeros(14, 8)
    w[9:14, DARTS_OPS.index("avg_pool_3x3")] = 0.5  # node 3: all five inputs tie at 0.5
    w[12, DARTS_OPS.index("dil_conv_5x5")] = 0.7  # ... except input 3, stronger
    w[13, DARTS_OPS.index("none")] = 5.0  # `none` never counts towards strength
    assert darts_cell_genes(w)[6:] == (("dil_conv_5x5", 3), ("avg_pool_3x3", 0))


def test_darts_cell_genes_ranks_by_strength_and_skips_none() -> None:
    w = torch.full((14, 8), 0.01)
    w[0, DARTS_OPS.index("none")] = 0.9
    w[0, DARTS_OPS.index("sep_conv_5x5")] = 0.05
    w[1, DARTS_OPS.index("max_pool_3x3")] = 0.3
    before = w.clone()
    genes = darts_cell_genes(w)
    assert genes[:2] == (("max_pool_3x3", 1), ("sep_conv_5x5", 0))
    assert all(op != "none" for op, _ in genes)
    torch.testing.assert_close(w, before, rtol=0, atol=0)  # the input is not modified


def test_darts_cell_genes_other_step_counts() -> None:
    w = torch.zeros(5, 8)  # 2 steps: 2 + 3 edges
    w[4, DARTS_OPS.index("sep_conv_3x3")] = 1.0
    assert darts_cell_genes(w, steps=2) == (
        ("skip_connect", 0),
        ("skip_connect", 1),
        ("sep_conv_3x3", 2),
        ("skip_connect", 0),
    )
    g = darts_genotype(torch.zeros(5, 8), torch.zeros(5, 8), steps=2, multiplier=2)
    assert g.normal_concat == g.reduce_concat == (2, 3)


@pytest.mark.parametrize("shape", [(14, 7), (13, 8), (6, 5), (14,), (1, 14, 8)])
def test_darts_cell_genes_shape_checks(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"must have shape \(14, 8\)"):
        darts_cell_genes(torch.zeros(shape))


def test_darts_cell_genes_shape_follows_steps() -> None:
    with pytest.raises(ValueError, match=r"\(5, 8\)"):
        darts_cell_genes(torch.zeros(14, 8), steps=2)
    with pytest.raises(ValueError, match=r"\(14, 8\)"):
        darts_genotype(torch.zeros(14, 8), torch.zeros(14, 7))
