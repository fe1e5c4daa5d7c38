"""What an operator looks at, computed from the store without any UI: listings, trends, version diffs, tables."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memabra.suggestions import command_to_run
from memabra.errors import CorruptDocumentError, MemabraError
from memabra.evaluation.benchmark import BenchmarkSuite
from memabra.evaluation.counterfactual import recent_value
from memabra.evaluation.evaluator import Evaluator, Executor
from memabra.evaluation.evidence import newest_logged
from memabra.guarding import GuardCheck, evaluate_guard
from memabra.learning.routers import HeuristicRouter
from memabra.learning.versions import load_version_router
from memabra.models import GateResult, OffPolicySection
from memabra.results import StoreStatus
from memabra.settings import Settings
from memabra.status import store_status
from memabra.storage.atomic import read_json
from memabra.storage.folders import TimestampedFolder
from memabra.storage.store import Store

OFF_POLICY_ESTIMATORS = ("ips", "snips", "dm", "dr")
"""Off-policy estimators in the order reports list them (unknown ones follow, sorted)."""


@dataclass(frozen=True)
class VersionRow:
    """One version as the history table shows it (no weights)."""

    version_id: str
    created_at: str
    avg_reward: float | None
    error_rate: float | None
    avg_latency_ms: float | None
    training_trajectory_count: int
    parent_version_id: str | None
    report_id: str | None
    active: bool


@dataclass(frozen=True)
class ReportRow:
    """One training report as the reports table shows it."""

    report_id: str
    finished_at: str
    dry_run: bool
    status: str
    accepted: bool
    reward_delta: float | None
    first_reason: str


@dataclass
class Overview:
    """Everything the console's main screen shows, read in one pass."""

    status: StoreStatus | None
    versions: list[VersionRow]
    reports: list[ReportRow]
    problems: list[str] = field(default_factory=list)
    guard: GuardCheck | None = None
    """The guard's check of the active version with its running values (none while the guard is off)."""

    @property
    def reward_trend(self) -> list[float]:
        """Benchmark avg_reward of every version, oldest first."""
        return [row.avg_reward for row in reversed(self.versions) if row.avg_reward is not None]


def _raw_documents(folder: TimestampedFolder, problems: list[str], check: str) -> list[dict[str, Any]]:
    """Every document of a folder as plain JSON, newest first; unreadable ones are named in problems."""
    documents = []
    for document_id in folder.ids():
        path = folder.path(document_id)
        try:
            document = read_json(path)
        except CorruptDocumentError as exc:
            problems.append(exc.worded(check))
            continue
        if isinstance(document, dict):
            documents.append(document)
        elif document is not None:
            problems.append(f"{path} is not a JSON object; run `{check}`")
    return documents


def version_rows(store: Store | Path, active_id: str | None, problems: list[str] | None = None) -> list[VersionRow]:
    """Every version, newest first, read as plain JSON (weights are never validated here, so 1,000 load fast)."""
    problems = [] if problems is None else problems
    rows = []
    store = Store.of(store)
    for document in _raw_documents(store.versions.versions, problems, command_to_run(store.base_dir, "--check")):
        metrics = document.get("metrics") or {}
        rows.append(VersionRow(
            version_id=document.get("version_id", "?"), created_at=str(document.get("created_at", "")),
            avg_reward=metrics.get("avg_reward"), error_rate=metrics.get("error_rate"),
            avg_latency_ms=metrics.get("avg_latency_ms"),
            training_trajectory_count=int(document.get("training_trajectory_count") or 0),
            parent_version_id=document.get("parent_version_id"), report_id=document.get("report_id"),
            active=document.get("version_id") == active_id))
    return rows


def report_rows(store: Store | Path, problems: list[str] | None = None) -> list[ReportRow]:
    """Every training report, newest first, read as plain JSON."""
    problems = [] if problems is None else problems
    rows = []
    store = Store.of(store)
    for document in _raw_documents(store.reports, problems, command_to_run(store.base_dir, "--check")):
        reasons = document.get("reasons") or []
        failed = [gate for gate in document.get("gates") or [] if isinstance(gate, dict) and not gate.get("passed")]
        rows.append(ReportRow(
            report_id=document.get("report_id", "?"), finished_at=str(document.get("finished_at", "")),
            dry_run=bool(document.get("dry_run")), status=str(document.get("status", "?")),
            accepted=bool(document.get("accepted")), reward_delta=document.get("reward_delta"),
            first_reason=short_gate_reason(failed[0]) if failed else (reasons[0] if reasons else "")))
    return rows


def short_gate_reason(gate: dict[str, Any]) -> str:
    """A failed gate in a table cell's width, e.g. `reward_delta -0.0023 < 0` (value, then the threshold it missed)."""
    missed = "<" if gate.get("comparison") == ">=" else ">"
    return f"{gate.get('gate')} {gate.get('value', 0):.2g} {missed} {gate.get('threshold', 0):g}"


def load_overview(store: Store | Path, settings: Settings | None = None) -> Overview:
    """Status, versions and reports of a store (with the settings' guard, its check too); a damaged part becomes a
    problem line instead of an error."""
    store = Store.of(store)
    problems: list[str] = []
    check = None
    guard = settings.guard if settings is not None else None
    try:
        if guard is not None and guard.mode != "off":
            check = evaluate_guard(store, guard, trace=True)
        status = store_status(store, settings=settings, guard=guard, guard_check=check)
    except MemabraError as exc:
        status = None
        problems.append(exc.worded(command_to_run(store.base_dir, "--check"))
                        if isinstance(exc, CorruptDocumentError) else str(exc))
    active_id = status.current.version_id if status and status.current else None
    versions = version_rows(store, active_id, problems)
    reports = report_rows(store, problems)
    return Overview(status=status, versions=versions, reports=reports, problems=problems, guard=check)


def store_fingerprint(store: Store | Path) -> tuple:
    """A cheap summary (sizes and mtimes) that changes whenever a cycle, rollback or append changes the store."""
    layout = Store.of(store).layout
    watched = (layout.current_path, layout.versions_dir, layout.reports_dir, layout.trajectories_dir,
               layout.seen_path, layout.lock_path)
    fingerprint = []
    for path in watched:
        try:
            stat = os.stat(path)
        except OSError:
            fingerprint.append(None)
        else:
            fingerprint.append((stat.st_mtime_ns, stat.st_size))
    return tuple(fingerprint)


def version_diff(store: Store | Path, version_id: str, suite: BenchmarkSuite | None,
                 executor: Executor | None = None) -> dict[str, Any]:
    """How a version routes the given benchmark differently from the version it replaced (its parent, else the
    built-in heuristic): share of decisions that change, and reward by task family before and after. With no suite
    (offpolicy evidence) both are estimated on the newest logged traffic instead."""
    versions = Store.of(store).versions
    version = versions.get_version(version_id)
    previous_id = version.parent_version_id
    previous = load_version_router(versions, previous_id) if previous_id else HeuristicRouter()
    if suite is None:
        return traffic_version_diff(Store.of(store), version_id, previous_id, previous,
                                    load_version_router(versions, version_id))
    evaluator = Evaluator(executor)
    before = evaluator.evaluate(previous, suite)
    after = evaluator.evaluate(load_version_router(versions, version_id), suite)
    changed = sum(1 for task_id, chosen in after.decisions.items() if before.decisions.get(task_id) != chosen)
    families = [
        {"family": family, "before": before.family_rewards.get(family), "after": reward,
         "change": reward - before.family_rewards.get(family, 0.0)}
        for family, reward in after.family_rewards.items()
    ]
    return {
        "version_id": version_id,
        "compared_with": previous_id,
        "suite": suite.name,
        "task_count": len(suite.tasks),
        "decision_change_share": changed / len(suite.tasks) if suite.tasks else 0.0,
        "avg_reward_before": before.avg_reward,
        "avg_reward_after": after.avg_reward,
        "families": families,
    }


DIFF_TRAFFIC = 2_000
"""How many of the newest logged trajectories an offpolicy version diff estimates both versions on."""


def traffic_version_diff(store: Store, version_id: str, previous_id: str | None, previous, router) -> dict[str, Any]:
    """Both versions' SNIPS values on the newest logged traffic, overall and by task family."""
    traffic = newest_logged(store.trajectories, DIFF_TRAFFIC)
    changed = sum(1 for t in traffic if previous.route(t.task, t.candidates).chosen_candidate_id
                  != router.route(t.task, t.candidates).chosen_candidate_id)
    by_family: dict[str, list] = {}
    for trajectory in traffic:
        by_family.setdefault(str(trajectory.task.metadata.get("family", "all")), []).append(trajectory)

    def value(trajectories, chosen_router) -> float | None:
        found = recent_value(trajectories, chosen_router)
        return found.estimate if found else None

    families = []
    for family, trajectories in sorted(by_family.items()):
        before, after = value(trajectories, previous), value(trajectories, router)
        if before is not None and after is not None:
            families.append({"family": family, "before": before, "after": after, "change": after - before})
    return {"version_id": version_id, "compared_with": previous_id, "evidence": "offpolicy",
            "suite": f"newest {len(traffic):,} logged trajectories, SNIPS", "task_count": len(traffic),
            "decision_change_share": changed / len(traffic) if traffic else 0.0,
            "avg_reward_before": value(traffic, previous), "avg_reward_after": value(traffic, router),
            "families": families}


def metric_rows(baseline: dict[str, Any], challenger: dict[str, Any]) -> list[tuple[str, float, float, float]]:
    """Baseline against challenger, one row per benchmark metric: (metric, baseline, challenger, delta)."""
    rows = []
    for name in ("avg_reward", "error_rate", "avg_latency_ms", "task_count"):
        before, after = baseline.get(name), challenger.get(name)
        if before is None or after is None:
            continue
        rows.append((name, before, after, after - before))
    return rows


def gate_rows(gates: list[GateResult | dict[str, Any]]) -> list[dict[str, Any]]:
    """Each gate as a row: gate, value, the rule it was held to (e.g. `>= 0.0`), and whether it passed."""
    rows = []
    for gate in gates:
        data = gate.model_dump() if isinstance(gate, GateResult) else dict(gate)
        rows.append({"gate": data["gate"], "value": data["value"],
                     "rule": f"{data['comparison']} {data['threshold']:g}", "threshold_name": data["threshold_name"],
                     "passed": bool(data["passed"])})
    return rows


def off_policy_rows(off_policy: OffPolicySection | None) -> list[dict[str, Any]]:
    """A report's off-policy estimates as rows (estimator, side, estimate, low, high, ess); [] when absent."""
    if off_policy is None:
        return []
    estimators = off_policy.estimators
    order = [name for name in OFF_POLICY_ESTIMATORS if name in estimators]
    order += sorted(name for name in estimators if name not in OFF_POLICY_ESTIMATORS)
    rows = []
    for name in order:
        for side in ("baseline", "challenger", "delta"):
            values = getattr(estimators[name], side)
            rows.append({"estimator": name, "side": side, **values.model_dump()})
    return rows
