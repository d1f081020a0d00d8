"""The pools a search draws its batches from: ``train_pool`` and ``data_fraction``.

A dataset reader returns the official search split (``SearchDataset.train`` / ``.held_out``, see
:mod:`trainables.datasets`); :func:`search_pools` turns it into the two pools one search uses,
following two fields of :class:`~trainables.config.SearchConfig`. It runs in ``Search.__init__``,
after the reader and before the splits move to the device, so the readers stay the plain official
protocol (one cached dataset serves every trial) and every reader (in-memory or file-list) gets the
same rule.

``train_pool`` (single level only; the config rejects ``full`` for bi-level):

* ``split`` (default, the reference protocol): w and α train on ``train``.
* ``full``: the training pool is the whole training set, ``train`` followed by ``held_out``, when
  the held-out half is carved out of the training set: CIFAR-10 (``cifar10-valid``: 25k + 25k = all
  50k training images), ``imagenet`` (all 1,281,167 files, the every-40th held-out ones included),
  ``digits`` (all 1,797) and ``synthetic`` (all 960). CIFAR-100 and ImageNet16-120 hold out half of
  their *test* set (``xvalid``), and their ``train`` already is the whole training set; there
  ``full`` would be the same images as ``split``, so the config refuses it (one spelling per
  search; this module would leave the pool as it is, never training on test images). :attr:`SearchDataset.held_out_from_train` says which case a dataset is.

  Effect on α: a single-level step updates α on the same batch as w, so with ``full`` α, like w,
  sees the whole training set (all 50k CIFAR-10 images); nothing is held out from the search.
  ``held_out`` is kept as it is and still gives the supernet validation accuracy of each epoch, but
  with ``full`` (on the datasets above) those images are also training images, so that accuracy
  is a training accuracy in eval mode, not a held-out one. The derived genotype's benchmark
  accuracies are unaffected (they come from NAS-Bench-201).

``data_fraction`` f in (0, 1] with ``data_fraction_seed`` s: the pool (after ``train_pool``) and
``held_out`` (α batches of bi-level ``split``, validation accuracy) are each cut to a class-balanced
subset by :func:`class_balanced_indices`: for each class c present with n_c members, the first
``max(1, round(f * n_c))`` of a random permutation of its members (Python's ``round``, halves to
even). The permutation of class c comes from numpy's PCG64 generator seeded with ``[s, c]``: it
depends on s, c and n_c only, never on the search ``seed``, so every seed of a study sees the same
images, and a smaller fraction takes a prefix of the same permutation, so subsets are nested (for
one s, the f=0.25 subset lies inside the f=0.5 one). Chosen items keep the pool's order. f = 1
returns the split object itself (bit-identical to no subsetting). The normalisation statistics
(``mean``/``std``) stay the dataset's; ``steps_per_epoch=0`` means one pass over the resulting pool
(``Search`` plans epochs from ``len(self.train)``).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from trainables.datasets.base import FileSplit, ImageSplit, SearchDataset

Split = ImageSplit | FileSplit


def class_size(n: int, fraction: float) -> int:
    """Items kept from a class of ``n`` (n >= 1) at ``fraction``: ``max(1, round(fraction * n))``,
    capped at ``n``."""
    return min(n, max(1, round(fraction * n)))


def class_permutation(n: int, label: int, seed: int) -> np.ndarray:
    """The fixed order in which class ``label``'s ``n`` members are taken: a permutation of
    0..n-1 from numpy's PCG64 seeded ``[seed, label]``."""
    return np.random.default_rng([seed, label]).permutation(n)


def class_balanced_indices(
    labels: np.ndarray | torch.Tensor, fraction: float, seed: int
) -> np.ndarray:
    """Indices (int64, ascending) of a class-balanced ``fraction`` of items with ``labels``.

    Per class c present with n_c items: ``class_size(n_c, fraction)`` of them, the first ones of
    ``class_permutation(n_c, c, seed)`` over the class's items in pool order. Deterministic in
    (labels, fraction, seed); nested in ``fraction`` for one seed; all indices when fraction = 1.
    Raises ValueError for a fraction outside (0, 1], a negative seed or negative labels.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction={fraction!r} must be in (0, 1]")
    if seed < 0:
        raise ValueError(f"seed={seed!r} must be >= 0")
    y = labels.numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    y = y.astype(np.int64, copy=False).reshape(-1)
    if y.size and y.min() < 0:
        raise ValueError(f"labels must be >= 0; got {int(y.min())}")
    if fraction == 1:
        return np.arange(y.size, dtype=np.int64)
    # each class's members in pool order, grouped by one stable sort (ImageNet: 1.28M labels)
    grouped = np.argsort(y, kind="stable")
    classes, counts = np.unique(y, return_counts=True)
    chosen = []
    for label, members in zip(classes, np.split(grouped, np.cumsum(counts)[:-1]), strict=True):
        order = class_permutation(members.size, int(label), seed)
        chosen.append(members[order[: class_size(members.size, fraction)]])
    if not chosen:
        return np.zeros(0, dtype=np.int64)
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def select(split: Split, indices: np.ndarray | torch.Tensor) -> Split:
    """The items ``indices`` of ``split``, in that order, as a split of the same kind."""
    idx = torch.as_tensor(np.asarray(indices), dtype=torch.int64)
    if isinstance(split, FileSplit):
        return FileSplit(
            tuple(split.paths[i] for i in idx.tolist()), split.labels[idx].contiguous()
        )
    return ImageSplit(split.images[idx].contiguous(), split.labels[idx].contiguous())


def subset(split: Split, fraction: float, seed: int) -> Split:
    """``split`` cut to :func:`class_balanced_indices`; ``split`` itself when fraction = 1."""
    if fraction == 1:
        return split
    return select(split, class_balanced_indices(split.labels, fraction, seed))


def concatenate(first: Split, second: Split) -> Split:
    """``first``'s items followed by ``second``'s, as a split of the same kind."""
    if isinstance(first, FileSplit) and isinstance(second, FileSplit):
        return FileSplit(first.paths + second.paths, torch.cat([first.labels, second.labels]))
    if isinstance(first, ImageSplit) and isinstance(second, ImageSplit):
        if first.images.shape[1:] != second.images.shape[1:]:
            raise ValueError(
                f"cannot join images of shape {tuple(first.images.shape[1:])} and "
                f"{tuple(second.images.shape[1:])}"
            )
        return ImageSplit(
            torch.cat([first.images, second.images]).contiguous(),
            torch.cat([first.labels, second.labels]).contiguous(),
        )
    raise TypeError(f"cannot join a {type(first).__name__} and a {type(second).__name__}")


def training_set(data: SearchDataset) -> Split:
    """The whole training set of ``data`` (``train_pool='full'``): ``train`` + ``held_out`` when
    the held-out half comes from the training set, else ``train`` (see the module docstring)."""
    if data.held_out_from_train:
        return concatenate(data.train, data.held_out)
    return data.train


def search_pools(
    data: SearchDataset,
    *,
    data_fraction: float = 1.0,
    data_fraction_seed: int = 0,
    train_pool: str = "split",
) -> SearchDataset:
    """``data`` with ``train`` and ``held_out`` replaced by the pools one search uses.

    ``train`` becomes the training pool (``train_pool``: ``split`` keeps it, ``full`` takes
    :func:`training_set`), then both halves are cut to ``data_fraction`` (:func:`subset`, seeded
    ``data_fraction_seed``). Returns ``data`` itself for the defaults. Raises ValueError for an
    unknown ``train_pool``.
    """
    if train_pool not in ("split", "full"):
        raise ValueError(f"train_pool={train_pool!r} is not allowed; choose 'split' or 'full'")
    if train_pool == "split" and data_fraction == 1:
        return data
    pool = training_set(data) if train_pool == "full" else data.train
    return replace(
        data,
        train=subset(pool, data_fraction, data_fraction_seed),
        held_out=subset(data.held_out, data_fraction, data_fraction_seed),
    )
