"""Documents refuse bad input with a message that names the field."""

import math

import pytest
from pydantic import ValidationError

from memabra.evaluation.gates import PromotionPolicy
from memabra.models import BenchmarkMetrics, Trajectory
from tests.helpers import trajectory_doc


def test_valid_trajectory_gets_id_and_chosen_candidate():
    trajectory = Trajectory.model_validate(trajectory_doc())
    assert len(trajectory.trajectory_id) == 32
    assert trajectory.chosen.kind.value == "tool"
    assert not trajectory.is_benchmark


@pytest.mark.parametrize("outcome, field", [
    ({"reward": math.nan}, "outcome.reward"),
    ({"reward": math.inf}, "outcome.reward"),
    ({"latency_ms": -1.0}, "outcome.latency_ms"),
    ({"reward": "lots"}, "outcome.reward"),
])
def test_bad_outcome_is_refused_naming_the_field(outcome, field):
    with pytest.raises(ValidationError) as caught:
        Trajectory.model_validate(trajectory_doc(**outcome))
    assert field in ".".join(str(part) for part in caught.value.errors()[0]["loc"])


def test_chosen_candidate_must_be_offered():
    doc = trajectory_doc()
    doc["decision"]["chosen_candidate_id"] = "memory:nope"
    with pytest.raises(ValidationError, match="chosen_candidate_id"):
        Trajectory.model_validate(doc)


def test_unknown_candidate_kind_is_refused():
    doc = trajectory_doc()
    doc["candidates"][0]["kind"] = "oracle"
    with pytest.raises(ValidationError, match="candidates.0.kind"):
        Trajectory.model_validate(doc)


def test_policy_names_every_failing_gate_with_value_and_threshold():
    policy = PromotionPolicy(min_reward_delta=0.1, max_error_rate_increase=0.0, max_latency_increase_ms=10,
                             required_task_count=500)
    baseline = BenchmarkMetrics(avg_reward=0.5, error_rate=0.01, avg_latency_ms=100, task_count=160)
    challenger = BenchmarkMetrics(avg_reward=0.55, error_rate=0.03, avg_latency_ms=200, task_count=160)
    decision = policy.evaluate(baseline, challenger)
    assert not decision.accepted
    assert [gate.gate for gate in decision.gates if not gate.passed] == [
        "reward_delta", "error_rate_delta", "latency_delta_ms", "task_count"]
    assert decision.reasons[0] == "reward_delta 0.05 is not at least min_reward_delta 0.1"
    assert "task_count 160 is not at least required_task_count 500" in decision.reasons


def test_policy_accepts_when_all_gates_pass():
    baseline = BenchmarkMetrics(avg_reward=0.5, error_rate=0.01, avg_latency_ms=100, task_count=160)
    challenger = BenchmarkMetrics(avg_reward=0.8, error_rate=0.02, avg_latency_ms=300, task_count=160)
    decision = PromotionPolicy().evaluate(baseline, challenger)
    assert decision.accepted and decision.reasons == []
