"""Warnings about grids whose searches run but cannot mean what they seem to (no torch, no Ray).

``study run`` prints them before Ray starts. A warning never stops a run: the combination may be
wanted (e.g. to reproduce a reference), so the message says what happens and how to avoid it.
"""

from __future__ import annotations

from collections.abc import Sequence

from trainables.config import SearchConfig

SIGMOID_ACTIVATIONS = frozenset({"sigmoid", "sigmoid*"})
MAX_NAMED = 5  # affected trials described by name; the rest are counted
# Always named in a trial's short description (when they are not the same in every affected
# trial, the fields that differ are named too).
_ALWAYS = ("level", "activation")
_LAST = ("seed",)


def sigmoid_none_warning(configs: Sequence[SearchConfig]) -> str | None:
    """One message about the NB201 searches whose ``none`` α is moved only by weight decay.

    Under ``sigmoid`` / ``sigmoid*`` each op's weight is the sigmoid of its own α, and ``none``
    outputs zeros, so its α gets exactly zero loss gradient; with ``arch_weight_decay > 0`` it
    still drifts (towards 0), and with ``genotype_none='include'`` it takes part in the NB201
    argmax, so the derived cell depends on decay, not on the data. None when no config is
    affected.
    """
    affected = [c for c in configs if _moves_none_by_decay_only(c)]
    if not affected:
        return None
    names = _short_descriptions(affected)
    shown = "; ".join(names[:MAX_NAMED])
    if len(names) > MAX_NAMED:
        shown += f"; and {len(names) - MAX_NAMED} more"
    trials = "trial" if len(affected) == 1 else "trials"
    return (
        f"{len(affected)} NAS-Bench-201 {trials} combine a sigmoid activation with "
        f"arch_weight_decay > 0 and genotype_none='include' ({shown}). Under sigmoid the 'none' "
        "op's α gets no loss gradient (its output is zero), so only weight decay moves it, yet "
        "it takes part in the NB201 argmax that derives the cell. To avoid it, set "
        "arch_weight_decay = 0 (as the Single-DARTS paper does for its sigmoid search) or "
        "genotype_none = 'exclude'."
    )


def _moves_none_by_decay_only(config: SearchConfig) -> bool:
    return (
        config.space == "nb201"
        and config.activation in SIGMOID_ACTIVATIONS
        and config.arch_weight_decay > 0
        and config.genotype_none == "include"
    )


def _short_descriptions(configs: Sequence[SearchConfig]) -> list[str]:
    """``field=value`` per config: level, activation, the fields that differ, then the seed."""
    dicts = [c.to_dict() for c in configs]
    varying = [
        name
        for name in SearchConfig.field_names()
        if name not in _ALWAYS + _LAST and len({repr(d[name]) for d in dicts}) > 1
    ]
    keys = [*_ALWAYS, *varying, *_LAST]
    return [" ".join(f"{k}={d[k]}" for k in keys) for d in dicts]
