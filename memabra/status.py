"""A snapshot of the store for operators: what is active, what is stored, what is new, who holds the lock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from memabra.errors import MemabraError
from memabra.evaluation.counterfactual import recent_value
from memabra.learning.dataset import ArtifactIndex
from memabra.storage.layout import StoreLayout
from memabra.storage.lock import lock_holder
from memabra.storage.seen import SeenTrajectoryStore
from memabra.storage.versions import ReportStore, RouterVersionStore

RECENT_TRAJECTORIES = 1000
"""How many of the newest training trajectories `recent_value` estimates the active router on."""


def store_status(base_dir: Path, seen_trajectory_store: Path | None = None) -> dict[str, Any]:
    """Always the same keys: current (or null), counts, the latest report and the lock holder (or null)."""
    layout = StoreLayout(base_dir)
    versions = RouterVersionStore(base_dir)
    reports = ReportStore(base_dir)
    seen = SeenTrajectoryStore(seen_trajectory_store or layout.seen_path).read()
    index = ArtifactIndex.scan(base_dir, set(seen.trajectory_ids), seen_segments=seen.segments)
    report_ids = reports.ids()
    latest_report = None
    report = reports.newest_readable()
    if report is not None:
        latest_report = {
            "report_id": report.report_id,
            "status": report.status,
            "finished_at": report.finished_at.isoformat(),
            "reward_delta": report.reward_delta,
            "reasons": report.reasons,
        }
    current = versions.get_current()
    return {
        "base_dir": str(base_dir),
        "current": current,
        "active_router": "version" if current else "heuristic",
        "trajectory_count": index.training_count + index.benchmark_count,
        "training_trajectory_count": index.training_count,
        "benchmark_trajectory_count": index.benchmark_count,
        "unseen_trajectory_count": len(index.unseen_ids),
        "invalid_trajectory_count": len(index.invalid),
        "seen_trajectory_count": len(seen.trajectory_ids) + index.seen_training_count,
        "version_count": len(versions.versions.ids()),
        "report_count": len(report_ids),
        "latest_report": latest_report,
        "lock": lock_holder(base_dir),
        "recent_value": active_router_recent_value(versions, index),
    }


def active_router_recent_value(versions: RouterVersionStore, index: ArtifactIndex) -> dict[str, Any] | None:
    """The active router's SNIPS value on the newest logged traffic, or None when it cannot be estimated."""
    try:
        router = versions.active_router()
    except MemabraError:
        return None  # `current` still shows what is active; a version that cannot load has no value to show
    return recent_value(index.newest_training(RECENT_TRAJECTORIES), router)
