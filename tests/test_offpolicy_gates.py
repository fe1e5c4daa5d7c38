"""Gates on held-out traffic: guardrails read the interval of an off-policy increase, not its noisy point."""

import random

from bench.learners import log_trajectories
from memabra.demo.world import DemoWorld
from memabra.evaluation.counterfactual import compare_routers
from memabra.evaluation.evidence import offpolicy_guardrails
from memabra.evaluation.gates import PromotionPolicy
from memabra.evaluation.reward_model import CrossFittedRewardModel
from memabra.learning.dataset import DatasetBuilder
from memabra.learning.routers import HeuristicRouter
from memabra.learning.train import train_router
from memabra.models import BenchmarkMetrics, DeltaInterval, UncertaintyEvidence

BASELINE = BenchmarkMetrics(avg_reward=0.54, error_rate=0.02, avg_latency_ms=360.0, task_count=400)
CHALLENGER = BenchmarkMetrics(avg_reward=0.76, error_rate=0.113, avg_latency_ms=620.0, task_count=400)


def noisy_error_evidence(low: float, source: str = "offpolicy") -> UncertaintyEvidence:
    """An error-rate increase estimated at +0.093 from few effective samples, with the given interval low end."""
    return UncertaintyEvidence(
        source=source, reward_delta=0.22, effective_sample_size=36.0,
        error_rate_delta=DeltaInterval(estimate=0.093, low=low, high=0.219, level=0.95,
                                       source="SNIPS on 400 held-out trajectories"),
        latency_delta_ms=DeltaInterval(estimate=260.0, low=120.0, high=400.0, level=0.95,
                                       source="SNIPS on 400 held-out trajectories"))


def test_a_lenient_offpolicy_error_gate_fails_only_on_a_clear_increase():
    noisy = PromotionPolicy().evaluate(BASELINE, CHALLENGER, noisy_error_evidence(low=-0.012))
    assert noisy.accepted is True
    gate = next(gate for gate in noisy.gates if gate.gate == "error_rate_delta")
    assert gate.value == -0.012 and gate.threshold == 0.05

    clear = PromotionPolicy().evaluate(BASELINE, CHALLENGER, noisy_error_evidence(low=0.06))
    assert clear.accepted is False
    assert clear.reasons == ["error_rate_delta is clearly above max_error_rate_increase 0.05: estimated +0.093, and "
                             "even the low end of its 95% interval (SNIPS on 400 held-out trajectories) is +0.06"]


def test_production_and_benchmark_evidence_keep_the_point_estimate_for_guardrails():
    production = PromotionPolicy(gate_profile="production").evaluate(BASELINE, CHALLENGER,
                                                                     noisy_error_evidence(low=-0.012))
    gate = next(gate for gate in production.gates if gate.gate == "error_rate_delta")
    assert gate.passed is False and round(gate.value, 3) == 0.093 and gate.threshold == 0.02

    benchmark = PromotionPolicy().evaluate(BASELINE, CHALLENGER, noisy_error_evidence(-0.012, "benchmark"))
    assert benchmark.accepted is False
    assert benchmark.reasons == ["error_rate_delta 0.093 is not at most max_error_rate_increase 0.05"]


def test_offpolicy_guardrails_are_the_sections_paired_snips_deltas():
    world = DemoWorld(seed=3)
    logs = log_trajectories(world, 700, random.Random(3))
    learned = train_router(DatasetBuilder().stats(logs[:300]))
    held_out = logs[300:]
    section = compare_routers(held_out, HeuristicRouter(), learned, CrossFittedRewardModel(held_out, seed=3), seed=3)
    found = offpolicy_guardrails(section)
    assert set(found) == {"error_rate_delta", "latency_delta_ms"}
    assert found["error_rate_delta"].estimate == section.error_rate.delta.estimate
    assert (found["latency_delta_ms"].low, found["latency_delta_ms"].high) == (section.latency_ms.delta.low,
                                                                               section.latency_ms.delta.high)
    assert found["error_rate_delta"].source == "SNIPS on 400 held-out trajectories"
    assert found["error_rate_delta"].low < found["error_rate_delta"].estimate < found["error_rate_delta"].high
