"""Tests of the NAS-Bench-201 lookup: shipped table facts and the real nats_bench code path."""

from __future__ import annotations

import csv
import gzip
import math
from pathlib import Path

import pytest

from search_spaces.benchmark import (
    BENCH_COLUMNS,
    NATS_TSS_DIRNAME,
    TEST_COLUMNS,
    VALID_COLUMNS,
    BenchmarkRecordError,
    TableBenchmark,
    load_table,
    open_benchmark,
)
from search_spaces.genotypes import NB201_OPS, nb201_to_string

REPO = Path(__file__).parents[2]
CSV = REPO / "tests" / "fixtures" / "nb201_test_accuracy.csv.gz"  # provenance: its README
FAKE_DIR = REPO / "tests" / "fixtures" / "nats-fake" / NATS_TSS_DIRNAME
ALL_SKIP = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"
BEST_CIFAR10 = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+"
    "|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
)
BAD_OP = "|conv~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"
RECORDED = (0, 11, 284)  # the only indices with a record file in the fake benchmark


@pytest.fixture(scope="module")
def table() -> TableBenchmark:
    return TableBenchmark()


@pytest.fixture(scope="module")
def nats():
    return open_benchmark(FAKE_DIR)


def _unrecorded_arch(table: TableBenchmark) -> str:
    """An arch string whose record file is absent from the fake benchmark (index 1)."""
    assert 1 not in RECORDED
    return table.arch(1)


# --------------------------------------------------------------------------- shipped table
def test_table_all_skip_cell(table: TableBenchmark) -> None:
    assert table.index(ALL_SKIP) == 1835
    acc = table.accuracies(ALL_SKIP)
    assert [round(acc[c], 2) for c in TEST_COLUMNS] == [54.30, 15.61, 16.32]


def test_table_optima(table: TableBenchmark) -> None:
    best = {c: table.optimum(c) for c in TEST_COLUMNS}
    assert [round(best[c][0], 2) for c in TEST_COLUMNS] == [94.37, 73.51, 47.31]
    assert best["cifar10_test"][1] == BEST_CIFAR10
    assert table.index(best["cifar100_test"][1]) == 9930


def test_table_row_11_and_nan_valid(table: TableBenchmark) -> None:
    acc = table.accuracies(table.arch(11))
    assert set(acc) == set(BENCH_COLUMNS)
    assert [acc[c] for c in TEST_COLUMNS] == pytest.approx([91.583, 67.607, 30.167], abs=1e-3)
    assert all(math.isnan(acc[c]) for c in VALID_COLUMNS)
    assert open_benchmark(use_table=True).source == "table"


def test_table_valid_optimum_and_bad_column_raise(table: TableBenchmark) -> None:
    with pytest.raises(ValueError, match=r"test accuracies only.*NATS-tss-v1_0-3ffb9-simple"):
        table.optimum("cifar10_valid")
    with pytest.raises(ValueError, match="valid: cifar10_valid"):
        table.optimum("cifar10")


def test_table_keeps_csv_text_values(table: TableBenchmark) -> None:
    """A few rows copied from the CSV text: the stored floats are exactly these decimals."""
    rows = {
        0: ("85.86333333333334", "52.913333294677734", "26.6333332739936"),
        11: ("91.58333333333333", "67.6066666422526", "30.166666602240667"),
    }
    for index, texts in rows.items():
        acc = table.accuracies(table.arch(index))
        assert [acc[c] for c in TEST_COLUMNS] == [float(t) for t in texts]
        assert [repr(acc[c]) for c in TEST_COLUMNS] == list(texts)


def test_compact_table_reproduces_every_csv_row() -> None:
    data = load_table()
    with gzip.open(CSV, "rt", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(data.ops)
    names = ("CIFAR10TestAccuracy200Epochs", "CIFAR100TestAccuracy200Epochs",
             "ImageNetTestAccuracy200Epochs")
    for i, row in enumerate(rows):
        assert nb201_to_string([NB201_OPS[k] for k in data.ops[i]]) == row["ArchitectureString"]
        assert [repr(float(v)) for v in data.test[i]] == [row[n] for n in names], i


def test_invalid_arch_raises_in_table(table: TableBenchmark) -> None:
    with pytest.raises(ValueError, match=r"'conv'.*valid ops: none, skip_connect"):
        table.index(BAD_OP)
    with pytest.raises(ValueError, match="node groups"):
        table.accuracies("|skip_connect~0|")


# --------------------------------------------------------------------------- nats_bench
def test_nats_opens_by_path_and_parent(nats) -> None:
    assert nats.source == "nats_bench"
    assert open_benchmark(FAKE_DIR.parent).source == "nats_bench"


def test_nats_opens_from_torch_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TORCH_HOME", str(FAKE_DIR.parent))
    assert open_benchmark().source == "nats_bench"
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert open_benchmark().source == "table"


def test_nats_accuracies_match_table_and_api(nats, table: TableBenchmark) -> None:
    import nats_bench

    arch = table.arch(11)
    assert nats.index(arch) == 11
    acc = nats.accuracies(arch)
    assert set(acc) == set(BENCH_COLUMNS)
    expected_test = table.accuracies(arch)
    assert [acc[c] for c in TEST_COLUMNS] == pytest.approx(
        [expected_test[c] for c in TEST_COLUMNS], abs=1e-3)
    api = nats_bench.create(str(FAKE_DIR), "tss", fast_mode=True, verbose=False)
    assert api.meta_archs[11] == arch
    direct = {
        "cifar10_valid": api.get_more_info(11, "cifar10-valid", hp="200", is_random=False),
        "cifar100_valid": api.get_more_info(11, "cifar100", hp="200", is_random=False),
        "imagenet16_120_valid": api.get_more_info(11, "ImageNet16-120", hp="200",
                                                  is_random=False),
    }
    for column, info in direct.items():
        assert math.isfinite(acc[column])
        assert acc[column] == info["valid-accuracy"]


def test_nats_optimum(nats) -> None:
    assert nats.optimum("cifar10_test") == (pytest.approx(94.373, abs=1e-3), BEST_CIFAR10)
    with pytest.raises(BenchmarkRecordError, match=r"index 1 .*NATS-tss-v1_0-3ffb9-simple"):
        nats.optimum("cifar100_valid")  # the scan reaches index 1, absent from the fake


def test_nats_missing_record_is_clear(nats, table: TableBenchmark) -> None:
    with pytest.raises(BenchmarkRecordError, match=r"index 1 from .*incomplete or damaged"):
        nats.accuracies(_unrecorded_arch(table))
    assert nats.accuracies(table.arch(284))["cifar10_test"] == pytest.approx(
        table.accuracies(table.arch(284))["cifar10_test"], abs=1e-3)


def test_invalid_arch_raises_in_nats(nats) -> None:
    with pytest.raises(ValueError, match=r"'conv'.*valid ops"):
        nats.index(BAD_OP)
    with pytest.raises(ValueError, match="op~1"):
        nats.accuracies(ALL_SKIP.replace("skip_connect~1|+", "skip_connect~2|+", 1))


def test_open_rejects_bad_paths(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        open_benchmark(tmp_path / "nope")
    with pytest.raises(ValueError, match="neither the fast-mode directory"):
        open_benchmark(tmp_path)
    broken = tmp_path / NATS_TSS_DIRNAME
    broken.mkdir()
    with pytest.raises(FileNotFoundError, match=r"lacks meta\.pickle\.pbz2"):
        open_benchmark(broken)
