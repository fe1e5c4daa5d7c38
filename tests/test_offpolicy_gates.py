"""Gates on held-out traffic: guardrails read the interval of an off-policy increase, not its noisy point."""

import json
import math
import random

import numpy as np
import orjson
import pytest

from bench.learners import log_trajectories
from memabra.evaluation import offpolicy
from memabra.demo.world import DemoWorld
from memabra.evaluation.counterfactual import compare_routers
from memabra.evaluation.evidence import offpolicy_guardrails
from memabra.evaluation.gates import PromotionPolicy
from memabra.evaluation.offpolicy import student_t_quantile
from memabra.evaluation.reward_model import CrossFittedRewardModel
from memabra.learning.dataset import DatasetBuilder
from memabra.learning.routers import HeuristicRouter
from memabra.learning.train import train_router
from memabra.ingest import ingest_trajectories
from memabra.models import BenchmarkMetrics, DeltaInterval, UncertaintyEvidence
from tests.helpers import run_main
from tests.test_evidence_gates import agent_log

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


def test_a_lenient_offpolicy_cycle_reads_the_guardrail_intervals_and_production_the_points(tmp_path):
    path = tmp_path / "agent.jsonl"
    path.write_bytes(b"".join(orjson.dumps(t.model_dump(mode="json")) + b"\n" for t in agent_log(1000)))
    base = tmp_path / "store"
    assert ingest_trajectories(base, path)["stored_count"] == 1000
    for profile, bound in (("lenient", "low"), ("production", "estimate")):
        code, stdout, stderr = run_main("--base-dir", str(base), "--gates", profile, "--dry-run")
        assert code == 0, stderr
        cycle = json.loads(stdout)
        assert cycle["evidence"] == "offpolicy"
        gates = {gate["gate"]: gate for gate in cycle["gates"]}
        off_policy = cycle["off_policy"]
        assert gates["error_rate_delta"]["value"] == pytest.approx(off_policy["error_rate"]["delta"][bound])
        assert gates["latency_delta_ms"]["value"] == pytest.approx(off_policy["latency_ms"]["delta"][bound])


def test_student_t_quantiles():
    assert [round(student_t_quantile(0.975, degrees), 3) for degrees in (1, 2, 5, 30)] == [12.706, 4.303, 2.571,
                                                                                            2.042]
    assert student_t_quantile(0.975, 1e6) == pytest.approx(1.959964, abs=1e-6)


def test_a_few_large_importance_weights_stretch_the_interval_by_student_t():
    rng = np.random.default_rng(4)
    rewards = rng.uniform(0.0, 1.0, 400)
    propensities = np.full(400, 0.7)
    propensities[:8] = 0.05
    targets = np.zeros(400)
    targets[:8] = 1.0
    targets[8:200] = 1.0
    estimate = offpolicy.ips(rewards, propensities, targets, seed=2)
    assert 20 < estimate.ess < 60
    raw_low, raw_high = np.quantile(estimate.replicates, [0.025, 0.975])
    factor = student_t_quantile(0.975, estimate.ess - 1) / 1.959964 * math.sqrt(400 / 399)
    assert estimate.low == pytest.approx(estimate.estimate - (estimate.estimate - raw_low) * factor)
    assert estimate.high == pytest.approx(estimate.estimate + (raw_high - estimate.estimate) * factor)

    rows = np.r_[6:8, 200:240]
    few = offpolicy.ips(rewards[rows], propensities[rows], targets[rows], seed=2)
    raw_low, raw_high = np.quantile(few.replicates, [0.025, 0.975])
    assert few.ess == pytest.approx(2.0)
    assert (few.high - few.low) > 5 * (raw_high - raw_low), "two weights of 20 are barely any evidence"

    even = offpolicy.mean_interval(rewards, seed=2)
    raw_low, raw_high = np.quantile(even.replicates, [0.025, 0.975])
    assert (even.high - even.low) / (raw_high - raw_low) == pytest.approx(1.0, abs=0.01)
