"""The one set of test helpers: a CLI runner (always in a fresh process, always with a timeout), a demo store
builder, a trajectory document builder, and a deadline-bounded wait."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]

CRASH_LEFTOVERS = ("temp file of a write", "journal of a writer that is gone", "journal left behind")
"""What a crash may leave for --check --repair to tidy: never a half-written document."""

SUBPROCESS_TIMEOUT = 120.0
"""Seconds any one command a test starts may take; far above what any takes, far below the per-test limit x 2."""


def trajectory_doc(index: int | None = None, **outcome) -> dict:
    """A valid trajectory document (two candidates, the tool picked with propensity 0.8); keyword arguments override
    outcome fields. With an index it also has an id, `run-00042`, and a task of its own, as an agent's log line."""
    document = {
        "task": {"task_id": "t1", "text": "What's the weather in Oslo?"},
        "candidates": [
            {"candidate_id": "tool:weather", "kind": "tool", "score": 0.6},
            {"candidate_id": "direct:answer", "kind": "direct", "score": 0.7},
        ],
        "decision": {"chosen_candidate_id": "tool:weather", "propensity": 0.8},
        "outcome": {"reward": 0.9, "latency_ms": 700.0, **outcome},
    }
    if index is not None:
        document["trajectory_id"] = f"run-{index:05d}"
        document["task"] = {"task_id": f"t-{index}", "text": f"What's the weather in city {index}?"}
    return document


def build_store(base: Path, count: int = 200, seed: int = 3, router=None, **options) -> Path:
    """Fill base with `count` seeded demo trajectories (world 7, heuristic router unless given) and return base."""
    from memabra.demo.generate import generate_demo_trajectories
    from memabra.demo.world import DemoWorld
    from memabra.learning.routers import HeuristicRouter

    options.setdefault("world", DemoWorld(7))
    generate_demo_trajectories(base, count, router or HeuristicRouter(), seed=seed, **options)
    return base


def child_env(env: dict | None = None, fault: str | None = None) -> dict:
    """The environment of a child process: this checkout on PYTHONPATH, no inherited base dir or fault."""
    full = {**os.environ, "PYTHONPATH": str(ROOT)}
    full.pop("MEMABRA_BASE_DIR", None)
    full.pop("MEMABRA_FAULT_INJECT", None)
    if fault:
        full["MEMABRA_FAULT_INJECT"] = fault
    full.update(env or {})
    return full


class CliResult:
    """A finished command: exit code, stdout, stderr, and stdout parsed as JSON on demand."""

    def __init__(self, completed: subprocess.CompletedProcess):
        self.code = self.returncode = completed.returncode
        self.stdout = completed.stdout
        self.stderr = completed.stderr

    @property
    def json(self):
        return json.loads(self.stdout)

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("error:")]


def run_python(*args, env: dict | None = None, fault: str | None = None,
               timeout: float = SUBPROCESS_TIMEOUT) -> CliResult:
    """Run `python ARGS` from the checkout root in a fresh process and wait for it (at most `timeout` seconds)."""
    completed = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, cwd=ROOT,
                               env=child_env(env, fault), timeout=timeout, stdin=subprocess.DEVNULL)
    return CliResult(completed)


def run_cli(*args, env: dict | None = None, fault: str | None = None, module: str = "memabra.cli",
            timeout: float = SUBPROCESS_TIMEOUT) -> CliResult:
    """Run `python -m memabra.cli ARGS` in a fresh process, as an operator would."""
    return run_python("-m", module, *args, env=env, fault=fault, timeout=timeout)


def start_python(*args, env: dict | None = None, fault: str | None = None, stderr=subprocess.PIPE) -> subprocess.Popen:
    """Start `python ARGS` in the background (text pipes); the caller waits for it with a timeout."""
    return subprocess.Popen([sys.executable, *map(str, args)], stdout=subprocess.PIPE, stderr=stderr, text=True,
                            cwd=ROOT, env=child_env(env, fault), stdin=subprocess.DEVNULL)


def start_cli(*args, env: dict | None = None) -> subprocess.Popen:
    """Start `python -m memabra.cli ARGS` in the background."""
    return start_python("-m", "memabra.cli", *args, env=env)


def finish(process: subprocess.Popen, timeout: float = SUBPROCESS_TIMEOUT) -> tuple[int, str, str]:
    """Wait for a started process (killing it when it overruns, then failing); return code, stdout, stderr."""
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(f"process {process.args} ran over {timeout:g} s; stderr: {err[-2000:]}") from None
    return process.returncode, out, err


def wait_until(condition: Callable[[], object], timeout: float, message: str, interval: float = 0.02):
    """Poll condition until it is truthy and return its value; fail with message after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} (waited {timeout:g} s)")
        time.sleep(interval)


def run_main(*args: str) -> tuple[int, str, str]:
    """Run the CLI's main() in this process (fast); return its exit code, stdout and stderr."""
    from memabra.cli import main

    stdout, stderr = io.TextIOWrapper(io.BytesIO(), encoding="utf-8"), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main([str(arg) for arg in args])
    stdout.flush()
    return code, stdout.buffer.getvalue().decode(), stderr.getvalue()


def assert_store_intact(base, returned_ids=()):
    """What must hold after any crash: the store opens, current is a complete version, every *.json is a whole
    valid document, and every trajectory whose append returned is stored."""
    from memabra.check import check_store
    from memabra.learning.versions import active_router
    from memabra.models import RouterVersion, TrainingReport
    from memabra.status import store_status
    from memabra.storage.trajectories import TrajectoryStore
    from memabra.storage.versions import RouterVersionStore

    status = store_status(base)
    assert status["lock"] is None, "the kernel released the dead holder's lock"
    if status["current"] is not None:
        version = RouterVersionStore(base).get_version(status["current"]["version_id"])
        assert isinstance(version, RouterVersion)
        active_router(RouterVersionStore(base))
    found = check_store(base)
    broken = [problem for problem in found["problems"] if not problem["problem"].startswith(CRASH_LEFTOVERS)]
    assert broken == []
    for path in base.rglob("*.json"):
        json.loads(path.read_bytes())  # nothing half-written, even where --check does not look
    for path in (base / "training-reports").glob("*.json"):
        TrainingReport.model_validate_json(path.read_bytes())
    stored = {t.trajectory_id for t in TrajectoryStore(base).load_all()[0]}
    assert set(returned_ids) <= stored, "a trajectory whose append returned was lost"
    return status


async def loaded(pilot, turns: int = 400) -> None:
    """Wait until the console shows the store (its load handled, not merely started) and every table has measured
    its rows; fail after `turns` turns rather than snapshot a half-drawn screen."""
    from textual.widgets import DataTable

    for _ in range(turns):  # under load the first load and the tables' measuring take a few turns
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        measuring = any(table._require_update_dimensions for table in pilot.app.screen.query(DataTable))
        if pilot.app.overview is not None and not measuring:
            break
    else:
        raise AssertionError(f"the console did not finish loading within {turns} turns")
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()


def trajectory_line(trajectory_id: str, reward) -> str:
    """One ingest line: a one-candidate trajectory with the given id and reward (any JSON value, to test refusals)."""
    return json.dumps({
        "trajectory_id": trajectory_id, "task": {"task_id": "t", "text": "add 2 and 3"},
        "candidates": [{"candidate_id": "tool:calc", "kind": "tool", "score": 0.5}],
        "decision": {"chosen_candidate_id": "tool:calc", "propensity": 1.0},
        "outcome": {"reward": reward, "latency_ms": 10.0}})
