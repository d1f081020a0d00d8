"""The Tune searcher of ``study tune``: one Optuna study per cell, samples handed out in turn.

Why one custom ``Searcher`` over Optuna's ask/tell rather than one ``OptunaSearch`` per cell
behind a wrapper: a Tuner takes one search algorithm, and exactly-once tuning needs the Optuna
database to be the single source of truth for which samples exist and which are finished. With
ask/tell the searcher decides which cell gets the next free trial slot (the cell with the fewest
samples handed out, so every cell progresses and the cluster stays full), and on a rerun it
rebuilds its whole state from the database instead of from Tune's pickled copy of it; an
``OptunaSearch`` keeps its own trial bookkeeping in that pickle.

Lifecycle of a sample (an Optuna trial of the cell's study):

* ``suggest``: ``study.ask`` with the spec's distributions (state RUNNING, committed), and the
  Tune trial gets the cell's config with the sampled values plus the tuning context keys
  (``"_" + analysis.store.TUNING_COLUMNS``, which the results writer puts in every row);
* every epoch: the objective column's value is stored as the trial's intermediate value
  (step = epoch), so a resumed trial's earlier epochs are never lost;
* completion: ``tell`` COMPLETE with the final epoch's value or the best one, per the spec; a
  non-finite value (a diverged search) is FAIL with user attr ``outcome = "diverged"`` and
  counts as a finished sample (the hyperparameters were tried; TPE learns nothing from it); a
  sample stopped early by ASHA is PRUNED and counts; a trial that errors after its retries is FAIL
  with ``outcome = "error"``, does not count, and a new sample replaces it (at most ``samples``
  replacements per cell).

Resume: the driver binds the current command's storage URL, results folder and the samples the
restored Tune run already holds (``bind``); samples RUNNING in the database that no Tune trial
holds (asked just before a crash) are handed out again, first, with their own numbers and values.
Samples the restored Tune trials hold resume from their checkpoints. A finished sample is never
run again, so the run ends with exactly ``samples`` finished samples per cell.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import warnings
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState
from ray.tune.search import Searcher

from analysis import store
from analysis.tuning import objective_of
from trainables.tune_trainable import OBJECTIVE, OBJECTIVE_COLUMN

if TYPE_CHECKING:
    from study.tune_spec import Cell, ParamRange, TuneSpec

logger = logging.getLogger(__name__)
# Optuna logs every study it opens and every trial it finishes at INFO: the progress display and
# the tuning tables say that once, for people.
optuna.logging.set_verbosity(optuna.logging.WARNING)

OUTCOME = "outcome"  # user attr of a FAIL trial: "diverged" (counts) or "error" (replaced)
COUNTED_FAIL = "diverged"
ERROR_FAIL = "error"


@dataclass(frozen=True)
class Binding:
    """What the current command gives the searcher (never taken from Tune's restored state):
    the Optuna storage URL, the results dataset root and the samples ``(study, number)`` that
    the restored Tune run already holds."""

    storage: str
    results_root: str
    known: frozenset[tuple[str, int]] = frozenset()


_BINDINGS: dict[str, Binding] = {}  # experiment -> binding, in the driver process


def bind(experiment: str, binding: Binding) -> None:
    """Bind ``experiment``'s searcher (built now or restored by Tune) to this command's storage."""
    _BINDINGS[experiment] = binding


def distribution(param: ParamRange) -> BaseDistribution:
    """The Optuna distribution of one tuned hyperparameter."""
    if param.choices is not None:
        return CategoricalDistribution(list(param.choices))
    assert param.low is not None and param.high is not None
    if param.kind == "int":
        return IntDistribution(int(param.low), int(param.high), log=param.log)
    return FloatDistribution(float(param.low), float(param.high), log=param.log)


def sampler_seed(seed: int, existing: int) -> int:
    """The sampler seed of a cell's study holding ``existing`` trials: ``seed`` itself on a fresh
    study (so a rerun from scratch proposes the same first samples), a seed derived from both on
    a resumed one (a restarted seeded sampler would otherwise propose the first samples again)."""
    if existing == 0:
        return seed
    return int(np.random.SeedSequence([seed, existing]).generate_state(1)[0])


def study_name(experiment: str, cell: Cell) -> str:
    return f"{experiment}:{cell.label}"


@dataclass
class _CellState:
    """In-memory mirror of one cell's study (the driver is its only writer). ``storage`` is the
    Optuna storage object the study was opened with (its public ``BaseStorage`` methods address
    a trial by study id and number, with no ``Trial`` object needed after a restart)."""

    cell: Cell
    study: optuna.Study
    storage: optuna.storages.BaseStorage
    study_id: int
    finished: int = 0  # COMPLETE + PRUNED + counted FAIL
    errors: int = 0
    running: set[int] = field(default_factory=set)
    orphans: deque[int] = field(default_factory=deque)  # RUNNING numbers no Tune trial holds

    def db_id(self, number: int) -> int:
        return self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number)

    def frozen(self, number: int) -> optuna.trial.FrozenTrial:
        return self.storage.get_trial(self.db_id(number))


class CellStudies(Searcher):
    """Ray Tune ``Searcher``: one Optuna study per cell of a ``TuneSpec`` (module docstring)."""

    def __init__(self, spec: TuneSpec, experiment: str) -> None:
        super().__init__(metric=None, mode=None)
        self.spec = spec
        self.experiment = experiment
        self._cells: list[_CellState] | None = None  # built on first use from the binding
        self._live: dict[str, tuple[int, int]] = {}  # Tune trial id -> (cell index, number)

    # ------------------------------------------------------------------ pickling (Tune state)
    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles the searcher with the experiment; the database holds the real state.
        return {"spec": self.spec, "experiment": self.experiment, "_metric": None, "_mode": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._cells = None
        self._live = {}

    def save(self, checkpoint_path: str) -> None:
        """Nothing to save: the Optuna database is the state (written at every event). Tune
        still wants a file: a small JSON object naming the experiment, which the next run's
        state check (``study.experiment.state_problems``) reads as intact."""
        with open(checkpoint_path, "w") as handle:
            json.dump({"experiment": self.experiment}, handle)

    def restore(self, checkpoint_path: str) -> None:
        """Nothing to restore: state is rebuilt from the database (``bind``)."""

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        return True

    # ------------------------------------------------------------------ state from the database
    def _state(self) -> list[_CellState]:
        if self._cells is None:
            binding = _BINDINGS.get(self.experiment)
            if binding is None:
                raise RuntimeError(
                    f"the tuning searcher of {self.experiment!r} has no storage bound; "
                    "study.tune_search.bind() must be called by the driver before fit()"
                )
            self._cells = [self._load(index, binding) for index in range(len(self.spec.cells))]
            self._write_sidecar()
        return self._cells

    def _load(self, index: int, binding: Binding) -> _CellState:
        cell = self.spec.cells[index]
        name = study_name(self.experiment, cell)
        storage = optuna.storages.get_storage(binding.storage)
        existing = _existing_trials(storage, name)
        sampler = _sampler(self.spec.sampler, sampler_seed(self.spec.seed, existing))
        direction: Literal["maximize", "minimize"] = (
            "maximize" if self.spec.direction == "max" else "minimize"
        )
        study = optuna.create_study(
            storage=storage, study_name=name, sampler=sampler, direction=direction,
            load_if_exists=True,
        )
        state = _CellState(cell, study, storage, storage.get_study_id_from_name(name))
        for trial in study.get_trials(deepcopy=False):
            if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
                state.finished += 1
            elif trial.state == TrialState.FAIL:
                if trial.user_attrs.get(OUTCOME) == COUNTED_FAIL:
                    state.finished += 1
                else:
                    state.errors += 1
            elif trial.state == TrialState.RUNNING:
                state.running.add(trial.number)
                if (name, trial.number) not in binding.known:
                    state.orphans.append(trial.number)
        return state

    def finished_counts(self) -> dict[str, int]:
        """Finished samples per cell label, from the database (and the sidecar rewritten)."""
        return {state.cell.label: state.finished for state in self._state()}

    # ------------------------------------------------------------------ Tune hooks
    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:  # type: ignore[override]
        cells = self._state()
        order = sorted(range(len(cells)), key=lambda i: (cells[i].finished + len(cells[i].running), i))
        for index in order:
            state = cells[index]
            if state.orphans:
                number = state.orphans.popleft()
                return self._hand_out(trial_id, index, number)
            budget_left = self.spec.samples - state.finished - len(state.running)
            if budget_left > 0 and state.errors <= self.spec.samples:
                trial = state.study.ask({p.name: distribution(p) for p in self.spec.params})
                state.running.add(trial.number)
                return self._hand_out(trial_id, index, trial.number)
        if all(c.finished >= self.spec.samples or c.errors > self.spec.samples for c in cells):
            return Searcher.FINISHED
        return None  # every free sample is out: wait for one to finish (or error)

    def _hand_out(self, trial_id: str, index: int, number: int) -> dict[str, Any]:
        state = self._state()[index]
        config = self.spec.sample_config(state.cell, state.frozen(number).params).to_dict()
        self._live[trial_id] = (index, number)
        context = {
            "tune_study": state.study.study_name,
            "tune_cell": state.cell.label,
            "tune_sample": number,
            "tune_sampler_seed": self.spec.seed,
            "tune_objective": state.cell.objective_column,
            "tune_epoch": self.spec.epoch,
            "tune_direction": self.spec.direction,
        }
        config.update({f"_{name}": value for name, value in context.items()})
        config[OBJECTIVE_COLUMN] = state.cell.objective_column
        return config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        located = self._locate(trial_id, result)
        if located is None:
            return
        index, number = located
        value, epoch = result.get(OBJECTIVE), result.get("epoch")
        if value is None or epoch is None or not math.isfinite(float(value)):
            return
        state = self._state()[index]
        db_id = state.db_id(number)
        if state.storage.get_trial(db_id).state == TrialState.RUNNING:
            state.storage.set_trial_intermediate_value(db_id, int(epoch), float(value))

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        located = self._locate(trial_id, result or {})
        if located is None:
            return
        index, number = located
        state = self._state()[index]
        self._live.pop(trial_id, None)
        state.running.discard(number)
        if result is not None and not error:
            self.on_trial_result(trial_id, result)  # the last epoch, if not reported yet
        outcome = self._tell(state, number, result, error)
        if outcome == ERROR_FAIL:
            state.errors += 1
        elif outcome is not None:
            state.finished += 1
        if outcome is not None:
            self._write_sidecar()

    # ------------------------------------------------------------------ helpers
    def _locate(self, trial_id: str, result: dict) -> tuple[int, int] | None:
        """(cell index, sample number) of a Tune trial; a restored trial is found by its config."""
        if trial_id in self._live:
            return self._live[trial_id]
        config = result.get("config") or {}
        name, number = config.get("_tune_study"), config.get("_tune_sample")
        for index, state in enumerate(self._state()):
            if state.study.study_name == name and number is not None:
                self._live[trial_id] = (index, int(number))
                return self._live[trial_id]
        return None

    def _tell(self, state: _CellState, number: int, result: dict | None, error: bool) -> str | None:
        """Finish sample ``number``; returns its outcome, None when it was already finished."""
        study, db_id = state.study, state.db_id(number)
        frozen = state.storage.get_trial(db_id)
        if frozen.state != TrialState.RUNNING:
            return None
        if error:
            state.storage.set_trial_user_attr(db_id, OUTCOME, ERROR_FAIL)
            study.tell(number, state=TrialState.FAIL)
            return ERROR_FAIL
        epoch = int((result or {}).get("epoch") or 0)
        done = epoch >= state.cell.config.epochs
        diverged = (result or {}).get("status") == "diverged"
        final = (result or {}).get(OBJECTIVE)
        # per-epoch values in epoch order, then the final report (the final epoch's value, also
        # when it is not finite and so was never stored as an intermediate value)
        values = [frozen.intermediate_values[e] for e in sorted(frozen.intermediate_values)]
        objective = objective_of(
            [*values, None if final is None else float(final)], self.spec.epoch,
            self.spec.direction,
        )
        value = None if math.isnan(objective) else objective
        if not done and not diverged and result is not None:
            study.tell(number, state=TrialState.PRUNED)  # stopped early by the scheduler
            return "pruned"
        if value is None:
            state.storage.set_trial_user_attr(db_id, OUTCOME, COUNTED_FAIL)
            study.tell(number, state=TrialState.FAIL)
            return COUNTED_FAIL
        study.tell(number, value)
        return "complete"

    def _write_sidecar(self) -> None:
        """Rewrite the experiment's ``_tuning.json``: spec, per-cell progress, best sample and,
        once a cell has all its samples, its hyperparameter importances."""
        binding = _BINDINGS[self.experiment]
        cells = self._cells or []
        payload = tuning_payload(self.spec, self.experiment, cells)
        fs, base = store.resolve_location(binding.results_root)
        folder = store.experiment_dir(base, self.experiment)
        fs.create_dir(folder, recursive=True)
        store.write_tuning(fs, folder, payload)


def _existing_trials(storage: optuna.storages.BaseStorage, name: str) -> int:
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:  # no such study yet
        return 0
    return len(storage.get_all_trials(study_id, deepcopy=False))


def _sampler(kind: str, seed: int) -> optuna.samplers.BaseSampler:
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    with warnings.catch_warnings():  # constant_liar is experimental in some optuna versions
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)


def _importance(state: _CellState, spec: TuneSpec) -> tuple[dict[str, float] | None, str | None]:
    """fANOVA importances of the cell's hyperparameters (normalised: they sum to 1), or a note."""
    complete = [t for t in state.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    if state.finished < spec.samples:
        return None, f"computed when all {spec.samples} samples have finished"
    if len(complete) < 2:
        return None, "needs at least 2 complete samples"
    try:
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=spec.seed)
        values = optuna.importance.get_param_importances(state.study, evaluator=evaluator)
    except (RuntimeError, ValueError) as error:
        return None, f"not computable: {error}"
    return {name: float(value) for name, value in values.items()}, None


def tuning_payload(spec: TuneSpec, experiment: str, cells: list[_CellState]) -> dict[str, Any]:
    """The sidecar content (format: docs/results.md, "Tuning experiments")."""
    out_cells: dict[str, Any] = {}
    for state in cells:
        best = None
        complete = state.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if complete:
            pick = max if spec.direction == "max" else min
            trial = pick(complete, key=lambda t: t.value if t.value is not None else -math.inf)
            best = {"sample": trial.number, "value": trial.value, "params": dict(trial.params)}
        importance, note = _importance(state, spec)
        out_cells[state.cell.label] = {
            "study": state.study.study_name,
            "objective_column": state.cell.objective_column,
            "complete": state.finished,
            "best": best,
            "importance": None if importance is None else {"evaluator": "fanova", "values": importance},
            "importance_note": note,
        }
    return {
        "experiment": experiment,
        "spec": spec.path,
        "objective": spec.objective,
        "epoch": spec.epoch,
        "direction": spec.direction,
        "uses_test_split": spec.uses_test_split,
        "sampler": spec.sampler,
        "seed": spec.seed,
        "samples": spec.samples,
        "top_k": spec.top_k,
        "params": {
            p.name: {"choices": list(p.choices)} if p.choices is not None
            else {"low": p.low, "high": p.high, "log": p.log}
            for p in spec.params
        },
        "cells": out_cells,
        "updated_at": dt.datetime.now(dt.UTC).isoformat(),
    }
