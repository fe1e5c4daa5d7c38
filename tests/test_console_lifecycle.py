"""The console's life around a cycle: q cancels a running cycle (nothing written) and the store is polled every second."""

import threading

from textual.widgets import Static

import memabra.tui.app as console_app
from memabra.settings import Settings
from memabra.storage.versions import ReportStore, RouterVersionStore
from memabra.tui.app import POLL_SECONDS, MemabraConsole

SIZE = (120, 35)


async def settle(pilot) -> None:
    for _ in range(3):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


def status_line(app) -> str:
    return str(app.screen.query_one("#status", Static).render()).splitlines()[0]


async def test_q_cancels_a_running_cycle_and_it_writes_nothing(history_store, monkeypatch):
    real_workflow = console_app.workflow.run_cycle
    reached_dataset, finished = threading.Event(), threading.Event()
    results = []

    def workflow_that_waits_in_dataset(*args, **kwargs):
        on_event = kwargs.pop("on_event")

        def waiting(event):
            on_event(event)
            if event.stage == "dataset" and not reached_dataset.is_set():
                reached_dataset.set()
                kwargs["cancel"].wait(timeout=30)

        try:
            results.append(real_workflow(*args, on_event=waiting, **kwargs))
            return results[-1]
        finally:
            finished.set()

    monkeypatch.setattr(console_app.workflow, "run_cycle", workflow_that_waits_in_dataset)
    reports_before = ReportStore(history_store).ids()
    app = MemabraConsole(history_store, Settings(base_dir=history_store, min_new_trajectories=10), poll_seconds=3600)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("p")
        assert reached_dataset.wait(timeout=30), "the cycle never reached its dataset stage"
        assert app.cycle_running
        await pilot.press("q")
    assert app.return_code == 0
    assert finished.wait(timeout=60), "the cycle went on after q"
    assert results[-1]["status"] == "cancelled"
    assert ReportStore(history_store).ids() == reports_before
    assert RouterVersionStore(history_store).current().version_id == "20260105-120000"


async def test_the_console_follows_another_process_within_its_one_second_poll(history_store):
    assert POLL_SECONDS == 1.0
    app = MemabraConsole(history_store, Settings(base_dir=history_store))
    assert app.poll_seconds == 1.0
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "20260105-120000" in status_line(app)
        RouterVersionStore(history_store).rollback("20260105-100000")  # as another process would
        # No key and no manual poll: only the timer can notice. Allow generous slack on a loaded machine.
        for _ in range(200):
            await pilot.pause(0.05)
            if "20260105-100000" in status_line(app):
                break
        assert "20260105-100000" in status_line(app), "the change did not show within 10 s"
        assert "by a rollback" in str(app.screen.query_one("#status", Static).render())


async def test_a_slow_poll_does_not_see_the_change_before_it_fires(history_store):
    app = MemabraConsole(history_store, Settings(base_dir=history_store), poll_seconds=3600)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        RouterVersionStore(history_store).rollback("20260105-100000")
        for _ in range(20):
            await pilot.pause(0.05)
        assert "20260105-120000" in status_line(app), "only the poll reloads the store"
        app.poll_store()
        await settle(pilot)
        assert "20260105-100000" in status_line(app)
