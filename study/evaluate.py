"""``study evaluate``: which genotypes to train from scratch, and their EvalConfigs.

A DARTS-space search ends in a genotype; ``study evaluate`` trains the network built from it
with one of the paper's protocols (``trainables.eval_config.PRESETS``) as Ray Tune trials, one
per genotype and seed, through the same runner, results writer and guards as ``study run``.
The genotypes come from

* a search experiment's results (``study evaluate RESULTS --experiment NAME``): the final
  genotype of every finished DARTS-space trial (``space='darts'``, last epoch reached, not
  diverged), labelled ``<experiment>/<trial_id>`` and carrying that provenance, so the analysis
  joins each evaluation with its search; the evaluations are written beside the search, in the
  same results folder, as experiment ``<experiment>-eval-<preset>``;
* genotype strings or published names given on the command line (``DARTS_V2``, ...; experiment
  ``eval-<preset>``);

plus, with ``--reference NAME``, published genotypes trained in the same experiment.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow.fs as pafs

from analysis import store
from search_spaces.published import PUBLISHED, published_name
from trainables import records as R
from trainables.config import shown
from trainables.eval_config import (
    EVAL_FIELD_TYPES,
    NAMED_BY_ARCH,
    PRESETS,
    EvalConfig,
    normalise_genotype,
    preset_config,
)

# Fields the command sets (the genotypes and their labels, --preset, --seeds), never --set.
SET_BY_COMMAND = (*NAMED_BY_ARCH, "arch", "preset", "seed")


@dataclass(frozen=True)
class Target:
    """One genotype to evaluate and where it came from ('' = given by hand)."""

    arch: str
    genotype: str
    source_experiment: str = ""
    source_trial_id: str = ""


def is_results_location(source: str) -> bool:
    """Whether ``source`` names a results folder (or URI) rather than a genotype or a name."""
    if "://" in source:
        return True
    fs, path = store.resolve_location(source)
    return fs.get_file_info(path).type == pafs.FileType.Directory


def results_folder(source: str) -> str:
    """The ``--results`` folder that holds ``source`` (a results folder, or its ``parquet``
    dataset root, which every reader accepts too): where evaluations of its searches go."""
    trimmed = source.rstrip("/")
    if trimmed.endswith(f"/{store.PARQUET_FOLDER}") or trimmed == store.PARQUET_FOLDER:
        _, folders = store.experiment_folders(trimmed)
        if folders:  # the dataset root itself: its parent is the results folder
            return trimmed[: -len(store.PARQUET_FOLDER)].rstrip("/") or "."
    return source


def search_targets(results: str, experiment: str | None) -> tuple[str, list[Target], list[str]]:
    """(search experiment, its final DARTS genotypes, notes) from a results folder.

    ``experiment`` None picks the only search experiment under ``results`` (several: a
    ``ValueError`` listing them). Unfinished and diverged trials are left out, and the notes
    say how many; no finished DARTS-space trial at all is a ``ValueError``."""
    from analysis.results import load_results

    fs, folders = store.experiment_folders(results)
    searches = sorted(n for n, f in folders.items() if store.experiment_kind(fs, f) == "search")
    if experiment is None:
        if len(searches) != 1:
            raise ValueError(
                f"{results} holds {len(searches)} search experiments "
                f"({', '.join(searches) or 'none'}); name one with --experiment NAME"
            )
        experiment = searches[0]
    elif experiment not in searches:
        raise ValueError(
            f"--experiment {experiment!r} is not a search experiment under {results}; found: "
            f"{', '.join(searches) or 'none'}"
        )
    final = load_results(results, experiments=[experiment], final_only=True, alphas=False)
    darts = final[final["space"].astype("string") == "darts"]
    if darts.empty:
        raise ValueError(
            f"experiment {experiment!r} has no DARTS-space searches (space='darts'); a "
            "NAS-Bench-201 genotype is judged by its benchmark accuracy, not by training it"
        )
    done = (darts[R.EPOCH] >= darts["epochs"]) & (darts[R.STATUS].astype("string") == R.STATUS_OK)
    notes = []
    if (~done).any():
        notes.append(
            f"{int((~done).sum())} of {len(darts)} DARTS trial(s) of {experiment!r} are unfinished "
            "or diverged and are not evaluated"
        )
    targets = [
        Target(f"{experiment}/{row.trial_id}", str(row.genotype), experiment, str(row.trial_id))
        for row in darts[done].itertuples(index=False)
    ]
    if not targets:
        raise ValueError(f"experiment {experiment!r} has no finished DARTS-space search yet")
    return experiment, targets, notes


def given_targets(texts: Iterable[str]) -> list[Target]:
    """Targets of genotype strings and published names: a published name is its own label, a
    string is labelled ``genotype-<8 hex of its canonical form>``."""
    targets = []
    for text in texts:
        if not text.strip().startswith("Genotype(") and ("/" in text or text.startswith(".")):
            raise ValueError(
                f"{text!r} is not a results folder (nothing there) and not a genotype: give the "
                "--results folder of a DARTS-space search, 'Genotype(...)' strings or published "
                f"names ({', '.join(PUBLISHED)})"
            )
        genotype = normalise_genotype(text)
        if not genotype:
            raise ValueError(f"empty genotype {text!r}")
        if text.strip().startswith("Genotype("):
            label = f"genotype-{hashlib.sha1(genotype.encode()).hexdigest()[:8]}"
        else:
            label = published_name(text)
        targets.append(Target(label, genotype))
    return targets


def parse_settings(pairs: Sequence[str]) -> dict[str, Any]:
    """``--set key=value`` pairs as EvalConfig values, typed by the field (bool: true/false);
    an unknown key, a provenance field or a malformed pair raises ``ValueError``."""
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep:
            raise ValueError(f"--set {pair!r}: expected KEY=VALUE, e.g. --set epochs=300")
        if key in SET_BY_COMMAND:
            raise ValueError(
                f"--set {key}=...: {key} is set by the command (the genotypes, --preset, "
                "--seeds), not by --set"
            )
        if key not in EVAL_FIELD_TYPES:
            settable = [n for n in EvalConfig.field_names() if n not in SET_BY_COMMAND]
            raise ValueError(f"--set {key}: unknown setting; choose from {settable}")
        values[key] = _typed(key, text.strip())
    return values


def _typed(key: str, text: str) -> Any:
    base = EVAL_FIELD_TYPES[key].base
    try:
        if base is bool:
            if text.lower() not in ("true", "false"):
                raise ValueError("expected true or false")
            return text.lower() == "true"
        return base(text)
    except ValueError as error:
        raise ValueError(
            f"--set {key}={shown(text)}: not a {base.__name__} ({error})"
        ) from None


def evaluation_configs(
    targets: Sequence[Target], preset: str, seeds: Sequence[int], changes: dict[str, Any]
) -> list[EvalConfig]:
    """One EvalConfig per target and seed: the preset, then ``changes``, then the target's
    genotype and provenance (validated; a bad value raises ``ValueError`` naming it). A target
    given twice (e.g. a name and ``--reference`` of the same) is one set of trials."""
    if preset not in PRESETS:
        raise ValueError(f"--preset {preset!r}: choose one of {list(PRESETS)}")
    configs = []
    for target in targets:
        for seed in seeds:
            configs.append(preset_config(
                preset,
                target.genotype,
                arch=target.arch,
                source_experiment=target.source_experiment,
                source_trial_id=target.source_trial_id,
                seed=seed,
                **changes,
            ))
    return list(dict.fromkeys(configs))


def check_workers(configs: Sequence[EvalConfig], gpus_per_trial: float) -> None:
    """With GPUs, a trial's data-parallel processes (``workers`` > 1) each need one whole GPU
    of the trial."""
    workers = max(c.workers for c in configs)
    if workers == 1:  # one process: any share of a GPU (several trials may pack one)
        return
    if gpus_per_trial > 0 and (workers > gpus_per_trial or gpus_per_trial != int(gpus_per_trial)):
        raise ValueError(
            f"workers={workers} data-parallel processes need {workers} whole GPUs per trial; "
            f"got --gpus-per-trial {gpus_per_trial:g}: set --gpus-per-trial {workers}"
        )
