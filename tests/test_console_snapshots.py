"""Snapshots of the console's screens over the fixed-history store (ids and times never come from the clock)."""

import pytest

from tests.helpers import loaded


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
