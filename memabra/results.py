"""What the engine hands the front ends: typed results, turned into JSON only at the CLI's edge.

Each reads like its JSON document too (`result["status"]`), so scripts written against the documents keep working.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from memabra.audit_models import HistoryEntry
from memabra.models import (
    BenchmarkMetrics,
    BenchmarkSection,
    CurrentRouter,
    EvidenceSource,
    GatePolicy,
    GateResult,
    OffPolicySection,
    TrainingReport,
)


class Result(BaseModel):
    """Base of every result: plain fields, and read like the JSON document it prints as."""

    model_config = ConfigDict(extra="forbid")

    def document(self) -> dict[str, Any]:
        """The JSON document the CLI prints for this result."""
        return self.model_dump(mode="json")

    def __getitem__(self, key: str) -> Any:
        return self.document()[key]

    def get(self, key: str, default: Any = None) -> Any:
        """A field of the JSON document, or default."""
        return self.document().get(key, default)

    def keys(self):
        return self.document().keys()


class CaseIndexSummary(Result):
    """The episodic case index a command loaded or rebuilt."""

    path: str
    case_count: int
    rebuilt: bool


CycleStatus = Literal["promoted", "rejected", "dry_run", "skipped", "cancelled"]


class CycleResult(Result):
    """One cycle's outcome: the training report's fields (null where the cycle wrote none), then how it ran."""

    report_id: str | None = None
    status: CycleStatus
    dry_run: bool
    accepted: bool = False
    started_at: datetime
    finished_at: datetime
    baseline_version_id: str | None = None
    challenger_version_id: str | None = None
    new_trajectory_count: int | None = None
    training_trajectory_count: int | None = None
    invalid_trajectory_count: int | None = None
    baseline: BenchmarkMetrics | None = None
    challenger: BenchmarkMetrics | None = None
    reward_delta: float | None = None
    error_rate_delta: float | None = None
    latency_delta_ms: float | None = None
    policy: GatePolicy | None = None
    gates: list[GateResult] = Field(default_factory=list)
    reasons: list[str] = Field(default_factory=list)
    benchmark: BenchmarkSection | None = None
    off_policy: OffPolicySection | None = None
    evidence: EvidenceSource | None = None
    """What the gates decided on: benchmark, offpolicy or demo."""
    reward_delta_basis: str | None = None
    reward_delta_sampled: float | None = None
    baseline_router: Literal["heuristic", "version"] | None = None
    """What the challenger was compared with: the built-in heuristic or a saved version."""
    case_index: CaseIndexSummary | None = None
    unfinished: list[str] = Field(default_factory=list)
    """Steps that failed after the report (and any promotion) was written, each with its error; the status above
    is what took effect."""

    @classmethod
    def of_report(cls, report: TrainingReport, **extra: Any) -> "CycleResult":
        """The result of a cycle that wrote this report."""
        fields = {name: getattr(report, name) for name in TrainingReport.model_fields if name in cls.model_fields}
        return cls(**fields, **extra)


class RecentValue(Result):
    """The active router's SNIPS value on the newest logged traffic, with its interval."""

    estimator: str
    estimate: float
    low: float
    high: float
    ess: float
    level: float
    trajectory_count: int
    excluded_count: int


class DriftSignal(Result):
    """The active router's value on recent traffic against its value when it was promoted, with an interval."""

    value_at_promotion: float
    """Its SNIPS value on the held-out traffic of the cycle that promoted it."""
    recent_value: float
    delta: float
    low: float
    high: float
    level: float
    signal: Literal["stable", "dropped", "rose"]
    """dropped or rose when the whole interval of the change is below or above zero."""


class LatestReport(Result):
    """The newest readable training report, in brief."""

    report_id: str
    status: str
    finished_at: datetime
    reward_delta: float
    reasons: list[str]


class LockHolder(Result):
    """Who holds the store's lock."""

    pid: int | None
    started_at: datetime | None
    operation: str | None


class EffectiveSetting(Result):
    """A setting's effective value and where it came from: flag, environment, memabra.toml or default."""

    value: Any
    source: Literal["flag", "environment", "memabra.toml", "default"]


class GuardInterval(Result):
    """Promoted minus prior value, with its anytime-valid interval."""

    estimate: float
    low: float
    high: float
    level: float
    method: str


class GuardStatus(Result):
    """The guard's section of the status: its mode, its verdict on the active version, and its last rollback."""

    mode: Literal["off", "alert", "rollback"]
    verdict: Literal["idle", "watching", "healthy", "regressed", "rolled_back"] | None = None
    """None while the guard is off."""
    alert: bool = False
    """The active version regressed against its prior (in rollback mode the next `--guard-check` rolls it back)."""
    reason: str
    promoted_version_id: str | None = None
    prior_version_id: str | None = None
    served_count: int = 0
    used_count: int = 0
    min_traffic: int | None = None
    difference: GuardInterval | None = None
    last_guard_report_id: str | None = None
    """The newest guard rollback's report (`guard-reports/<id>.json`)."""


class StoreStatus(Result):
    """A snapshot of the store, always with the same keys."""

    base_dir: str
    current: CurrentRouter | None
    active_router: Literal["heuristic", "version", "unknown"]
    """What agents starting now would serve: a saved version, the built-in heuristic, or unknown when current.json
    cannot be read (running agents keep serving what they loaded)."""
    trajectory_count: int
    training_trajectory_count: int
    benchmark_trajectory_count: int
    unseen_trajectory_count: int
    invalid_trajectory_count: int
    seen_trajectory_count: int
    version_count: int
    report_count: int
    latest_report: LatestReport | None
    lock: LockHolder | None
    recent_value: RecentValue | None
    drift: DriftSignal | None = None
    """Null until the active version's report holds an off-policy estimate and recent traffic can be estimated."""
    settings: dict[str, EffectiveSetting] = Field(default_factory=dict)
    """Every setting (the gates by their own names) with its effective value and where it came from."""
    guard: GuardStatus | None = None
    """The guard over the active version (null when the status was read without it)."""
    warnings: list[str] = Field(default_factory=list)
    """What an operator must act on, in one line each (current.json missing or unreadable while versions exist)."""


class Problem(Result):
    """One thing wrong with the store: where, what, how to fix it, and whether repair did."""

    path: str
    problem: str
    fix: str
    repaired: bool = False


class CheckResult(Result):
    """What `--check` found (and, with repair, fixed)."""

    base_dir: str
    healthy: bool
    repair: bool
    problem_count: int
    repaired_count: int
    problems: list[Problem]
    checked: dict[str, int]


class HistoryResult(Result):
    """The store's audit log, newest first: changes of the active version, and changes of its settings file."""

    history: list[HistoryEntry]
    settings_changes: list[HistoryEntry]


class ActiveAt(Result):
    """Which router was active at a moment, and the change that made it so."""

    active_at: datetime
    version_id: str | None
    """Null: the built-in heuristic."""
    active_router: Literal["heuristic", "version"]
    since: datetime | None
    """When that change was made (null before the first change the log or current.json records)."""
    source: str | None
    reason: str | None
