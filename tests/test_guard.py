"""The guard: verdicts on planted cases, anytime-valid false alarms, and never `regressed` on missing evidence."""

import random

import numpy as np
import pytest

from bench.guard import HEURISTIC, POLICY, TableRouter, changed_picks, stream, watch
from memabra.demo.world import DemoWorld
from memabra.evaluation.guard import GuardBatch, GuardMonitor, GuardPolicy, guard_check
from memabra.learning.exploration import ExplorationPolicy
from memabra.learning.routers import HeuristicRouter
from memabra.models import Outcome, Trajectory

PROMOTED_ID, PRIOR_ID = "20260101-000001", "20260101-000000"


def served_trajectories(count: int, promoted, *, failing: bool, seed: int = 0, log_propensity: bool = True):
    """Demo-world traffic served epsilon-greedy by `promoted`; `failing` makes its own picks fail, all others win."""
    world, rng = DemoWorld(), random.Random(seed)
    exploration = ExplorationPolicy("epsilon_greedy", epsilon=0.2)
    trajectories = []
    for _ in range(count):
        task = world.sample_task(rng)
        candidates = world.candidates(task)
        scores = promoted.scores(task, candidates)
        decision = exploration.decide(candidates, scores, rng, PROMOTED_ID)
        if not log_propensity:
            decision.propensity = None
        index = [c.candidate_id for c in candidates].index(decision.chosen_candidate_id)
        if failing:
            outcome = (Outcome(reward=0.0, latency_ms=50.0, error="failed") if index == int(np.argmax(scores))
                       else Outcome(reward=1.0, latency_ms=50.0))
        else:
            outcome = world.execute(task, candidates[index])
        trajectories.append(Trajectory(task=task, candidates=candidates, decision=decision, outcome=outcome))
    return trajectories


@pytest.fixture(scope="module")
def routers():
    promoted_picks, _ = changed_picks(0.0, 2)
    return TableRouter(promoted_picks, PROMOTED_ID), TableRouter(HEURISTIC, PRIOR_ID)


def test_a_version_whose_picks_always_fail_is_regressed_with_figures(routers):
    promoted, prior = routers
    report = guard_check(served_trajectories(1000, promoted, failing=True), promoted, prior, POLICY,
                         prior_version_id=PRIOR_ID)
    assert report.verdict == "regressed"
    # the versions differ on 2 of 8 families, where the promoted pick earns 0 and the prior's 1: a true -0.25
    assert report.difference.high < -POLICY.margin and report.difference.low <= -0.25 <= report.difference.high
    assert report.agreement_share == pytest.approx(0.75, abs=0.05)
    assert report.promoted.value.high < 0.1 and report.prior.value.low <= 0.25 <= report.prior.value.high
    assert report.error_rate.estimate > 0.7 and report.used_count == 1000
    assert "worse than the prior" in report.reason


def test_honest_traffic_of_an_equally_good_version_is_not_regressed(routers):
    promoted, prior = routers
    report = guard_check(served_trajectories(1500, promoted, failing=False, seed=1), promoted, prior, POLICY,
                         prior_version_id=PRIOR_ID)
    assert report.verdict in ("watching", "healthy")
    assert report.difference.low <= 0.0 <= report.difference.high
    assert report.drift.detected is False
    assert report.model_dump(mode="json")["verdict"] == report.verdict


def test_no_propensities_never_regress_and_say_why(routers):
    promoted, prior = routers
    report = guard_check(served_trajectories(300, promoted, failing=True, log_propensity=False), promoted, prior,
                         POLICY)
    assert report.verdict == "watching" and report.used_count == 0 and report.excluded_count == 300
    assert "propensity" in report.reason


def test_an_unreadable_or_missing_prior_never_regresses(routers):
    promoted, _ = routers
    traffic = served_trajectories(300, promoted, failing=True)

    class Broken(HeuristicRouter):
        def scores(self, task, candidates):
            raise ValueError("weights do not match the features")

    broken = guard_check(traffic, promoted, Broken(), POLICY)
    assert broken.verdict == "watching" and "could not score" in broken.reason
    missing = guard_check(traffic, promoted, None, POLICY)
    assert missing.verdict == "idle" and "no prior version" in missing.reason


def test_too_little_traffic_is_watching_and_other_versions_traffic_is_ignored(routers):
    promoted, prior = routers
    traffic = served_trajectories(150, promoted, failing=True)
    report = guard_check(traffic, promoted, prior, POLICY)
    assert report.verdict == "watching" and "min_traffic" in report.reason
    for trajectory in traffic:
        trajectory.decision.router_version_id = "20250101-000000"
    assert guard_check(traffic, promoted, prior, POLICY).served_count == 0


def test_rewards_outside_the_range_are_named_not_judged(routers):
    promoted, prior = routers
    traffic = served_trajectories(300, promoted, failing=True)
    traffic[0].outcome.reward = 5.0
    report = guard_check(traffic, promoted, prior, POLICY)
    assert report.verdict == "watching" and "reward range" in report.reason
    observed = guard_check(traffic, promoted, prior, POLICY.model_copy(update={"reward_low": None,
                                                                                "reward_high": None}))
    assert "reward range" not in observed.reason and observed.used_count == 300
    assert observed.served_value.high <= 5.0 and observed.difference.low >= -5.0


def test_planted_regression_is_caught_and_as_good_streams_are_not_in_seeded_simulation():
    policy = POLICY.model_copy(update={"max_watch": 5000})
    worse, _ = changed_picks(-0.05, 2)
    caught = sum(watch(seed, worse, HEURISTIC, policy, 5000)[0] is not None for seed in range(4))
    assert caught >= 3
    same, _ = changed_picks(0.0, 2)
    assert not any(watch(seed, same, HEURISTIC, policy, 3000)[0] for seed in range(6))


def test_a_drop_both_versions_share_is_drift_not_regression():
    policy = GuardPolicy(min_traffic=200, max_watch=4000, max_importance_weight=25.0)
    same, _ = changed_picks(0.0, 2)
    monitor = GuardMonitor(policy)
    rng = np.random.default_rng(4)
    for part in range(2):
        arrays = stream(rng, 2000, same, HEURISTIC)
        if part:  # the world changes: every reward halves for both versions
            arrays["rewards"] = arrays["rewards"] * 0.5
        for start in range(0, 2000, 50):
            monitor.update(GuardBatch(**{k: v[start:start + 50] for k, v in arrays.items()}))
    report = monitor.report()
    assert report.drift.detected and report.drift.promoted_drop > 0.1 and report.drift.prior_drop > 0.1
    assert report.verdict != "regressed"
