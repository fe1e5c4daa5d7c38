"""A demo store with a history: cycles replayed at fixed times, so screenshots, tests and benchmarks are stable."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Sequence

from memabra.demo.world import DemoWorld
from memabra.evaluation.evaluator import Evaluator
from memabra.learning.dataset import ArtifactIndex, DatasetBuilder
from memabra.learning.routers import HeuristicRouter
from memabra.models import CurrentRouter, PromotionPolicy, RouterVersion, TrainingReport
from memabra.storage.versions import ReportStore, RouterVersionStore
from memabra.workflow import benchmark_details


def write_demo_history(base_dir: Path, training_sizes: Sequence[int], start: datetime,
                       dry_run_sizes: Sequence[int] = (), policy: PromotionPolicy | None = None,
                       seed: int = 7) -> list[TrainingReport]:
    """Replay one cycle per training size (trained on the first N stored trajectories), an hour apart from `start`.

    Each cycle is gated against the router active at that moment, as a real cycle is; accepted ones become
    versions and current. Sizes in `dry_run_sizes` write only their report. Returns the reports, oldest first.
    """
    policy = policy or PromotionPolicy()
    versions = RouterVersionStore(base_dir)
    reports = ReportStore(base_dir)
    trajectories = list(ArtifactIndex.scan(Path(base_dir), set()).iter_training())
    suite = DemoWorld(seed).benchmark_suite()
    evaluator = Evaluator()
    builder = DatasetBuilder()
    written = []
    moments = [start + timedelta(hours=step) for step in range(len(training_sizes))]
    for moment, size in zip(moments, training_sizes):
        dry_run = size in dry_run_sizes
        current = versions.current()
        baseline = versions.load_router(current.version_id) if current else HeuristicRouter()
        baseline_id = current.version_id if current else None
        challenger = builder.train(builder.stats(trajectories[:size]))
        baseline_eval = evaluator.evaluate(baseline, suite)
        challenger_eval = evaluator.evaluate(challenger, suite)
        decision = policy.evaluate(baseline_eval.metrics, challenger_eval.metrics)
        promote = decision.accepted and not dry_run
        version = None
        if promote:
            version = versions.versions.create(lambda version_id: RouterVersion(
                version_id=version_id, created_at=moment, router=challenger.to_dict(),
                metrics=challenger_eval.metrics, gates=decision.gates, parent_version_id=baseline_id,
                training_trajectory_count=size, training_segments=["demo-history"]), now=moment)
        report = reports.create(lambda report_id: TrainingReport(
            report_id=report_id, status="dry_run" if dry_run else ("promoted" if promote else "rejected"),
            dry_run=dry_run, accepted=decision.accepted, started_at=moment, finished_at=moment + timedelta(seconds=3),
            baseline_version_id=baseline_id, challenger_version_id=version.version_id if version else None,
            new_trajectory_count=size, training_trajectory_count=size, invalid_trajectory_count=0,
            baseline=baseline_eval.metrics, challenger=challenger_eval.metrics,
            reward_delta=challenger_eval.avg_reward - baseline_eval.avg_reward,
            error_rate_delta=challenger_eval.error_rate - baseline_eval.error_rate,
            latency_delta_ms=challenger_eval.avg_latency_ms - baseline_eval.avg_latency_ms,
            policy=policy, gates=decision.gates, reasons=decision.reasons,
            benchmark=benchmark_details(suite, baseline_eval, challenger_eval,
                                        "heuristic" if baseline_id is None else "version")), now=moment)
        if version is not None:
            version = versions.attach_report(version, report.report_id)
            versions.current_file.write(CurrentRouter(
                version_id=version.version_id, promoted_at=moment + timedelta(seconds=3), promotion_source="cycle",
                benchmark_summary=version.metrics, prior_version_id=baseline_id, report_id=report.report_id))
        written.append(report)
    return written
