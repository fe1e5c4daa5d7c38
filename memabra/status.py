"""A snapshot of the store for operators: what is active, what is stored, what is new, who holds the lock."""

from __future__ import annotations

from pathlib import Path

from memabra.errors import MemabraError
from memabra.evaluation.counterfactual import recent_value
from memabra.learning.scan import ArtifactIndex
from memabra.learning.versions import active_router, require_current
from memabra.results import LatestReport, LockHolder, RecentValue, StoreStatus
from memabra.storage.store import Store

RECENT_TRAJECTORIES = 1000
"""How many of the newest training trajectories `recent_value` estimates the active router on."""


def store_status(store: Store | Path, seen_trajectory_store: Path | None = None) -> StoreStatus:
    """Always the same keys: current (or null), counts, the latest report and the lock holder (or null)."""
    store = Store.of(store)
    seen = store.seen(seen_trajectory_store).read()
    index = ArtifactIndex.scan(store, set(seen.trajectory_ids), seen_segments=seen.segments)
    report = store.reports.newest_readable()
    latest_report = None if report is None else LatestReport(
        report_id=report.report_id, status=report.status, finished_at=report.finished_at,
        reward_delta=report.reward_delta, reasons=report.reasons)
    warnings = []
    try:
        current = store.versions.current()
        require_current(store.versions)
    except MemabraError as exc:
        current = None
        warnings.append(str(exc))
    holder = store.lock_holder()
    return StoreStatus(
        base_dir=str(store.base_dir),
        current=current,
        active_router="version" if current else "heuristic",
        trajectory_count=index.training_count + index.benchmark_count,
        training_trajectory_count=index.training_count,
        benchmark_trajectory_count=index.benchmark_count,
        unseen_trajectory_count=len(index.unseen_ids),
        invalid_trajectory_count=len(index.invalid),
        seen_trajectory_count=len(seen.trajectory_ids) + index.seen_training_count,
        version_count=len(store.versions.versions.ids()),
        report_count=len(store.reports.ids()),
        latest_report=latest_report,
        lock=LockHolder(**holder) if holder else None,
        recent_value=active_router_recent_value(store, index),
        warnings=warnings,
    )


def active_router_recent_value(store: Store, index: ArtifactIndex) -> RecentValue | None:
    """The active router's SNIPS value on the newest logged traffic, or None when it cannot be estimated."""
    try:
        router = active_router(store.versions)
    except MemabraError:
        return None  # `current` still shows what is active; a version that cannot load has no value to show
    return recent_value(index.newest_training(RECENT_TRAJECTORIES), router)
