"""Cluster hygiene of a local run: Ray on the loopback address only, Ray's token file readable
by its owner only, and the console settings of a quiet run undone afterwards. Pure: no Ray
cluster starts here (the real run in ``test_progress.py`` checks a trial's node address and the
token file a new cluster wrote)."""

from __future__ import annotations

import logging
import os
import stat

import pytest
import ray
from ray._private import ray_constants, services

from study.runner import (
    LOOPBACK,
    QUIET_LOGGERS,
    QUIET_TUNE_ENV,
    RunOptions,
    _environment,
    _levels,
    _loopback_node,
    ray_init_kwargs,
    ray_output_kwargs,
    tighten_token_file,
)


def test_a_local_cluster_is_asked_for_the_loopback_address_and_a_joined_one_is_not() -> None:
    local = ray_init_kwargs(RunOptions())
    assert local["address"] == "local" and local["_node_ip_address"] == LOOPBACK == "127.0.0.1"
    assert ray_init_kwargs(RunOptions(address="10.0.0.1:6379")) == {"address": "10.0.0.1:6379"}


def test_ray_keeps_the_loopback_address_only_inside_the_switch() -> None:
    """``ray.init`` turns 127.0.0.1 into the machine's network address unless Ray's
    single-machine switch is off; the switch is Ray's private constant, so this also notices a
    Ray upgrade that drops it."""
    default = ray_constants.ENABLE_RAY_CLUSTER  # True on Linux
    with _loopback_node(local=True):
        assert ray_constants.ENABLE_RAY_CLUSTER is False
        if not ray.is_initialized():  # else Ray answers with the running node's address
            assert services.resolve_ip_for_localhost(LOOPBACK) == LOOPBACK
    assert ray_constants.ENABLE_RAY_CLUSTER is default
    with _loopback_node(local=False):  # joining a cluster: its addresses are not ours to pick
        assert ray_constants.ENABLE_RAY_CLUSTER is default
    with pytest.raises(RuntimeError), _loopback_node(local=True):
        raise RuntimeError("ray.init failed")
    assert ray_constants.ENABLE_RAY_CLUSTER is default


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def _token(home, mode: int):
    path = home / ".ray" / "auth_token"
    path.parent.mkdir(exist_ok=True)
    path.write_text("0123456789abcdef")
    path.chmod(mode)
    return path


def test_a_world_readable_token_file_becomes_owner_only(home) -> None:
    token = _token(home, 0o644)
    assert tighten_token_file() == token
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    assert token.read_text() == "0123456789abcdef"
    assert tighten_token_file() is None  # already private: nothing to do


def test_token_files_left_alone(home) -> None:
    assert tighten_token_file() is None  # none there
    token = _token(home, 0o400)  # already stricter than 0600
    assert tighten_token_file() is None and stat.S_IMODE(token.stat().st_mode) == 0o400
    token.unlink()
    token.mkdir()  # not a file
    assert tighten_token_file() is None


def test_another_users_token_file_is_left_alone(home, monkeypatch) -> None:
    token = _token(home, 0o644)
    monkeypatch.setattr(os, "getuid", lambda: token.stat().st_uid + 1)
    assert tighten_token_file() is None
    assert stat.S_IMODE(token.stat().st_mode) == 0o644


def test_a_quiet_run_changes_the_console_settings_only_while_it_runs(monkeypatch) -> None:
    monkeypatch.setenv("RAY_AIR_NEW_OUTPUT", "1")
    monkeypatch.delenv("TUNE_PRINT_ALL_TRIAL_ERRORS", raising=False)
    name = next(iter(QUIET_LOGGERS))
    logging.getLogger(name).setLevel(logging.NOTSET)
    with _environment(QUIET_TUNE_ENV), _levels(QUIET_LOGGERS):
        assert os.environ["RAY_AIR_NEW_OUTPUT"] == "0"
        assert os.environ["TUNE_PRINT_ALL_TRIAL_ERRORS"] == "0"
        assert logging.getLogger(name).level == logging.ERROR
    assert os.environ["RAY_AIR_NEW_OUTPUT"] == "1"
    assert "TUNE_PRINT_ALL_TRIAL_ERRORS" not in os.environ
    assert logging.getLogger(name).level == logging.NOTSET


def test_worker_logs_and_rays_info_logs_only_when_verbose() -> None:
    assert ray_output_kwargs(RunOptions()) == {
        "log_to_driver": False, "logging_level": logging.WARNING
    }
    assert ray_output_kwargs(RunOptions(verbose=True)) == {
        "log_to_driver": True, "logging_level": logging.INFO
    }
