"""A full disk, and the damaged checkpoints it leaves behind.

* A trial whose latest checkpoint is corrupt resumes from the previous intact one (or afresh),
  on a real local Ray cluster, and ends with the records of an undisturbed run.
* The results writer meeting a full disk keeps its rows and stops the run with a clear error;
  rerunning resumes every trial and the dataset ends with every epoch exactly once.
* ``storage_failure_message`` turns what escapes ``Tuner.fit()`` into the user's message.
* (slow, root only) a real full disk: a small tmpfs.
"""

from __future__ import annotations

import errno
import math
import os
import pickle
from collections import namedtuple
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from ray import tune

import analysis.store
import study.results
from analysis.results import load_results
from study.results import (
    ParquetResultsWriter,
    ResultsDiskFull,
    storage_failure_message,
)
from trainables import records as R
from trainables.checkpoints import CheckpointDiskFull
from trainables.config import SearchConfig
from trainables.search import CHECKPOINT_FILE, Search, run_search
from trainables.tune_trainable import (
    FAIL_ONCE_AT_EPOCH,
    earlier_checkpoints,
    restore_intact,
    search_trainable,
)

BASE = SearchConfig(
    dataset="synthetic", channels=4, depth=1, batch_size=16, steps_per_epoch=2, probe_every=0
)
CORRUPT = "_test_label"  # a trial label for the test callbacks (a "_" key: no SearchConfig field)


def _comparable(record: dict[str, Any]) -> dict[str, Any]:
    """The record fields without wall-clock timing, NaN made comparable."""
    return {
        name: ("nan" if isinstance(v, float) and math.isnan(v) else v)
        for name in R.RECORD_FIELDS
        if name not in R.TIMING_FIELDS
        for v in [record[name]]
    }


def _truncate(folder: str) -> None:
    path = Path(folder) / CHECKPOINT_FILE
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


class _Recorder(tune.Callback):
    """Per trial: the epochs the driver receives, in order; and the trials started."""

    def __init__(self) -> None:
        self.epochs: dict[str, list[int]] = {}
        self.started: list[str] = []

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self.started.append(trial.trial_id)

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        self.epochs.setdefault(trial.config[CORRUPT], []).append(result[R.EPOCH])


class _CutShortBeforeRetry(tune.Callback):
    """When a trial is about to be retried, cut the checkpoint that Tune will hand back short,
    as a full disk would."""

    def __init__(self) -> None:
        self.cut: list[str] = []

    def on_trial_recover(self, iteration, trials, trial, **info) -> None:
        _truncate(trial.checkpoint.path)
        self.cut.append(Path(trial.checkpoint.path).name)


# ---------------------------------------------------------------------- corrupt checkpoints
@pytest.mark.slow
def test_a_retried_trial_resumes_from_its_last_intact_checkpoint(ray_local, tmp_path) -> None:
    """A trial crashes once after epoch 2; before the retry, its newest checkpoint is cut short.
    The retry resumes after epoch 1 (the previous checkpoint) and the trial ends with the
    records of an undisturbed run. (Before checkpoints were verified, every retry failed on
    the cut-short file: "checkpoint file is corrupted".)"""
    config = BASE.replace(epochs=3)
    undisturbed = _comparable(list(run_search(config))[-1])
    recorder, cutter = _Recorder(), _CutShortBeforeRetry()
    space = {**config.to_dict(), FAIL_ONCE_AT_EPOCH: 2, CORRUPT: "newest"}
    results = tune.Tuner(
        tune.with_resources(search_trainable, {"cpu": 1}),
        param_space=space,
        run_config=tune.RunConfig(
            storage_path=str(tmp_path),
            name="corrupt",
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=1),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            callbacks=[recorder, cutter],
        ),
    ).fit()

    assert not results.errors, results.errors
    assert cutter.cut == ["checkpoint_000001"]
    assert recorder.epochs == {"newest": [1, 2, 2, 3]}  # resumed after epoch 1
    (result,) = results
    assert _comparable(result.metrics) == undisturbed


def _checkpoints(folder: Path, epochs: int) -> list[Path]:
    """A trial folder as Tune leaves it: ``checkpoint_00000k`` holds the search after epoch
    k + 1; returns them oldest first."""
    search = Search(BASE.replace(epochs=epochs))
    folders = []
    for index in range(epochs):
        search.run_epoch()
        folders.append(folder / f"checkpoint_{index:06d}")
        search.save(folders[-1])
    return folders


def test_restore_falls_back_to_the_newest_intact_earlier_checkpoint(tmp_path, caplog) -> None:
    folders = _checkpoints(tmp_path / "trial", 3)
    _truncate(str(folders[2]))
    (folders[1] / CHECKPOINT_FILE).unlink()
    (tmp_path / "trial" / "checkpoint_tmp_x").mkdir()  # not a checkpoint name: ignored
    search = Search(BASE.replace(epochs=3))
    with caplog.at_level("WARNING", logger="trainables.tune_trainable"):
        used = restore_intact(search, tune.Checkpoint(str(folders[2])))
    assert used is not None and used.path == str(folders[0])
    assert search.epoch == 1
    (warning,) = caplog.records
    assert "checkpoint not usable" in warning.getMessage()
    assert f"resuming from the earlier checkpoint {folders[0]} (after epoch 1)" in (
        warning.getMessage()
    )
    assert "checkpoint_000002" in warning.getMessage()
    assert "checkpoint_000001" in warning.getMessage()


def test_restore_starts_afresh_when_no_checkpoint_is_intact(tmp_path, caplog) -> None:
    folders = _checkpoints(tmp_path / "trial", 2)
    for folder in folders:
        _truncate(str(folder))
    search = Search(BASE.replace(epochs=2))
    with caplog.at_level("WARNING", logger="trainables.tune_trainable"):
        assert restore_intact(search, tune.Checkpoint(str(folders[1]))) is None
    assert search.epoch == 0
    (warning,) = caplog.records
    assert "no intact checkpoint" in warning.getMessage()
    assert "starting the search afresh" in warning.getMessage()


def test_an_intact_checkpoint_is_used_without_a_warning(tmp_path, caplog) -> None:
    folders = _checkpoints(tmp_path / "trial", 2)
    search = Search(BASE.replace(epochs=2))
    with caplog.at_level("WARNING", logger="trainables.tune_trainable"):
        used = restore_intact(search, tune.Checkpoint(str(folders[1])))
    assert used is not None and used.path == str(folders[1]) and search.epoch == 2
    assert not caplog.records


def test_earlier_checkpoints_are_found_through_the_checkpoint_filesystem(tmp_path) -> None:
    """Not the local disk's paths: a filesystem rooted elsewhere (as an object store is), whose
    checkpoint paths mean nothing locally."""
    import pyarrow.fs as pafs

    folders = _checkpoints(tmp_path / "bucket" / "trial", 3)
    _truncate(str(folders[2]))
    remote = pafs.SubTreeFileSystem(str(tmp_path / "bucket"), pafs.LocalFileSystem())
    newest = tune.Checkpoint("trial/checkpoint_000002", filesystem=remote)
    assert [c.path for c in earlier_checkpoints(newest)] == [
        "trial/checkpoint_000001",
        "trial/checkpoint_000000",
    ]
    search = Search(BASE.replace(epochs=3))
    used = restore_intact(search, newest)
    assert used is not None and used.path == "trial/checkpoint_000001" and search.epoch == 2


# ---------------------------------------------------------------------- the results writer
def _trial(trial_id: str = "t1") -> SimpleNamespace:
    return SimpleNamespace(trial_id=trial_id, num_failures=0, config=BASE.to_dict())


def _record(epoch: int) -> dict[str, Any]:
    return {name: None for name in R.RECORD_FIELDS} | {R.EPOCH: epoch}


class _FullAfter:
    """Stands in for ``analysis.store.atomic_write``: part files fail as on a full disk after
    ``parts`` of them were written (until ``full`` is set to False)."""

    def __init__(self, parts: int) -> None:
        self.parts, self.full, self.failed = parts, True, 0
        self.real = analysis.store.atomic_write

    def __call__(self, fs, path, write) -> None:
        if path.endswith(".parquet") and self.full:
            if self.parts <= 0:
                self.failed += 1
                raise OSError(
                    errno.ENOSPC,
                    "Error writing bytes to file. Detail: [errno 28] No space left on device",
                )
            self.parts -= 1
        self.real(fs, path, write)


def test_writer_keeps_its_rows_and_raises_from_its_hooks_on_a_full_disk(
    tmp_path, monkeypatch
) -> None:
    full = _FullAfter(parts=1)
    monkeypatch.setattr(analysis.store, "atomic_write", full)
    writer = ParquetResultsWriter(tmp_path, "exp")
    writer.setup()
    trial = _trial()
    writer.on_trial_result(0, [], trial, _record(1))
    writer.on_checkpoint(0, [], trial, None)  # written
    writer.on_trial_result(0, [], trial, _record(2))
    with pytest.raises(ResultsDiskFull) as caught:
        writer.on_checkpoint(0, [], trial, None)
    error = caught.value
    assert error.errno == errno.ENOSPC
    assert error.filename.startswith(f"{tmp_path}/experiment=exp/part-")
    assert "the disk is full: could not write the results file" in str(error)
    assert writer.storage_error is not None and len(writer._buffer) == 1
    for hook in (writer.on_step_begin, writer.on_step_end):
        with pytest.raises(ResultsDiskFull):
            hook(0, [])
    with pytest.raises(ResultsDiskFull):  # still buffered: nothing is dropped
        writer.on_trial_result(0, [], trial, _record(3))
    with pytest.raises(ResultsDiskFull):
        writer.on_trial_complete(0, [], trial)
    assert [row[R.EPOCH] for row in writer._buffer] == [2, 3]
    writer.on_experiment_end([])  # Tune shutting down after the raise: no second raise
    assert load_results(tmp_path, experiments=["exp"])[R.EPOCH].tolist() == [1]
    # a restored writer (Tuner.restore unpickles it) starts without the error
    assert pickle.loads(pickle.dumps(writer)).storage_error is None
    # once there is space again, the kept rows are written
    full.full = False
    assert writer.flush() is not None
    assert load_results(tmp_path, experiments=["exp"])[R.EPOCH].tolist() == [1, 2, 3]


def test_other_write_errors_do_not_stop_the_run(tmp_path, monkeypatch) -> None:
    def fail(fs, path, write):
        raise OSError(errno.EACCES, "Permission denied")

    writer = ParquetResultsWriter(tmp_path, "exp")
    writer.setup()
    monkeypatch.setattr(analysis.store, "atomic_write", fail)
    writer.on_trial_result(0, [], _trial(), _record(1))
    writer.on_checkpoint(0, [], _trial(), None)  # logged, rows kept, no raise
    writer.on_step_end(0, [])
    assert writer.storage_error is None and len(writer._buffer) == 1


def test_a_full_results_disk_stops_the_run_and_a_rerun_completes_it(
    ray_local, tmp_path, monkeypatch
) -> None:
    """Two trials, one at a time; the disk fills when the second part file is written (epoch 2
    of the first trial). ``fit()`` ends with the writer's error, the second trial never
    started, the message says what to do; rerunning (``Tuner.restore``) with space again ends
    with every epoch of every trial in the dataset exactly once."""
    root, storage = tmp_path / "parquet", tmp_path / "tune"
    full = _FullAfter(parts=1)
    monkeypatch.setattr(analysis.store, "atomic_write", full)
    writer, recorder = ParquetResultsWriter(root, "full"), _Recorder()
    space = {**BASE.replace(epochs=2).to_dict(), CORRUPT: tune.grid_search(["a", "b"])}
    tuner = tune.Tuner(
        tune.with_resources(search_trainable, {"cpu": 1}),
        param_space=space,
        tune_config=tune.TuneConfig(max_concurrent_trials=1),
        run_config=tune.RunConfig(
            storage_path=str(storage),
            name="full",
            verbose=0,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            callbacks=[writer, recorder],
        ),
    )
    with pytest.raises(ResultsDiskFull) as caught:
        tuner.fit()
    message = storage_failure_message(caught.value, [root, storage])
    assert message is not None
    assert f"could not write the results file {root}/experiment=full/part-" in message
    assert "disk is full" in message
    assert "Every result row written so far is kept" in message
    assert "run the same command again" in message
    assert "the others resume from their last intact checkpoint" in message
    assert len(recorder.started) == 1, "a trial was started after the disk was full"
    assert recorder.epochs == {"a": [1, 2]}
    assert writer.storage_error is not None and [r[R.EPOCH] for r in writer._buffer] == [2]
    assert load_results(root, experiments=["full"])[R.EPOCH].tolist() == [1]

    full.full = False  # space freed
    rerun = tune.Tuner.restore(
        str(storage / "full"),
        tune.with_resources(search_trainable, {"cpu": 1}),
        resume_errored=True,
    )
    assert not rerun.fit().errors
    frame = load_results(root, experiments=["full"])
    assert frame.groupby("trial_id")[R.EPOCH].apply(sorted).tolist() == [[1, 2], [1, 2]]
    assert full.failed >= 1


# ---------------------------------------------------------------------- the message
def test_the_message_names_the_file_and_says_how_to_go_on() -> None:
    error = OSError(errno.ENOSPC, "No space left on device", "/data/res/tune/x/state.json")
    message = storage_failure_message(error, ["/data/res"])
    assert message is not None
    assert message.startswith(
        "The disk is full: could not write /data/res/tune/x/state.json (No space left on device)."
    )
    assert "Every result row written so far is kept." in message
    assert "free space on that disk, then run the same command again" in message
    assert "finished trials are not rerun" in message
    quota = storage_failure_message(OSError(errno.EDQUOT, "Disk quota exceeded"), ["/data/res"])
    assert quota is not None and "could not write /data/res (Disk quota exceeded)" in quota


def test_the_message_finds_the_disk_error_inside_tune_and_ray_errors() -> None:
    from ray.exceptions import RayTaskError
    from ray.tune.error import TuneError

    try:  # what Tune raises when a callback raised inside its event handling
        try:
            raise ResultsDiskFull(errno.ENOSPC, "the disk is full: could not write X", "X")
        except ResultsDiskFull:
            raise TuneError("Traceback ...")  # noqa: B904 (Tune chains it implicitly)
    except TuneError as error:
        by_tune = error
    message = storage_failure_message(by_tune, ["/r"])
    assert message is not None and message.startswith("The disk is full: could not write X.")

    cause = CheckpointDiskFull(errno.ENOSPC, "the disk is full: could not write into /t/c", "/t/c")
    task_error = RayTaskError("search_trainable", "Traceback ...", cause)
    for error in (task_error, task_error.as_instanceof_cause()):
        message = storage_failure_message(error, ["/r"])
        assert message is not None and "could not write into /t/c" in message

    assert storage_failure_message(RuntimeError("unrelated"), ["/r"]) is None
    assert storage_failure_message(OSError(errno.EACCES, "Permission denied"), ["/r"]) is None


def test_the_message_says_to_restart_when_tune_state_was_cut_short(tmp_path) -> None:
    experiment = tmp_path / "tune" / "exp"
    experiment.mkdir(parents=True)
    (experiment / "experiment_state-2026-01-01_00-00-00.json").write_text('{"trial_data": [')
    error = OSError(errno.ENOSPC, "No space left on device")
    message = storage_failure_message(error, [tmp_path / "parquet", experiment])
    assert message is not None
    assert "cut short Ray Tune's saved state of the run" in message
    assert str(experiment / "experiment_state-2026-01-01_00-00-00.json") in message
    assert "run the same command again with --restart" in message
    (experiment / "experiment_state-2026-01-02_00-00-00.json").write_text('{"trial_data": []}')
    message = storage_failure_message(error, [tmp_path / "parquet", experiment])
    assert message is not None and "--restart" not in message  # the newest one is intact


def test_ray_failing_to_read_its_own_files_counts_only_on_a_nearly_full_disk(
    tmp_path, monkeypatch
) -> None:
    """An empty error.pkl (``EOFError``) or a cut-short pickle is what a full disk leaves; it is
    reported as a full disk only when a results location has (almost) no space left."""
    usage = namedtuple("usage", "total used free")
    free = {"bytes": 10 * 2**30}
    monkeypatch.setattr(
        study.results.shutil, "disk_usage", lambda path: usage(2**40, 2**40, free["bytes"])
    )
    eof = EOFError("Ran out of input")
    assert storage_failure_message(eof, [tmp_path]) is None
    free["bytes"] = 1024
    message = storage_failure_message(eof, [tmp_path / "not" / "there", "s3://bucket/x"])
    assert message is not None
    assert message.startswith(f"The disk holding {tmp_path}/not/there is full (0.0 MiB free)")
    assert "EOFError: Ran out of input" in message
    truncated = pickle.UnpicklingError("pickle data was truncated")
    assert storage_failure_message(truncated, [tmp_path]) is not None
    assert storage_failure_message(eof, ["s3://bucket/x"]) is None  # no local disk to check


# ---------------------------------------------------------------------- a real full disk
@pytest.fixture
def small_disk(small_tmpfs) -> Path:
    """A 4 MiB tmpfs (``small_tmpfs``; skipped where it cannot be mounted)."""
    return small_tmpfs(4)


def _fill(folder: Path, leave: int) -> Path:
    """A ballast file leaving about ``leave`` bytes free on ``folder``'s disk."""
    stats = os.statvfs(folder)
    ballast = folder / "ballast"
    ballast.write_bytes(b"\0" * max(0, stats.f_bavail * stats.f_frsize - leave))
    return ballast


def _tuner(storage: Path, root: Path, epochs: int, max_failures: int = 0) -> tune.Tuner:
    space = {**BASE.replace(epochs=epochs).to_dict(), "seed": tune.grid_search([0, 1])}
    return tune.Tuner(
        tune.with_resources(search_trainable, {"cpu": 1}),
        param_space=space,
        run_config=tune.RunConfig(
            storage_path=str(storage),
            name="tiny",
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            callbacks=[ParquetResultsWriter(root, "tiny")],
        ),
    )


def _rerun(storage: Path) -> None:
    trainable = tune.with_resources(search_trainable, {"cpu": 1})
    rerun = tune.Tuner.restore(str(storage / "tiny"), trainable, resume_errored=True).fit()
    assert not rerun.errors, rerun.errors


def _every_epoch_once(root: Path, epochs: int) -> None:
    frame = load_results(root, experiments=["tiny"])
    expected = list(range(1, epochs + 1))
    assert frame.groupby("trial_id")[R.EPOCH].apply(sorted).tolist() == [expected, expected]


@pytest.mark.slow
def test_a_really_full_results_disk_stops_the_run_and_a_rerun_completes_it(
    ray_local, tmp_path, small_disk
) -> None:
    """The Parquet rows on a small tmpfs that fills up mid-run (Tune's storage elsewhere): the
    writer meets a real ENOSPC, ``fit()`` ends with its error; after space is freed, rerunning
    completes every trial with every epoch exactly once."""
    root, storage, epochs = small_disk / "parquet", tmp_path / "tune", 8
    ballast = _fill(small_disk, leave=150 * 2**10)
    with pytest.raises(ResultsDiskFull) as caught:
        _tuner(storage, root, epochs).fit()
    message = storage_failure_message(caught.value, [root, storage / "tiny"])
    print(message)
    assert message is not None and message.startswith(
        f"The disk is full: could not write the results file {root}/experiment=tiny/part-"
    )
    assert "No space left on device" in message and "run the same command again:" in message
    ballast.unlink()
    _rerun(storage)
    _every_epoch_once(root, epochs)


@pytest.mark.slow
def test_a_really_full_disk_under_everything_ends_with_a_disk_full_message(
    ray_local, small_disk
) -> None:
    """Tune's storage (checkpoints, its state) and the Parquet rows on one small tmpfs that
    fills up mid-run. Where the disk fills first varies (a trial's checkpoint, the writer,
    Tune's own files, which can leave an empty ``error.pkl`` that Ray then fails to read); the
    run always ends with a full-disk message. After freeing space the rerun completes the
    trials when Tune's saved state survived; when it did not, the message says to rerun with
    ``--restart``."""
    root, storage, epochs = small_disk / "parquet", small_disk / "tune", 6
    ballast = _fill(small_disk, leave=600 * 2**10)
    messages = []
    try:
        results = _tuner(storage, root, epochs, max_failures=1).fit()
    except Exception as error:  # what the driver catches around fit()
        messages.append(storage_failure_message(error, [root, storage / "tiny"]))
    else:
        messages += [storage_failure_message(e, [root, storage / "tiny"]) for e in results.errors]
    print("\n".join(map(str, messages)))
    assert messages and all(m is not None and "disk" in m for m in messages), messages
    ballast.unlink()
    if any("--restart" in str(m) for m in messages):
        return  # Tune's state was cut short: a plain rerun cannot resume (the message says so)
    _rerun(storage)
    _every_epoch_once(root, epochs)
