"""Shared fixtures: a seeded demo store built once and copied per test, and a CLI runner in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from memabra.demo.generate import generate_demo_trajectories
from memabra.demo.world import DemoWorld
from memabra.learning.routers import HeuristicRouter

ROOT = Path(__file__).resolve().parents[1]

# Few examples per property so the suite stays fast; HYPOTHESIS_PROFILE=thorough searches harder.
settings.register_profile("memabra", max_examples=25, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.register_profile("thorough", parent=settings.get_profile("memabra"), max_examples=500)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "memabra"))


@pytest.fixture(scope="session")
def _seeded_store_template(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("template") / "store"
    generate_demo_trajectories(base, 2000, HeuristicRouter(), world=DemoWorld(7), seed=11)
    return base


@pytest.fixture
def seeded_store(_seeded_store_template, tmp_path) -> Path:
    """A base dir holding 2,000 demo trajectories (seeded), no versions yet."""
    target = tmp_path / "store"
    shutil.copytree(_seeded_store_template, target)
    return target


@pytest.fixture(scope="session")
def _history_store_template(tmp_path_factory) -> Path:
    from tests.console_store import build_history

    base = tmp_path_factory.mktemp("history") / "store"
    build_history(base)
    return base


@pytest.fixture
def history_store(_history_store_template, tmp_path) -> Path:
    """A store grown by a fixed history of five real cycles (three versions, five reports) on a fixed clock."""
    target = tmp_path / "store"
    shutil.copytree(_history_store_template, target)
    return target


class CliResult:
    def __init__(self, completed: subprocess.CompletedProcess):
        self.code = completed.returncode
        self.stdout = completed.stdout
        self.stderr = completed.stderr

    @property
    def json(self):
        return json.loads(self.stdout)

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("error:")]


@pytest.fixture
def cli():
    """Run `python -m memabra.cli ARGS` in a fresh process, as an operator would."""

    def run(*args: str, env: dict | None = None, timeout: float = 120) -> CliResult:
        full_env = {**os.environ, "PYTHONPATH": str(ROOT)}
        full_env.pop("MEMABRA_BASE_DIR", None)
        full_env.update(env or {})
        completed = subprocess.run(
            [sys.executable, "-m", "memabra.cli", *map(str, args)],
            capture_output=True, text=True, env=full_env, timeout=timeout, stdin=subprocess.DEVNULL,
        )
        return CliResult(completed)

    return run


def run_main(*args: str) -> tuple[int, str, str]:
    """Run the CLI's main() in this process (fast); return its exit code, stdout and stderr."""
    import contextlib
    import io

    from memabra.cli import main

    stdout, stderr = io.TextIOWrapper(io.BytesIO(), encoding="utf-8"), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main([str(arg) for arg in args])
    stdout.flush()
    return code, stdout.buffer.getvalue().decode(), stderr.getvalue()
