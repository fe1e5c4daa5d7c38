"""Snapshots of the console's other screens: keys, gates, check, an error, a running cycle, and a report's
off-policy rows (the fixed-history store; nothing on screen comes from the clock)."""

import asyncio
import threading
import time

import pytest
from textual.widgets import DataTable, Input
from textual.worker import get_current_worker

import memabra.tui.app as console_app
from tests.helpers import loaded

SIZE = (120, 35)


def test_help_screen(console, snap_compare):
    async def ask_for_the_keys(pilot):
        await loaded(pilot)
        await pilot.press("question_mark")
        await loaded(pilot)

    assert snap_compare(console, terminal_size=SIZE, run_before=ask_for_the_keys)


def test_gates_screen(console, snap_compare):
    async def open_the_gates(pilot):
        await loaded(pilot)
        await pilot.press("t")
        await loaded(pilot)
        for field in pilot.app.screen.query(Input):
            field.cursor_blink = False  # a blinking cursor would make the snapshot depend on timing
        await pilot.pause()

    assert snap_compare(console, terminal_size=SIZE, run_before=open_the_gates)


def test_check_screen_with_a_problem(console, history_store, snap_compare):
    async def check_a_damaged_store(pilot):
        await loaded(pilot)
        (history_store / "training-reports" / "20260105-110000.json").write_text("{ half a docu")
        await pilot.press("k")
        await loaded(pilot)

    assert snap_compare(console, terminal_size=SIZE, run_before=check_a_damaged_store)


def test_error_screen(console, snap_compare, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(console_app.workflow, "run_cycle", broken)

    async def fail_a_cycle(pilot):
        await loaded(pilot)
        await pilot.press("p")
        await loaded(pilot)

    assert snap_compare(console, terminal_size=SIZE, run_before=fail_a_cycle)


@pytest.fixture
def paused_cycle(monkeypatch):
    """Cycles that stop at their dataset stage until the test releases them, the console closes or 60 s pass."""
    real_workflow = console_app.workflow.run_cycle
    reached, release = threading.Event(), threading.Event()

    def workflow_paused_at_dataset(*args, **kwargs):
        on_event = kwargs.pop("on_event")

        def pausing(event):
            if event.stage == "scan" and event.done and event.message == "reading trajectories":
                return  # per-file progress: files are read or already summarised depending on what ran before
            on_event(event)
            if event.stage == "dataset" and not reached.is_set():
                reached.set()
                worker, deadline = get_current_worker(), time.monotonic() + 60
                while not (release.wait(0.05) or worker.is_cancelled or time.monotonic() > deadline):
                    pass  # held until released, or the console closes (cancelling its workers)

        return real_workflow(*args, on_event=pausing, **kwargs)

    monkeypatch.setattr(console_app.workflow, "run_cycle", workflow_paused_at_dataset)
    yield reached
    release.set()


def test_running_cycle_screen(console, snap_compare, paused_cycle):
    async def start_a_cycle(pilot):
        await loaded(pilot)
        await pilot.press("p")
        for _ in range(600):
            if paused_cycle.is_set():
                break
            await asyncio.sleep(0.05)
        assert paused_cycle.is_set(), "the cycle never reached its dataset stage"
        for _ in range(5):
            await pilot.pause()
        await pilot.wait_for_scheduled_animations()

    assert snap_compare(console, terminal_size=SIZE, run_before=start_a_cycle)


def test_report_screen_shows_the_off_policy_rows(console, snap_compare):
    async def open_the_report_and_scroll_to_its_estimates(pilot):
        await loaded(pilot)
        await pilot.press("tab", "enter")
        await loaded(pilot)
        off_policy = list(pilot.app.screen.query(DataTable))[-1]
        off_policy.scroll_visible(animate=False)
        await loaded(pilot)
        assert off_policy.row_count == 6

    assert snap_compare(console, terminal_size=(120, 50), run_before=open_the_report_and_scroll_to_its_estimates)
