"""SIGTERM handled like Ctrl-C: the command stops where it is, its atomic writes leave nothing half-written, and it
says so in one line (exit 143, as a shell reports a process ended by SIGTERM)."""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived; raised in the main thread where Ctrl-C's KeyboardInterrupt would be."""


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM raises Terminated in the main thread (elsewhere this does nothing)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
