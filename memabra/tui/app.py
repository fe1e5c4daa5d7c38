"""The operator console: router status, version history, training reports and the live cycle on one screen."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Iterable

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Label, Sparkline, Static
from textual.worker import Worker, WorkerState, get_current_worker

from memabra import promotion, workflow
from memabra.api import benchmark_of, cycle_request, resolve_settings
from memabra.check import check_store
from memabra.errors import LockHeldError, MemabraError
from memabra.overview import Overview, ReportRow, VersionRow, load_overview, store_fingerprint
from memabra.results import CycleResult
from memabra.settings import Settings, reload_settings
from memabra.storage.store import Store
from memabra.store_settings import save_store_settings
from memabra.tui.guard_panel import GuardPanel, announcement, guard_text
from memabra.tui.format import (describe_gates, describe_outcome, describe_sources, number, percent, short_time,
                                signed, status_text)
from memabra.tui.messages import CheckFinished, CycleFinished, CycleProgress, RolledBack, StoreLoaded
from memabra.tui.screens.details import ReportScreen, VersionScreen
from memabra.tui.stage_panel import StagePanel
from memabra.tui.screens.modals import (CheckScreen, ErrorScreen, HelpScreen, PolicyScreen, PromoteScreen,
                                       RollbackScreen)
from memabra.tui.traffic import TrafficActions

POLL_SECONDS = 1.0
"""How often the console looks (cheaply, by mtimes) whether another process changed the store."""

KEYS: tuple[tuple[str, str, str, str], ...] = (
    ("d", "dry_run", "Dry run", "dry run: train, evaluate, write a report; promote nothing"),
    ("p", "cycle", "Cycle", "cycle: promote the challenger if every gate passes"),
    ("r", "rollback", "Roll back", "roll back to the highlighted version (asks first)"),
    ("c", "cancel_cycle", "Cancel", "cancel the running cycle; it writes nothing"),
    ("t", "thresholds", "Gates", "change the promotion gates, saved in the store's memabra.toml"),
    ("k", "check", "Check", "check every file of the store; offers a repair"),
    ("g", "demo_traffic", "Demo traffic", "append demo traffic: simulated trajectories (demo stores)"),
    ("i", "import_logs", "Import", "import trajectories from a .jsonl file or a folder of them"),
    ("f5", "refresh", "Refresh", "read the store again (it also follows changes)"),
    ("question_mark", "help", "Help", "this list of keys"),
    ("q", "quit", "Quit", "quit (a running cycle is cancelled)"),
)
"""Every key of the main screen: key, action, footer label, what it does (footer, help screen, palette)."""
NOT_IN_FOOTER = {"g", "i", "f5"}
"""Keys left out of the footer so it fits 80 columns (the help screen and the palette list them)."""
NOTICE_STYLES = {"error": "bold red", "locked": "bold yellow", "working": "yellow", "done": "green"}

VERSION_COLUMNS = (("  version", "id", 17), ("created (UTC)", "created", 16), ("reward", "reward", 6),
                   ("errors", "errors", 6), ("latency", "latency", 7), ("trained", "trained", 7))
"""Version table columns: label, key, width (a version id with its marker, a UTC minute, numbers)."""
REPORT_COLUMNS = (("finished (UTC)", "when", 16), ("outcome", "outcome", 12), ("Δreward", "delta", 7),
                  ("first reason", "reason", 28))
"""Report table columns: label, key, width (the reason is a short gate reason, see overview.short_gate_reason)."""

ENTER_HELP = ("enter", "open the highlighted version or report (esc: back)")
TAB_HELP = ("tab", "move between the version and report tables")


class MemabraConsole(TrafficActions, App[int]):
    """memabra's operator console over one base dir."""

    CSS_PATH = "app.tcss"
    TITLE = "memabra"
    BINDINGS = [Binding(key, action, label, tooltip=what, show=key not in NOT_IN_FOOTER)
                for key, action, label, what in KEYS]
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide"), (160, "-widest")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (30, "-tall")]

    def __init__(self, base_dir: Path, settings: Settings | None = None, poll_seconds: float = POLL_SECONDS):
        super().__init__()
        self.store = Store(base_dir)
        self.base_dir = self.store.base_dir
        self.settings = resolve_settings(settings, base_dir=self.base_dir)
        self.poll_seconds = poll_seconds
        self.overview: Overview | None = None
        self.fingerprint: tuple | None = None
        self.cycle_running = False
        self.cycle_kind = ""
        self.last_result: CycleResult | None = None
        self.cancel_event = threading.Event()
        self.announced_guard_report: str | None = None

    @property
    def main_screen(self) -> Screen:
        """The four-panel screen, wherever the operator is (a detail screen or modal may be on top)."""
        return self.screen_stack[0]

    # -- layout ----------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="main"):
            with Vertical(id="left"):
                with VerticalScroll(id="status-panel", classes="panel"):
                    yield Static("reading the store…", id="status")
                    yield Label("", id="trend-label")
                    yield Sparkline([], id="trend")
                    yield Static("", id="settings-sources")
                    yield GuardPanel(id="guard-panel")
                yield StagePanel(id="cycle-panel", classes="panel -idle")
            with Vertical(id="right"):
                with Vertical(id="versions-panel", classes="panel"):
                    yield DataTable(id="versions", cursor_type="row", zebra_stripes=True)
                with Vertical(id="reports-panel", classes="panel"):
                    yield DataTable(id="reports", cursor_type="row", zebra_stripes=True)
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.sub_title = str(self.base_dir)
        self.main_screen.query_one("#status-panel").border_title = "Router status"
        self.main_screen.query_one("#versions-panel").border_title = "Version history"
        self.main_screen.query_one("#reports-panel").border_title = "Training reports"
        self.main_screen.query_one("#cycle-panel").border_title = "Live cycle"
        # Fixed widths: a table that measures its rows after a first paint can keep stale, cropped lines.
        versions = self.main_screen.query_one("#versions", DataTable)
        for label, key, width in VERSION_COLUMNS:
            versions.add_column(label, key=key, width=width)
        reports = self.main_screen.query_one("#reports", DataTable)
        for label, key, width in REPORT_COLUMNS:
            reports.add_column(label, key=key, width=width)
        versions.focus()
        self.reload()
        self.set_interval(self.poll_seconds, self.poll_store)

    # -- reading the store -----------------------------------------------------------------------
    @work(thread=True, exclusive=True, exit_on_error=False, group="load", name="load")
    def reload(self) -> None:
        """Read the store in a thread and post what the main screen shows."""
        fingerprint = store_fingerprint(self.store)
        overview = load_overview(self.store, self.settings)
        if not get_current_worker().is_cancelled:
            self.post_message(StoreLoaded(overview, fingerprint))

    def poll_store(self) -> None:
        """Reload when the store changed under the console (another process promoted, rolled back, appended)."""
        if self.fingerprint is not None and store_fingerprint(self.store) != self.fingerprint:
            self.fingerprint = None
            self.reload()

    def on_store_loaded(self, message: StoreLoaded) -> None:
        self.fingerprint = message.fingerprint
        previous, self.overview = self.overview, message.overview
        self.show_status(message.overview)
        if previous is None or previous.versions != message.overview.versions:
            self.fill_versions(message.overview.versions)
        if previous is None or previous.reports != message.overview.reports:
            self.fill_reports(message.overview.reports)
        if not self.cycle_running:
            status = message.overview.status
            latest = status.latest_report if status else None
            mine = self.last_result
            if mine is not None and (latest is None or mine.finished_at >= latest.finished_at):
                outcome = describe_outcome(mine, "this cycle")
            else:  # the store's newest report, whichever process (cron, another console) ran it
                outcome = describe_outcome(latest, "last cycle") if latest else Text("no cycle has run yet")
            outcome.append("\n\nd dry run · p cycle · g demo traffic · i import", style="dim")
            self.main_screen.query_one(StagePanel).show_outcome(outcome)

    def show_notice(self, line: str, kind: str) -> None:
        """A message that stays in the live-cycle panel until the next one (a held lock, an error, progress)."""
        self.main_screen.query_one("#notice", Static).update(Text(line, style=NOTICE_STYLES.get(kind, "")))

    def show_status(self, overview: Overview) -> None:
        self.main_screen.query_one("#settings-sources", Static).update(describe_sources(self.settings))
        text = status_text(overview, self.settings, running=self.cycle_kind if self.cycle_running else None)
        guard = overview.status.guard if overview.status else None
        if guard is not None:
            text.append("\n")
            text.append(guard_text(guard))
        self.main_screen.query_one("#status", Static).update(text)
        self.main_screen.query_one(GuardPanel).show(overview.guard)
        current = overview.status.current if overview.status else None
        message = announcement(guard, current.reason if current else None)
        if message and guard.last_guard_report_id != self.announced_guard_report:
            self.announced_guard_report = guard.last_guard_report_id
            self.main_screen.query_one(StagePanel).log_line(message)
            self.notify(message, title="Guard rollback", severity="error", timeout=24 * 3600)
        trend = overview.reward_trend
        sparkline = self.main_screen.query_one("#trend", Sparkline)
        sparkline.data = trend
        sparkline.set_class(len(trend) < 2, "-hidden")
        label = self.main_screen.query_one("#trend-label", Label)
        label.set_class(len(trend) < 2, "-hidden")
        if len(trend) >= 2:
            label.update(f"reward by version: {trend[0]:.3f} → {trend[-1]:.3f}")

    def fill_versions(self, rows: list[VersionRow]) -> None:
        table = self.main_screen.query_one("#versions", DataTable)
        highlighted = highlighted_id(table)
        table.clear()
        for row in rows:
            table.add_row(
                Text("● " + row.version_id, style="bold green") if row.active else "  " + row.version_id,
                short_time(row.created_at),
                number(row.avg_reward), percent(row.error_rate), number(row.avg_latency_ms, 0, " ms"),
                f"{row.training_trajectory_count:,}", key=row.version_id)
        restore_cursor(table, highlighted)
        self.main_screen.query_one("#versions-panel").border_subtitle = (
            f"{len(rows):,} · ● active · enter opens" if rows else "none yet: press p to run a cycle")

    def fill_reports(self, rows: list[ReportRow]) -> None:
        table = self.main_screen.query_one("#reports", DataTable)
        highlighted = highlighted_id(table)
        table.clear()
        for row in rows:
            table.add_row(short_time(row.finished_at), outcome_cell(row),
                          signed(row.reward_delta), row.first_reason or "all gates passed", key=row.report_id)
        restore_cursor(table, highlighted)
        self.main_screen.query_one("#reports-panel").border_subtitle = (
            f"{len(rows):,} · enter opens" if rows else "none yet: press d for a dry run")

    @on(DataTable.RowSelected, "#versions")
    def open_version(self, event: DataTable.RowSelected) -> None:
        self.push_screen(VersionScreen(self.store, event.row_key.value, lambda: benchmark_of(self.settings, store=self.store)))

    @on(DataTable.RowSelected, "#reports")
    def open_report(self, event: DataTable.RowSelected) -> None:
        self.push_screen(ReportScreen(self.store, event.row_key.value))

    # -- cycles --------------------------------------------------------------------------------
    def action_dry_run(self) -> None:
        self.start_cycle(dry_run=True)

    def action_cycle(self) -> None:
        self.start_cycle(dry_run=False)

    def start_cycle(self, dry_run: bool) -> None:
        if self.cycle_running:
            self.notify(f"a {self.cycle_kind} is already running; wait for it or press c to cancel it",
                        severity="warning", markup=False)
            return
        self.cycle_running = True
        self.show_notice("", "")
        self.cycle_kind = "dry-run cycle" if dry_run else "cycle"
        self.cancel_event = threading.Event()
        panel = self.main_screen.query_one(StagePanel)
        panel.reset()
        panel.remove_class("-idle")
        panel.show_outcome(Text(f"running: {self.cycle_kind} · c cancels", style="bold yellow"))
        panel.log_line(f"{self.cycle_kind} started with gates {describe_gates(self.settings)}")
        self.run_cycle(dry_run, self.cancel_event)

    @work(thread=True, exclusive=True, exit_on_error=False, group="cycle", name="cycle")
    def run_cycle(self, dry_run: bool, cancel: threading.Event) -> None:
        """Run the engine's cycle in a thread; progress and the result come back as messages."""
        request = cycle_request(self.store, self.settings, dry_run=dry_run or self.settings.dry_run)
        result = workflow.run_cycle(self.store, self.settings, request, cancel=cancel,
                                    on_event=lambda event: self.post_message(CycleProgress(event)))
        self.post_message(CycleFinished(result))

    def on_cycle_progress(self, message: CycleProgress) -> None:
        event = message.event
        self.main_screen.query_one(StagePanel).show_event(event.stage, event.done, event.total, event.message)

    def on_cycle_finished(self, message: CycleFinished) -> None:
        result = message.result
        self.last_result = result
        panel = self.main_screen.query_one(StagePanel)
        panel.show_outcome(describe_outcome(result, "this cycle"))
        panel.log_line(describe_outcome(result, "result").plain)
        severity = "information" if result.status in ("promoted", "dry_run") else "warning"
        self.notify(describe_outcome(result, "cycle").plain, severity=severity, markup=False)
        self.reload()

    def action_cancel_cycle(self) -> None:
        if not self.cycle_running:
            self.notify("no cycle is running", markup=False)
            return
        self.cancel_event.set()
        self.main_screen.query_one(StagePanel).log_line("cancelling at the next batch…")

    # -- rollback ------------------------------------------------------------------------------
    def action_rollback(self) -> None:
        if isinstance(self.screen, VersionScreen):
            target = self.screen.document_id
        elif self.screen is self.main_screen:
            target = highlighted_id(self.main_screen.query_one("#versions", DataTable))
        else:
            self.notify("open a version (or go back to the version table) to roll back to it", markup=False)
            return
        if target is None:
            self.notify("no version to roll back to yet: versions appear after a promoted cycle", markup=False)
            return
        status = self.overview.status if self.overview else None
        active = status.current.version_id if status and status.current else None
        known = status is not None and status.active_router != "unknown"
        active_label = active or ("built-in heuristic" if known else
                                  "unknown: current.json is unreadable, so agents keep serving what they loaded")
        if target == active:
            self.notify(f"{target} is already active; highlight an earlier version first", severity="warning",
                        markup=False)
            return
        if self.cycle_running:
            self.notify("a cycle is running; roll back after it ends (or press c to cancel it)",
                        severity="warning", markup=False)
            return

        def confirmed(answer: bool | None) -> None:
            if answer:
                self.run_rollback(target)

        self.push_screen(RollbackScreen(active_label, target), confirmed)

    @work(thread=True, exclusive=True, exit_on_error=False, group="rollback", name="rollback")
    def run_rollback(self, version_id: str) -> None:
        """Roll back in a thread (the engine takes the lock) and post the new current document."""
        self.post_message(RolledBack(promotion.roll_back(self.store, version_id)[0]))

    def on_rolled_back(self, message: RolledBack) -> None:
        current = message.current
        if current.promotion_source == "promote":
            line = (f"promoted the challenger of dry run {current.report_id}: {current.version_id} is active "
                    f"(was {current.prior_version_id or 'the heuristic'})")
        else:
            line = f"rolled back: {current.version_id} is active (was {current.rollback_from or 'none'})"
        self.show_notice(line, "done")
        self.notify(line, markup=False)
        self.reload()

    # -- store check -------------------------------------------------------------------------
    def action_check(self) -> None:
        self.notify("checking every file of the store…", markup=False)
        self.run_check(repair=False)

    @work(thread=True, exclusive=True, exit_on_error=False, group="check", name="check")
    def run_check(self, repair: bool) -> None:
        """Check (or repair, under the lock) in a thread and post what was found."""
        self.post_message(CheckFinished(check_store(self.store, repair=repair)))

    def on_check_finished(self, message: CheckFinished) -> None:
        result = message.result
        checked = result.checked
        if not result.problems:
            self.notify(f"the store is healthy: {checked.get('files', 0):,} files, "
                        f"{checked.get('trajectories', 0):,} trajectories checked", markup=False)
            return

        def answered(repair: bool | None) -> None:
            if repair:
                self.run_check(repair=True)

        self.push_screen(CheckScreen(result), answered)
        if result.repair:
            self.reload()

    # -- other keys ----------------------------------------------------------------------------
    def action_refresh(self) -> None:
        self.reload()

    def action_help(self) -> None:
        self.push_screen(HelpScreen(help_rows()))

    def action_thresholds(self) -> None:
        def chosen(update: dict[str, Any] | None) -> None:
            if update:
                self.save_gates(update)

        self.push_screen(PolicyScreen(self.settings), chosen)

    def save_gates(self, update: dict[str, Any]) -> None:
        """Write the changed values into the store's memabra.toml (so cron cycles apply them too) and use them."""
        changed = {name: value for name, value in update.items() if value != self.settings.value(name)}
        if not changed:
            return
        try:
            save_store_settings(self.store, changed, source="console")
        except MemabraError as exc:
            self.show_error(exc)
            return
        self.settings = reload_settings(self.settings)
        overridden = [f"{name} ({self.settings.origins()[name]})" for name, value in changed.items()
                      if self.settings.value(name) != value]
        message = f"saved in memabra.toml; gates for the next cycles: {describe_gates(self.settings)}"
        if overridden:
            message += "; still overridden here by " + ", ".join(overridden)
        self.notify(message, markup=False)
        if self.overview is not None:
            self.show_status(self.overview)

    # -- reviewed promotion ----------------------------------------------------------------------
    def confirm_promotion(self, report_id: str, accepted: bool, baseline_id: str | None) -> None:
        """Ask before promoting a dry run's reviewed challenger, naming it and what it replaces."""
        status = self.overview.status if self.overview else None
        active = status.current.version_id if status and status.current else None
        if self.cycle_running:
            self.notify("a cycle is running; promote after it ends", severity="warning", markup=False)
            return

        def confirmed(answer: bool | None) -> None:
            if answer:
                self.run_promotion(report_id)

        self.push_screen(PromoteScreen(report_id, active, accepted, baseline_id), confirmed)

    @work(thread=True, exclusive=True, exit_on_error=False, group="promote", name="promote")
    def run_promotion(self, report_id: str) -> None:
        """Promote in a thread (the engine takes the lock) and post the new current document."""
        self.post_message(RolledBack(promotion.promote_reviewed(self.store, report_id)))

    async def action_quit(self) -> None:
        self.cancel_event.set()
        self.exit(0)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for key, action, label, what in KEYS:
            if action not in ("quit", "help"):
                yield SystemCommand(f"{label} ({display_key(key)})", what, getattr(self, f"action_{action}"))
        yield SystemCommand("Help (?)", "every key of the console and what it does", self.action_help)

    # -- one place for worker errors -------------------------------------------------------------
    @on(Worker.StateChanged)
    def worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.name == "cycle" and event.state in (WorkerState.SUCCESS, WorkerState.ERROR,
                                                            WorkerState.CANCELLED):
            self.cycle_running = False
            self.main_screen.query_one(StagePanel).add_class("-idle")
            if event.state == WorkerState.ERROR:
                self.main_screen.query_one(StagePanel).show_outcome(
                    Text(f"{self.cycle_kind} failed: {event.worker.error}", style="bold red"))
        if event.state == WorkerState.ERROR:
            self.show_error(event.worker.error)

    def show_error(self, error: BaseException | None) -> None:
        """Show a worker's error: the engine's own errors as a notification, anything else as a modal."""
        if isinstance(error, LockHeldError):
            self.show_notice(f"store locked: {error}", "locked")
            self.notify(str(error), title="store locked", severity="warning", timeout=10, markup=False)
            self.reload()
        elif isinstance(error, MemabraError):
            self.show_notice(f"error: {error}", "error")
            self.notify(str(error), title="error", severity="error", timeout=15, markup=False)
            self.reload()
        else:
            self.push_screen(ErrorScreen(f"unexpected {type(error).__name__}: {error}"))


def outcome_cell(row: ReportRow) -> Text:
    """A report's outcome, coloured: promoted, rejected, or a dry run that would pass or fail the gates."""
    if row.status == "dry_run":
        return Text("dry-run pass" if row.accepted else "dry-run fail", style="cyan" if row.accepted else "red")
    return Text(row.status, style="bold green" if row.status == "promoted" else "bold red")


def highlighted_id(table: DataTable) -> str | None:
    """The id (row key) under a table's cursor, or None when the table is empty."""
    if table.row_count == 0:
        return None
    return table.ordered_rows[min(table.cursor_row, table.row_count - 1)].key.value


def restore_cursor(table: DataTable, row_id: str | None) -> None:
    """Put the cursor back on the row it was on before a reload, when that row is still there."""
    if row_id is None:
        return
    try:
        table.move_cursor(row=table.get_row_index(row_id), animate=False)
    except Exception:  # noqa: BLE001 - the row is gone; the cursor stays where it is
        pass


def display_key(key: str) -> str:
    return {"question_mark": "?", "f5": "F5"}.get(key, key)


def help_rows() -> list[tuple[str, str]]:
    """(key, what it does) for the help screen, in footer order."""
    return [(display_key(key), what) for key, _, _, what in KEYS] + [ENTER_HELP, TAB_HELP,
                                                                    ("ctrl+p", "command palette")]


def run_console(settings: Settings) -> int:
    """Run the console on the settings' store until the operator quits; return the exit code."""
    return MemabraConsole(settings.base_dir, settings).run() or 0
