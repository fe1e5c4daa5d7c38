"""Each promotion gate at, just inside and just outside its threshold: a gate passes at exactly its threshold."""

import pytest

from memabra.evaluation.gates import PromotionPolicy
from memabra.models import BenchmarkMetrics, DeltaInterval, GateResult, UncertaintyEvidence

BASELINE = BenchmarkMetrics(avg_reward=0.5, error_rate=0.25, avg_latency_ms=100.0, task_count=160)


def challenger(**changes) -> BenchmarkMetrics:
    return BASELINE.model_copy(update=changes)


def verdicts(decision) -> dict[str, bool]:
    return {gate.gate: gate.passed for gate in decision.gates}


def test_every_gate_passes_at_exactly_its_threshold():
    policy = PromotionPolicy(min_reward_delta=0.25, max_error_rate_increase=0.25, max_latency_increase_ms=50.0,
                             required_task_count=160)
    decision = policy.evaluate(BASELINE, challenger(avg_reward=0.75, error_rate=0.5, avg_latency_ms=150.0))
    assert verdicts(decision) == {"reward_delta": True, "error_rate_delta": True, "latency_delta_ms": True,
                                  "task_count": True}
    assert decision.accepted and decision.reasons == []
    assert [gate.value for gate in decision.gates] == [0.25, 0.25, 50.0, 160]


def test_an_unchanged_challenger_passes_the_default_gates():
    decision = PromotionPolicy().evaluate(BASELINE, challenger())
    assert decision.accepted and decision.gates[0].value == 0.0 and decision.gates[0].threshold == 0.0


@pytest.mark.parametrize("gate, changes, policy", [
    ("reward_delta", {"avg_reward": 0.7499}, {"min_reward_delta": 0.25}),
    ("error_rate_delta", {"error_rate": 0.5001}, {"max_error_rate_increase": 0.25}),
    ("latency_delta_ms", {"avg_latency_ms": 150.01}, {"max_latency_increase_ms": 50.0}),
    ("task_count", {"task_count": 159}, {"required_task_count": 160}),
])
def test_every_gate_fails_just_past_its_threshold(gate, changes, policy):
    decision = PromotionPolicy(**policy).evaluate(BASELINE, challenger(**changes))
    assert [g.gate for g in decision.gates if not g.passed] == [gate]
    assert not decision.accepted and len(decision.reasons) == 1 and decision.reasons[0].startswith(gate)


def test_float_noise_at_the_threshold_passes_but_a_real_miss_does_not():
    """0.7 - 0.6 is 0.09999999999999998 in floating point: the gate still counts that as 0.1."""
    assert GateResult.check("reward_delta", 0.7 - 0.6, ">=", 0.1, "min_reward_delta").passed
    assert GateResult.check("reward_delta", -1e-12, ">=", 0.0, "min_reward_delta").passed
    assert not GateResult.check("reward_delta", -1e-9, ">=", 0.0, "min_reward_delta").passed
    assert GateResult.check("error_rate_delta", 1e-12, "<=", 0.0, "max_error_rate_increase").passed
    assert not GateResult.check("error_rate_delta", 1e-9, "<=", 0.0, "max_error_rate_increase").passed


@pytest.mark.parametrize("source", ["benchmark", "doubly_robust"])
def test_the_lower_bound_gate_passes_at_exactly_the_threshold(source):
    interval = DeltaInterval(estimate=0.3, low=0.25, high=0.35, level=0.95, source="test")
    evidence = UncertaintyEvidence(benchmark_delta=interval if source == "benchmark" else None,
                                   doubly_robust_delta=interval if source == "doubly_robust" else None)
    policy = PromotionPolicy(min_reward_delta=0.25, reward_delta_bound=source)
    decision = policy.evaluate(BASELINE, challenger(avg_reward=0.8), evidence)
    assert verdicts(decision)["reward_delta_lower_bound"] is True and decision.accepted
    stricter = PromotionPolicy(min_reward_delta=0.2501, reward_delta_bound=source)
    failed = stricter.evaluate(BASELINE, challenger(avg_reward=0.8), evidence)
    assert verdicts(failed)["reward_delta_lower_bound"] is False
    assert "reaches down to +0.2500" in failed.reasons[0]


def test_the_effective_sample_size_gate_passes_at_exactly_its_minimum():
    policy = PromotionPolicy(min_effective_sample_size=40.0)
    at = policy.evaluate(BASELINE, challenger(), UncertaintyEvidence(effective_sample_size=40.0))
    below = policy.evaluate(BASELINE, challenger(), UncertaintyEvidence(effective_sample_size=39.9))
    assert verdicts(at)["effective_sample_size"] is True and at.accepted
    assert verdicts(below)["effective_sample_size"] is False
    assert "39.9 effective samples, min_effective_sample_size is 40" in below.reasons[0]


def test_a_missing_interval_fails_the_lower_bound_gate_and_says_why():
    policy = PromotionPolicy(reward_delta_bound="doubly_robust")
    decision = policy.evaluate(BASELINE, challenger(avg_reward=0.9),
                               UncertaintyEvidence(unavailable_reason="no trajectories were held out"))
    assert verdicts(decision)["reward_delta_lower_bound"] is False
    assert decision.reasons == ["the challenger's reward gain could not be bounded: no trajectories were held out"]


def test_each_gate_names_its_threshold_setting():
    policy = PromotionPolicy(reward_delta_bound="benchmark", min_effective_sample_size=0.5)
    interval = DeltaInterval(estimate=0.1, low=0.05, high=0.15, level=0.95, source="test")
    decision = policy.evaluate(BASELINE, challenger(avg_reward=0.6),
                               UncertaintyEvidence(benchmark_delta=interval, effective_sample_size=0.4))
    assert [(gate.gate, gate.threshold_name) for gate in decision.gates] == [
        ("reward_delta", "min_reward_delta"), ("error_rate_delta", "max_error_rate_increase"),
        ("latency_delta_ms", "max_latency_increase_ms"), ("task_count", "required_task_count"),
        ("reward_delta_lower_bound", "min_reward_delta"), ("effective_sample_size", "min_effective_sample_size")]
    assert [gate.passed for gate in decision.gates] == [True, True, True, True, True, False]


def test_a_missing_benchmark_interval_fails_at_a_value_of_zero():
    decision = PromotionPolicy(reward_delta_bound="benchmark").evaluate(BASELINE, challenger(avg_reward=0.9))
    gate = decision.gates[-1]
    assert (gate.gate, gate.value, gate.threshold_name, gate.passed) == (
        "reward_delta_lower_bound", 0.0, "min_reward_delta", False)
    assert decision.reasons == ["the challenger's reward gain could not be bounded: no benchmark interval"]


def test_a_non_finite_measurement_is_recorded_as_zero_and_fails():
    gate = GateResult.check("reward_delta", float("nan"), ">=", 0.0, "min_reward_delta")
    assert gate.value == 0.0 and gate.passed is False
    assert GateResult.check("latency_delta_ms", float("inf"), "<=", 5.0, "max_latency_increase_ms").value == 0.0
    assert GateResult.check("reward_delta", 0.25, ">=", 0.0, "min_reward_delta").value == 0.25


def test_the_evidence_bound_reads_the_interval_of_the_evidence_the_cycle_had():
    benchmark = DeltaInterval(estimate=0.3, low=0.25, high=0.35, level=0.95, source="benchmark tasks")
    offpolicy = DeltaInterval(estimate=0.3, low=0.1, high=0.5, level=0.95, source="held-out traffic")
    policy = PromotionPolicy(min_reward_delta=0.2, reward_delta_bound="evidence")
    from_benchmark = policy.evaluate(BASELINE, challenger(avg_reward=0.8),
                                     UncertaintyEvidence(benchmark_delta=benchmark, source="benchmark"))
    assert verdicts(from_benchmark)["reward_delta_lower_bound"] is True and from_benchmark.gates[-1].value == 0.25
    from_traffic = policy.evaluate(BASELINE, challenger(avg_reward=0.8),
                                   UncertaintyEvidence(benchmark_delta=benchmark, doubly_robust_delta=offpolicy,
                                                       source="offpolicy"))
    assert verdicts(from_traffic)["reward_delta_lower_bound"] is False and from_traffic.gates[-1].value == 0.1
    assert "interval (held-out traffic) reaches down to +0.1000" in from_traffic.reasons[0]


def test_the_production_profile_decides_on_the_given_metrics_and_evidence():
    interval = DeltaInterval(estimate=0.05, low=0.01, high=0.09, level=0.95, source="test")
    evidence = UncertaintyEvidence(benchmark_delta=interval, effective_sample_size=40.0)
    policy = PromotionPolicy(gate_profile="production")
    decided = policy.evaluate(BASELINE, challenger(avg_reward=0.55), evidence)
    values = {gate.gate: (gate.value, gate.threshold, gate.passed) for gate in decided.gates}
    assert values["reward_delta"] == (pytest.approx(0.05), 0.001, True)
    assert values["effective_sample_size"] == (40.0, 30.0, True)
    assert values["task_count"] == (160, 100, True) and decided.accepted
    unsupported = policy.evaluate(BASELINE, challenger(avg_reward=0.55))
    assert verdicts(unsupported)["effective_sample_size"] is False and not unsupported.accepted


def test_the_reward_delta_gate_reads_the_evidence_s_exact_delta_when_there_is_one():
    policy = PromotionPolicy(min_reward_delta=0.1)
    exact = policy.evaluate(BASELINE, challenger(), UncertaintyEvidence(reward_delta=0.15))
    assert exact.gates[0].value == 0.15 and exact.gates[0].passed
    sampled = policy.evaluate(BASELINE, challenger(avg_reward=0.55), UncertaintyEvidence())
    assert sampled.gates[0].value == pytest.approx(0.05) and not sampled.gates[0].passed
