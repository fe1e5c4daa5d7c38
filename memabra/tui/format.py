"""How the console writes numbers, times and the router status as text."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.text import Text

from memabra.suggestions import command_to_run
from memabra.overview import Overview
from memabra.results import LockHolder
from memabra.settings import Settings


def number(value: float | None, digits: int = 3, unit: str = "") -> str:
    return "–" if value is None else f"{value:,.{digits}f}{unit}"


def signed(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:+.{digits}f}"


def percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def short_time(moment: str | datetime | None) -> str:
    """`2026-01-01T02:00:03Z` (or that datetime) as `2026-01-01 02:00` (times in the store are UTC)."""
    if not moment:
        return "–"
    iso = moment.isoformat() if isinstance(moment, datetime) else moment
    return iso.replace("T", " ")[:16]


def describe_gates(settings: Settings, width: int | None = None, indent: str = "") -> str:
    """The gates as applied, named by their profile (production decides on the reward gain's lower bound); with a
    width, packed into lines of at most that many characters, each after the first starting with `indent`."""
    gates = settings.gates.effective()
    bound = " (lower bound)" if gates.reward_delta_bound != "off" else ""
    items = [gates.gate_profile, f"Δreward{bound} ≥ {gates.min_reward_delta:g}",
             f"Δerrors ≤ {gates.max_error_rate_increase:g}", f"Δlatency ≤ {gates.max_latency_increase_ms:g} ms",
             f"tasks ≥ {gates.required_task_count}"]
    lines = [items[0]]
    for item in items[1:]:
        if width is not None and len(lines[-1]) + 3 + len(item) > width:
            lines.append(item)
        else:
            lines[-1] += " · " + item
    return ("\n" + indent).join(lines)


SOURCE_LABELS = {"flag": "flags", "environment": "environment", "memabra.toml": "memabra.toml", "default": "defaults"}


def describe_sources(settings: Settings) -> Text:
    """Every setting's effective value, grouped by where it came from (flags, environment, memabra.toml, defaults)."""
    text = Text("\nsettings by source", style="dim")
    grouped: dict[str, list[str]] = {}
    for name, origin in settings.origins().items():
        if name != "base_dir":
            grouped.setdefault(origin, []).append(f"{name} {settings.value(name)}")
    for origin, label in SOURCE_LABELS.items():
        if grouped.get(origin):
            text.append(f"\n{label}: ", style="bold" if origin != "default" else "dim")
            text.append(", ".join(grouped[origin]), style="" if origin != "default" else "dim")
    return text


def describe_lock(lock: LockHolder | None) -> Text:
    if not lock:
        return Text("free", style="green")
    return Text(f"held by pid {lock.pid or '?'}: {lock.operation or 'a cycle'} since {short_time(lock.started_at)}",
                style="bold yellow")


def describe_outcome(result: Any, what: str) -> Text:
    """How a cycle (its result, or the latest report in brief) ended: the verdict, then the report and the first
    reason."""
    status = result.status
    report = result.report_id
    delta = result.reward_delta
    reasons = result.reasons or []
    verdict = {"promoted": f"promoted {getattr(result, 'challenger_version_id', None) or ''}".rstrip(),
               "dry_run": "dry run, " + ("would pass" if getattr(result, "accepted", False) else "would fail"),
               "rejected": "rejected", "skipped": "skipped", "cancelled": "cancelled, nothing was written"}
    style = {"promoted": "bold green", "dry_run": "cyan", "rejected": "bold red"}.get(status, "yellow")
    text = Text(f"{what}: {verdict.get(status, str(status))}", style=style)
    if isinstance(delta, (int, float)):
        text.append(f" · Δreward {delta:+.3f}")
    details = ([f"report {report}"] if report else []) + ([reasons[0]] if reasons and status != "cancelled" else [])
    if details:
        text.append("\n" + " · ".join(details), style="dim")
    return text


STATUS_WIDTH = 39
"""Characters a status panel line holds at 120 columns before it wraps."""


def status_text(overview: Overview, settings: Settings, running: str | None = None) -> Text:
    """The router status panel: what is active and why, what is stored, the lock (held by this console while its
    `running` operation runs) and the gates."""
    text = Text()
    status = overview.status
    for problem in overview.problems[:3]:
        text.append(f"problem: {problem}\n", style="bold red")
    for warning in (status.warnings if status is not None else [])[:3]:
        text.append(f"warning: {warning}\n", style="bold red")
    if status is None:
        return text
    current = status.current

    def line(label: str, value: str | Text, style: str = "") -> None:
        text.append(f"{label:<10}", style="dim")
        text.append(value if isinstance(value, Text) else Text(value, style=style))
        text.append("\n")

    if current:
        line("active", current.version_id, "bold")
        source = {"cycle": "a cycle", "rollback": "a rollback", "manual": "hand"}.get(
            current.promotion_source, str(current.promotion_source))
        line("promoted", f"{short_time(current.promoted_at)} by {source}")
        line("prior", current.prior_version_id or "none (the heuristic)")
        summary = current.benchmark_summary
        if summary is not None:
            line("reward", f"{number(summary.avg_reward)} · errors {percent(summary.error_rate)}"
                           f" · {number(summary.avg_latency_ms, 0, ' ms')}")
    elif status.version_count:
        line("active", "unknown: current.json is missing or unreadable", "bold red")
    else:
        line("active", "heuristic (no version yet)", "bold")
    total = status.training_trajectory_count
    unseen = status.unseen_trajectory_count
    invalid = status.invalid_trajectory_count
    stored = f"{total:,} trajectories · {unseen:,} new" + (f" · {invalid:,} invalid" if invalid else "")
    line("stored", stored, "yellow" if unseen >= settings.min_new_trajectories else "")
    if running and status.lock is None:
        line("lock", Text(f"held by this console: {running}", style="bold yellow"))
    else:
        line("lock", describe_lock(status.lock))
    if status.drift is not None:
        drift = status.drift
        style = {"dropped": "bold red", "rose": "green"}.get(drift.signal, "")
        line("drift", f"{drift.signal}: {drift.delta:+.3f} since promoted", style)
    line("gates", describe_gates(settings, width=STATUS_WIDTH - 10, indent=" " * 10))
    if total == 0:
        text.append("\nNo trajectories yet. Fill the store with demo ones:\n", style="bold")
        text.append(f"  {command_to_run(settings.base_dir, '--demo-trajectories', '2000')}\n")
        text.append("(or press g here; i imports a .jsonl file)\n")
        text.append("then press p to run a cycle (d for a dry run).")
    elif unseen < settings.min_new_trajectories:
        text.append(f"\nA cycle needs {settings.min_new_trajectories} new trajectories; {unseen} are stored. "
                    "Press g to append demo traffic or i to import a .jsonl file (t lowers the minimum).",
                    style="dim")
    elif not current:
        text.append("\nPress d for a dry run or p for a cycle that may promote.", style="dim")
    text.rstrip()
    return text
