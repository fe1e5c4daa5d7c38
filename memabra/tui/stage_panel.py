"""The console's live-cycle panel: a notice line, how the last cycle ended, a bar per stage, and a log."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, ProgressBar, RichLog, Static

from memabra import workflow


class StagePanel(Vertical):
    """The live cycle: what is running or how the last cycle ended, a bar per stage, and a log."""

    def compose(self) -> ComposeResult:
        yield Static("", id="notice")
        yield Static("", id="cycle-outcome")
        for stage in workflow.STAGES:
            with Horizontal(classes="stage-row"):
                yield Label(stage, classes="stage-name")
                yield ProgressBar(total=1, show_eta=False, id=f"bar-{stage}")
        yield RichLog(id="cycle-log", max_lines=500, min_width=1, wrap=True, markup=False)

    def reset(self) -> None:
        for stage in workflow.STAGES:
            self.query_one(f"#bar-{stage}", ProgressBar).update(total=1, progress=0)
        self.query_one("#cycle-log", RichLog).clear()

    def show_event(self, stage: str, done: int, total: int, message: str) -> None:
        if stage not in workflow.STAGES:
            return
        self.query_one(f"#bar-{stage}", ProgressBar).update(total=max(total, 1), progress=min(done, max(total, 1)))
        if message and (done >= total or stage in ("gate", "save")):
            self.log_line(f"{stage}: {message}")

    def log_line(self, line: str) -> None:
        log = self.query_one("#cycle-log", RichLog)
        if log.lines and log.lines[-1].text == line:
            return
        log.write(line)

    def show_outcome(self, text: Text | str) -> None:
        self.query_one("#cycle-outcome", Static).update(text)
