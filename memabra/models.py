"""The documents memabra stores, validated by pydantic on the way in and out."""

from __future__ import annotations

import math
import os
import re
import threading
from datetime import datetime, timezone
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_TEXT_CHARS = 20_000
"""Longest task text or error message accepted; longer input is refused, not truncated."""

MAX_ABS_REWARD = 1e6
"""Rewards and retrieval scores lie in [-1e6, 1e6]: sums over any store stay finite."""

MAX_LATENCY_MS = 1e9
"""Latencies lie in [0, 1e9] milliseconds (about 11.5 days)."""

MIN_PROPENSITY = 1e-9
"""Propensities lie in [1e-9, 1]: an importance weight stays finite."""

MAX_NESTING_DEPTH = 32
"""Deepest nesting of objects and arrays a trajectory may have (the document itself is level 1)."""

VERSION_ID_PATTERN = re.compile(r"\A[0-9]{8}-[0-9]{6}\Z")
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
    score: float = Field(0.0, strict=True, ge=-MAX_ABS_REWARD, le=MAX_ABS_REWARD)
    payload: dict[str, Any] = Field(default_factory=dict)


class Decision(Document):
    """The router's choice for one task: which candidate, how each scored, and how likely the choice was."""

    chosen_candidate_id: str = Field(min_length=1, max_length=200)
    scores: dict[str, Annotated[float, Field(strict=True, ge=-MAX_ABS_REWARD, le=MAX_ABS_REWARD)]] = Field(
        default_factory=dict)
    propensity: float | None = Field(None, strict=True, ge=MIN_PROPENSITY, le=1.0)
    router_version_id: str | None = None
    policy: str = "greedy"


class Outcome(Document):
    """What executing the chosen candidate produced."""

    reward: float = Field(strict=True, ge=-MAX_ABS_REWARD, le=MAX_ABS_REWARD)
    latency_ms: float = Field(strict=True, ge=0.0, le=MAX_LATENCY_MS)
    error: str | None = Field(None, max_length=MAX_TEXT_CHARS)


TrajectorySource = Literal["agent", "demo", "benchmark"]


def nesting_depth(value: Any, limit: int) -> int:
    """How deeply objects and arrays nest in a JSON-like value (a scalar is 0), counted no further than limit+1."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        if depth > deepest:
            deepest = depth
            if deepest > limit:
                return deepest
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list, tuple)))
    return deepest


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

    @model_validator(mode="before")
    @classmethod
    def _nesting_is_bounded(cls, data: Any) -> Any:
        if nesting_depth(data, MAX_NESTING_DEPTH) > MAX_NESTING_DEPTH:
            raise ValueError(f"document: nested deeper than {MAX_NESTING_DEPTH} levels of objects and arrays")
        return data

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


RewardDeltaSource = Literal["off", "benchmark", "doubly_robust", "evidence"]
EvidenceSource = Literal["benchmark", "offpolicy", "demo"]
"""What a cycle's gates decide on: the user's suite through the user's executor, held-out logged traffic
estimated off-policy, or the demo world."""
IntervalMethod = Literal["bootstrap", "confidence_sequence"]
GateProfile = Literal["lenient", "production"]


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
    source: EvidenceSource = "benchmark"
    """The evidence the gates decide on."""
    reward_delta: float | None = None
    """The reward gain the reward_delta gate reads: exact from expected values where the suite knows them, else
    the paired mean difference (benchmark) or the doubly-robust difference (offpolicy); None: the sampled means'."""
    reward_delta_basis: str = "sampled"
    """How reward_delta was measured: expected (exact), sampled, or doubly_robust."""
    sampled_reward_delta: float | None = None
    """The benchmark's sampled reward gain, reported beside an exact one."""
    error_rate_delta: DeltaInterval | None = None
    """The challenger's error-rate increase on held-out traffic (SNIPS, paired), with its interval."""
    latency_delta_ms: DeltaInterval | None = None
    """The challenger's mean-latency increase on held-out traffic (SNIPS, paired), with its interval."""


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
    interval_limits: dict[str, str] = Field(default_factory=dict)
    """Estimators whose intervals cannot express a bias, and why; no gate reads them."""
    error_rate: EstimatorComparison | None = None
    """Both routers' error rates on the traffic (SNIPS) and their paired difference."""
    latency_ms: EstimatorComparison | None = None
    """Both routers' mean latencies on the traffic (SNIPS) and their paired difference."""
    dr_delta_sequence: OffPolicyEstimate | None = None
    """The doubly-robust reward gain with an anytime-valid (betting) interval, when the gates ask for one."""


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
    sampled_reward_delta: float | None = None
    """The challenger's sampled reward gain on the suite (beside the exact one from expected values)."""
    expected_reward_delta: float | None = None
    """The challenger's exact reward gain from the suite's expected rewards, when it gives every one."""


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
    interval: IntervalMethod = "bootstrap"
    """How the reward-delta interval the gates read is made: a paired bootstrap, or an anytime-valid confidence
    sequence (betting), which keeps its coverage where rare rewards carry large importance weights."""
    gate_profile: GateProfile = Field("lenient", json_schema_extra={"flag": "--gates", "metavar": "PROFILE"})
    """lenient (alpha exploration: point estimates) or production (decide on the reward gain's interval lower
    bound, at least min_effective_sample_size effective samples, expected values where known); a gate set
    explicitly still overrides the profile."""

    def effective(self) -> "GatePolicy":
        """The gates as applied: the profile's value for every gate not set explicitly."""
        profile = GATE_PROFILES.get(self.gate_profile, {})
        updates = {name: value for name, value in profile.items()
                   if name not in self.model_fields_set and getattr(self, name) != value}
        return self.model_copy(update=updates) if updates else self


GATE_PROFILES: dict[str, dict[str, Any]] = {
    "lenient": {},
    "production": {"min_reward_delta": 0.001, "reward_delta_bound": "evidence", "min_effective_sample_size": 30.0,
                   "required_task_count": 100, "max_error_rate_increase": 0.02},
}
"""Each profile's gate values; a gate not named keeps its default."""


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
    promotion_source: str
    """What made it active: `cycle`, `promote` (a reviewed dry run), `rollback`, `manual`; an open set."""
    benchmark_summary: BenchmarkMetrics | None = None
    prior_version_id: str | None = None
    report_id: str | None = None
    rollback_from: str | None = None
    rolled_back_at: datetime | None = None
    rollback_history: list[RollbackEntry] = Field(default_factory=list)
    reason: str | None = None
    """Why the change was made (`--reason`, or a guard rollback's `guard: ...`), when a reason was given."""


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
    evidence: EvidenceSource | None = None
    """What the gates decided on: benchmark (your suite and executor), offpolicy (held-out logged traffic) or demo."""
    reward_delta_basis: str | None = None
    """How reward_delta was measured: expected (exact, from the suite's expected rewards), sampled, or
    doubly_robust (offpolicy)."""
    reward_delta_sampled: float | None = None
    """The benchmark's sampled reward gain, beside an exact reward_delta."""

    @field_validator("benchmark", mode="before")
    @classmethod
    def _no_benchmark(cls, value: Any) -> Any:
        return value or None
