"""Every change of the active version: the save stage of a cycle (its report; for an accepted challenger a new
version made current, seen ids marked, the benchmark's trajectories stored; for a dry run its challenger kept for
review), the reviewed promotion of a dry run's challenger, and rollback. Each goes through
`RouterVersionStore.make_current`, which appends the change to the store's audit log."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from memabra.errors import BadInputError, CorruptDocumentError, MemabraError
from memabra.evaluation.evaluator import Evaluation
from memabra.learning.routers import ScoringRouter
from memabra.learning.scan import ArtifactIndex
from memabra.audit_models import ReviewedChallenger
from memabra.models import (
    BenchmarkSection,
    CurrentRouter,
    GatePolicy,
    OffPolicySection,
    PromotionDecision,
    TrainingReport,
    utc_now,
)
from memabra.storage.folders import validate_timestamp_id
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
    benchmark: BenchmarkSection | None
    off_policy: OffPolicySection | None
    started_at: datetime
    evidence: str | None = None
    reward_delta: float | None = None
    """The reward gain the gates read (exact where known); None: the sampled means' difference."""
    reward_delta_basis: str | None = None
    reward_delta_sampled: float | None = None


def save_cycle(store: Store, policy: GatePolicy, dry_run: bool, outcome: CycleOutcome, seen: SeenTrajectoryStore,
               emit: Callable[[str, int, int, str], None], clock: Callable[[], datetime],
               reason: str | None = None, unfinished: list[str] | None = None) -> TrainingReport:
    """Write what the cycle decided: always its report; for a dry run its challenger beside the report; otherwise
    the version, current (with `reason` in the audit log), seen ids and the benchmark trajectories. A step after
    the report (and promotion) that fails is added to `unfinished` (when given) instead of raising, so the caller
    can say what took effect and what did not."""
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
        reward_delta=(outcome.reward_delta if outcome.reward_delta is not None
                      else challenger_eval.avg_reward - baseline_eval.avg_reward),
        evidence=outcome.evidence, reward_delta_basis=outcome.reward_delta_basis,
        reward_delta_sampled=outcome.reward_delta_sampled,
        error_rate_delta=challenger_eval.error_rate - baseline_eval.error_rate,
        latency_delta_ms=challenger_eval.avg_latency_ms - baseline_eval.avg_latency_ms,
        policy=policy, gates=decision.gates, reasons=decision.reasons,
        benchmark=outcome.benchmark, off_policy=outcome.off_policy,
    ), now=clock())
    if dry_run:
        store.challengers.keep(ReviewedChallenger(
            report_id=report.report_id, created_at=report.finished_at, router=outcome.challenger.to_dict(),
            baseline_version_id=outcome.baseline_id, training_trajectory_count=outcome.training_count,
            training_segments=outcome.index.files))
        return report
    if version is not None:
        version = store.versions.attach_report(version, report.report_id)
        emit("save", 2, SAVE_STEPS, f"promoting {version.version_id}")
        store.versions.promote(version, report, now=clock(), source="cycle", reason=reason)
    emit("save", 3, SAVE_STEPS, "marking trajectories seen")
    index = outcome.index
    with _step_noted(unfinished, "marking the trajectories seen (the next cycle counts them as new again)"):
        seen.add(index.unseen_ids, sealed_segments=index.sealed_training_ids(), current=outcome.seen_document)
    emit("save", 4, SAVE_STEPS, "storing benchmark trajectories")
    if baseline_eval.trajectories or challenger_eval.trajectories:
        with _step_noted(unfinished, "storing the benchmark trajectories"), TrajectoryWriter(store.base_dir) as writer:
            writer.append_many(baseline_eval.trajectories + challenger_eval.trajectories)
    return report


def promote_reviewed(store: Store, report_id: str, *, force: bool = False, reason: str | None = None,
                     command: str | None = None, clock: Callable[[], datetime] = utc_now) -> CurrentRouter:
    """Save a dry run's reviewed challenger as a new version and make it active, under the store's lock: at once
    when its gates passed and its baseline is still active, otherwise only with `force` and a reason."""
    validate_timestamp_id(report_id, "report id")
    with store.lock("promote"):
        report = store.reports.get(report_id)
        if not report.dry_run:
            raise BadInputError(f"report {report_id} is a {report.status} cycle, not a dry run: only a dry run's "
                                "challenger waits for review")
        promoted = [entry for entry in store.history.version_changes()
                    if entry.source == "promote" and entry.report_id == report_id]
        if promoted:
            raise BadInputError(f"the challenger of report {report_id} was already promoted as version "
                                f"{promoted[-1].version_id}; run a new dry run to review another")
        if not store.challengers.exists(report_id):
            raise BadInputError(f"report {report_id} kept no challenger (it was interrupted, or made before dry "
                                "runs kept theirs); run a new dry run")
        challenger = store.challengers.get(report_id)
        current = store.versions.current()
        active_id = current.version_id if current else None
        objections = review_objections(report, active_id)
        if objections and not force:
            raise BadInputError(f"report {report_id} cannot be promoted as reviewed: {'; '.join(objections)}; "
                                "promote it anyway with --force --reason TEXT")
        if force and not (reason and reason.strip()):
            raise BadInputError("a forced promotion needs a reason (--reason TEXT) for the audit log")
        version = store.versions.save(
            challenger.router, now=clock(), metrics=report.challenger, gates=report.gates,
            parent_version_id=active_id, training_trajectory_count=challenger.training_trajectory_count,
            training_segments=challenger.training_segments, report_id=report_id)
        return store.versions.promote(version, report, now=clock(), source="promote", reason=reason,
                                      command=command)


def review_objections(report: TrainingReport, active_id: str | None) -> list[str]:
    """Why a dry run's challenger may not be promoted as it stands: failed gates, or a baseline no longer active."""
    objections = []
    if not report.accepted:
        objections.append("its gates failed (" + "; ".join(report.reasons or ["see the report"]) + ")")
    if report.baseline_version_id != active_id:
        objections.append(f"its baseline {report.baseline_version_id or 'the built-in heuristic'} is no longer "
                          f"active ({active_id or 'the built-in heuristic'} is)")
    return objections


PREVIOUS = "previous"
"""Rollback target meaning the version the active one replaced."""


def roll_back(store: Store, target: str, reason: str | None = None,
              command: str | None = None) -> tuple[CurrentRouter, str | None]:
    """Make an earlier version (an id or `previous`) active again under the store's lock, recording the reason in
    the audit log; returns the current document and a note when the target was already active (no change, no
    error)."""
    try:
        current = store.versions.current()
    except CorruptDocumentError:
        current = None  # the store's rollback sets an unreadable current.json aside and replaces it
    if target == PREVIOUS:
        if current is None or current.prior_version_id is None:
            raise BadInputError("there is no previous version to roll back to (" + (
                f"{current.version_id} replaced none" if current else "no version is active") + ")")
        target = current.prior_version_id
    if current is not None and current.version_id == target:
        store.versions.get_version(target)
        return current, f"version {target} is already active; nothing changed"
    return store.versions.rollback(target, reason=reason, command=command), None


@contextmanager
def _step_noted(unfinished: list[str] | None, step: str):
    """Run a step after the report; when it fails, note it in unfinished (or raise when no list is kept)."""
    try:
        yield
    except MemabraError as exc:
        if unfinished is None:
            raise
        unfinished.append(f"{step}: {exc}")
