"""One online-learning cycle as named stages: scan, dataset, train, evaluate, gate, save.

The engine imports no demo module: the benchmark suite and its executor come in from the front end.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable

from memabra.errors import CycleCancelled, MemabraError
from memabra.evaluation.benchmark import BenchmarkSuite
from memabra.evaluation.counterfactual import compare_routers
from memabra.evaluation.evaluator import Evaluation, Evaluator, Executor
from memabra.evaluation.evidence import (benchmark_reward_delta, doubly_robust_interval, offpolicy_guardrails,
                                        offpolicy_metrics)
from memabra.evaluation.reward_model import CrossFittedRewardModel
from memabra.learning.dataset import TrainingStats, dataset_builder
from memabra.learning.routers import HeuristicRouter, ScoringRouter
from memabra.learning.engines import ScanEngine
from memabra.learning.scan import ArtifactIndex
from memabra.learning.train import train_router
from memabra.learning.versions import load_version_router, require_current
from memabra.models import (
    BenchmarkMetrics,
    BenchmarkSection,
    EvidenceSource,
    OffPolicySection,
    Trajectory,
    UncertaintyEvidence,
    utc_now,
)
from memabra.promotion import CycleOutcome, save_cycle
from memabra.results import CaseIndexSummary, CycleResult
from memabra.runtime.case_index import CaseIndex
from memabra.settings import Settings
from memabra.storage.store import Store
from memabra.storage.trajectories import UNREADABLE_FILE

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
Clock = Callable[[], datetime]


@dataclass(frozen=True)
class CycleRequest:
    """What one cycle is asked to do, beside the settings: the front end fills it from its flags or keys."""

    suite: BenchmarkSuite | None = None
    """The benchmark both routers run (with its executor, or `executor` below); None with offpolicy evidence."""
    executor: Executor | None = None
    dry_run: bool = False
    baseline_version: str | None = None
    seen_path: Path | None = None
    case_index_path: Path | None = None
    rebuild_case_index: bool = False
    """Whether the case index was rebuilt before this cycle (reported as rebuilt)."""
    evidence: EvidenceSource = "benchmark"
    """What the gates decide on: benchmark or demo (the suite above) or offpolicy (held-out traffic, no suite)."""
    reason: str | None = None
    """Why the operator ran it, recorded in the audit log if it promotes."""


class _Cycle:
    """The state of one running cycle; `run()` walks the stages in order."""

    def __init__(self, store: Store, settings: Settings, request: CycleRequest, on_event: EventCallback | None,
                 cancel: threading.Event | None, clock: Clock):
        self.store = store
        self.settings = settings
        self.request = request
        self.seen = store.seen(request.seen_path)
        self.on_event = on_event
        self.cancel = cancel
        self.clock = clock
        self.off_policy: OffPolicySection | None = None
        self.evidence = UncertaintyEvidence()
        self.started_at = clock()
        self.builder = dataset_builder(settings)

    def emit(self, stage: str, done: int, total: int, message: str = "") -> None:
        if self.on_event:
            self.on_event(ProgressEvent(stage, done, total, message))

    def check_cancel(self, stage: str) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise CycleCancelled(f"the cycle was cancelled during {stage}; nothing was written")

    def run(self) -> CycleResult:
        index, seen_document = self.scan()
        case_index = self.load_case_index()
        if len(index.unseen_ids) < self.settings.min_new_trajectories:
            return self.skipped(index, case_index)
        self.check_cancel("scan")

        stats = self.build_dataset(index)
        held_out = self.hold_out(index, stats)
        self.emit("train", 0, 1, f"fitting on {stats.count} trajectories")
        challenger = train_router(stats, index.config)
        self.emit("train", 1, 1, "challenger trained")
        self.check_cancel("train")

        baseline, baseline_id = self.baseline_router()
        baseline_eval, challenger_eval = self.evaluate(baseline, challenger)
        self.estimate_uncertainty(held_out, baseline, challenger, baseline_eval, challenger_eval)
        if self.request.suite is None:
            baseline_eval, challenger_eval = self.offpolicy_evaluations()

        policy = self.settings.gates.effective()
        decision = policy.evaluate(baseline_eval.metrics, challenger_eval.metrics, self.evidence)
        if self.request.suite is None and offpolicy_metrics(self.off_policy) is None:
            decision.accepted = False
            decision.reasons.insert(0, f"nothing could be estimated off-policy: {self.evidence.unavailable_reason}")
        verdict = "accepted" if decision.accepted else "rejected: " + "; ".join(decision.reasons)
        self.emit("gate", 1, 1, verdict)
        self.check_cancel("gate")
        outcome = CycleOutcome(
            index=index, seen_document=seen_document, training_count=stats.count, challenger=challenger,
            baseline_id=baseline_id, baseline_eval=baseline_eval, challenger_eval=challenger_eval, decision=decision,
            benchmark=benchmark_section(self.request.suite, baseline_eval, challenger_eval,
                                        "heuristic" if baseline_id is None else "version", self.evidence)
            if self.request.suite is not None else None,
            off_policy=self.off_policy, started_at=self.started_at, evidence=self.request.evidence,
            reward_delta=self.evidence.reward_delta, reward_delta_basis=self.evidence.reward_delta_basis,
            reward_delta_sampled=self.evidence.sampled_reward_delta)
        unfinished: list[str] = []
        report = save_cycle(self.store, policy, self.request.dry_run, outcome, self.seen, self.emit, self.clock,
                            reason=self.request.reason, unfinished=unfinished)
        case_summary = self.case_index_summary(case_index)
        if not self.request.dry_run and self.request.case_index_path is not None:
            try:
                rebuilt = CaseIndex.rebuild(self.store.trajectories, self.request.case_index_path)
            except MemabraError as exc:
                unfinished.append(f"rebuilding the case index: {exc}")
            else:
                case_summary = CaseIndexSummary(path=str(self.request.case_index_path), case_count=len(rebuilt),
                                                rebuilt=True)
        self.emit("save", 5, 5, f"{report.status} (report {report.report_id})")
        return CycleResult.of_report(report, baseline_router="heuristic" if baseline_id is None else "version",
                                     case_index=case_summary, unfinished=unfinished)

    def scan(self):
        self.emit("scan", 0, 1, "reading trajectories")
        if not self.request.dry_run:
            self.store.trajectories.seal_abandoned_journals()
        seen = self.seen.read()
        index = ArtifactIndex.scan(self.store, set(seen.trajectory_ids), seen_segments=seen.segments,
                                   on_file=lambda done, total: self.emit("scan", done, total, "reading trajectories"),
                                   builder=self.builder, engine=ScanEngine.of(self.settings))
        unreadable = [entry.file for entry in index.invalid if entry.position == UNREADABLE_FILE]
        self.emit("scan", 1, 1, f"{index.training_count} training trajectories, {len(index.unseen_ids)} new, "
                                f"{len(index.invalid)} invalid"
                                + (f"; left out unreadable {', '.join(unreadable)} (see --check)" if unreadable else ""))
        return index, seen

    def load_case_index(self) -> CaseIndex | None:
        path = self.request.case_index_path
        return CaseIndex.load(path) if path else None

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
        ages = index.ages({trajectory.trajectory_id for trajectory in held_out})
        stats.subtract(self.builder.stats(held_out, ages=[ages[t.trajectory_id] for t in held_out]))
        self.emit("dataset", 1, 1, f"held out the newest {len(held_out)} new trajectories")
        return held_out

    def baseline_router(self) -> tuple[ScoringRouter, str | None]:
        versions = self.store.versions
        if self.request.baseline_version:
            return load_version_router(versions, self.request.baseline_version), self.request.baseline_version
        current = versions.current()
        if current is None:
            require_current(versions)
            return HeuristicRouter(), None
        return load_version_router(versions, current.version_id), current.version_id

    def evaluate(self, baseline: ScoringRouter,
                 challenger: ScoringRouter) -> tuple[Evaluation | None, Evaluation | None]:
        """Both routers over the suite through the executor; (None, None) when the evidence is offpolicy."""
        suite = self.request.suite
        if suite is None:
            return None, None
        evaluator = Evaluator(self.request.executor, concurrency=self.settings.benchmark_concurrency,
                              timeout=self.settings.benchmark_timeout)
        total = 2 * len(suite.tasks)
        baseline_eval = evaluator.evaluate(
            baseline, suite, cancel=self.cancel,
            on_progress=lambda done, _: self.emit("evaluate", done, total, "baseline"))
        challenger_eval = evaluator.evaluate(
            challenger, suite, cancel=self.cancel,
            on_progress=lambda done, _: self.emit("evaluate", len(suite.tasks) + done, total, "challenger"))
        self.check_cancel("evaluate")
        return baseline_eval, challenger_eval

    def estimate_uncertainty(self, held_out: list[Trajectory], baseline, challenger,
                             baseline_eval: Evaluation | None, challenger_eval: Evaluation | None) -> None:
        """Both routers' off-policy values on the held-out trajectories (DM and DR with a reward model cross-fitted
        on that traffic, never a router's own scores) and the reward-delta figures the gates read."""
        gates = self.settings.gates.effective()
        level, seed, method = gates.confidence_level, self.settings.seed, gates.interval
        total = baseline_eval.task_count + challenger_eval.task_count if baseline_eval and challenger_eval else 1
        if baseline_eval is None:
            self.emit("evaluate", 0, total, f"off-policy estimates on {len(held_out)} held-out trajectories")
        self.off_policy = compare_routers(held_out, baseline, challenger,
                                          reward_model=CrossFittedRewardModel(held_out, seed=seed),
                                          level=level, seed=seed, interval=method)
        doubly_robust = self.off_policy.estimators.get("dr")
        if not held_out:
            unavailable = "no trajectories were held out (holdout_share is 0 or too few are new)"
        else:
            unavailable = f"none of the {len(held_out)} held-out trajectories records a propensity"
        dr_interval = doubly_robust_interval(self.off_policy, method)
        figures = (benchmark_reward_delta(self.request.suite, baseline_eval, challenger_eval, level=level,
                                          seed=seed, method=method)
                   if self.request.suite is not None else
                   {"benchmark_delta": None, "reward_delta": doubly_robust.delta.estimate if doubly_robust else None,
                    "reward_delta_basis": "doubly_robust", "sampled_reward_delta": None})
        self.evidence = UncertaintyEvidence(
            **figures, **offpolicy_guardrails(self.off_policy), doubly_robust_delta=dr_interval,
            source=self.request.evidence,
            effective_sample_size=doubly_robust.challenger.ess if doubly_robust else 0.0,
            unavailable_reason=unavailable)
        self.emit("evaluate", total, total,
                  f"off-policy estimates on {self.off_policy.used_count} held-out trajectories")

    def offpolicy_evaluations(self) -> tuple[Evaluation, Evaluation]:
        """Both routers' metrics estimated on the held-out traffic (zeros when nothing could be estimated)."""
        metrics = offpolicy_metrics(self.off_policy)
        if metrics is None:
            empty = BenchmarkMetrics(avg_reward=0.0, error_rate=0.0, avg_latency_ms=0.0, task_count=0)
            metrics = (empty, empty)
        return Evaluation(metrics=metrics[0]), Evaluation(metrics=metrics[1])

    def case_index_summary(self, case_index: CaseIndex | None) -> CaseIndexSummary | None:
        if self.request.case_index_path is None:
            return None
        return CaseIndexSummary(path=str(self.request.case_index_path),
                                case_count=len(case_index) if case_index else 0,
                                rebuilt=self.request.rebuild_case_index)

    def skipped(self, index: ArtifactIndex, case_index: CaseIndex | None) -> CycleResult:
        new_count = len(index.unseen_ids)
        reason = (f"only {new_count} new trajectories; a cycle needs at least "
                  f"{self.settings.min_new_trajectories} (append more or lower min_new_trajectories)")
        self.emit("scan", 1, 1, "skipped: " + reason)
        current = self.store.versions.current()
        return CycleResult(
            status="skipped", dry_run=self.request.dry_run, started_at=self.started_at, finished_at=self.clock(),
            baseline_version_id=self.request.baseline_version or (current.version_id if current else None),
            new_trajectory_count=new_count, training_trajectory_count=index.training_count,
            invalid_trajectory_count=len(index.invalid), policy=self.settings.gates, reasons=[reason],
            case_index=self.case_index_summary(case_index))


def benchmark_section(suite: BenchmarkSuite, baseline: Evaluation, challenger: Evaluation,
                      baseline_router: str, evidence: UncertaintyEvidence | None = None) -> BenchmarkSection:
    """What the benchmark ran and how the two routers' choices differ."""
    changed = sum(1 for task_id, chosen in challenger.decisions.items() if baseline.decisions.get(task_id) != chosen)
    return BenchmarkSection(
        suite=suite.name,
        task_count=len(suite.tasks),
        baseline_router=baseline_router,
        oracle_value=suite.oracle_value(),
        baseline_expected_value=baseline.expected_value,
        challenger_expected_value=challenger.expected_value,
        decision_change_share=changed / len(suite.tasks) if suite.tasks else 0.0,
        baseline_family_rewards=baseline.family_rewards,
        challenger_family_rewards=challenger.family_rewards,
        reward_delta_interval=evidence.benchmark_delta if evidence else None,
        sampled_reward_delta=challenger.avg_reward - baseline.avg_reward,
        expected_reward_delta=(challenger.expected_value - baseline.expected_value
                               if challenger.expected_value is not None and baseline.expected_value is not None
                               else None),
    )


def run_cycle(store: Store, settings: Settings, request: CycleRequest, on_event: EventCallback | None = None,
              cancel: threading.Event | None = None, clock: Clock = utc_now) -> CycleResult:
    """Run one cycle under the store's lock and return its result (status promoted, rejected, dry_run, skipped
    or cancelled); a promoted challenger becomes the current version. `clock` stamps every document written."""
    cycle = _Cycle(store, settings, request, on_event, cancel, clock)
    with store.lock("dry-run cycle" if request.dry_run else "cycle"):
        try:
            return cycle.run()
        except CycleCancelled as exc:
            return CycleResult(status="cancelled", dry_run=request.dry_run, reasons=[str(exc)],
                               started_at=cycle.started_at, finished_at=clock(), policy=settings.gates)
