"""The learner harness logs with exact propensities and values routers by their true expected reward."""

import random

from bench.learners import EPSILON, LEARNERS, EvaluationSet, log_trajectories, true_value
from memabra.demo.support import SupportDeskWorld
from memabra.models import Decision


class OracleRouter:
    """Picks the candidate with the highest true expected reward."""

    def __init__(self, world):
        self.world = world

    def route(self, task, candidates):
        best = max(candidates, key=lambda candidate: self.world.expected_reward(task, candidate))
        return Decision(chosen_candidate_id=best.candidate_id)


def test_logs_carry_the_epsilon_greedy_propensity_of_each_pick():
    logs = log_trajectories(SupportDeskWorld(seed=2), 200, random.Random(0))
    for trajectory in logs:
        count = len(trajectory.candidates)
        top = max(trajectory.candidates, key=lambda candidate: candidate.score).candidate_id
        greedy = trajectory.decision.chosen_candidate_id == top
        expected = (1 - EPSILON) + EPSILON / count if greedy else EPSILON / count
        assert abs(trajectory.decision.propensity - expected) < 1e-12
    assert 0.6 < sum(t.decision.chosen_candidate_id == max(t.candidates, key=lambda c: c.score).candidate_id
                     for t in logs) / len(logs) < 0.9


def test_true_value_is_one_for_the_oracle_and_lower_for_the_heuristic():
    world = SupportDeskWorld(seed=2)
    evaluation = EvaluationSet.draw(world, 400, random.Random(1))
    oracle = true_value(OracleRouter(world), evaluation)
    assert oracle["share"] == 1.0 and oracle["wrong_within_right_kind"] == 0.0 and oracle["tasks"] == 400
    heuristic = true_value(LEARNERS["heuristic"]([]), evaluation)
    assert 0.6 < heuristic["share"] < 0.85 and heuristic["oracle"] == oracle["oracle"]
    drifted = true_value(OracleRouter(world), evaluation, ("refund",))
    assert 20 < drifted["tasks"] < 80


def test_memabra_learner_trained_on_logs_beats_the_heuristic_on_fresh_tasks():
    world = SupportDeskWorld(seed=2)
    logs = log_trajectories(world, 1500, random.Random(0))
    evaluation = EvaluationSet.draw(world, 600, random.Random(1))
    learned = true_value(LEARNERS["memabra"](logs), evaluation)
    assert learned["share"] > true_value(LEARNERS["heuristic"](logs), evaluation)["share"] + 0.05
