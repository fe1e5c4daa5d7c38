"""One online-learning cycle as named stages: scan, dataset, train, evaluate, gate, save."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from memabra.demo.world import DemoWorld
from memabra.errors import BadInputError, CycleCancelled
from memabra.evaluation.benchmark import BenchmarkSuite
from memabra.evaluation.evaluator import Evaluation, Evaluator, Executor
from memabra.learning.dataset import ArtifactIndex, DatasetBuilder, TrainingStats
from memabra.learning.routers import HeuristicRouter
from memabra.evaluation.counterfactual import compare_routers
from memabra.evaluation.offpolicy import mean_interval
from memabra.models import DeltaInterval, PromotionPolicy, TrainingReport, Trajectory, UncertaintyEvidence, utc_now
from memabra.runtime.case_index import CaseIndex, rebuild_case_index
from memabra.settings import Settings, load_settings
from memabra.storage.folders import validate_timestamp_id
from memabra.storage.layout import StoreLayout
from memabra.storage.lock import StoreLock
from memabra.storage.seen import SeenTrajectoryStore
from memabra.storage.trajectories import UNREADABLE_FILE, TrajectoryStore, TrajectoryWriter
from memabra.storage.versions import ReportStore, RouterVersionStore

MAX_HELD_OUT = 5_000
"""Most trajectories a cycle holds out: intervals are already tight at this size, and estimating on more
would make a first cycle over a large store cost far more than reading it."""
STAGES = ("scan", "dataset", "train", "evaluate", "gate", "save")


@dataclass(frozen=True)
class ProgressEvent:
    """One step of a cycle: which stage, how far along, and what it is doing."""

    stage: str
    done: int
    total: int
    message: str = ""


EventCallback = Callable[[ProgressEvent], None]


class _Cycle:
    """The state of one running cycle; `run()` walks the stages in order."""

    def __init__(self, settings: Settings, dry_run: bool, baseline_version: str | None,
                 seen_path: Path, case_index_path: Path | None,
                 suite: BenchmarkSuite | None, executor: Executor | None,
                 on_event: EventCallback | None, cancel: threading.Event | None):
        self.settings = settings
        self.base_dir = settings.base_dir
        self.layout = StoreLayout(self.base_dir)
        self.dry_run = dry_run
        self.baseline_version = baseline_version
        self.seen = SeenTrajectoryStore(seen_path)
        self.seen_document = None
        self.case_index_path = case_index_path
        self.suite = suite
        self.executor = executor
        self.on_event = on_event
        self.cancel = cancel
        self.versions = RouterVersionStore(self.base_dir)
        self.reports = ReportStore(self.base_dir)
        self.policy = PromotionPolicy(
            min_reward_delta=settings.min_reward_delta,
            max_error_rate_increase=settings.max_error_rate_increase,
            max_latency_increase_ms=settings.max_latency_increase_ms,
            required_task_count=settings.required_task_count,
            reward_delta_bound=settings.reward_delta_bound,
            min_effective_sample_size=settings.min_effective_sample_size,
            confidence_level=settings.confidence_level,
        )
        self.off_policy: dict[str, Any] | None = None
        self.evidence = UncertaintyEvidence()
        self.started_at = utc_now()

    def emit(self, stage: str, done: int, total: int, message: str = "") -> None:
        if self.on_event:
            self.on_event(ProgressEvent(stage, done, total, message))

    def check_cancel(self, stage: str) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise CycleCancelled(f"the cycle was cancelled during {stage}; nothing was written")

    def run(self) -> dict[str, Any]:
        self.emit("scan", 0, 1, "reading trajectories")
        if not self.dry_run:
            TrajectoryStore(self.base_dir).seal_abandoned_journals()
        seen = self.seen_document = self.seen.read()
        index = ArtifactIndex.scan(self.base_dir, set(seen.trajectory_ids), seen_segments=seen.segments,
                                   on_file=lambda done, total: self.emit("scan", done, total, "reading trajectories"))
        new_count = len(index.unseen_ids)
        unreadable = [entry.file for entry in index.invalid if entry.position == UNREADABLE_FILE]
        self.emit("scan", 1, 1, f"{index.training_count} training trajectories, {new_count} new, "
                                f"{len(index.invalid)} invalid"
                                + (f"; left out unreadable {', '.join(unreadable)} (see --check)" if unreadable else ""))
        case_index = self.load_case_index()
        if new_count < self.settings.min_new_trajectories:
            return self.result_skipped(index, case_index)
        self.check_cancel("scan")

        stats = self.build_dataset(index)
        held_out = self.hold_out(index, stats)
        self.emit("train", 0, 1, f"fitting on {stats.count} trajectories")
        challenger = DatasetBuilder().train(stats)
        self.emit("train", 1, 1, "challenger trained")
        self.check_cancel("train")

        baseline, baseline_id = self.baseline_router()
        suite = self.suite or DemoWorld(self.settings.seed).benchmark_suite()
        evaluator = Evaluator(self.executor, concurrency=self.settings.benchmark_concurrency,
                              timeout=self.settings.benchmark_timeout)
        total = 2 * len(suite.tasks)
        baseline_eval = evaluator.evaluate(
            baseline, suite, cancel=self.cancel,
            on_progress=lambda done, _: self.emit("evaluate", done, total, "baseline"))
        challenger_eval = evaluator.evaluate(
            challenger, suite, cancel=self.cancel,
            on_progress=lambda done, _: self.emit("evaluate", len(suite.tasks) + done, total, "challenger"))
        self.check_cancel("evaluate")
        self.estimate_uncertainty(held_out, baseline, challenger, baseline_eval, challenger_eval)

        decision = self.policy.evaluate(baseline_eval.metrics, challenger_eval.metrics, self.evidence)
        verdict = "accepted" if decision.accepted else "rejected: " + "; ".join(decision.reasons)
        self.emit("gate", 1, 1, verdict)
        self.check_cancel("gate")
        return self.save(index, stats, challenger, baseline_id, suite, baseline_eval, challenger_eval,
                         decision, case_index)

    def load_case_index(self) -> CaseIndex | None:
        return CaseIndex.load(self.case_index_path) if self.case_index_path else None

    def build_dataset(self, index: ArtifactIndex) -> TrainingStats:
        if not index.summaries:
            self.emit("dataset", 0, 0, "no training trajectories")

        def progress(done: int, total: int) -> None:
            self.emit("dataset", done, total, "adding per-file statistics")
            self.check_cancel("dataset")

        return index.training_stats(on_file=progress)

    def hold_out(self, index: ArtifactIndex, stats: TrainingStats) -> list[Trajectory]:
        """Take the newest share of unseen trajectories out of the training statistics and return them."""
        count = min(int(self.settings.holdout_share * len(index.unseen_ids)), MAX_HELD_OUT)
        if count == 0:
            return []
        self.emit("dataset", 0, 1, f"holding out the newest {count} new trajectories")
        held_out = index.newest_training(count, only=set(index.unseen_ids))
        stats.subtract(DatasetBuilder(index.config).stats(held_out))
        self.emit("dataset", 1, 1, f"held out the newest {len(held_out)} new trajectories")
        return held_out

    def estimate_uncertainty(self, held_out: list[Trajectory], baseline, challenger,
                             baseline_eval: Evaluation, challenger_eval: Evaluation) -> None:
        """Both routers' off-policy values on the held-out trajectories and the reward-delta intervals."""
        level, seed = self.settings.confidence_level, self.settings.seed
        self.off_policy = compare_routers(held_out, baseline, challenger, reward_model=challenger,
                                          level=level, seed=seed)
        doubly_robust = self.off_policy["estimators"].get("dr")
        used = self.off_policy["used_count"]
        if not held_out:
            unavailable = "no trajectories were held out (--holdout-share is 0 or too few are new)"
        else:
            unavailable = f"none of the {len(held_out)} held-out trajectories records a propensity"
        self.evidence = UncertaintyEvidence(
            benchmark_delta=benchmark_delta_interval(baseline_eval, challenger_eval, level, seed),
            doubly_robust_delta=DeltaInterval(
                estimate=doubly_robust["delta"]["estimate"], low=doubly_robust["delta"]["low"],
                high=doubly_robust["delta"]["high"], level=level,
                source=f"doubly robust on {used} held-out trajectories") if doubly_robust else None,
            effective_sample_size=doubly_robust["challenger"]["ess"] if doubly_robust else 0.0,
            unavailable_reason=unavailable,
        )
        if held_out:
            total = baseline_eval.task_count + challenger_eval.task_count
            self.emit("evaluate", total, total, f"off-policy estimates on {used} held-out trajectories")

    def baseline_router(self):
        if self.baseline_version:
            return self.versions.load_router(self.baseline_version), self.baseline_version
        current = self.versions.current()
        if current is None:
            return HeuristicRouter(), None
        return self.versions.load_router(current.version_id), current.version_id

    def save(self, index, stats, challenger, baseline_id, suite, baseline_eval: Evaluation,
             challenger_eval: Evaluation, decision, case_index) -> dict[str, Any]:
        steps = 5
        accepted = decision.accepted and not self.dry_run
        status = "dry_run" if self.dry_run else ("promoted" if decision.accepted else "rejected")
        version = None
        if accepted:
            self.emit("save", 0, steps, "saving the challenger as a new version")
            version = self.versions.save(
                challenger, metrics=challenger_eval.metrics, gates=decision.gates,
                parent_version_id=baseline_id, training_trajectory_count=stats.count,
                training_segments=index.files)
        self.emit("save", 1, steps, "writing the training report")
        report = self.reports.create(lambda report_id: TrainingReport(
            report_id=report_id, status=status, dry_run=self.dry_run, accepted=decision.accepted,
            started_at=self.started_at, finished_at=utc_now(),
            baseline_version_id=baseline_id,
            challenger_version_id=version.version_id if version else None,
            new_trajectory_count=len(index.unseen_ids), training_trajectory_count=stats.count,
            invalid_trajectory_count=len(index.invalid),
            baseline=baseline_eval.metrics, challenger=challenger_eval.metrics,
            reward_delta=challenger_eval.avg_reward - baseline_eval.avg_reward,
            error_rate_delta=challenger_eval.error_rate - baseline_eval.error_rate,
            latency_delta_ms=challenger_eval.avg_latency_ms - baseline_eval.avg_latency_ms,
            policy=self.policy, gates=decision.gates, reasons=decision.reasons,
            benchmark=benchmark_details(suite, baseline_eval, challenger_eval,
                                        "heuristic" if baseline_id is None else "version", self.evidence),
            off_policy=self.off_policy,
        ))
        case_summary = self.case_index_summary(case_index, rebuilt=False)
        if not self.dry_run:
            if version is not None:
                version = self.versions.attach_report(version, report.report_id)
                self.emit("save", 2, steps, f"promoting {version.version_id}")
                self.versions.promote(version, report)
            self.emit("save", 3, steps, "marking trajectories seen")
            self.seen.add(index.unseen_ids, sealed_segments=index.sealed_training_ids(), current=self.seen_document)
            self.emit("save", 4, steps, "storing benchmark trajectories")
            with TrajectoryWriter(self.base_dir) as writer:
                writer.append_many(baseline_eval.trajectories + challenger_eval.trajectories)
            if self.case_index_path is not None:
                rebuilt = rebuild_case_index(self.base_dir, self.case_index_path)
                case_summary = self.case_index_summary(rebuilt, rebuilt=True)
        self.emit("save", steps, steps, f"{status} (report {report.report_id})")
        result = report.model_dump(mode="json")
        result["baseline_router"] = "heuristic" if baseline_id is None else "version"
        result["case_index"] = case_summary
        return result

    def case_index_summary(self, case_index: CaseIndex | None, rebuilt: bool) -> dict | None:
        if self.case_index_path is None:
            return None
        return {"path": str(self.case_index_path), "case_count": len(case_index) if case_index else 0,
                "rebuilt": rebuilt}

    def result_skipped(self, index: ArtifactIndex, case_index: CaseIndex | None) -> dict[str, Any]:
        new_count = len(index.unseen_ids)
        reason = (f"only {new_count} new trajectories; a cycle needs at least "
                  f"{self.settings.min_new_trajectories} (append more or lower --min-new-trajectories)")
        self.emit("scan", 1, 1, "skipped: " + reason)
        current = self.versions.current()
        return {
            "status": "skipped", "report_id": None, "dry_run": self.dry_run, "accepted": False,
            "started_at": self.started_at.isoformat(), "finished_at": utc_now().isoformat(),
            "baseline_version_id": self.baseline_version or (current.version_id if current else None),
            "challenger_version_id": None,
            "new_trajectory_count": new_count, "training_trajectory_count": index.training_count,
            "invalid_trajectory_count": len(index.invalid),
            "baseline": None, "challenger": None,
            "reward_delta": None, "error_rate_delta": None, "latency_delta_ms": None,
            "policy": self.policy.model_dump(mode="json"), "gates": [], "reasons": [reason],
            "benchmark": {}, "off_policy": None, "case_index": self.case_index_summary(case_index, rebuilt=False),
        }


def benchmark_delta_interval(baseline: Evaluation, challenger: Evaluation, level: float,
                             seed: int) -> DeltaInterval | None:
    """The challenger's reward gain over the baseline with a paired bootstrap interval over benchmark tasks."""
    baseline_rewards = {t.task.task_id: t.outcome.reward for t in baseline.trajectories}
    differences = [t.outcome.reward - baseline_rewards[t.task.task_id] for t in challenger.trajectories
                   if t.task.task_id in baseline_rewards]
    if not differences:
        return None
    interval = mean_interval(differences, level=level, seed=seed)
    return DeltaInterval(estimate=interval.estimate, low=interval.low, high=interval.high, level=level,
                         source=f"paired bootstrap over {len(differences)} benchmark tasks")


def benchmark_details(suite: BenchmarkSuite, baseline: Evaluation, challenger: Evaluation,
                      baseline_router: str, evidence: UncertaintyEvidence | None = None) -> dict[str, Any]:
    """What the benchmark ran and how the two routers' choices differ."""
    changed = sum(1 for task_id, chosen in challenger.decisions.items() if baseline.decisions.get(task_id) != chosen)
    return {
        "suite": suite.name,
        "task_count": len(suite.tasks),
        "baseline_router": baseline_router,
        "oracle_value": suite.oracle_value(),
        "baseline_expected_value": baseline.expected_value,
        "challenger_expected_value": challenger.expected_value,
        "decision_change_share": changed / len(suite.tasks) if suite.tasks else 0.0,
        "baseline_family_rewards": baseline.family_rewards,
        "challenger_family_rewards": challenger.family_rewards,
        "reward_delta_interval": (evidence.benchmark_delta.model_dump(mode="json")
                                  if evidence and evidence.benchmark_delta else None),
    }


def run_online_learning_workflow(
    base_dir: str | Path | None = None,
    min_new_trajectories: int | None = None,
    seen_trajectory_store: str | Path | None = None,
    dry_run: bool = False,
    baseline_version: str | None = None,
    case_index: str | Path | None = None,
    min_reward_delta: float | None = None,
    max_error_rate_increase: float | None = None,
    max_latency_increase_ms: float | None = None,
    required_task_count: int | None = None,
    reward_delta_bound: str | None = None,
    min_effective_sample_size: float | None = None,
    confidence_level: float | None = None,
    holdout_share: float | None = None,
    benchmark_concurrency: int | None = None,
    benchmark_timeout: float | None = None,
    on_event: EventCallback | None = None,
    cancel: threading.Event | None = None,
    suite: BenchmarkSuite | None = None,
    executor: Executor | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Run one cycle under the base dir's lock and return its result (status promoted, rejected, dry_run,
    skipped or cancelled); a promoted challenger becomes the current version."""
    overrides = dict(base_dir=base_dir, min_new_trajectories=min_new_trajectories,
                     min_reward_delta=min_reward_delta, max_error_rate_increase=max_error_rate_increase,
                     max_latency_increase_ms=max_latency_increase_ms, required_task_count=required_task_count,
                     reward_delta_bound=reward_delta_bound, min_effective_sample_size=min_effective_sample_size,
                     confidence_level=confidence_level, holdout_share=holdout_share,
                     benchmark_concurrency=benchmark_concurrency, benchmark_timeout=benchmark_timeout)
    if settings is None:
        settings = load_settings(**overrides)
    else:
        settings = settings.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    if baseline_version is not None:
        validate_timestamp_id(baseline_version, "baseline version id")
        RouterVersionStore(settings.base_dir).get_version(baseline_version)
    layout = StoreLayout(settings.base_dir)
    seen_path = Path(seen_trajectory_store) if seen_trajectory_store else layout.seen_path
    case_index_path = Path(case_index) if case_index else None
    for path in (seen_path, case_index_path):
        if path is not None and path.is_dir():
            raise BadInputError(f"{path} is a folder; give the path of a .json file")
    cycle = _Cycle(settings, dry_run, baseline_version, seen_path, case_index_path,
                   suite, executor, on_event, cancel)
    with StoreLock(settings.base_dir, "dry-run cycle" if dry_run else "cycle"):
        try:
            return cycle.run()
        except CycleCancelled as exc:
            return {"status": "cancelled", "report_id": None, "dry_run": dry_run, "accepted": False,
                    "reasons": [str(exc)], "started_at": cycle.started_at.isoformat(),
                    "finished_at": utc_now().isoformat()}
