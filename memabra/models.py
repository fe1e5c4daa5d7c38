"""The documents memabra stores, validated by pydantic on the way in and out."""

from __future__ import annotations

import math
import os
import re
import threading
from datetime import datetime, timezone
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_TEXT_CHARS = 20_000
"""Longest task text or error message accepted; longer input is refused, not truncated."""

VERSION_ID_PATTERN = re.compile(r"^\d{8}-\d{6}$")
"""Version and report ids: a UTC timestamp like 20260414-123456."""


def utc_now() -> datetime:
    """Return the current time in UTC."""
    return datetime.now(timezone.utc)


_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)


_ID_BYTES_PER_DRAW = 16 * 256
_id_bytes = b""
_id_offset = 0
_id_mutex = threading.Lock()


def _forget_drawn_id_bytes() -> None:
    global _id_bytes, _id_offset
    _id_bytes, _id_offset = b"", 0


os.register_at_fork(after_in_child=_forget_drawn_id_bytes)


def new_trajectory_id() -> str:
    """Return a fresh, globally unique trajectory id: a random UUID4 in hex (uuid.uuid4().hex, built directly).

    The OS's random bytes are drawn for 256 ids at a time (one system call each, not one per id); a forked child
    drops what its parent drew, so the two never hand out the same id."""
    global _id_bytes, _id_offset
    with _id_mutex:
        if _id_offset >= len(_id_bytes):
            _id_bytes, _id_offset = os.urandom(_ID_BYTES_PER_DRAW), 0
        start = _id_offset
        _id_offset = start + 16
    value = int.from_bytes(_id_bytes[start:start + 16], "big") & _UUID4_CLEAR | _UUID4_SET
    return f"{value:032x}"


class CandidateKind(str, Enum):
    """What a candidate is: where the agent would take its answer from."""

    memory = "memory"
    skill = "skill"
    tool = "tool"
    episodic = "episodic"
    direct = "direct"
    clarify = "clarify"


CANDIDATE_KINDS: tuple[str, ...] = tuple(kind.value for kind in CandidateKind)


class Document(BaseModel):
    """Base of every stored document: unknown fields are kept, floats must be finite."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False, populate_by_name=True)


class Task(Document):
    """One unit of work the agent was asked to do."""

    task_id: str = Field(min_length=1, max_length=200)
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    metadata: dict[str, Any] = Field(default_factory=dict)


class Candidate(Document):
    """One way the agent could handle a task, with the retrieval score that surfaced it."""

    candidate_id: str = Field(min_length=1, max_length=200)
    kind: CandidateKind
    name: str = Field("", max_length=500)
    score: float = 0.0
    payload: dict[str, Any] = Field(default_factory=dict)


class Decision(Document):
    """The router's choice for one task: which candidate, how each scored, and how likely the choice was."""

    chosen_candidate_id: str = Field(min_length=1, max_length=200)
    scores: dict[str, float] = Field(default_factory=dict)
    propensity: float | None = Field(None, gt=0.0, le=1.0)
    router_version_id: str | None = None
    policy: str = "greedy"


class Outcome(Document):
    """What executing the chosen candidate produced."""

    reward: float = Field(strict=True)
    """A number; a string such as "1.0" is refused rather than guessed at."""
    latency_ms: float = Field(ge=0.0)
    error: str | None = Field(None, max_length=MAX_TEXT_CHARS)


TrajectorySource = Literal["agent", "demo", "benchmark"]


def choice_problem(candidate_ids: list[str], chosen_candidate_id: str) -> str | None:
    """What is wrong with a trajectory's choice (ids repeated, or the pick not offered), or None."""
    if len(set(candidate_ids)) != len(candidate_ids):
        return "candidates: candidate_id values must be unique within a trajectory"
    if chosen_candidate_id not in candidate_ids:
        return f"decision.chosen_candidate_id: {chosen_candidate_id!r} is not one of the candidates"
    return None


class Trajectory(Document):
    """One logged run: task, candidates, decision with its propensity, and outcome."""

    trajectory_id: str = Field(default_factory=new_trajectory_id, min_length=1, max_length=200)
    created_at: datetime = Field(default_factory=utc_now)
    source: TrajectorySource = "agent"
    task: Task
    candidates: list[Candidate] = Field(min_length=1)
    decision: Decision
    outcome: Outcome

    @model_validator(mode="after")
    def _chosen_candidate_is_offered(self) -> "Trajectory":
        problem = choice_problem([candidate.candidate_id for candidate in self.candidates],
                                 self.decision.chosen_candidate_id)
        if problem:
            raise ValueError(problem)
        return self

    @property
    def chosen(self) -> Candidate:
        """The candidate the decision picked."""
        chosen_id = self.decision.chosen_candidate_id
        for candidate in self.candidates:
            if candidate.candidate_id == chosen_id:
                return candidate
        raise LookupError(chosen_id)  # unreachable after validation

    @property
    def is_benchmark(self) -> bool:
        """Whether a benchmark run produced this trajectory (never training data)."""
        return self.source == "benchmark"


class BenchmarkMetrics(Document):
    """How a router did on a benchmark suite."""

    avg_reward: float
    error_rate: float
    avg_latency_ms: float
    task_count: int


RewardDeltaSource = Literal["off", "benchmark", "doubly_robust"]


class DeltaInterval(Document):
    """The challenger's reward gain over the baseline with its confidence interval, and where it comes from."""

    estimate: float
    low: float
    high: float
    level: float
    source: str
    """In words, e.g. "paired bootstrap over 160 benchmark tasks"."""


class UncertaintyEvidence(Document):
    """What the uncertainty gates read: reward-delta intervals and how much held-out traffic supports them."""

    benchmark_delta: DeltaInterval | None = None
    doubly_robust_delta: DeltaInterval | None = None
    effective_sample_size: float = 0.0
    """Effective sample size of the challenger's importance weights on held-out traffic (0 when none)."""
    unavailable_reason: str = "no off-policy estimate was made"
    """Why there is no doubly-robust interval, when there is none."""


class OffPolicyEstimate(Document):
    """One estimator's value with its interval and effective sample size."""

    estimate: float
    low: float
    high: float
    ess: float


class EstimatorComparison(Document):
    """One estimator's values of both routers and of their paired difference."""

    baseline: OffPolicyEstimate
    challenger: OffPolicyEstimate
    delta: OffPolicyEstimate


class LoggingCheck(Document):
    """Whether the logged propensities add up: the mean weight of a uniform pick should be about 1."""

    mean_uniform_weight: float
    standard_error: float


class OffPolicySection(Document):
    """Both routers' estimated values on held-out logged traffic, with what limits those estimates."""

    held_out_count: int
    excluded_count: int
    used_count: int
    level: float
    resamples: int
    max_importance_weight: float
    reward_model: str | None
    """What predicted rewards for DM and DR (null: no model, so no DM or DR)."""
    estimators: dict[str, EstimatorComparison] = Field(default_factory=dict)
    mean_importance_weight: dict[str, float] = Field(default_factory=dict)
    clipped_count: dict[str, int] = Field(default_factory=dict)
    logging_check: LoggingCheck | None = None
    propensities_suspect: bool = False
    warnings: list[str] = Field(default_factory=list)


class BenchmarkSection(Document):
    """What the benchmark ran and how the two routers' choices differ."""

    suite: str
    task_count: int
    baseline_router: str
    oracle_value: float | None = None
    baseline_expected_value: float | None = None
    challenger_expected_value: float | None = None
    decision_change_share: float = 0.0
    baseline_family_rewards: dict[str, float] = Field(default_factory=dict)
    challenger_family_rewards: dict[str, float] = Field(default_factory=dict)
    reward_delta_interval: DeltaInterval | None = None


class GatePolicy(Document):
    """The promotion gates' thresholds, declared once: settings, flags, the console and reports all read these fields."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    min_reward_delta: float = 0.0
    """The challenger's average reward must beat the baseline's by at least this."""
    max_error_rate_increase: float = Field(0.05, gt=-1.0, le=1.0)
    """The challenger's error rate may exceed the baseline's by at most this."""
    max_latency_increase_ms: float = 1000.0
    """The challenger's average latency may exceed the baseline's by at most this many milliseconds."""
    required_task_count: int = Field(20, ge=0)
    """The evaluation must have run at least this many tasks."""
    reward_delta_bound: RewardDeltaSource = "off"
    """When not off, the low end of the reward delta's interval (a paired bootstrap over the benchmark tasks, or
    the doubly-robust estimate on held-out traffic) must also reach min_reward_delta."""
    min_effective_sample_size: float = Field(0.0, ge=0.0)
    """When above 0, held-out traffic must support the challenger's estimate with this many effective samples."""
    confidence_level: float = Field(0.95, gt=0.0, lt=1.0)
    """Level of every interval a cycle reports and the reward_delta_bound gate reads."""


class GateResult(Document):
    """One gate's verdict: the measured value against its threshold."""

    gate: str
    value: float
    comparison: Literal[">=", "<="]
    threshold: float
    threshold_name: str
    passed: bool
    explanation: str | None = None
    """The failure in an operator's words, where the value and threshold alone do not say enough."""

    @classmethod
    def check(cls, gate: str, value: float, comparison: str, threshold: float, threshold_name: str) -> "GateResult":
        """Compare value against threshold (with a little float slack) and record the verdict."""
        slack = 1e-12
        passed = value >= threshold - slack if comparison == ">=" else value <= threshold + slack
        return cls(gate=gate, value=_finite(value), comparison=comparison, threshold=threshold,
                   threshold_name=threshold_name, passed=passed)

    @property
    def reason(self) -> str:
        """The gate's verdict in words: what was measured and what it needed."""
        if self.explanation:
            return self.explanation
        need = "at least" if self.comparison == ">=" else "at most"
        return f"{self.gate} {self.value:.4g} is not {need} {self.threshold_name} {self.threshold:.4g}"


class PromotionDecision(Document):
    """The policy's verdict over all gates."""

    accepted: bool
    gates: list[GateResult]
    reasons: list[str]


def _finite(value: float) -> float:
    return value if math.isfinite(value) else 0.0


class RouterVersion(Document):
    """One saved router: its weights, the benchmark it passed, and where it came from."""

    version_id: str
    created_at: datetime = Field(default_factory=utc_now)
    router: dict[str, Any]
    """The router's own serialisation (kind, feature configuration, weights as lists)."""
    metrics: BenchmarkMetrics | None = None
    gates: list[GateResult] = Field(default_factory=list)
    report_id: str | None = None
    parent_version_id: str | None = None
    training_trajectory_count: int = 0
    training_segments: list[str] = Field(default_factory=list)
    """Trajectory segments (and open journals) the training read, in order."""

    @field_validator("version_id")
    @classmethod
    def _version_id_shape(cls, value: str) -> str:
        if not VERSION_ID_PATTERN.match(value):
            raise ValueError("version_id must look like 20260414-123456")
        return value


class RollbackEntry(Document):
    """One rollback: from which version to which, and when."""

    rollback_from: str | None
    version_id: str
    rolled_back_at: datetime


class CurrentRouter(Document):
    """Which version is active, how it got there, and the audit trail of rollbacks."""

    version_id: str
    promoted_at: datetime
    promotion_source: Literal["cycle", "rollback", "manual"]
    benchmark_summary: BenchmarkMetrics | None = None
    prior_version_id: str | None = None
    report_id: str | None = None
    rollback_from: str | None = None
    rolled_back_at: datetime | None = None
    rollback_history: list[RollbackEntry] = Field(default_factory=list)


ReportStatus = Literal["promoted", "rejected", "dry_run"]


class TrainingReport(Document):
    """What one training run did and why: one per run, accepted or not, dry run or not."""

    report_id: str
    status: ReportStatus
    dry_run: bool
    accepted: bool
    started_at: datetime
    finished_at: datetime
    baseline_version_id: str | None
    """The version the challenger was compared with; null when the built-in heuristic was the baseline."""
    challenger_version_id: str | None
    """The saved version of the challenger; null unless it was promoted."""
    new_trajectory_count: int
    training_trajectory_count: int
    invalid_trajectory_count: int
    baseline: BenchmarkMetrics
    challenger: BenchmarkMetrics
    reward_delta: float
    error_rate_delta: float
    latency_delta_ms: float
    policy: GatePolicy
    gates: list[GateResult]
    reasons: list[str]
    benchmark: BenchmarkSection | None = None
    """What the benchmark ran: suite name, oracle value, per-family rewards, decision changes."""
    off_policy: OffPolicySection | None = None
    """Both routers' estimated values on held-out logged traffic (see memabra.evaluation.counterfactual)."""

    @field_validator("benchmark", mode="before")
    @classmethod
    def _no_benchmark(cls, value: Any) -> Any:
        return value or None
