"""The evidence a cycle's gates decide on, and the reward-delta figures they read from it.

`benchmark` and `demo`: both routers ran a suite; the reward gain is exact where the suite knows every candidate's
expected reward (the sampled one is kept beside it), and its interval is over the suite's tasks (paired per-task
differences), since the tasks are themselves a sample. `offpolicy`: both routers estimated on held-out logged traffic
(doubly robust reward, SNIPS error rate and latency), no executor needed.
"""

from __future__ import annotations

import numpy as np

from memabra.evaluation.benchmark import BenchmarkSuite
from memabra.evaluation.confidence import mean_sequence
from memabra.evaluation.evaluator import Evaluation
from memabra.evaluation.offpolicy import mean_interval
from memabra.models import BenchmarkMetrics, DeltaInterval, OffPolicySection, Trajectory
from memabra.storage.trajectories import TrajectoryStore

EVIDENCE_CHOICES = ("auto", "benchmark", "offpolicy", "demo")
SOURCE_SAMPLE = 200
"""How many of the newest stored trajectories decide whether a store holds demo or agent traffic."""


def paired_differences(suite: BenchmarkSuite, baseline: Evaluation,
                       challenger: Evaluation) -> tuple[np.ndarray, str]:
    """Per-task reward differences, challenger minus baseline: of expected rewards where the suite gives both picks'
    expected reward on every task, else of sampled rewards; and which ("expected" or "sampled")."""
    expected = []
    for item in suite.tasks:
        known = item.expected_rewards or {}
        picks = (baseline.decisions.get(item.task.task_id), challenger.decisions.get(item.task.task_id))
        if picks[0] not in known or picks[1] not in known:
            expected = None
            break
        expected.append(known[picks[1]] - known[picks[0]])
    if expected is not None and expected:
        return np.array(expected, dtype=np.float64), "expected"
    baseline_rewards = {t.task.task_id: t.outcome.reward for t in baseline.trajectories}
    sampled = [t.outcome.reward - baseline_rewards[t.task.task_id] for t in challenger.trajectories
               if t.task.task_id in baseline_rewards]
    return np.array(sampled, dtype=np.float64), "sampled"


def mean_difference_interval(differences: np.ndarray, span: float, *, level: float, seed: int, method: str,
                             what: str) -> DeltaInterval:
    """The mean of paired differences with a bootstrap or an anytime-valid (betting) interval; `span` bounds each
    difference's size (the reward range)."""
    if method == "confidence_sequence":
        if span <= 0:
            estimate = float(differences.mean())
            return DeltaInterval(estimate=estimate, low=estimate, high=estimate, level=level,
                                 source=f"confidence sequence over {len(differences)} {what} (no spread)")
        found = mean_sequence(np.clip(differences, -span, span), -span, span, level=level, method="betting")
        return DeltaInterval(estimate=float(differences.mean()), low=found.low, high=found.high, level=level,
                             source=f"confidence sequence (betting) over {len(differences)} {what}")
    found = mean_interval(differences, level=level, seed=seed)
    return DeltaInterval(estimate=found.estimate, low=found.low, high=found.high, level=level,
                         source=f"paired bootstrap over {len(differences)} {what}")


def benchmark_reward_delta(suite: BenchmarkSuite, baseline: Evaluation, challenger: Evaluation, *, level: float,
                           seed: int, method: str = "bootstrap") -> dict:
    """The reward gain the gates read on a benchmark: exact from expected values where known (the sampled gain
    beside it), with a paired per-task interval; the fields of UncertaintyEvidence it fills."""
    sampled = challenger.avg_reward - baseline.avg_reward
    differences, basis = paired_differences(suite, baseline, challenger)
    if not len(differences):
        return {"benchmark_delta": None, "reward_delta": None, "reward_delta_basis": "sampled",
                "sampled_reward_delta": sampled}
    span = reward_span(suite, baseline, challenger)
    what = "benchmark tasks" + (" (expected rewards)" if basis == "expected" else "")
    interval = mean_difference_interval(differences, span, level=level, seed=seed, method=method, what=what)
    exact = (challenger.expected_value - baseline.expected_value
             if basis == "expected" and challenger.expected_value is not None
             and baseline.expected_value is not None else None)
    return {"benchmark_delta": interval, "reward_delta": exact if exact is not None else sampled,
            "reward_delta_basis": "expected" if exact is not None else "sampled", "sampled_reward_delta": sampled}


def reward_span(suite: BenchmarkSuite, baseline: Evaluation, challenger: Evaluation) -> float:
    """The width of the reward range seen on the suite (outcomes and expected rewards)."""
    values = [t.outcome.reward for t in baseline.trajectories + challenger.trajectories]
    for item in suite.tasks:
        values.extend((item.expected_rewards or {}).values())
    return float(max(values) - min(values)) if values else 1.0


def offpolicy_metrics(section: OffPolicySection) -> tuple[BenchmarkMetrics, BenchmarkMetrics] | None:
    """Both routers' metrics as estimated on held-out traffic (DR reward, SNIPS error rate and latency, task count
    the decisions used); None when nothing could be estimated."""
    doubly_robust = section.estimators.get("dr")
    if doubly_robust is None or section.error_rate is None or section.latency_ms is None:
        return None
    return tuple(BenchmarkMetrics(avg_reward=getattr(doubly_robust, side).estimate,
                                  error_rate=getattr(section.error_rate, side).estimate,
                                  avg_latency_ms=getattr(section.latency_ms, side).estimate,
                                  task_count=section.used_count)
                 for side in ("baseline", "challenger"))


def offpolicy_guardrails(section: OffPolicySection) -> dict[str, DeltaInterval]:
    """The error-rate and latency increases on held-out traffic with their intervals, as UncertaintyEvidence's
    `error_rate_delta` and `latency_delta_ms` (none when nothing could be estimated)."""
    found = {}
    for field_name, comparison in (("error_rate_delta", section.error_rate), ("latency_delta_ms", section.latency_ms)):
        if comparison is not None:
            delta = comparison.delta
            found[field_name] = DeltaInterval(estimate=delta.estimate, low=delta.low, high=delta.high,
                                              level=section.level,
                                              source=f"SNIPS on {section.used_count} held-out trajectories")
    return found


def doubly_robust_interval(section: OffPolicySection, method: str) -> DeltaInterval | None:
    """The DR reward-gain interval the gates read: the anytime-valid one when asked for, else the bootstrap's."""
    used = section.used_count
    if method == "confidence_sequence" and section.dr_delta_sequence is not None:
        found = section.dr_delta_sequence
        return DeltaInterval(estimate=found.estimate, low=found.low, high=found.high, level=section.level,
                             source=f"doubly robust on {used} held-out trajectories, confidence sequence (betting)")
    doubly_robust = section.estimators.get("dr")
    if doubly_robust is None:
        return None
    delta = doubly_robust.delta
    return DeltaInterval(estimate=delta.estimate, low=delta.low, high=delta.high, level=section.level,
                         source=f"doubly robust on {used} held-out trajectories")


def newest_sources(trajectories: TrajectoryStore, count: int = SOURCE_SAMPLE) -> list[str]:
    """The `source` of up to `count` of the newest stored trajectories that are not benchmark runs (newest files
    first, read as raw documents: no validation)."""
    found: list[str] = []
    for item in reversed(trajectories.files()):
        try:
            documents = trajectories.read_documents(item)
        except Exception:  # noqa: BLE001 - an unreadable file says nothing about the traffic; --check reports it
            continue
        for document in reversed(documents):
            source = document.get("source", "agent") if isinstance(document, dict) else None
            if source in ("agent", "demo"):
                found.append(source)
                if len(found) >= count:
                    return found
    return found


def store_evidence(trajectories: TrajectoryStore) -> str:
    """demo when the newest stored traffic is all demo trajectories (or there is none), else offpolicy."""
    sources = newest_sources(trajectories)
    return "demo" if all(source == "demo" for source in sources) else "offpolicy"


def newest_logged(trajectories: TrajectoryStore, count: int) -> list[Trajectory]:
    """Up to `count` of the newest stored non-benchmark trajectories that record a propensity, oldest first."""
    found: list[Trajectory] = []
    for item in reversed(trajectories.files()):
        batch = trajectories.read_batch(item)
        usable = [t for t in batch.trajectories if not t.is_benchmark and t.decision.propensity is not None]
        found = usable + found
        if len(found) >= count:
            break
    found.sort(key=lambda trajectory: trajectory.created_at)
    return found[-count:] if count > 0 else []
