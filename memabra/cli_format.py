"""`--format table`: the CLI's documents as plain tables a person reads in 80 columns (JSON stays the default)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Sequence

from pydantic import BaseModel

WIDTH = 80


def table_of(action: str, result: Any) -> str:
    """The table for an action's result (`status`, `list_versions`, `history`)."""
    document = result.model_dump(mode="json") if isinstance(result, BaseModel) else result
    if action == "status":
        return status_table(document)
    if action == "list_versions":
        return versions_table(document["versions"])
    if action == "history":
        return history_table(document.get("history") or document.get("events") or [])
    raise ValueError(f"no table for {action}")


def minute(moment: str | datetime | None) -> str:
    """`2026-01-05T12:00:03Z` as `2026-01-05 12:00` (times in the store are UTC)."""
    if not moment:
        return "-"
    text = moment.isoformat() if isinstance(moment, datetime) else str(moment)
    return text.replace("T", " ")[:16]


def number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def columns(header: Sequence[str], rows: list[Sequence[str]], width: int = WIDTH) -> str:
    """Left-aligned columns two spaces apart; the last column is cut with `…` so no line passes `width`."""
    cells = [list(header)] + [[str(cell) for cell in row] for row in rows]
    widths = [max(len(row[index]) for row in cells) for index in range(len(header))]
    lines = []
    for row in cells:
        line = "  ".join(cell.ljust(widths[index]) for index, cell in enumerate(row)).rstrip()
        lines.append(line if len(line) <= width else line[:width - 1] + "…")
    return "\n".join(lines)


def status_table(status: dict[str, Any]) -> str:
    """`--status` as label/value lines."""
    current = status.get("current") or {}
    latest = status.get("latest_report") or {}
    lock = status.get("lock")
    recent = status.get("recent_value")
    drift, guard = status.get("drift"), status.get("guard")
    metrics = current.get("benchmark_summary") or {}
    rows = [
        ("store", status["base_dir"]),
        ("active", current.get("version_id") or ("unknown: current.json is unreadable (see warnings)"
                                                 if status.get("active_router") == "unknown" else
                                                 "heuristic (no version yet)")),
        ("promoted", f"{minute(current.get('promoted_at'))} by {current.get('promotion_source')}" if current else "-"),
        ("prior", current.get("prior_version_id") or "-"),
        ("benchmark", f"reward {number(metrics.get('avg_reward'))} · errors {number(metrics.get('error_rate'))} · "
                      f"latency {number(metrics.get('avg_latency_ms'), 0)} ms" if metrics else "-"),
        ("recent", f"{number(recent['estimate'])} [{number(recent['low'])}, {number(recent['high'])}] on "
                   f"{recent['trajectory_count']:,} trajectories" if recent else "-"),
        ("stored", f"{status['training_trajectory_count']:,} training · {status['benchmark_trajectory_count']:,} "
                   f"benchmark · {status['invalid_trajectory_count']:,} invalid"),
        ("new", f"{status['unseen_trajectory_count']:,} not yet seen by a cycle "
                f"({status['seen_trajectory_count']:,} seen)"),
        ("versions", f"{status['version_count']:,}"),
        ("reports", f"{status['report_count']:,}"),
        ("last cycle", f"{latest['status']} {minute(latest.get('finished_at'))} · report {latest['report_id']} · "
                       f"Δreward {latest['reward_delta']:+.3f}" if latest else "none yet"),
        ("drift", f"{drift['signal']} (recent {drift['delta']:+.3f} against promotion)" if drift else "-"),
        ("guard", f"{guard['verdict']} ({guard['mode']})" + (" · ALERT" if guard.get("alert") else "")
                  if guard else "-"),
        ("lock", f"held by pid {lock.get('pid')}: {lock.get('operation')} since {minute(lock.get('started_at'))}"
                 if lock else "free"),
    ]
    if latest and latest.get("reasons"):
        rows.insert(-3, ("why", latest["reasons"][0]))
    table = columns(("", ""), [(label, value) for label, value in rows]).split("\n", 1)[1]
    return "\n".join([table, *(f"warning: {warning}" for warning in status.get("warnings") or [])])


def versions_table(versions: list[dict[str, Any]]) -> str:
    """`--list-versions` newest first, `*` on the active one."""
    rows = []
    for version in versions:
        metrics = version.get("metrics") or {}
        marker = "* " if version.get("active") else "  "
        rows.append((marker + version["version_id"], minute(version.get("created_at")),
                     number(metrics.get("avg_reward")), number(metrics.get("error_rate")),
                     number(metrics.get("avg_latency_ms"), 0), f"{version.get('training_trajectory_count') or 0:,}",
                     version.get("parent_version_id") or "-"))
    if not rows:
        return "no versions yet (a cycle that promotes saves the first)"
    return columns(("  version", "created (UTC)", "reward", "errors", "ms", "trained", "replaced"), rows)


def history_table(events: list[dict[str, Any]]) -> str:
    """`--history`: one line per event, oldest first, whatever fields the events carry."""
    if not events:
        return "no history yet"
    rows = [(minute(event.get("at") or event.get("changed_at") or event.get("promoted_at")),
             str(event.get("version_id") or "-"), str(event.get("source") or event.get("promotion_source") or "-"),
             str(event.get("reason") or "")) for event in events]
    return columns(("when (UTC)", "version", "by", "reason"), rows)
