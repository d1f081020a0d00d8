"""Numbers the Single-DARTS paper reports, as plain data, for printing beside ours.

Source: the paper "Single-DARTS: Towards Stable Architecture Search", **Table 1**
(NAS-Bench-201): NAS-Bench-201 validation / test accuracy (%) of the searched cell on CIFAR-10,
CIFAR-100 and ImageNet16-120, mean ± std over runs, as printed there. The rows of other methods
are results the paper cites (its reference numbers are kept in ``reference``); the paper's own
row is ``Single-DARTS``. Nothing here is recomputed: each number is the printed one.

Reading notes (from the extracted text of the paper):

* the table prints a single ``DARTS`` row (reference [27]), not separate DARTS-V1 / DARTS-V2
  rows; it is kept as the one row it is, not split into two invented ones (its numbers, 54.30 /
  15.61 / 16.32 test, are the all-skip-connect cell's, as are ENAS's);
* a stray glyph before ``RSPS`` in the extraction is dropped (it is not part of the name);
* every number of the table was legible (none missing or garbled), so there is no NaN below; a
  value that could not be read would be NaN (``math.nan``) with a comment, never a guess;
* ``std`` 0 is printed as ``±0`` in the paper (the same cell in every run) and is kept as 0.0.

The ``Optimal`` row the paper prints is kept as ``REPORTED_OPTIMAL`` (the main table computes
its own Optimal row from the benchmark; these are the paper's for comparison).
"""

from __future__ import annotations

from typing import NamedTuple

SOURCE = '"Single-DARTS: Towards Stable Architecture Search", Table 1'
REPORTED_SUFFIX = " (reported)"
# Column keys: (dataset, metric), datasets as the results frame names them.
COLUMNS = (
    ("cifar10", "valid"),
    ("cifar10", "test"),
    ("cifar100", "valid"),
    ("cifar100", "test"),
    ("imagenet16-120", "valid"),
    ("imagenet16-120", "test"),
)


class Reported(NamedTuple):
    """One printed row: the method as the paper names it, its reference number in the paper,
    and mean / std per column (``COLUMNS`` order)."""

    method: str
    reference: str
    mean: tuple[float, float, float, float, float, float]
    std: tuple[float, float, float, float, float, float]


# Paper Table 1, in the paper's row order (mean ± std; CIFAR-10 valid, test, CIFAR-100 valid,
# test, ImageNet16-120 valid, test).
TABLE1: tuple[Reported, ...] = (
    Reported("RSPS", "[22]",
             (84.16, 87.66, 59.00, 58.33, 31.56, 31.14),
             (1.69, 1.69, 4.60, 4.34, 3.28, 3.88)),
    Reported("DARTS", "[27]",
             (39.77, 54.30, 15.03, 15.61, 16.43, 16.32),
             (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)),
    Reported("GDAS", "[14]",
             (90.00, 93.51, 71.14, 70.61, 41.70, 41.84),
             (0.21, 0.13, 0.27, 0.26, 1.26, 0.90)),
    Reported("SETN", "[13]",
             (82.25, 86.19, 56.86, 56.87, 32.54, 31.90),
             (5.17, 4.63, 7.59, 7.77, 3.63, 4.07)),
    Reported("ENAS", "[29]",
             (39.77, 54.30, 15.03, 15.61, 16.43, 16.32),
             (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)),
    Reported("CDARTS", "[36]",
             (91.13, 94.02, 72.12, 71.92, 45.09, 45.51),
             (0.44, 0.31, 1.23, 1.30, 0.61, 0.72)),
    Reported("DARTS-", "[11]",
             (91.03, 93.80, 71.36, 71.53, 44.87, 45.12),
             (0.44, 0.40, 1.51, 1.51, 1.46, 0.82)),
    Reported("Single-DARTS", "(this paper)",
             (91.55, 94.36, 73.49, 73.51, 46.37, 46.34),
             (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)),
)

# The paper's Optimal row (the best NAS-Bench-201 cell per column), printed without a std.
REPORTED_OPTIMAL = (91.61, 94.37, 73.49, 73.51, 46.77, 47.31)


def reported_rows() -> list[dict[str, object]]:
    """Paper Table 1 as tidy rows: ``method`` (with the ``" (reported)"`` suffix), ``dataset``,
    ``metric``, ``mean``, ``std``; one row per method × column."""
    rows: list[dict[str, object]] = []
    for entry in TABLE1:
        for (dataset, metric), mean, std in zip(COLUMNS, entry.mean, entry.std, strict=True):
            rows.append({"method": entry.method + REPORTED_SUFFIX, "dataset": dataset,
                         "metric": metric, "mean": mean, "std": std})
    return rows
