"""Modals: confirm a rollback, list the keys, change the promotion gates, show an unexpected error."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Input, Label, Static

from memabra.api import resolve_settings
from memabra.errors import SettingError
from memabra.results import CheckResult
from memabra.settings import GATE_FIELDS, Settings, setting_fields


class RollbackScreen(ModalScreen[bool]):
    """Asks before a rollback, naming the active version and the target; only `y`/Roll back confirms."""

    BINDINGS = [Binding("escape,n", "dismiss(False)", "Keep"), Binding("y", "dismiss(True)", "Roll back")]

    def __init__(self, active_id: str | None, target_id: str):
        super().__init__()
        self.active_id = active_id
        self.target_id = target_id

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="dialog"):
            yield Static(Text("Roll back the router?", style="bold"))
            yield Static(Text.assemble(("active now   ", "dim"), (self.active_id or "built-in heuristic", "bold"),
                                       "\n", ("will become  ", "dim"), (self.target_id, "bold yellow")))
            yield Static("Agents route with the target from their next task. The change is recorded in "
                         "current.json's rollback history and can itself be rolled back.", classes="note")
            with Horizontal(classes="buttons"):
                yield Button("Roll back (y)", variant="warning", id="confirm")
                yield Button("Keep (esc)", variant="primary", id="keep")

    def on_mount(self) -> None:
        self.query_one("#keep", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm")


class PromoteScreen(ModalScreen[bool]):
    """Asks before promoting a dry run's reviewed challenger, naming it and the version it replaces."""

    BINDINGS = [Binding("escape,n", "dismiss(False)", "Keep"), Binding("y", "confirm", "Promote")]

    def __init__(self, report_id: str, active_id: str | None, accepted: bool, baseline_id: str | None):
        super().__init__()
        self.report_id = report_id
        self.active_id = active_id
        self.accepted = accepted
        self.baseline_id = baseline_id

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="dialog"):
            yield Static(Text("Promote the reviewed challenger?", style="bold"))
            yield Static(Text.assemble(("active now   ", "dim"), (self.active_id or "built-in heuristic", "bold"),
                                       "\n", ("will become  ", "dim"),
                                       (f"the challenger of dry run {self.report_id}", "bold yellow")))
            warnings = self.warnings()
            note = ("It is saved as a new version exactly as reviewed; the change goes into the store's history "
                    "and can be rolled back.")
            if warnings:
                note = ("Refused unless forced: " + " and ".join(warnings) + ". Force it from the command line: "
                        f"--promote {self.report_id} --force --reason TEXT.")
            yield Static(note, classes="note")
            with Horizontal(classes="buttons"):
                yield Button("Promote (y)", variant="warning", id="confirm", disabled=bool(warnings))
                yield Button("Keep (esc)", variant="primary", id="keep")

    def warnings(self) -> list[str]:
        """Why the promotion would be refused without force."""
        warnings = []
        if not self.accepted:
            warnings.append("its gates failed")
        if self.baseline_id != self.active_id:
            warnings.append(f"it was compared with {self.baseline_id or 'the heuristic'}, which is no longer "
                            "active")
        return warnings

    def action_confirm(self) -> None:
        if not self.warnings():
            self.dismiss(True)

    def on_mount(self) -> None:
        self.query_one("#keep", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm")


class HelpScreen(ModalScreen[None]):
    """Every key of the console, with what it does."""

    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def __init__(self, rows: list[tuple[str, str]]):
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        with Vertical(id="help", classes="dialog"):
            yield Static(Text("Keys", style="bold"))
            table = DataTable(show_cursor=False, id="help-keys")
            table.add_columns("key", "what it does")
            for key, what in self.rows:
                table.add_row(Text(key, style="bold"), what)
            yield table
            yield Static("esc closes", classes="note")


POLICY_FIELDS: tuple[str, ...] = (*GATE_FIELDS, "min_new_trajectories")
"""What the gates dialog edits: every gate, then the minimum of new trajectories a cycle needs."""


class PolicyScreen(ModalScreen[dict[str, Any] | None]):
    """Edit the promotion gates (and the minimum of new trajectories) used by the next cycles; each field is
    generated from the setting's own declaration, its description shown beside it."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, settings: Settings):
        super().__init__()
        self.settings = settings

    def compose(self) -> ComposeResult:
        fields = setting_fields()
        with Vertical(id="policy", classes="dialog"):
            yield Static(Text("Promotion gates for the next cycles", style="bold"))
            with Grid(id="policy-fields"):
                for name in POLICY_FIELDS:
                    info = fields[name]
                    yield Label(name)
                    kind = {int: "integer", float: "number"}.get(info.annotation, "text")
                    yield Input(str(self.settings.value(name)), id=name, compact=True, type=kind,
                                tooltip=" ".join((info.description or "").split()))
            yield Static("", id="policy-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Apply (enter)", variant="primary", id="apply")
                yield Button("Cancel (esc)", id="cancel")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.apply()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "apply":
            self.apply()
        else:
            self.dismiss(None)

    def apply(self) -> None:
        values = {name: self.query_one(f"#{name}", Input).value.strip() for name in POLICY_FIELDS}
        try:
            settings = resolve_settings(self.settings, **values)
        except SettingError as exc:
            self.query_one("#policy-error", Static).update(str(exc))
            return
        self.dismiss({name: settings.value(name) for name in POLICY_FIELDS})


class ErrorScreen(ModalScreen[None]):
    """An error the console did not expect, in one line, with how to go on."""

    BINDINGS = [Binding("escape,enter", "dismiss", "Close")]

    def __init__(self, message: str):
        super().__init__()
        self.message = message

    def compose(self) -> ComposeResult:
        with Vertical(id="error", classes="dialog"):
            yield Static(Text("Something went wrong", style="bold red"))
            yield Static(Text(self.message))
            yield Static("The store was not changed by this error. Press esc to go back; F5 reads the store "
                         "again. For a traceback run the same action with `memabra --headless ... --debug`.",
                         classes="note")


class CheckScreen(ModalScreen[bool]):
    """What a store check found, one problem a row; `R` repairs what can be repaired without losing data."""

    BINDINGS = [Binding("escape,q", "dismiss(False)", "Close"), Binding("R", "repair", "Repair")]

    def __init__(self, result: CheckResult):
        super().__init__()
        self.result = result

    def compose(self) -> ComposeResult:
        result = self.result
        if result.repair:
            title = Text(f"Repair: {result.repaired_count} of {result.problem_count} problems fixed",
                         style="bold green" if result.healthy else "bold yellow")
        else:
            title = Text(f"The check found {result.problem_count} problem(s)", style="bold red")
        with Vertical(id="check", classes="dialog"):
            yield Static(title)
            with VerticalScroll(id="check-problems"):
                for problem in result.problems:  # wrapped, never cut: the fix is the point of the dialog
                    yield Static(Text.assemble(
                        (problem.path, "bold"), "\n", problem.problem, "\n",
                        ("repaired: " if problem.repaired else "fix: ", "dim"),
                        (problem.fix, "green" if problem.repaired else "")), classes="check-problem")
            can_repair = not result.repair
            note = ("Repair (as `--check --repair`) moves unreadable files to quarantine/ (it never deletes a "
                    "document), seals dead writers' journals and removes leftover temp files, under the store's "
                    "lock." if can_repair else
                    "Problems left need a person: the fix column says what to do.")
            yield Static(note, classes="note")
            with Horizontal(classes="buttons"):
                if can_repair:
                    yield Button("Repair (R)", variant="warning", id="repair")
                yield Button("Close (esc)", variant="primary", id="close")

    def action_repair(self) -> None:
        if not self.result.repair:
            self.dismiss(True)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "repair")
