"""The paper's Table 1 as ``analysis.reported`` stores it, against the numbers printed in the
paper (typed here from the paper's table, row by row: mean ± std; CIFAR-10 valid, test,
CIFAR-100 valid, test, ImageNet16-120 valid, test)."""

from __future__ import annotations

from analysis.reported import REPORTED_OPTIMAL, TABLE1, reported_rows

PRINTED = {
    "RSPS": ["84.16±1.69", "87.66±1.69", "59.00±4.60", "58.33±4.34", "31.56±3.28", "31.14±3.88"],
    "DARTS": ["39.77±0", "54.30±0", "15.03±0", "15.61±0", "16.43±0", "16.32±0"],
    "GDAS": ["90.00±0.21", "93.51±0.13", "71.14±0.27", "70.61±0.26", "41.70±1.26", "41.84±0.90"],
    "SETN": ["82.25±5.17", "86.19±4.63", "56.86±7.59", "56.87±7.77", "32.54±3.63", "31.90±4.07"],
    "ENAS": ["39.77±0", "54.30±0", "15.03±0", "15.61±0", "16.43±0", "16.32±0"],
    "CDARTS": ["91.13±0.44", "94.02±0.31", "72.12±1.23", "71.92±1.30", "45.09±0.61",
               "45.51±0.72"],
    "DARTS-": ["91.03±0.44", "93.80±0.40", "71.36±1.51", "71.53±1.51", "44.87±1.46",
               "45.12±0.82"],
    "Single-DARTS": ["91.55±0", "94.36±0", "73.49±0", "73.51±0", "46.37±0", "46.34±0"],
}


def test_table_1_rows_are_the_printed_numbers_in_the_papers_order() -> None:
    assert [row.method for row in TABLE1] == list(PRINTED)
    for row in TABLE1:
        means = [float(text.split("±")[0]) for text in PRINTED[row.method]]
        stds = [float(text.split("±")[1]) for text in PRINTED[row.method]]
        assert list(row.mean) == means, row.method
        assert list(row.std) == stds, row.method
    assert REPORTED_OPTIMAL == (91.61, 94.37, 73.49, 73.51, 46.77, 47.31)


def test_tidy_rows_mark_every_method_as_reported() -> None:
    rows = reported_rows()
    assert len(rows) == 8 * 6
    assert all(str(r["method"]).endswith(" (reported)") for r in rows)
    setn = {(r["dataset"], r["metric"]): (r["mean"], r["std"]) for r in rows
            if r["method"] == "SETN (reported)"}
    assert setn[("cifar100", "valid")] == (56.86, 7.59)
    assert setn[("imagenet16-120", "test")] == (31.90, 4.07)
