"""Getting trajectories into the store from the console: `g` appends demo traffic, `i` imports a `.jsonl` file or
folder, through the same engine functions as `--demo-trajectories` and `--ingest`."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from memabra.errors import BadInputError

DEMO_TRAFFIC_DEFAULT = 500


class AskScreen(ModalScreen[str | None]):
    """One question with a text answer: enter confirms, esc cancels."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, title: str, note: str, answer: str, screen_id: str):
        super().__init__()
        self.title_text, self.note, self.answer, self.screen_id = title, note, answer, screen_id

    def compose(self) -> ComposeResult:
        with Vertical(id=self.screen_id, classes="dialog"):
            yield Static(Text(self.title_text, style="bold"))
            yield Input(self.answer, id="answer")
            yield Static("", id="ask-error", classes="error")
            yield Static(self.note, classes="note")
            with Horizontal(classes="buttons"):
                yield Button("Go (enter)", variant="primary", id="go")
                yield Button("Cancel (esc)", id="cancel")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip())

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(self.query_one("#answer", Input).value.strip() if event.button.id == "go" else None)


class TrafficAdded(Message):
    """Trajectories were appended (demo traffic) or imported; `line` says how many and from where."""

    def __init__(self, line: str):
        super().__init__()
        self.line = line


class TrafficActions:
    """The console's actions that add trajectories (mixed into the app, whose store and settings they use)."""

    def action_demo_traffic(self) -> None:
        def answered(answer: str | None) -> None:
            if answer:
                try:
                    count = int(answer.replace(",", "").replace("_", ""))
                except ValueError:
                    count = -1
                if count <= 0:
                    self.show_notice(f"{answer!r} is not a number of trajectories; give a whole number above 0",
                                     "error")
                    return
                self.show_notice(f"appending {count:,} demo trajectories…", "working")
                self.run_demo_traffic(count)

        self.push_screen(AskScreen(
            "Append demo traffic: how many trajectories?",
            "The simulated demo world's tasks, routed by the active router while exploring (as "
            "`--demo-trajectories N`). For demo stores: a real agent's store should get its own traffic.",
            str(DEMO_TRAFFIC_DEFAULT), "ask-demo"), answered)

    def action_import_logs(self) -> None:
        def answered(answer: str | None) -> None:
            if answer:
                self.show_notice(f"importing {answer}…", "working")
                self.run_import(Path(answer).expanduser())

        self.push_screen(AskScreen(
            "Import trajectories: a .jsonl file or a folder of them",
            "One trajectory per line in docs/trajectory-schema.md (as `--ingest PATH`); lines already stored are "
            "skipped, invalid lines are counted and the rest go in.", "", "ask-import"), answered)

    @work(thread=True, exclusive=True, exit_on_error=False, group="traffic", name="traffic")
    def run_demo_traffic(self, count: int) -> None:
        """Append demo traffic in a thread; post what was added."""
        from memabra.demo.traffic import append_demo_traffic

        summary = append_demo_traffic(self.store, self.settings, count)
        self.post_message(TrafficAdded(f"appended {summary['appended']:,} demo trajectories"))

    @work(thread=True, exclusive=True, exit_on_error=False, group="traffic", name="traffic")
    def run_import(self, path: Path) -> None:
        """Import a .jsonl file or folder in a thread; post the counts."""
        from memabra.ingest import ingest_trajectories

        if not path.exists():
            raise BadInputError(f"{path} does not exist; give a .jsonl file or a folder of them")
        result = ingest_trajectories(self.store.base_dir, path)
        line = (f"imported {path}: {result['stored_count']:,} stored, {result['duplicate_count']:,} already there, "
                f"{result['invalid_count']:,} invalid")
        if result["invalid"]:
            first = result["invalid"][0]
            line += f" (first: line {first['line']}, {first['field']}: {first['error']})"
        self.post_message(TrafficAdded(line))

    def on_traffic_added(self, message: TrafficAdded) -> None:
        self.show_notice(message.line, "done")
        self.reload()
