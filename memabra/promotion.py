"""The save stage: a cycle's report, and for an accepted challenger a new version made current, seen ids marked and
the benchmark's trajectories stored."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from memabra.errors import MemabraError
from memabra.evaluation.evaluator import Evaluation
from memabra.learning.routers import ScoringRouter
from memabra.learning.scan import ArtifactIndex
from memabra.models import (
    BenchmarkSection,
    GatePolicy,
    OffPolicySection,
    PromotionDecision,
    TrainingReport,
)
from memabra.storage.seen import SeenTrajectories, SeenTrajectoryStore
from memabra.storage.store import Store
from memabra.storage.trajectories import TrajectoryWriter

SAVE_STEPS = 5


@dataclass
class CycleOutcome:
    """Everything the earlier stages decided that the save stage writes down."""

    index: ArtifactIndex
    seen_document: SeenTrajectories
    training_count: int
    challenger: ScoringRouter
    baseline_id: str | None
    baseline_eval: Evaluation
    challenger_eval: Evaluation
    decision: PromotionDecision
    benchmark: BenchmarkSection
    off_policy: OffPolicySection | None
    started_at: datetime


def save_cycle(store: Store, policy: GatePolicy, dry_run: bool, outcome: CycleOutcome, seen: SeenTrajectoryStore,
               emit: Callable[[str, int, int, str], None], clock: Callable[[], datetime],
               unfinished: list[str] | None = None) -> TrainingReport:
    """Write what the cycle decided: always its report; unless a dry run, the version, current, seen ids and the
    benchmark trajectories. A step after the report (and promotion) that fails is added to `unfinished` (when
    given) instead of raising, so the caller can say what took effect and what did not."""
    decision, baseline_eval, challenger_eval = outcome.decision, outcome.baseline_eval, outcome.challenger_eval
    accepted = decision.accepted and not dry_run
    status = "dry_run" if dry_run else ("promoted" if decision.accepted else "rejected")
    version = None
    if accepted:
        emit("save", 0, SAVE_STEPS, "saving the challenger as a new version")
        version = store.versions.save(
            outcome.challenger, now=clock(), metrics=challenger_eval.metrics, gates=decision.gates,
            parent_version_id=outcome.baseline_id, training_trajectory_count=outcome.training_count,
            training_segments=outcome.index.files)
    emit("save", 1, SAVE_STEPS, "writing the training report")
    report = store.reports.create(lambda report_id: TrainingReport(
        report_id=report_id, status=status, dry_run=dry_run, accepted=decision.accepted,
        started_at=outcome.started_at, finished_at=clock(),
        baseline_version_id=outcome.baseline_id,
        challenger_version_id=version.version_id if version else None,
        new_trajectory_count=len(outcome.index.unseen_ids), training_trajectory_count=outcome.training_count,
        invalid_trajectory_count=len(outcome.index.invalid),
        baseline=baseline_eval.metrics, challenger=challenger_eval.metrics,
        reward_delta=challenger_eval.avg_reward - baseline_eval.avg_reward,
        error_rate_delta=challenger_eval.error_rate - baseline_eval.error_rate,
        latency_delta_ms=challenger_eval.avg_latency_ms - baseline_eval.avg_latency_ms,
        policy=policy, gates=decision.gates, reasons=decision.reasons,
        benchmark=outcome.benchmark, off_policy=outcome.off_policy,
    ), now=clock())
    if dry_run:
        return report
    if version is not None:
        version = store.versions.attach_report(version, report.report_id)
        emit("save", 2, SAVE_STEPS, f"promoting {version.version_id}")
        store.versions.promote(version, report, now=clock())
    emit("save", 3, SAVE_STEPS, "marking trajectories seen")
    index = outcome.index
    with _step_noted(unfinished, "marking the trajectories seen (the next cycle counts them as new again)"):
        seen.add(index.unseen_ids, sealed_segments=index.sealed_training_ids(), current=outcome.seen_document)
    emit("save", 4, SAVE_STEPS, "storing benchmark trajectories")
    with _step_noted(unfinished, "storing the benchmark trajectories"), TrajectoryWriter(store.base_dir) as writer:
        writer.append_many(baseline_eval.trajectories + challenger_eval.trajectories)
    return report


@contextmanager
def _step_noted(unfinished: list[str] | None, step: str):
    """Run a step after the report; when it fails, note it in unfinished (or raise when no list is kept)."""
    try:
        yield
    except MemabraError as exc:
        if unfinished is None:
            raise
        unfinished.append(f"{step}: {exc}")
