"""Snapshots of the console's screens over the fixed-history store (ids and times never come from the clock)."""

from pathlib import Path

import pytest
from textual.widgets import DataTable

from memabra.settings import Settings
from memabra.tui.app import MemabraConsole
from tests.console_store import add_off_policy


@pytest.fixture
def console(history_store, monkeypatch):
    """The console on the history store, shown as `store` so the snapshot does not carry a temp path."""
    monkeypatch.chdir(history_store.parent)
    add_off_policy(history_store, "20260105-130000")
    base_dir = Path("store")
    return MemabraConsole(base_dir, Settings(base_dir=base_dir), poll_seconds=3600)


async def loaded(pilot) -> None:
    """Wait until the store is shown (its load handled, not merely started) and every table has measured its rows."""
    for _ in range(400):  # under load the first load and the tables' measuring take a few turns
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        measuring = any(table._require_update_dimensions for table in pilot.app.screen.query(DataTable))
        if pilot.app.overview is not None and not measuring:
            break
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()


def test_main_screen(console, snap_compare):
    assert snap_compare(console, terminal_size=(120, 35), run_before=loaded)


def test_main_screen_small_terminal(console, snap_compare):
    assert snap_compare(console, terminal_size=(80, 24), run_before=loaded)


def test_main_screen_wide_terminal(console, snap_compare):
    assert snap_compare(console, terminal_size=(200, 50), run_before=loaded)


@pytest.mark.parametrize("size", [(80, 24), (200, 50)])
def test_report_screen_small_and_wide(console, snap_compare, size):
    async def open_rejected_report(pilot):
        await loaded(pilot)
        await pilot.press("tab", "enter")
        await loaded(pilot)

    assert snap_compare(console, terminal_size=size, run_before=open_rejected_report)


def test_version_screen(console, snap_compare):
    async def open_second_version(pilot):
        await loaded(pilot)
        await pilot.press("down", "enter")
        await loaded(pilot)

    assert snap_compare(console, terminal_size=(120, 35), run_before=open_second_version)


def test_report_screen(console, snap_compare):
    async def open_rejected_report(pilot):
        await loaded(pilot)
        await pilot.press("tab", "enter")
        await loaded(pilot)

    assert snap_compare(console, terminal_size=(120, 35), run_before=open_rejected_report)


def test_rollback_modal(console, snap_compare):
    async def ask_to_roll_back(pilot):
        await loaded(pilot)
        await pilot.press("down", "down", "r")
        await loaded(pilot)

    assert snap_compare(console, terminal_size=(120, 35), run_before=ask_to_roll_back)
