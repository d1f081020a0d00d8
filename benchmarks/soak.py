"""Soak: exactly-once results of a `study run` while its trial workers are SIGKILLed at random.

Writes a TOML grid of ``--trials`` tiny searches (``level`` × ``activation`` × seeds on the
``synthetic`` data, a 4-channel one-cell NB201 supernet, 2 steps per epoch, ``--epochs`` epochs:
seconds per trial on a CPU) into the work folder W, then runs::

    python -m study.cli run W/grid.toml --results W/res --name soak --max-failures K

in a subprocess with its own short ``RAY_TMPDIR`` (unix socket paths must stay < 108 bytes), so
that exactly this run's processes can be found through /proc. While it runs, a killer thread
waits a random interval (exponential, mean ``--kill-every`` seconds, from a ``random.Random``
seeded with ``--seed``), then SIGKILLs one trial worker of the run, picked at random:

- the run's raylets are the processes whose command line names the run's ``RAY_TMPDIR``
  (every Ray system process does) and whose name is ``raylet``;
- Ray's worker processes are the raylet's children; a worker retitles itself (its
  /proc/PID/cmdline) after the task it runs: ``ray::IDLE``, ``ray::ImplicitFunc.__init__``,
  ``ray::ImplicitFunc.train`` (a Tune function trial running its search), ``ray::ImplicitFunc``
  (between calls). Only ``ray::ImplicitFunc.train`` workers are killed; never the driver,
  the raylet, the GCS or Ray's agents. When no trial runs at the end of an interval, nothing
  is killed (waiting for the next trial instead would kill every restarted trial as soon as it
  starts, before it reaches a checkpoint, until it runs out of retries). A kill counts as a
  fault when the process was alive when it was sent.

Tune retries a killed trial from its last checkpoint, up to ``--max-failures`` times; its rows
after the restart carry a higher ``attempt``. An epoch reported after the last checkpoint Tune
kept would be reported again; the trainable reports every epoch together with its checkpoint,
so such re-reports are rare (none in the runs below). After the run the script reads

- the rows, de-duplicated: ``load_results(W/res/parquet, experiments=["soak"], alphas=False)``;
- every raw row of every part file (pyarrow), re-reports included;
- Tune's last saved experiment state (each trial's status and failure count);

and reports, matching rows by their config (level, activation, seed) rather than by trial id:
rows expected (trials × epochs), rows after de-duplication, rows lost (expected (config, epoch)
pairs missing), rows duplicated (pairs present more than once after de-duplication: must be 0),
unexpected rows, raw rows, retried trials (rows with attempt > 0) and the faults injected. The
search is deterministic on CPU (records are bit-identical across reruns except the timing fields
``trainables.records.TIMING_FIELDS``), so every re-reported (config, epoch) must carry the same
non-timing record values in all its raw rows; ``--reference`` first runs the same grid
undisturbed (into W/ref) and compares every non-timing record column (α lists included) of every
(config, epoch) of the two runs, the final records among them.

A short summary is printed and every figure is written as JSON (``--out``, default W/soak.json;
with the default temporary W and no ``--out``, the JSON is printed instead, since W is removed
after a passing soak; a failing soak keeps W and prints its path). Exit status 1 when a row was
lost, duplicated or unexpected, a value mismatched, the driver did not exit 0, or no fault was
injected (unless ``--kill-every 0``, a run without faults).

    python benchmarks/soak.py --trials 12 --kill-every 5      # small check
    python benchmarks/soak.py --reference --work /tmp/soak    # 100 trials, 3 epochs, a kill / 8 s

On this project's 2-core machine, shared with other work (load average 6-8), the small check
with ``--reference`` took 8.5 minutes: the undisturbed run 220 s, the soak 289 s with 20 kills
(tiny trials: 3.4 s of search each, about 14 s of wall time per trial with two running at once,
plus about 45 s to start Ray).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

from machine import cpu_model  # noqa: E402  (benchmarks/machine.py)

from analysis.results import load_results  # noqa: E402
from analysis.store import PART_PREFIX, PART_SUFFIX  # noqa: E402
from trainables import records as R  # noqa: E402

EXPERIMENT = "soak"
LEVELS = ("single", "bi")
ACTIVATIONS = ("softmax", "sigmoid")
CONFIG = ("level", "activation", "seed")  # the grid axes: one trial per distinct triple
TRIAL_TITLE = "ray::ImplicitFunc.train"  # a Ray worker running a Tune function trial's search
COMPARED = tuple(  # record columns that identical searches reproduce bit for bit on CPU
    c for c in R.RECORD_FIELDS if c not in R.TIMING_FIELDS and c != R.EPOCH
)
SUMMARY_LINE = re.compile(rf"^{EXPERIMENT}: (\d+) trials with results, (\d+) errored", re.M)


# ---------------------------------------------------------------------- the grid
def grid_toml(seeds: int, epochs: int) -> str:
    """The tiny grid (the study tests' trial size): len(LEVELS) × len(ACTIVATIONS) × seeds."""
    return (
        f'name = "{EXPERIMENT}"\n'
        "[base]\n"
        'dataset = "synthetic"\n'
        "channels = 4\n"
        "depth = 1\n"
        "batch_size = 16\n"
        "steps_per_epoch = 2\n"
        "probe_every = 0\n"
        f"epochs = {epochs}\n"
        "[axes]\n"
        f"level = {json.dumps(list(LEVELS))}\n"
        f"activation = {json.dumps(list(ACTIVATIONS))}\n"
        f"seed = {list(range(seeds))}\n"
    )


def expected_configs(seeds: int) -> list[tuple[str, str, int]]:
    return [(lv, act, s) for lv in LEVELS for act in ACTIVATIONS for s in range(seeds)]


# ---------------------------------------------------------------------- this run's processes
def _processes(environ: bool = False) -> list[tuple[int, int, str, bytes]]:
    """(pid, parent pid, command line, environment if ``environ`` else b"") of every readable
    process but this one."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            env = (entry / "environ").read_bytes() if environ else b""
        except (OSError, ValueError, IndexError):
            continue
        found.append((int(entry.name), ppid, cmdline, env))
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def trial_workers(ray_tmpdir: str) -> list[tuple[int, str]]:
    """(pid, title) of the run's Ray workers that are running a trial: children of a raylet
    whose command line names ``ray_tmpdir``, titled ``TRIAL_TITLE``."""
    procs = _processes()
    raylets = {pid for pid, _, cmd, _ in procs if ray_tmpdir in cmd and _comm(pid) == "raylet"}
    return sorted(
        (pid, cmd.strip()) for pid, ppid, cmd, _ in procs
        if ppid in raylets and cmd.startswith(TRIAL_TITLE)
    )


def stop_run_processes(ray_tmpdir: str, timeout: float = 15) -> list[str]:
    """SIGKILL every process left of the run: its command line names ``ray_tmpdir`` (Ray's
    system processes) or it inherited ``RAY_TMPDIR=ray_tmpdir`` (workers, which retitle
    themselves); wait until they are gone; returns their names."""
    marker = f"RAY_TMPDIR={ray_tmpdir}".encode()
    pids = [
        pid for pid, _, cmd, env in _processes(environ=True)
        if ray_tmpdir in cmd or marker in env.split(b"\0")
    ]
    names = []
    for pid in pids:
        names.append(_comm(pid))
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.1)
    return names


# ---------------------------------------------------------------------- the killer
class Killer(threading.Thread):
    """SIGKILLs a random trial worker of the run at the end of each random interval while the
    driver runs (module docstring); ``kills`` lists the faults that hit a live process."""

    def __init__(self, driver: subprocess.Popen, ray_tmpdir: str, mean_s: float, seed: int,
                 start: float) -> None:
        super().__init__(daemon=True)
        self.driver, self.ray_tmpdir, self.mean_s = driver, ray_tmpdir, mean_s
        self.rng, self.start_time = random.Random(seed), start
        self.kills: list[dict[str, Any]] = []
        self.missed = 0  # picked a worker that was gone (or had moved on) before the signal
        self.idle = 0  # intervals that ended with no trial running: no kill
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(self.rng.expovariate(1 / self.mean_s)):
            if self.driver.poll() is not None:
                return
            workers = trial_workers(self.ray_tmpdir)
            if workers:
                self._kill(*self.rng.choice(workers))
            else:
                self.idle += 1

    def _kill(self, pid: int, title: str) -> None:
        try:  # still the same process, still running a trial
            now = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            now = ""
        if not now.startswith(TRIAL_TITLE) or not _alive(pid):
            self.missed += 1
            return
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            self.missed += 1
            return
        at = time.monotonic() - self.start_time
        self.kills.append({"t_s": round(at, 2), "pid": pid, "title": title})


# ---------------------------------------------------------------------- one study run
def run_study(grid: Path, results: Path, work: Path, log: Path, *, max_failures: int,
              kill_every: float, seed: int, timeout: float) -> dict[str, Any]:
    """Run the grid with its own RAY_TMPDIR, with the killer when ``kill_every`` > 0; returns
    exit code, wall time, faults and the Ray processes left behind (then stopped)."""
    ray_tmpdir = tempfile.mkdtemp(prefix="soak-", dir="/tmp")
    env = dict(os.environ, RAY_TMPDIR=ray_tmpdir)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "study.cli", "run", str(grid), "--results", str(results),
               "--name", EXPERIMENT, "--max-failures", str(max_failures)]
    killer = None
    try:
        with open(log, "w") as out:
            start = time.monotonic()
            driver = subprocess.Popen(command, cwd=work, env=env, stdout=out,
                                      stderr=subprocess.STDOUT, start_new_session=True)
            if kill_every > 0:
                killer = Killer(driver, ray_tmpdir, kill_every, seed, start)
                killer.start()
            try:
                rc: int | None = driver.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(driver.pid, signal.SIGKILL)
                driver.wait()
                rc = None
            wall = time.monotonic() - start
            if killer is not None:
                killer.stop.set()
                killer.join()
    finally:
        leftovers = stop_run_processes(ray_tmpdir)
        shutil.rmtree(ray_tmpdir, ignore_errors=True)
    text = log.read_text(errors="replace")
    summary = SUMMARY_LINE.findall(text)
    return {
        "command": command,
        "exit_code": rc,  # None: killed at --timeout
        "wall_s": round(wall, 2),
        "driver_trials_with_results": int(summary[-1][0]) if summary else None,
        "driver_errored": int(summary[-1][1]) if summary else None,
        "faults_injected": len(killer.kills) if killer else 0,
        "kills_missed": killer.missed if killer else 0,
        "intervals_without_trial": killer.idle if killer else 0,
        "kills": killer.kills if killer else [],
        "leftover_processes_stopped": sorted(leftovers),
        "log": str(log),
    }


def tune_state(experiment_dir: Path) -> dict[str, Any]:
    """Trial statuses and failure counts from Tune's last saved experiment state."""
    states = sorted(experiment_dir.glob("experiment_state-*.json"))
    if not states:
        return {"statuses": {}, "failures": None, "trials_with_failures": None}
    data = json.loads(states[-1].read_text())
    statuses: Counter[str] = Counter()
    failures = []
    for trial_json, run_json in data.get("trial_data", []):
        statuses[json.loads(trial_json).get("status", "?")] += 1
        failures.append(int(json.loads(run_json).get("num_failures") or 0))
    return {
        "statuses": dict(statuses),
        "failures": sum(failures),
        "trials_with_failures": sum(f > 0 for f in failures),
        "max_failures_of_a_trial": max(failures, default=0),
    }


# ---------------------------------------------------------------------- checks
def _missing(value: Any) -> bool:
    if value is None or value is pd.NA:
        return True
    return isinstance(value, float) and math.isnan(value)


def _sequence(value: Any) -> bool:
    return isinstance(value, (list, tuple, np.ndarray))


def same(a: Any, b: Any) -> bool:
    """Bit-identical values: floats compared exactly, NaN equal to NaN, lists element-wise."""
    if _missing(a) or _missing(b):
        return _missing(a) and _missing(b)
    if _sequence(a) or _sequence(b):
        return _sequence(a) and _sequence(b) and len(a) == len(b) and all(map(same, a, b))
    return bool(a == b)


def _key(row: dict[str, Any]) -> tuple[str, str, int]:
    return (str(row["level"]), str(row["activation"]), int(row["seed"]))


def raw_rows(folder: Path) -> list[dict[str, Any]]:
    """Every row of every part file of the experiment (every attempt)."""
    rows = []
    for path in sorted(folder.glob(f"{PART_PREFIX}*{PART_SUFFIX}")):
        rows.extend(pq.read_table(path).to_pylist())
    return rows


def mismatched_columns(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return [c for c in COMPARED if not same(a.get(c), b.get(c))]


def check_rows(results: Path, seeds: int, epochs: int) -> dict[str, Any]:
    """Rows expected, kept, lost, duplicated; raw rows, retries; re-report consistency."""
    configs = expected_configs(seeds)
    expected = {(*c, e) for c in configs for e in range(1, epochs + 1)}
    folder = results / "parquet" / f"experiment={EXPERIMENT}"
    try:
        frame = load_results(results / "parquet", experiments=[EXPERIMENT], alphas=False)
    except FileNotFoundError:
        frame = None
    kept = [] if frame is None else frame.to_dict("records")
    counts = Counter((*_key(r), int(r["epoch"])) for r in kept)
    trial_ids = defaultdict(set)
    for r in kept:
        trial_ids[_key(r)].add(r["trial_id"])
    lost = sorted(expected - set(counts))
    duplicated = sorted(k for k, n in counts.items() if n > 1)
    unexpected = sorted(k for k in counts if k not in expected)

    raw = raw_rows(folder) if folder.is_dir() else []
    by_pair = defaultdict(list)
    for r in raw:
        by_pair[(*_key(r), int(r["epoch"]))].append(r)
    rereport_mismatches = []
    for pair, rows in sorted(by_pair.items()):
        for other in rows[1:]:
            columns = mismatched_columns(rows[0], other)
            if columns:
                rereport_mismatches.append({"pair": list(pair), "columns": columns})
    retried = {r["trial_id"] for r in raw if int(r["attempt"]) > 0}
    seconds: dict[str, float] = defaultdict(float)
    for r in kept:
        seconds[r["trial_id"]] += float(r[R.EPOCH_SECONDS])
    return {
        "trials_expected": len(configs),
        "trials_with_rows": len(trial_ids),
        "trial_ids": sum(len(t) for t in trial_ids.values()),
        "configs_with_several_trial_ids": sum(len(t) > 1 for t in trial_ids.values()),
        "rows_expected": len(expected),
        "rows_after_dedup": len(kept),
        "rows_lost": len(lost),
        "rows_duplicated": len(duplicated),
        "rows_unexpected": len(unexpected),
        "raw_rows": len(raw),
        "rereported_rows": len(raw) - len(by_pair),
        "retried_trials": len(retried),
        "max_attempt": max((int(r["attempt"]) for r in raw), default=0),
        "row_statuses": dict(Counter(str(r[R.STATUS]) for r in kept)),
        "rereported_pairs_compared": sum(len(rows) > 1 for rows in by_pair.values()),
        "rereport_mismatches": len(rereport_mismatches),
        "mean_search_s_per_trial": round(sum(seconds.values()) / len(seconds), 2)
        if seconds else None,
        "examples": {
            "lost": [list(p) for p in lost[:10]],
            "duplicated": [list(p) for p in duplicated[:10]],
            "unexpected": [list(p) for p in unexpected[:10]],
            "rereport_mismatches": rereport_mismatches[:10],
        },
    }


def compare_with_reference(results: Path, reference: Path) -> dict[str, Any]:
    """Every non-timing record column of every (config, epoch) of both runs, α lists included."""
    def rows(root: Path) -> dict[tuple, dict[str, Any]]:
        frame = load_results(root / "parquet", experiments=[EXPERIMENT], alphas=True)
        return {(*_key(r), int(r["epoch"])): r for r in frame.to_dict("records")}

    ours, ref = rows(results), rows(reference)
    final: dict[tuple, int] = {}
    for level, activation, seed, epoch in ref:
        final[level, activation, seed] = max(epoch, final.get((level, activation, seed), 0))
    mismatches: list[dict[str, Any]] = []
    per_column: Counter[str] = Counter()
    for pair in sorted(set(ours) & set(ref)):
        columns = mismatched_columns(ours[pair], ref[pair])
        per_column.update(columns)
        if columns:
            mismatches.append({"pair": list(pair), "columns": columns})
    compared = set(ours) & set(ref)
    return {
        "pairs_compared": len(compared),
        "pairs_only_in_soak": len(set(ours) - set(ref)),
        "pairs_only_in_reference": len(set(ref) - set(ours)),
        "final_records_compared": sum(p[3] == final.get(p[:3]) for p in compared),
        "mismatches": len(mismatches),
        "final_record_mismatches": sum(m["pair"][3] == final[tuple(m["pair"][:3])]
                                       for m in mismatches),
        "mismatched_columns": dict(per_column),
        "columns_compared": list(COMPARED),
        "examples": mismatches[:10],
    }


# ---------------------------------------------------------------------- report
def problems_of(figures: dict[str, Any], kill_every: float) -> list[str]:
    run, rows, ref = figures["run"], figures["rows"], figures.get("reference_check")
    found = []
    if run["exit_code"] != 0:
        found.append(f"study run exited with {run['exit_code']} (None: timed out)")
    for name in ("rows_lost", "rows_duplicated", "rows_unexpected",
                 "configs_with_several_trial_ids", "rereport_mismatches"):
        if rows[name]:
            found.append(f"{name.replace('_', ' ')}: {rows[name]}")
    if rows["trials_with_rows"] != rows["trials_expected"]:
        found.append(f"trials with rows {rows['trials_with_rows']} of {rows['trials_expected']}")
    if ref is not None:
        if ref["mismatches"]:
            found.append(f"records differing from the reference run: {ref['mismatches']}")
        if ref["pairs_only_in_reference"] or ref["pairs_only_in_soak"]:
            found.append("the soak and the reference run hold different (config, epoch) pairs")
    if kill_every > 0 and run["faults_injected"] == 0:
        found.append("no fault was injected: lengthen the run or shorten --kill-every")
    return found


def print_summary(figures: dict[str, Any]) -> None:
    grid, run, rows = figures["grid"], figures["run"], figures["rows"]
    tune, ref_run, ref = figures["tune_state"], figures.get("reference_run"), \
        figures.get("reference_check")
    print(f"grid: {grid['trials']} trials ({' × '.join(map(str, grid['shape']))}: level × "
          f"activation × seed), {grid['epochs']} epochs each, synthetic data, tiny supernet")
    if ref_run:
        print(f"reference run (no faults): exit {ref_run['exit_code']}, wall "
              f"{ref_run['wall_s']:.1f} s, {grid['trials'] / ref_run['wall_s']:.3f} trials/s")
    print(f"soak run: exit {run['exit_code']}, wall {run['wall_s']:.1f} s, "
          f"{run['trials_per_s']:.3f} trials/s; driver: {run['driver_trials_with_results']} trials "
          f"with results, {run['driver_errored']} errored")
    print(f"faults injected: {run['faults_injected']} SIGKILLs of trial workers (mean interval "
          f"{figures['settings']['kill_every_s']} s; {run['intervals_without_trial']} intervals "
          f"ended with no trial running, {run['kills_missed']} picked workers were gone before "
          "the signal)")
    print(f"Tune state: {tune['statuses']}, {tune['failures']} failures in "
          f"{tune['trials_with_failures']} trials (most in one trial: "
          f"{tune.get('max_failures_of_a_trial')})")
    print(f"trials: expected {rows['trials_expected']}, with rows {rows['trials_with_rows']} "
          f"(trial ids {rows['trial_ids']}); retried (rows with attempt > 0) "
          f"{rows['retried_trials']}, highest attempt {rows['max_attempt']}")
    print(f"rows: expected {rows['rows_expected']}, after de-duplication "
          f"{rows['rows_after_dedup']}, LOST {rows['rows_lost']}, DUPLICATED "
          f"{rows['rows_duplicated']}, unexpected {rows['rows_unexpected']}; raw "
          f"{rows['raw_rows']} ({rows['rereported_rows']} re-reports); statuses "
          f"{rows['row_statuses']}")
    print(f"re-reported (config, epoch) pairs: {rows['rereported_pairs_compared']}, with "
          f"differing non-timing values: {rows['rereport_mismatches']}")
    if ref:
        print(f"against the reference: {ref['pairs_compared']} (config, epoch) records compared "
              f"({ref['final_records_compared']} final), {len(ref['columns_compared'])} "
              f"non-timing columns each; MISMATCHED {ref['mismatches']} "
              f"({ref['final_record_mismatches']} final) {ref['mismatched_columns'] or ''}")
    print(f"mean search time per trial (sum of epoch_seconds): "
          f"{rows['mean_search_s_per_trial']} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=100,
                        help="trials (rounded up to a multiple of 4: level × activation × seeds)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--kill-every", type=float, default=8.0,
                        help="mean seconds between kills (exponential); 0 = no kills")
    parser.add_argument("--seed", type=int, default=0, help="seed of the killer's RNG")
    parser.add_argument("--max-failures", type=int, default=20)
    parser.add_argument("--reference", action="store_true",
                        help="first run the grid undisturbed and compare every record")
    parser.add_argument("--work", type=Path, default=None, help="work folder, kept (default: "
                        "a temporary one, removed after a passing soak)")
    parser.add_argument("--out", type=Path, default=None, help="JSON file (default W/soak.json)")
    parser.add_argument("--timeout", type=float, default=4 * 3600,
                        help="seconds after which a study run is killed and counted as failed")
    args = parser.parse_args()
    if args.trials < 1 or args.epochs < 1 or args.kill_every < 0:
        parser.error("--trials and --epochs must be >= 1 and --kill-every >= 0")
    seeds = math.ceil(args.trials / (len(LEVELS) * len(ACTIVATIONS)))
    trials = seeds * len(LEVELS) * len(ACTIVATIONS)

    temporary = args.work is None
    work = Path(tempfile.mkdtemp(prefix="soak-work-")) if temporary else args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    for old in ("res", "ref"):
        if (work / old).exists():
            parser.error(f"{work / old} exists: a soak needs fresh results folders")
    grid = work / "grid.toml"
    grid.write_text(grid_toml(seeds, args.epochs))
    print(f"machine: {cpu_model()}, {os.cpu_count()} logical cores, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; Python {platform.python_version()}")
    print(f"work folder: {work}")
    figures: dict[str, Any] = {
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(),
                    "load_average_at_start": os.getloadavg(), "python": platform.python_version(),
                    "started_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())},
        "grid": {"trials": trials, "epochs": args.epochs, "seeds": seeds,
                 "shape": [len(LEVELS), len(ACTIVATIONS), seeds], "file": str(grid)},
        "settings": {"kill_every_s": args.kill_every, "seed": args.seed,
                     "max_failures": args.max_failures, "reference": args.reference},
    }
    common = {"max_failures": args.max_failures, "seed": args.seed, "timeout": args.timeout}
    if args.reference:
        print("reference run (no faults) ...", flush=True)
        figures["reference_run"] = run_study(grid, work / "ref", work, work / "ref.log",
                                             kill_every=0, **common)
    print(f"soak run, a kill every {args.kill_every} s on average ..." if args.kill_every
          else "soak run without faults (--kill-every 0) ...", flush=True)
    run = run_study(grid, work / "res", work, work / "soak.log", kill_every=args.kill_every,
                    **common)
    run["trials_per_s"] = round(trials / run["wall_s"], 4)
    figures["run"] = run
    figures["tune_state"] = tune_state(work / "res" / "tune" / EXPERIMENT)
    figures["rows"] = check_rows(work / "res", seeds, args.epochs)
    if args.reference:
        figures["reference_check"] = compare_with_reference(work / "res", work / "ref")
    problems = problems_of(figures, args.kill_every)
    figures["problems"], figures["ok"] = problems, not problems

    print_summary(figures)
    print("PASS: every (config, epoch) exactly once" + (", records as undisturbed" if
          args.reference else "") if not problems else "FAIL: " + "; ".join(problems))
    text = json.dumps(figures, indent=1)
    out = args.out or (None if temporary else work / "soak.json")
    if out is not None:
        out.write_text(text + "\n")
        print(f"figures: {out}")
    else:
        print(text)
    if temporary and not problems:
        shutil.rmtree(work, ignore_errors=True)
    elif temporary:
        print(f"work folder kept for inspection: {work}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
