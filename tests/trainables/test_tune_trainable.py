"""The Ray Tune function trainable on a real local Ray cluster."""

from __future__ import annotations

from pathlib import Path

from ray import tune

from trainables import records as R
from trainables.config import SearchConfig
from trainables.search import Search, run_search
from trainables.tune_trainable import FAIL_ONCE_AT_EPOCH, search_trainable

BASE = SearchConfig(
    dataset="synthetic", channels=4, depth=1, batch_size=16, steps_per_epoch=2, probe_every=0
)


class _EpochsSeen(tune.Callback):
    """The epoch of every result the driver receives, in order (what the Parquet writer sees)."""

    def __init__(self) -> None:
        self.epochs: list[int] = []

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        self.epochs.append(result[R.EPOCH])


def _tuner(
    tmp_path, param_space: dict, name: str, max_failures: int = 0, callbacks: tuple = ()
) -> tune.Tuner:
    return tune.Tuner(
        tune.with_resources(search_trainable, {"cpu": 1}),
        param_space=param_space,
        run_config=tune.RunConfig(
            storage_path=str(tmp_path),
            name=name,
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=max_failures),
            callbacks=list(callbacks),
        ),
    )


def test_each_epoch_is_reported_with_a_checkpoint(ray_local, tmp_path) -> None:
    space = {**BASE.replace(epochs=2).to_dict(), "level": tune.grid_search(["single", "bi"])}
    results = _tuner(tmp_path, space, "report").fit()
    assert not results.errors
    assert len(results) == 2
    for result in results:
        history = result.metrics_dataframe
        assert history[R.EPOCH].tolist() == [1, 2]
        assert (history[R.STATUS] == R.STATUS_OK).all()
        assert result.checkpoint is not None
        search = Search(SearchConfig.from_dict(result.config))
        with result.checkpoint.as_directory() as directory:
            search.restore(directory)
        assert search.epoch == 2 and search.done


def test_crashed_trial_resumes_from_its_checkpoint_with_identical_results(
    ray_local, tmp_path
) -> None:
    config = BASE.replace(level="bi", epochs=3)
    undisturbed = list(run_search(config))
    space = {**config.to_dict(), FAIL_ONCE_AT_EPOCH: 1}
    seen = _EpochsSeen()
    results = _tuner(tmp_path, space, "fault", max_failures=2, callbacks=(seen,)).fit()
    assert not results.errors
    (result,) = results
    # The first attempt did crash (Tune keeps its error) and the retry resumed after epoch 1:
    # the driver received every epoch once. (Not Tune's result.json: Ray 2.60 copies the
    # storage copy of that file over the driver's on a retry, and when the copy had not been
    # synced yet, epoch 1's line is lost; seen here, timing-dependent.)
    assert "test fault injected after epoch 1" in (Path(result.path) / "error.txt").read_text()
    assert seen.epochs == [1, 2, 3]
    final = result.metrics
    assert final[R.EPOCH] == 3
    expected = undisturbed[-1]
    for name in (R.TRAIN_LOSS, R.VALID_LOSS, R.GENOTYPE, R.ALPHA["normal"], R.STEPS):
        assert final[name] == expected[name], name
    assert FAIL_ONCE_AT_EPOCH not in final  # test-only key never reaches a record


def test_a_trial_without_its_grid_entry_fails_instead_of_running_a_default_search(
    ray_local, tmp_path
) -> None:
    """Tune restoring a damaged experiment state may start a trial with an empty config; the
    trainable must refuse it (a default SearchConfig is valid and would run a full search)."""
    results = _tuner(tmp_path, {"_grid_index": 0}, "empty").fit()
    assert len(results.errors) == 1
    message = str(results.errors[0])
    assert "trial config lacks SearchConfig field(s)" in message and "'space'" in message


def test_trainable_rejects_an_invalid_config_before_training(ray_local, tmp_path) -> None:
    space = {**BASE.to_dict(), "w_lr": -1.0}
    results = _tuner(tmp_path, space, "bad").fit()
    assert len(results.errors) == 1
    assert "w_lr=-1.0 must be > 0" in str(results.errors[0])


def test_diverged_search_ends_as_a_finished_trial(ray_local, tmp_path) -> None:
    config = BASE.replace(w_lr=1e12, w_lr_min=0.0, grad_clip=0.0, epochs=5, steps_per_epoch=4)
    results = _tuner(tmp_path, config.to_dict(), "diverged").fit()
    assert not results.errors  # a diverged search is a result, not a crash
    (result,) = results
    assert result.metrics[R.STATUS] == R.STATUS_DIVERGED
    assert result.metrics[R.EPOCH] < config.epochs
