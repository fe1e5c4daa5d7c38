"""A snapshot of the store for operators: what is active, what is stored, what is new, who holds the lock."""

from __future__ import annotations

import math
from pathlib import Path

from memabra.errors import CorruptDocumentError, MemabraError
from memabra.evaluation.counterfactual import recent_value
from memabra.guarding import GuardCheck, guard_status
from memabra.learning.dataset import dataset_builder
from memabra.learning.engines import ScanEngine
from memabra.learning.scan import ArtifactIndex
from memabra.learning.versions import active_router, require_current
from memabra.models import CurrentRouter
from memabra.results import (DriftSignal, EffectiveSetting, LatestReport, LockHolder, RecentValue,
                             StoreStatus)
from memabra.settings import GATE_FIELDS, GuardSettings, Settings, load_settings
from memabra.storage.store import Store
from memabra.suggestions import command_to_run

RECENT_TRAJECTORIES = 1000
"""How many of the newest training trajectories `recent_value` estimates the active router on."""


def store_status(store: Store | Path, seen_trajectory_store: Path | None = None, settings: Settings | None = None,
                 guard: GuardSettings | None = None, guard_check: GuardCheck | None = None) -> StoreStatus:
    """Always the same keys: current (or null), counts, the latest report, the lock holder (or null), every
    effective setting with its source (the store's own settings unless given) and, with the guard's settings, its
    verdict on the active version (`guard_check`: one already made)."""
    store = Store.of(store)
    settings = settings or load_settings(base_dir=store.base_dir)
    seen = store.seen(seen_trajectory_store).read()
    index = ArtifactIndex.scan(store, set(seen.trajectory_ids), seen_segments=seen.segments,
                               builder=dataset_builder(settings), engine=ScanEngine.of(settings))
    report = store.reports.newest_readable()
    latest_report = None if report is None else LatestReport(
        report_id=report.report_id, status=report.status, finished_at=report.finished_at,
        reward_delta=report.reward_delta, reasons=report.reasons)
    warnings = []
    current, current_unreadable = None, False
    try:
        current = store.versions.current()
        require_current(store.versions)
    except MemabraError as exc:
        current, current_unreadable = None, True
        warnings.append(exc.worded(command_to_run(store.base_dir, "--check"))
                        if isinstance(exc, CorruptDocumentError) else str(exc))
    holder = store.lock_holder()
    recent = active_router_recent_value(store, index)
    return StoreStatus(
        base_dir=str(store.base_dir),
        current=current,
        active_router="version" if current else ("unknown" if current_unreadable else "heuristic"),
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
        recent_value=recent,
        drift=drift_signal(store, current, recent),
        settings=effective_settings(settings),
        guard=None if guard is None else guard_status(store, guard, guard_check),
        warnings=warnings,
    )


def drift_signal(store: Store, current: CurrentRouter | None, recent: RecentValue | None) -> DriftSignal | None:
    """How the active version's value on recent traffic compares with its value when it was promoted (the SNIPS
    estimate its cycle made on held-out traffic); the interval combines both estimates' half-widths."""
    if current is None or recent is None or current.report_id is None:
        return None
    try:
        report = store.reports.get(current.report_id)
    except MemabraError:
        return None
    estimate = report.off_policy.estimators.get("snips") if report.off_policy else None
    if estimate is None:
        return None
    promoted = estimate.challenger
    delta = recent.estimate - promoted.estimate
    half_width = math.hypot((recent.high - recent.low) / 2, (promoted.high - promoted.low) / 2)
    low, high = delta - half_width, delta + half_width
    signal = "dropped" if high < 0 else ("rose" if low > 0 else "stable")
    return DriftSignal(value_at_promotion=promoted.estimate, recent_value=recent.estimate, delta=delta, low=low,
                       high=high, level=recent.level, signal=signal)


def effective_settings(settings: Settings) -> dict[str, EffectiveSetting]:
    """Every setting's value (as JSON) and where it came from, in declaration order."""
    document = settings.model_dump(mode="json")
    return {name: EffectiveSetting(value=document["gates"][name] if name in GATE_FIELDS else document[name],
                                   source=source)
            for name, source in settings.origins().items()}


def active_router_recent_value(store: Store, index: ArtifactIndex) -> RecentValue | None:
    """The active router's SNIPS value on the newest logged traffic, or None when it cannot be estimated."""
    try:
        router = active_router(store.versions)
    except MemabraError:
        return None  # `current` still shows what is active; a version that cannot load has no value to show
    return recent_value(index.newest_training(RECENT_TRAJECTORIES), router)
