"""The Ray Tune function trainable of an evaluation: one trial = one genotype trained from scratch.

The trial's config is a flat ``EvalConfig`` dict (``EvalConfig.to_dict()``, plus bookkeeping
keys starting with ``_``). Like the search trainable (``trainables.tune_trainable``) it picks its
device from what Ray gave it, sizes torch's threads to the trial's CPUs, resumes from the newest
intact checkpoint when Tune restarts the trial, and reports every epoch's record
(``trainables.records.EVAL_FIELDS``) with a checkpoint. With ``workers`` > 1 the trial trains
with that many data-parallel processes (``trainables.data_parallel``); this process is rank 0
and alone reports. The test-only fault keys of the search trainable work here too.
"""

from __future__ import annotations

from typing import Any

import torch
from ray import tune

from trainables.config import config_from_trial
from trainables.data_parallel import run_data_parallel
from trainables.eval_config import EvalConfig
from trainables.evaluation import Evaluation
from trainables.tune_trainable import (
    inject_faults,
    report_with_checkpoint,
    restore_intact,
    search_fields,
    trial_device,
    trial_threads,
)


def evaluation_trainable(config: dict[str, Any]) -> None:
    """Run the evaluation described by ``config`` inside a Tune trial."""
    eval_config = config_from_trial(search_fields(config), EvalConfig)
    checkpoint = tune.get_checkpoint()
    fresh_start = checkpoint is None

    def restore(evaluation: Evaluation) -> None:
        if checkpoint is not None:
            restore_intact(evaluation, checkpoint)

    def report(record: dict[str, Any], evaluation: Evaluation, state: dict[str, Any]) -> None:
        report_with_checkpoint(record, lambda folder: evaluation.save(folder, state), evaluation.epoch)
        inject_faults(config, evaluation.epoch, fresh_start)

    device = trial_device()
    if eval_config.workers > 1:
        run_data_parallel(
            eval_config,
            use_cuda=device.type == "cuda",
            threads=trial_threads(),
            report=report,
            restore=restore,
        )
        return
    torch.set_num_threads(trial_threads())
    evaluation = Evaluation(eval_config, device)
    restore(evaluation)
    while not evaluation.done:
        record = evaluation.run_epoch()
        report(record, evaluation, evaluation.state_dict())
