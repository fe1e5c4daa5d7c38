"""The guard: verdicts on planted cases, anytime-valid false alarms, never `regressed` on missing evidence; and the
exact figures of small streams (hand-computed, or the confidence sequences fed the terms the guard should feed them)."""

import math
import random

import numpy as np
import pytest

from bench.guard import HEURISTIC, POLICY, TableRouter, changed_picks, stream, watch
from memabra.demo.world import DemoWorld
from memabra.evaluation.confidence import BettingSequence, EmpiricalBernsteinSequence, ImportanceWeightedSequence
from memabra.evaluation.guard import (DIFFERENCE_GRID_SIZE, DIFFERENCE_MAX_BET, VALUE_GRID_SIZE, CandidateRewardModel,
                                      DriftSignal, GuardBatch, GuardMonitor, GuardPolicy, IntervalFigures, guard_check)
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


def batch_of(rewards, propensities, logged, promoted, prior, *, errors=None, latencies=None) -> GuardBatch:
    count = len(rewards)
    return GuardBatch(np.array(rewards, dtype=np.float64), np.array(propensities, dtype=np.float64),
                      np.array(latencies if latencies is not None else [10.0] * count, dtype=np.float64),
                      np.array(errors if errors is not None else [False] * count, dtype=bool),
                      *(np.array(keys, dtype=np.int64) for keys in (logged, promoted, prior)))


def test_the_reward_model_predicts_shrunk_means_per_candidate_fitted_on_what_it_was_given():
    fresh = CandidateRewardModel()
    assert fresh.predict(np.array([0, 64])).tolist() == [0.5, 0.5]  # nothing seen: the middle, for any key
    assert fresh.predict(np.array([], dtype=np.int64)).size == 0
    model = CandidateRewardModel()
    model.update(np.array([64, 64, 3]), np.array([1.0, 1.0, 0.25]))
    model.update(np.array([], dtype=np.int64), np.array([]))
    model.update(np.array([200]), np.array([0.0]))
    overall = 2.25 / 4  # each key's mean is shrunk toward it by MODEL_SHRINKAGE = 2 pseudo-observations
    expected = [(2.0 + 2 * overall) / 4, (0.25 + 2 * overall) / 3, (0.0 + 2 * overall) / 3, overall, overall]
    assert model.predict(np.array([64, 3, 200, 7, 500])) == pytest.approx(expected, rel=1e-12)


def tiny_stream():
    """Rewards in [1, 3]; two batches, then one past the watch (max_watch 7). Hand-computed figures below."""
    return [batch_of([3.0, 1.0, 2.0, 3.0], [0.5, 0.25, math.nan, 0.0], [0, 1, 0, 2], [0, 0, 0, 2], [1, 1, 0, 2],
                     errors=[False, True, False, False], latencies=[10.0, 30.0, 20.0, 40.0]),
            batch_of([2.0, 1.0, 3.0], [0.5, 0.25, 0.25], [0, 1, 2], [0, 0, 2], [0, 1, 0], latencies=[50.0, 60.0, 70.0]),
            batch_of([3.0], [0.5], [0], [0], [1], latencies=[1000.0])]


def difference_sequence(weight: float) -> BettingSequence:
    return BettingSequence(-weight, weight, mean_low=-1.0, mean_high=1.0, grid_size=DIFFERENCE_GRID_SIZE,
                           max_bet=DIFFERENCE_MAX_BET)


def test_the_monitor_reports_hand_computed_figures_on_a_tiny_stream():
    policy = GuardPolicy(min_traffic=3, max_watch=7, margin=0.1, max_importance_weight=3.0)
    monitor = GuardMonitor(policy, reward_low=1.0, reward_high=3.0, promoted_version_id="new", prior_version_id="old")
    for batch in tiny_stream():
        monitor.update(batch)
    report = monitor.report()
    # used: the first two rows and the second batch (no or zero propensity excluded); scaled s = (r - 1) / 2.
    # Batch 1 predicts 0.5 everywhere: promoted 0.5 + 2 x 0.5 = 1.5, 0.5; prior 0.5, 0.5 + min(4, 3) x -0.5 = -1.
    # Batch 2 predicts keys 0, 1, 2 as 2/3, 1/3, 1/2 (fitted on batch 1): promoted 1/3, 2/3, 1/2 + 3 x 1/2 = 2;
    # prior 1/3, 1/3 + 3 x -1/3 = -2/3, 2/3. The prior's weight 4 is capped twice.
    assert (report.served_count, report.used_count, report.excluded_count, report.watch_complete) == (7, 5, 2, True)
    assert (report.promoted.matched_count, report.prior.matched_count, report.clipped_count) == (3, 3, 2)
    assert report.agreement_share == 0.2 and report.mean_latency_ms == 40.0
    assert report.promoted.doubly_robust_value == pytest.approx(1.0 + 2.0 * 5.0 / 5)
    assert report.prior.doubly_robust_value == pytest.approx(1.0 + 2.0 * (-1 / 6) / 5)
    assert report.served_value.estimate == pytest.approx(15 / 7) and report.error_rate.estimate == pytest.approx(1 / 7)
    served = EmpiricalBernsteinSequence(1.0, 3.0, design_level=0.9).update([3, 1, 2, 3]).update([2, 1, 3])
    errors = EmpiricalBernsteinSequence(0.0, 1.0, design_level=0.9).update([0, 1, 0, 0]).update([0, 0, 0])
    assert report.served_value == IntervalFigures.of(served.interval(0.9))
    assert report.error_rate == IntervalFigures.of(errors.interval(0.9))
    difference = difference_sequence(3.0).update([1.0, 1.5]).update([0.0, 4 / 3, 4 / 3]).interval(0.9)
    assert report.difference == IntervalFigures(estimate=2 * difference.estimate, low=2 * difference.low,
                                                high=2 * difference.high, level=0.9, method="dr-betting")
    for figures, scaled, matched in ((report.promoted, ([1, 0], [0.5, 0, 1]), ([1, 0], [1, 0, 1])),
                                     (report.prior, ([1, 0], [0.5, 0, 1]), ([0, 1], [1, 1, 0]))):
        value = ImportanceWeightedSequence(0.0, 1.0, grid_size=VALUE_GRID_SIZE)
        value.update(scaled[0], [0.5, 0.25], matched[0]).update(scaled[1], [0.5, 0.25, 0.25], matched[1])
        unit = value.interval(0.9)
        assert figures.value == IntervalFigures(estimate=1 + 2 * unit.estimate, low=1 + 2 * unit.low,
                                                high=1 + 2 * unit.high, level=0.9, method="betting-ips")
    assert report.drift == DriftSignal(detected=False)  # the reference is set at the last batch read
    assert report.verdict == "healthy" and report.reason.startswith("the watch of 7 trajectories ended without a "
                                                                    "regression: promoted minus prior ")
    assert (report.promoted.version_id, report.prior.version_id) == ("new", "old")


def test_the_monitor_refuses_an_empty_reward_range_and_reads_defaults():
    with pytest.raises(ValueError, match="^the reward range is empty: reward_high must be above reward_low$"):
        GuardMonitor(reward_low=1.0, reward_high=1.0)
    monitor = GuardMonitor(GuardPolicy(min_traffic=1))  # rewards in [0, 1]
    report = monitor.update(batch_of([1.0] * 3, [0.5] * 3, [0, 1, 2], [0, 0, 0], [1, 1, 1])).report()
    assert report.policy == GuardPolicy(min_traffic=1) and report.served_count == 3
    # each version matches one logged pick (0.5 + 2 x 0.5) and predicts 0.5 for the other two
    assert report.promoted.doubly_robust_value == pytest.approx(2.5 / 3) == report.prior.doubly_robust_value
    assert GuardMonitor().report().reason == "no trajectory served by the promoted version yet"


def test_drift_compares_both_versions_after_min_traffic_with_the_first_min_traffic_decisions():
    policy = GuardPolicy(min_traffic=4, margin=0.25, max_importance_weight=3.0)
    monitor = GuardMonitor(policy, reward_low=1.0, reward_high=3.0)
    # both versions pick key 9, never logged: their terms are the model's overall mean of earlier traffic
    monitor.update(batch_of([2.0, 2.0, 2.0, 1.0], [0.5] * 4, [0] * 4, [9] * 4, [9] * 4))
    assert monitor.report().drift == DriftSignal(detected=False)  # reference 0.5 each, nothing after it yet
    monitor.update(batch_of([1.0] * 4, [0.5] * 4, [0] * 4, [9] * 4, [9] * 4))
    # after: mean 0.375 (batch 1's) for both, a drop of 0.125 x span 2 = 0.25, not above margin 0.25
    assert monitor.report().drift == DriftSignal(detected=False, promoted_drop=0.25, prior_drop=0.25)
    monitor.update(batch_of([1.0] * 4, [0.5] * 4, [0] * 4, [9] * 4, [0] * 4))
    # key 0 and the overall mean are now 0.1875: promoted terms 0.1875, prior 0.1875 + 2 x -0.1875
    assert monitor.report().drift == DriftSignal(detected=True, promoted_drop=(0.5 - 2.25 / 8) * 2,
                                                 prior_drop=(0.5 - 0.75 / 8) * 2)


def skewed_stream(count: int = 300, size: int = 50) -> list[GuardBatch]:
    """Uniform logging over 5 keys (propensity 0.2); rewards in [1, 3]; the prior's pick (key c + 1, or 0 where both
    agree) wins 80% of the time, the promoted's (key c) 30%, any other 50%."""
    rng = np.random.default_rng(7)
    context, logged = rng.integers(0, 5, count), rng.integers(0, 5, count)
    promoted, prior = context, np.where(context == 0, 0, (context + 1) % 5)
    chance = np.where(logged == prior, 0.8, np.where(logged == promoted, 0.3, 0.5))
    rewards = 1.0 + 2.0 * (rng.random(count) < chance)
    return [batch_of(rewards[s:s + size], np.full(min(size, count - s), 0.2), logged[s:s + size],
                     promoted[s:s + size], prior[s:s + size], errors=rewards[s:s + size] == 1.0,
                     latencies=rng.uniform(10, 100, min(size, count - s))) for s in range(0, count, size)]


def reference_terms(batches: list[GuardBatch], weight: float):
    """Per batch: scaled rewards, both versions' raw weights and doubly robust terms, with a per-key mean model
    (shrunk by 2 pseudo-observations toward the overall mean) fitted on earlier batches only."""
    sums, counts, total, seen, out = {}, {}, 0.0, 0, []
    for batch in batches:
        scaled = (batch.rewards - 1.0) / 2.0
        overall = total / seen if seen else 0.5
        predict = lambda key: (sums.get(key, 0.0) + 2 * overall) / (counts.get(key, 0) + 2)  # noqa: E731
        weights, terms = {}, {}
        for name, picks in (("promoted", batch.promoted_keys), ("prior", batch.prior_keys)):
            weights[name] = (picks == batch.logged_keys) / batch.propensities
            terms[name] = np.array([predict(k) + min(w, weight) * (s - predict(logged)) for k, w, s, logged
                                    in zip(picks, weights[name], scaled, batch.logged_keys)])
        out.append((scaled, weights, terms))
        for key, reward in zip(batch.logged_keys, scaled):
            sums[key], counts[key] = sums.get(key, 0.0) + reward, counts.get(key, 0) + 1
        total, seen = total + float(scaled.sum()), seen + len(scaled)
    return out


def scaled_interval(interval, method: str) -> IntervalFigures:
    return IntervalFigures(estimate=2 * interval.estimate, low=2 * interval.low, high=2 * interval.high,
                           level=interval.level, method=method)


def test_the_dr_difference_values_and_verdicts_follow_their_sequences_on_a_planted_regression():
    batches = skewed_stream()
    policy = GuardPolicy(min_traffic=300, margin=0.01, max_importance_weight=4.0)
    monitor = GuardMonitor(policy, reward_low=1.0, reward_high=3.0)
    monitor.update(batches[0])
    early = monitor.report()
    assert early.verdict == "watching" and early.reason.startswith("50 of min_traffic 300 decisions so far; ")
    for batch in batches[1:]:
        monitor.update(batch)
    report = monitor.report()
    difference, served = difference_sequence(4.0), EmpiricalBernsteinSequence(1.0, 3.0, design_level=0.9)
    errors = EmpiricalBernsteinSequence(0.0, 1.0, design_level=0.9)
    values = {name: ImportanceWeightedSequence(0.0, 1.0, grid_size=VALUE_GRID_SIZE) for name in ("promoted", "prior")}
    for batch, (scaled, weights, terms) in zip(batches, reference_terms(batches, 4.0)):
        difference.update(terms["promoted"] - terms["prior"])
        served.update(batch.rewards)
        errors.update(batch.errors)
        for name in values:
            values[name].update(scaled, batch.propensities, weights[name] * batch.propensities)
    expected = scaled_interval(difference.interval(0.9), "dr-betting")
    assert report.difference == pytest.approx(expected) and report.difference.high < -0.01
    assert monitor.difference().count == 300 and monitor.difference().low == report.difference.low
    assert report.served_value == IntervalFigures.of(served.interval(0.9))
    assert report.error_rate == IntervalFigures.of(errors.interval(0.9))
    for name, figures in (("promoted", report.promoted), ("prior", report.prior)):
        unit = values[name].interval(0.9)
        assert figures.value == pytest.approx(IntervalFigures(estimate=1 + 2 * unit.estimate, low=1 + 2 * unit.low,
                                                              high=1 + 2 * unit.high, level=0.9,
                                                              method="betting-ips"))
    described = (f"promoted minus prior {expected.estimate:+.4f}, 90% interval [{expected.low:+.4f}, "
                 f"{expected.high:+.4f}] over 300 decisions")
    assert report.verdict == "regressed"
    assert report.reason == f"worse than the prior by more than margin 0.01: {described}"
    # the same figures judged at the interval's own ends: a bound exactly at -margin is not past it
    at_high = GuardPolicy(min_traffic=300, margin=-report.difference.high, max_importance_weight=4.0)
    at_low = GuardPolicy(min_traffic=300, margin=-report.difference.low, max_importance_weight=4.0)
    healthy = f"not worse than the prior by more than margin {at_low.margin:g}: "
    for edge, verdict, words in ((at_high, "watching", "not enough evidence either way yet: "),
                                 (at_low, "healthy", healthy)):
        judged = GuardMonitor(edge, reward_low=1.0, reward_high=3.0)
        for batch in batches:
            judged.update(batch)
        assert judged.report().difference == report.difference
        assert (judged.report().verdict, judged.report().reason) == (verdict, words + described)


def test_the_ips_difference_bounds_each_side_at_half_the_error_with_a_clipped_dr_estimate():
    batches = skewed_stream(200)
    policy = GuardPolicy(min_traffic=10, estimator="ips", max_importance_weight=4.0)
    monitor = GuardMonitor(policy, reward_low=1.0, reward_high=3.0)
    up = BettingSequence(0.0, mean_high=2.0, grid_size=DIFFERENCE_GRID_SIZE)
    down = BettingSequence(0.0, mean_high=2.0, grid_size=DIFFERENCE_GRID_SIZE)
    sums = {"promoted": 0.0, "prior": 0.0}
    for batch, (scaled, weights, terms) in zip(batches, reference_terms(batches, 4.0)):
        monitor.update(batch)
        agree = batch.promoted_keys == batch.prior_keys
        up.update(np.where(agree, 1.0, weights["promoted"] * scaled + weights["prior"] * (1 - scaled)))
        down.update(np.where(agree, 1.0, weights["prior"] * scaled + weights["promoted"] * (1 - scaled)))
        for name in sums:
            sums[name] += float(terms[name].sum())
    low, high = up.interval(0.95).low - 1.0, 1.0 - down.interval(0.95).low
    estimate = min(max((sums["promoted"] - sums["prior"]) / 200, low), high)
    assert monitor.report().difference == pytest.approx(
        IntervalFigures(estimate=2 * estimate, low=2 * low, high=2 * high, level=0.9, method="ips-betting"))
    assert low > -1.0 and high < 1.0  # both sides informative
    single = GuardMonitor(policy, reward_low=1.0, reward_high=3.0)
    single.update(batch_of([3.0], [0.5], [0], [0], [1]))  # one decision: 0.5 + 2 x 0.5 against 0.5
    assert single.report().difference.estimate == pytest.approx(2.0 * 1.0)
