"""The guard on a store: follow the active version on the traffic it served, compare it with the prior version
off-policy on the same traffic, and alert or roll back on evidence of a regression (memabra.evaluation.guard holds
the statistics). A guard that cannot read the traffic or either version says so and changes nothing."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Callable, Literal

from pydantic import BaseModel, Field

from memabra.errors import CorruptDocumentError, LockHeldError, MemabraError
from memabra.evaluation.guard import GuardBatch, GuardReport, IntervalFigures, start_monitor
from memabra.learning.versions import load_version_router
from memabra.models import CurrentRouter, Document, Trajectory, utc_now
from memabra.results import GuardStatus
from memabra.settings import GuardSettings
from memabra.storage.folders import TimestampedFolder
from memabra.storage.store import Store

GUARD_REPORTS_DIR = "guard-reports"
"""Folder of guard rollback documents, beside `training-reports/`."""
CHECK_EVERY = 50
"""Served trajectories per guard update: the traffic at which the verdict and the plotted values are read."""
FILE_CLOCK_SLACK = timedelta(minutes=10)
"""Trajectory files last written this long before the version existed are not read (they cannot hold its traffic)."""

GuardVerdict = Literal["idle", "watching", "healthy", "regressed", "rolled_back"]


class GuardPoint(BaseModel):
    """Both versions' running values (with their anytime-valid bands) after so many served trajectories."""

    served_count: int
    promoted: IntervalFigures
    prior: IntervalFigures
    difference: IntervalFigures


class GuardCheck(GuardReport):
    """One guard check on a store: the statistics' report, what the guard did about it, and the running values."""

    verdict: GuardVerdict
    mode: Literal["off", "alert", "rollback"]
    action: Literal["none", "alert", "rolled_back"] = "none"
    checked_at: datetime = Field(default_factory=utc_now)
    rolled_back_to: str | None = None
    guard_report_id: str | None = None
    """The guard report written for a rollback (`guard-reports/<id>.json`)."""
    trace: list[GuardPoint] = Field(default_factory=list, exclude=True)
    """Running values as traffic grew (for plots; not part of the printed document)."""


class GuardRollbackReport(Document):
    """What the guard saw when it rolled a version back: written beside the training reports."""

    report_id: str
    rolled_back_at: datetime
    rolled_back_from: str
    rolled_back_to: str
    reason: str
    report: GuardReport


def guard_reports(store: Store) -> TimestampedFolder[GuardRollbackReport]:
    """The store's guard reports, one `guard-reports/<id>.json` per guard rollback."""
    return TimestampedFolder(store.base_dir / GUARD_REPORTS_DIR, GuardRollbackReport, "guard report id")


def _idle(guard: GuardSettings, reason: str, current: CurrentRouter | None = None) -> GuardCheck:
    return GuardCheck(verdict="idle", reason=reason, mode=guard.mode, policy=guard.policy(),
                      promoted_version_id=current.version_id if current else None,
                      prior_version_id=current.prior_version_id if current else None)


def served_traffic(store: Store, version_id: str, since: datetime | None, limit: int) -> list[Trajectory]:
    """The first `limit` trajectories the version served (oldest first), reading only files written since `since`."""
    trajectories = store.trajectories
    served: list[Trajectory] = []
    oldest = (since - FILE_CLOCK_SLACK).timestamp() if since else None
    for item in trajectories.files():
        try:
            if oldest is not None and os.stat(item.path).st_mtime < oldest:
                continue
        except FileNotFoundError:
            pass  # a journal sealed meanwhile: read_batch finds its segment
        documents = trajectories.read_plain_documents(item)
        if documents is not None:
            served.extend(Trajectory.model_validate(document) for document in documents
                          if document["decision"].get("router_version_id") == version_id)
        else:
            served.extend(t for t in trajectories.read_batch(item).trajectories
                          if t.decision.router_version_id == version_id)
    served = [t for t in served if not t.is_benchmark]
    served.sort(key=lambda t: t.created_at)
    return served[:limit]


def evaluate_guard(store: Store, guard: GuardSettings, *, trace: bool = False) -> GuardCheck:
    """The guard's verdict on the active version (never `regressed` on missing evidence); changes nothing."""
    try:
        current = store.versions.current()
    except CorruptDocumentError as exc:
        return _idle(guard, f"the guard cannot read current.json ({exc.detail}); run --check")
    if current is None:
        return _idle(guard, "no version is active (the built-in heuristic serves); nothing to watch")
    if current.promotion_source == "rollback":
        by = " by the guard" if (current.reason or "").startswith("guard:") else ""
        return _idle(guard, f"version {current.version_id} is active after a rollback{by}; the guard watches "
                            "promoted versions only", current)
    if current.prior_version_id is None:
        return _idle(guard, f"version {current.version_id} has no prior version to compare with (nothing to roll "
                            "back to)", current)
    routers = {}
    for role, version_id in (("promoted", current.version_id), ("prior", current.prior_version_id)):
        try:
            routers[role] = load_version_router(store.versions, version_id)
            if role == "promoted":
                created_at = store.versions.get_version(version_id).created_at
        except (MemabraError, ValueError, KeyError, TypeError) as exc:
            return _idle(guard, f"the guard cannot read the {role} version {version_id} ({exc}); it does nothing "
                                "until that version loads (run --check)", current)
    try:
        served = served_traffic(store, current.version_id, min(created_at, current.promoted_at), guard.max_watch)
    except (OSError, MemabraError) as exc:
        return _idle(guard, f"the guard cannot read the served traffic ({exc}); it does nothing until it can",
                     current)
    return _watch(served, routers["promoted"], routers["prior"], guard, current, trace)


def _watch(served: list[Trajectory], promoted_router, prior_router, guard: GuardSettings, current: CurrentRouter,
           trace: bool) -> GuardCheck:
    """Feed the served traffic to a monitor in steps of CHECK_EVERY; the report (and running values) at the end."""
    policy = guard.policy()
    common = dict(mode=guard.mode, promoted_version_id=current.version_id,
                  prior_version_id=current.prior_version_id, policy=policy, served_count=len(served))
    started = start_monitor(served, promoted_router, prior_router, policy, promoted_version_id=current.version_id,
                            prior_version_id=current.prior_version_id, settings_place=" in [guard]")
    if isinstance(started, str):
        return GuardCheck(verdict="watching", reason=started, **common)
    monitor, batch = started
    points = []
    columns = list(vars(batch).values())
    for start in range(0, len(batch), CHECK_EVERY):
        monitor.update(GuardBatch(*(column[start:start + CHECK_EVERY] for column in columns)))
        if trace:
            report = monitor.report()
            if report.promoted and report.prior and report.difference:
                points.append(GuardPoint(served_count=monitor.served_count, promoted=report.promoted.value,
                                         prior=report.prior.value, difference=report.difference))
    report = monitor.report()
    return GuardCheck(**{**report.model_dump(), "mode": guard.mode, "trace": points})


def run_guard_check(store: Store, guard: GuardSettings, *, trace: bool = False,
                    clock: Callable[[], datetime] = utc_now) -> GuardCheck:
    """One guard check with its action: `alert` marks a regression, `rollback` also rolls back to the prior version."""
    check = evaluate_guard(store, guard, trace=trace)
    if check.verdict != "regressed" or guard.mode == "off":
        return check
    if guard.mode == "alert":
        return check.model_copy(update={"action": "alert"})
    return guard_rollback(store, check, clock)


def guard_reason(check: GuardReport) -> str:
    """The audit trail's reason for a guard rollback (starts with `guard:`)."""
    difference = check.difference
    return (f"guard: {check.promoted_version_id} is worse than {check.prior_version_id} by "
            f"{-difference.estimate:.4f} ({difference.level:.0%} interval [{difference.low:+.4f}, "
            f"{difference.high:+.4f}], margin {check.policy.margin:g}) over {check.used_count} served decisions")


def guard_rollback(store: Store, check: GuardCheck, clock: Callable[[], datetime] = utc_now) -> GuardCheck:
    """Roll back to the prior version under the store's lock, only if the watched version is still active; then
    write the guard report. A kill in between leaves the store as a kill during any rollback does."""
    reason = guard_reason(check)
    try:
        current = store.versions.rollback(check.prior_version_id, reason=reason,
                                          expected_active=check.promoted_version_id)
    except LockHeldError as exc:
        return check.model_copy(update={"action": "alert", "reason": f"{check.reason}; not rolled back yet: {exc}"})
    except MemabraError as exc:
        return check.model_copy(update={"action": "alert", "reason": f"{check.reason}; not rolled back: {exc}"})
    figures = GuardReport(**check.model_dump(include=set(GuardReport.model_fields), exclude={"verdict"}),
                          verdict="regressed")
    document = guard_reports(store).create(lambda report_id: GuardRollbackReport(
        report_id=report_id, rolled_back_at=current.rolled_back_at or clock(),
        rolled_back_from=check.promoted_version_id, rolled_back_to=current.version_id, reason=reason,
        report=figures), now=clock())
    return check.model_copy(update={"verdict": "rolled_back", "action": "rolled_back", "reason": reason,
                                    "rolled_back_to": current.version_id, "guard_report_id": document.report_id})


def guard_status(store: Store, guard: GuardSettings, check: GuardCheck | None = None) -> GuardStatus:
    """The guard's section of `--status`: its mode, the verdict (none while off) and the newest guard rollback."""
    rollbacks = guard_reports(store).ids()
    last = rollbacks[0] if rollbacks else None
    if guard.mode == "off":
        return GuardStatus(mode="off", reason="the guard is off ([guard] mode)", last_guard_report_id=last)
    check = check or evaluate_guard(store, guard)
    difference = check.difference
    return GuardStatus(
        mode=guard.mode, verdict=check.verdict, alert=check.verdict == "regressed", reason=check.reason,
        promoted_version_id=check.promoted_version_id, prior_version_id=check.prior_version_id,
        served_count=check.served_count, used_count=check.used_count, min_traffic=guard.min_traffic,
        difference=None if difference is None else difference.model_dump(), last_guard_report_id=last)
