"""Helpers for the console's Pilot tests: one app factory that records notifications, and ways to wait and read."""

from __future__ import annotations

import contextlib

from textual.widgets import Static
from textual.worker import WorkerCancelled, WorkerFailed

from memabra.settings import Settings
from memabra.tui.app import MemabraConsole

SIZE = (120, 35)


def make_app(base_dir, **settings) -> MemabraConsole:
    """The console on base_dir, recording every notification it shows (toasts expire; the record does not)."""
    app = MemabraConsole(base_dir, Settings(base_dir=base_dir, min_new_trajectories=10, **settings),
                         poll_seconds=3600)
    app.shown_notifications = []
    show = app.notify

    def record(message, **options):
        app.shown_notifications.append(message)
        show(message, **options)

    app.notify = record
    return app


async def settle(pilot) -> None:
    """Let every worker finish (or fail: the console reports that itself) and every message they posted be handled."""
    for _ in range(3):
        for worker in list(pilot.app.workers):
            with contextlib.suppress(WorkerFailed, WorkerCancelled):
                await worker.wait()
        await pilot.pause()


def notifications(app) -> list[str]:
    return app.shown_notifications


def text_of(app, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())
