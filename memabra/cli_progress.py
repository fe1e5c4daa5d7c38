"""What the CLI writes on stderr besides errors: progress (a bar that fits 80 columns on a terminal, one line per
stage otherwise) and notes, both silenced by `--quiet`."""

from __future__ import annotations

import sys
from typing import Any

from memabra.workflow import ProgressEvent

_quiet = False


def set_quiet(quiet: bool) -> None:
    """Silence progress and notes (errors are still printed)."""
    global _quiet
    _quiet = quiet


def note(line: str) -> None:
    """One informational line on stderr, unless `--quiet`."""
    if not _quiet:
        print(line, file=sys.stderr, flush=True)


class StderrProgress:
    """Renders progress events on stderr: a rich bar per stage on a terminal, one line per stage otherwise."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty()
        self._progress = None
        self._tasks: dict[str, Any] = {}
        self._last_message: dict[str, str] = {}

    def __enter__(self) -> "StderrProgress":
        if self.interactive and not _quiet:
            self._progress = progress_display(self.stream)
            self._progress.start()
        return self

    def __call__(self, event: ProgressEvent) -> None:
        if _quiet:
            return
        if self._progress is not None:
            task = self._tasks.get(event.stage)
            if task is None:
                task = self._tasks[event.stage] = self._progress.add_task(
                    event.message, total=max(event.total, 1), stage=event.stage)
            self._progress.update(task, completed=event.done, total=max(event.total, 1), description=event.message)
        elif event.done >= event.total and event.message != self._last_message.get(event.stage):
            self._last_message[event.stage] = event.message
            print(f"{event.stage}: {event.message}", file=self.stream, flush=True)

    def __exit__(self, *exc_info) -> None:
        if self._progress is not None:
            self._progress.stop()


def progress_display(stream, width: int | None = None):
    """A rich Progress whose fixed columns (stage, bar, count, time) always fit and whose message is shortened with
    an ellipsis, so a line never wraps or cuts the numbers at 80 columns."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Column

    return Progress(
        TextColumn("{task.fields[stage]}", table_column=Column(width=8, no_wrap=True)),
        BarColumn(bar_width=16),
        TextColumn("{task.percentage:>3.0f}%", table_column=Column(width=4, no_wrap=True)),
        TextColumn("{task.description}", table_column=Column(ratio=1, no_wrap=True, overflow="ellipsis")),
        TimeElapsedColumn(table_column=Column(width=7, no_wrap=True)),
        console=Console(file=stream, width=width), transient=False, expand=True,
    )
