"""The documents memabra stores, validated by pydantic on the way in and out."""

from __future__ import annotations

import math
import os
import re
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


def new_trajectory_id() -> str:
    """Return a fresh, globally unique trajectory id: a random UUID4 in hex (uuid.uuid4().hex, built directly)."""
    value = int.from_bytes(os.urandom(16), "big") & _UUID4_CLEAR | _UUID4_SET
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

    reward: float
    latency_ms: float = Field(ge=0.0)
    error: str | None = Field(None, max_length=MAX_TEXT_CHARS)


TrajectorySource = Literal["agent", "demo", "benchmark"]


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
        ids = [candidate.candidate_id for candidate in self.candidates]
        if len(set(ids)) != len(ids):
            raise ValueError("candidates: candidate_id values must be unique within a trajectory")
        if self.decision.chosen_candidate_id not in ids:
            raise ValueError(
                f"decision.chosen_candidate_id: {self.decision.chosen_candidate_id!r} is not one of the candidates"
            )
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


class PromotionPolicy(Document):
    """The four gates a challenger must pass to be promoted."""

    min_reward_delta: float = 0.0
    max_error_rate_increase: float = 0.05
    max_latency_increase_ms: float = 1000.0
    required_task_count: int = Field(20, ge=0)

    def evaluate(self, baseline: BenchmarkMetrics, challenger: BenchmarkMetrics) -> "PromotionDecision":
        """Check every gate; the decision names each failing one with its value and threshold."""
        gates = [
            GateResult.check("reward_delta", challenger.avg_reward - baseline.avg_reward, ">=", self.min_reward_delta,
                             "min_reward_delta"),
            GateResult.check("error_rate_delta", challenger.error_rate - baseline.error_rate, "<=",
                             self.max_error_rate_increase, "max_error_rate_increase"),
            GateResult.check("latency_delta_ms", challenger.avg_latency_ms - baseline.avg_latency_ms, "<=",
                             self.max_latency_increase_ms, "max_latency_increase_ms"),
            GateResult.check("task_count", challenger.task_count, ">=", self.required_task_count,
                             "required_task_count"),
        ]
        return PromotionDecision(
            accepted=all(gate.passed for gate in gates),
            gates=gates,
            reasons=[gate.reason for gate in gates if not gate.passed],
        )


class GateResult(Document):
    """One gate's verdict: the measured value against its threshold."""

    gate: str
    value: float
    comparison: Literal[">=", "<="]
    threshold: float
    threshold_name: str
    passed: bool

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
    policy: PromotionPolicy
    gates: list[GateResult]
    reasons: list[str]
    benchmark: dict[str, Any] = Field(default_factory=dict)
    """What the benchmark ran: suite name, oracle value, per-family rewards, decision changes."""
