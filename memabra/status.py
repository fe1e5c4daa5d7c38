"""A snapshot of the store for operators: what is active, what is stored, what is new, who holds the lock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from memabra.learning.dataset import ArtifactIndex
from memabra.storage.layout import StoreLayout
from memabra.storage.lock import lock_holder
from memabra.storage.seen import SeenTrajectoryStore
from memabra.storage.versions import ReportStore, RouterVersionStore


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
    }
