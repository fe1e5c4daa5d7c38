"""Confidence sequences: coverage at every look on seeded simulations, shrinking intervals, sound input checks."""

import numpy as np
import pytest

from memabra.evaluation import confidence
from memabra.evaluation.confidence import (BettingSequence, EmpiricalBernsteinSequence, ImportanceWeightedSequence,
                                           ips_sequence, mean_sequence)


@pytest.mark.parametrize("make", [lambda: BettingSequence(0.0, 1.0, grid_size=401),
                                  lambda: EmpiricalBernsteinSequence(0.0, 1.0)])
def test_intervals_cover_the_true_mean_at_every_look_in_most_seeded_streams(make):
    covered_at_every_look = 0
    for seed in range(40):
        values = np.random.default_rng(seed).beta(2.0, 5.0, 1500)  # mean 2/7
        sequence, always = make(), True
        for start in range(0, len(values), 50):
            interval = sequence.update(values[start:start + 50]).interval(0.9)
            always &= interval.low <= 2 / 7 <= interval.high
        covered_at_every_look += always
    assert covered_at_every_look >= 34, "a 90% sequence must cover at all 30 looks at once in about 90% of streams"


def test_intervals_only_shrink_as_batches_arrive_and_end_near_the_mean():
    values = np.random.default_rng(3).binomial(1, 0.3, 3000).astype(float)
    for sequence in (BettingSequence(0.0, 1.0), EmpiricalBernsteinSequence(0.0, 1.0)):
        lows, highs = [], []
        for start in range(0, len(values), 100):
            interval = sequence.update(values[start:start + 100]).interval()
            lows.append(interval.low)
            highs.append(interval.high)
        assert lows == sorted(lows) and highs == sorted(highs, reverse=True)
        assert highs[-1] - lows[-1] < 0.1
        assert lows[-1] <= values.mean() <= highs[-1]


def test_a_higher_level_gives_a_wider_interval_from_the_same_evidence():
    sequence = BettingSequence(0.0, 1.0).update(np.random.default_rng(5).random(500))
    narrow, wide = sequence.interval(0.8), sequence.interval(0.99)
    assert wide.low < narrow.low <= narrow.estimate <= narrow.high < wide.high


def test_one_shot_and_batched_agree_and_results_read_like_bootstrap_estimates():
    values = np.random.default_rng(8).random(400)
    batched = BettingSequence(0.0, 1.0)
    for start in range(0, 400, 100):
        batched.update(values[start:start + 100])
    one_shot = mean_sequence(values, 0.0, 1.0, batch_size=100)
    assert (one_shot.low, one_shot.high) == (batched.interval().low, batched.interval().high)
    assert set(one_shot.to_dict()) == {"estimate", "low", "high", "ess"}
    assert one_shot.to_dict()["ess"] == 400.0


def test_observations_outside_the_range_are_refused_with_a_reason():
    with pytest.raises(ValueError, match="must lie in"):
        BettingSequence(0.0, 1.0).update([0.5, 1.5])
    with pytest.raises(ValueError, match="level"):
        BettingSequence(0.0, 1.0).interval(1.0)
    with pytest.raises(ValueError, match="unknown method"):
        mean_sequence([0.1], 0.0, 1.0, method="bootstrap")


def test_no_observations_give_the_whole_range():
    interval = BettingSequence(-1.0, 1.0).interval()
    assert (interval.low, interval.high, interval.count) == (-1.0, 1.0, 0)


def test_importance_weighted_interval_covers_a_rare_reward_value_where_weights_reach_80():
    rng = np.random.default_rng(11)
    covered = 0
    for _ in range(30):
        logged_target = rng.random(2000) < 1 / 80
        rewards = (rng.random(2000) < 0.06).astype(float) * logged_target
        interval = ips_sequence(rewards, np.full(2000, 1 / 80), logged_target.astype(float))
        covered += interval.low <= 0.06 <= interval.high
        assert 0.0 <= interval.low <= interval.estimate <= interval.high <= 1.0
    assert covered >= 27


def test_importance_weighted_interval_narrows_on_the_true_value_with_plenty_of_traffic():
    rng = np.random.default_rng(12)
    sequence = ImportanceWeightedSequence(0.0, 1.0)
    for _ in range(10):
        logged_target = rng.random(1000) < 0.5
        rewards = np.where(logged_target, rng.random(1000) < 0.7, rng.random(1000) < 0.2).astype(float)
        sequence.update(rewards, np.full(1000, 0.5), logged_target.astype(float))
    interval = sequence.interval()
    assert interval.low <= 0.7 <= interval.high and interval.high - interval.low < 0.1


def test_levels_above_the_tracked_maximum_are_refused():
    with pytest.raises(ValueError, match="highest level"):
        BettingSequence(0.0, 1.0).update([0.2]).interval(confidence.MAX_LEVEL + 0.00005)
