"""Screens that open one version or one training report in full."""

from __future__ import annotations

from typing import Any, Callable

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static
from textual.worker import Worker

from memabra.evaluation.benchmark import BenchmarkSuite
from memabra.evaluation.evaluator import Executor
from memabra.audit_models import HistoryEntry
from memabra.models import BenchmarkSection, TrainingReport
from memabra.overview import gate_rows, metric_rows, off_policy_rows, version_diff
from memabra.storage.store import Store
from memabra.tui.format import number, percent, short_time, signed


def metric_cell(name: str, value: float, is_delta: bool = False) -> str:
    if name == "error_rate":
        return f"{value:+.1%}" if is_delta else percent(value)
    if name == "avg_latency_ms":
        return f"{value:+,.0f} ms" if is_delta else number(value, 0, " ms")
    if name == "task_count":
        return f"{value:+,.0f}" if is_delta else f"{value:,.0f}"
    return signed(value) if is_delta else number(value)


def metrics_table(baseline: dict[str, Any], challenger: dict[str, Any], before: str, after: str) -> DataTable:
    table = DataTable(show_cursor=False, classes="detail-table")
    table.add_columns("metric", before, after, "change")
    for name, old, new, delta in metric_rows(baseline, challenger):
        table.add_row(name, metric_cell(name, old), metric_cell(name, new), metric_cell(name, delta, True))
    return table


def gates_table(gates: list[Any]) -> DataTable:
    table = DataTable(show_cursor=False, classes="detail-table")
    table.add_columns("gate", "value", "threshold", "result")
    for row in gate_rows(gates):
        verdict = Text("pass", style="bold green") if row["passed"] else Text("FAIL", style="bold red")
        table.add_row(row["gate"], f"{row['value']:.4g}", f"{row['rule']}  ({row['threshold_name']})", verdict)
    return table


HISTORY_ROWS = 20
"""Newest changes of the active version shown on a version's screen (`--history` lists them all)."""


def section(title: str) -> Static:
    return Static(Text(title, style="bold"), classes="section-title")


class DetailScreen(Screen):
    """Common frame of the detail screens: a scrolling body filled once the worker has read the store."""

    BINDINGS = [Binding("escape,q,backspace", "app.pop_screen", "Back")]

    def __init__(self, store: Store, document_id: str):
        super().__init__()
        self.store = store
        self.document_id = document_id

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="detail-body"):
            yield Static(f"reading {self.document_id}…", id="detail-loading")
        yield Footer(compact=True, show_command_palette=False)  # fits 80 columns

    def on_mount(self) -> None:
        self.load()

    def load(self) -> None:
        raise NotImplementedError

    async def show(self, widgets: list) -> None:
        body = self.query_one("#detail-body", VerticalScroll)
        await body.remove_children()
        await body.mount_all(widgets)
        body.focus()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.error is not None:
            self.app.show_error(event.worker.error)
            self.query_one("#detail-loading", Static).update(f"could not read {self.document_id}: "
                                                             f"{event.worker.error}")


class VersionScreen(DetailScreen):
    """One version: metrics, the gates it passed, lineage, and how it differs from the version it replaced."""

    def __init__(self, store: Store, version_id: str,
                 benchmark: Callable[[], tuple[BenchmarkSuite, Executor | None]]):
        super().__init__(store, version_id)
        self.benchmark = benchmark
        """The evidence cycles are decided on, so the difference shown is the one gates would see."""

    def on_mount(self) -> None:
        self.sub_title = f"version {self.document_id}"
        super().on_mount()

    @work(thread=True, exclusive=True, exit_on_error=False)
    def load(self) -> None:
        versions = self.store.versions
        version = versions.get_version(self.document_id)
        current = versions.current()
        suite, executor = self.benchmark()
        diff = version_diff(self.store, self.document_id, suite, executor)
        history = self.store.history.version_changes()[:HISTORY_ROWS]
        self.app.call_from_thread(self.render_version, version.model_dump(mode="json"),
                                  current.version_id if current else None, diff, history)

    async def render_version(self, version: dict[str, Any], active_id: str | None, diff: dict[str, Any],
                             history: list[HistoryEntry] | None = None) -> None:
        metrics = version.get("metrics") or {}
        active = " · active" if version["version_id"] == active_id else ""
        summary = Text.assemble(
            (f"version {version['version_id']}", "bold"), (active, "bold green"),
            f"\ncreated {short_time(version.get('created_at'))} UTC · router {version['router'].get('kind')}\n",
            f"benchmark reward {number(metrics.get('avg_reward'))} · errors {percent(metrics.get('error_rate'))}"
            f" · latency {number(metrics.get('avg_latency_ms'), 0, ' ms')} · {metrics.get('task_count', '–')} tasks")
        segments = version.get("training_segments") or []
        shown = f"{len(segments):,} files (listed in the version's training_segments)" if segments else ""
        lineage = Text.assemble(
            ("replaced       ", "dim"), version.get("parent_version_id") or "the built-in heuristic", "\n",
            ("report         ", "dim"), version.get("report_id") or "none recorded", "\n",
            ("trained on     ", "dim"), f"{version.get('training_trajectory_count', 0):,} trajectories", "\n",
            ("from segments  ", "dim"), shown or "none recorded")
        before = diff["compared_with"] or "heuristic"
        where = ("On the newest logged traffic (offpolicy" if diff.get("evidence") == "offpolicy"
                 else "On the benchmark (")
        change = Text.assemble(
            f"{where}{diff['suite']}, {diff['task_count']} tasks) this version picks a different "
            f"candidate than {before} for ", (f"{diff['decision_change_share']:.0%}", "bold"),
            f" of the tasks; average reward {number(diff['avg_reward_before'])} → "
            f"{number(diff['avg_reward_after'])}.")
        families = DataTable(show_cursor=False, classes="detail-table", id="version-families")
        families.add_columns("task family", before, "this version", "change")
        for row in diff["families"]:
            style = "green" if row["change"] > 0.005 else ("red" if row["change"] < -0.005 else "")
            families.add_row(row["family"], number(row["before"]), number(row["after"]),
                             Text(signed(row["change"]), style=style))
        gates = version.get("gates") or []
        await self.show([
            Static(summary), section("Gates it passed"),
            gates_table(gates) if gates else Static("no gates recorded"),
            section("Lineage"), Static(lineage),
            section(f"How it differs from {before}"), Static(change), families,
            section("Changes of the active version (newest first)"), history_table(history or []),
        ])


def history_table(history: list[HistoryEntry]) -> DataTable | Static:
    """The audit log's changes of the active version: when, to which version, from which, by what and why."""
    if not history:
        return Static("no change recorded yet")
    table = DataTable(show_cursor=False, classes="detail-table", id="version-history")
    table.add_columns("changed (UTC)", "active", "replaced", "by", "reason")
    for entry in history:
        table.add_row(short_time(entry.changed_at), entry.version_id or "heuristic",
                      entry.previous_version_id or "heuristic", entry.source, entry.reason or "–")
    return table


class ReportScreen(DetailScreen):
    """One training report: baseline against challenger, every gate, the benchmark and off-policy estimates; `p`
    on a dry run promotes its reviewed challenger (after a confirmation)."""

    BINDINGS = [Binding("p", "promote", "Promote this challenger")]
    report: TrainingReport | None = None

    def action_promote(self) -> None:
        report = self.report
        if report is None or not report.dry_run:
            self.notify("p promotes a dry run's reviewed challenger; this report is not a dry run", markup=False)
            return
        self.app.confirm_promotion(report.report_id, report.accepted, report.baseline_version_id)

    def on_mount(self) -> None:
        self.sub_title = f"report {self.document_id}"
        super().on_mount()

    @work(thread=True, exclusive=True, exit_on_error=False)
    def load(self) -> None:
        report = self.store.reports.get(self.document_id)
        self.app.call_from_thread(self.render_report, report)

    async def render_report(self, report: TrainingReport) -> None:
        self.report = report
        status = report.status
        colour = {"promoted": "bold green", "rejected": "bold red"}.get(status, "cyan")
        verdict = status.replace("_", " ")
        if status == "dry_run":
            verdict += ", would pass" if report.accepted else ", would fail"
        summary = Text.assemble(
            (f"report {report.report_id}  ", "bold"), (verdict, colour),
            f"\nfinished {short_time(report.finished_at)} UTC · baseline "
            f"{report.baseline_version_id or 'built-in heuristic'} · "
            f"{saved_as(report)}\n"
            f"trained on {report.training_trajectory_count:,} trajectories "
            f"({report.new_trajectory_count:,} new, {report.invalid_trajectory_count:,} invalid)"
            f"\ndecided on evidence: {report.evidence or 'benchmark'}"
            + (f" · reward gain {report.reward_delta_basis}" if report.reward_delta_basis else ""))
        widgets: list = [Static(summary), section("Baseline against challenger"),
                         metrics_table(report.baseline.model_dump(), report.challenger.model_dump(), "baseline",
                                       "challenger"),
                         section("Gates"), gates_table(report.gates)]
        if report.reasons:
            widgets.append(Static(Text("\n".join(f"• {reason}" for reason in report.reasons), style="red")))
        widgets.extend(benchmark_widgets(report.benchmark))
        off_policy = report.off_policy
        estimates = off_policy_rows(off_policy)
        if off_policy is not None and estimates:
            widgets.append(section(f"Off-policy estimates ({off_policy.held_out_count:,} held-out trajectories)"))
            table = DataTable(show_cursor=False, classes="detail-table")
            table.add_columns("estimator", "router", "estimate", f"{off_policy.level:.0%} interval", "ESS")
            for row in estimates:
                interval = (f"{row['low']:.3f} … {row['high']:.3f}"
                            if row["low"] is not None and row["high"] is not None else "–")
                estimate = signed(row["estimate"]) if row["side"] == "delta" else number(row["estimate"])
                table.add_row(row["estimator"].upper(), row["side"], estimate, interval,
                              number(row["ess"], 0) if row["ess"] is not None else "–")
            widgets.append(table)
            warnings = list(off_policy.warnings)
            if off_policy.propensities_suspect:
                warnings.insert(0, "the logged propensities look wrong; these estimates are not to be trusted")
            if warnings:
                widgets.append(Static(Text("\n".join(f"⚠ {warning}" for warning in warnings), style="yellow")))
        if report.dry_run:
            widgets.append(Static("p promotes this challenger exactly as reviewed (asks first)", classes="note"))
        await self.show(widgets)


def benchmark_widgets(benchmark: BenchmarkSection | None) -> list:
    """The benchmark part of a report: oracle value, decision changes and reward by family."""
    if benchmark is None:
        return []
    line = Text(f"{benchmark.suite}: {benchmark.task_count} tasks · the "
                f"challenger changes {benchmark.decision_change_share:.0%} of decisions")
    if benchmark.oracle_value is not None:
        line.append(f" · best possible {number(benchmark.oracle_value)}, expected baseline "
                    f"{number(benchmark.baseline_expected_value)}, challenger "
                    f"{number(benchmark.challenger_expected_value)}")
    widgets: list = [section("Benchmark"), Static(line)]
    baseline = benchmark.baseline_family_rewards
    challenger = benchmark.challenger_family_rewards
    if baseline and challenger:
        table = DataTable(show_cursor=False, classes="detail-table")
        table.add_columns("task family", "baseline", "challenger", "change")
        for family, after in challenger.items():
            before = baseline.get(family)
            table.add_row(family, number(before), number(after),
                          signed(after - before) if before is not None else "–")
        widgets.append(table)
    return widgets


def saved_as(report: TrainingReport) -> str:
    """Where the challenger went: the version it was saved as, or why it was not kept."""
    if report.challenger_version_id:
        return f"challenger saved as version {report.challenger_version_id}"
    why = {"dry_run": "a dry run keeps no version", "rejected": "rejected by the gates"}.get(report.status, "")
    return "challenger not saved" + (f" ({why})" if why else "")
