"""SIGTERM handled like Ctrl-C: the command stops where it is, its atomic writes leave nothing half-written, and it
says so in one line (exit 143, as a shell reports a process ended by SIGTERM)."""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived; raised in the main thread where Ctrl-C's KeyboardInterrupt would be."""


RECEIVED: list[int] = []
"""Signals received inside `sigterm_as_interrupt`: code that swallows the exception a handler raised (a serialiser
reporting it as its own error) cannot hide that the command was told to stop."""


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM raises Terminated in the main thread (elsewhere this does nothing)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    RECEIVED.clear()

    def terminate(signum, frame) -> None:
        RECEIVED.append(signum)
        raise Terminated()

    def interrupt(signum, frame) -> None:
        RECEIVED.append(signum)
        raise KeyboardInterrupt()

    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, terminate),
                signal.SIGINT: signal.signal(signal.SIGINT, interrupt)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
