"""Shared fixtures: seeded demo stores (built once, copied per test) and the CLI runner of tests/helpers.py."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.helpers import build_store, run_cli

# Few examples per property so the suite stays fast; HYPOTHESIS_PROFILE=thorough searches harder.
settings.register_profile("memabra", max_examples=25, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.register_profile("thorough", parent=settings.get_profile("memabra"), max_examples=500)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "memabra"))


@pytest.fixture(scope="session")
def _seeded_store_template(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("template") / "store"
    return build_store(base, 2000, seed=11)


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


@pytest.fixture
def cli():
    """Run `python -m memabra.cli ARGS` in a fresh process, as an operator would (always with a timeout)."""
    return run_cli


@pytest.fixture
def small_store(tmp_path) -> Path:
    """A base dir holding 200 demo trajectories (seeded), no versions yet."""
    return build_store(tmp_path / "store", 200, seed=3)


@pytest.fixture
def console(history_store, monkeypatch):
    """The console on the history store (one report with off-policy rows), shown as `store` so a snapshot carries
    no temp path."""
    from memabra.settings import Settings
    from memabra.tui.app import MemabraConsole
    from tests.console_store import add_off_policy

    monkeypatch.chdir(history_store.parent)
    add_off_policy(history_store, "20260105-130000")
    base_dir = Path("store")
    # The local engine: whether a pool could start would otherwise change which progress lines a snapshot shows.
    return MemabraConsole(base_dir, Settings(base_dir=base_dir, engine="local"), poll_seconds=3600)
