"""A private RAY_TMPDIR per test and a way to stop exactly the Ray processes that name it.

Leftover processes of a SIGKILLed driver: its local Ray cluster (gcs_server, raylet, workers,
log monitor, ...) is not in the driver's process group. Each run gets its own short
``RAY_TMPDIR`` (Ray puts its session folder, sockets and logs under it, and every Ray process
names that folder on its command line), so afterwards exactly the processes whose command line
mentions that folder are killed (found through /proc), and nothing else on the machine.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


@pytest.fixture
def ray_tmpdir() -> Iterator[Path]:
    """A short private RAY_TMPDIR (unix socket paths must stay < 108 bytes); on teardown every
    process still naming it is killed, then the folder is removed."""
    path = Path(tempfile.mkdtemp(prefix="rres-", dir="/tmp"))
    try:
        yield path
    finally:
        kill_processes_mentioning(str(path))
        shutil.rmtree(path, ignore_errors=True)


def _pids_mentioning(text: str) -> list[int]:
    """Pids (other than this one) whose command line contains ``text``, read from /proc (psutil
    is only vendored inside Ray, not a dependency of the project)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(int(entry.name))
    return found


def kill_processes_mentioning(text: str, timeout: float = 10) -> list[str]:
    """SIGKILL every process whose command line contains ``text`` and wait until they are gone
    (or are zombies); returns their names."""
    pids = _pids_mentioning(text)
    names = []
    for pid in pids:
        try:
            names.append(Path(f"/proc/{pid}/comm").read_text().strip())
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.1)
    return names


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def subprocess_env(ray_tmpdir: Path) -> dict[str, str]:
    """The environment for a ``study`` command in a subprocess: this checkout importable first,
    and Ray's files under the test's own ``ray_tmpdir``."""
    env = dict(os.environ)
    env["RAY_TMPDIR"] = str(ray_tmpdir)
    repo = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [repo, env.get("PYTHONPATH")]))
    return env


def kill_driver_when(
    command: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    ray_tmpdir: Path,
    ready: Callable[[], bool],
    timeout: float,
    poll: float,
) -> list[str]:
    """Start ``command`` (a ``study`` driver) in its own process group, SIGKILL the group once
    ``ready()`` holds (asserting the driver was still running then), and stop the Ray processes
    it left behind (they are not in its group), as a user would after a crash; returns their
    names."""
    driver = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and driver.poll() is None and not ready():
            time.sleep(poll)
        assert driver.poll() is None, "the run ended before it could be killed; make it longer"
        assert ready(), f"not ready to kill within {timeout} s"
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait(timeout=30)
    return kill_processes_mentioning(str(ray_tmpdir))
