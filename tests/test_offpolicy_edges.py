"""The off-policy estimators' exact refusals, their inputs as exact decimals, and the interval's tails."""

import re
from decimal import Decimal

import numpy as np
import pytest

from memabra.evaluation import offpolicy

REWARDS = [1.0, 0.0, 1.0]
PREDICTIONS = [[0.5, 0.1], [0.2, 0.9], [0.3, 0.4]]
DISTRIBUTION = [[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]]


def exactly(message: str) -> str:
    return "^" + re.escape(message) + "$"


def decimals(values):
    return [decimals(value) if isinstance(value, list) else Decimal(str(value)) for value in values]


def test_numbers_given_as_exact_decimals_give_the_same_estimates_as_floats():
    propensities, targets = [0.5, 0.25, 0.2], [1.0, 0.5, 0.0]
    weights, clipped = offpolicy.importance_weights(decimals(propensities), targets)
    assert weights.tolist() == [2.0, 2.0, 0.0] and clipped == 0
    assert offpolicy.effective_sample_size(decimals([2.0, 0.5, 1.0])) == pytest.approx(7 / 3)
    same = dict(resamples=50, seed=3)
    assert (offpolicy.direct_method(decimals(PREDICTIONS), DISTRIBUTION, **same).to_dict()
            == offpolicy.direct_method(PREDICTIONS, DISTRIBUTION, **same).to_dict())
    robust = [offpolicy.doubly_robust(REWARDS, propensities, targets, predictions, DISTRIBUTION, [0, 1, 1], **same)
              for predictions in (decimals(PREDICTIONS), PREDICTIONS)]
    assert robust[0].to_dict() == robust[1].to_dict()


def test_reward_model_arrays_of_the_wrong_shape_are_refused_in_words():
    shape = "reward_predictions and target_distribution must both be (decisions x candidates)"
    with pytest.raises(ValueError, match=exactly(shape)):
        offpolicy.direct_method([[0.5, 0.1, 0.2], [0.2, 0.9, 0.1]], [[1.0, 0.0], [0.5, 0.5]])
    with pytest.raises(ValueError, match=exactly(shape)):
        offpolicy.direct_method([0.5, 0.1], [[1.0, 0.0]])
    with pytest.raises(ValueError, match=exactly("target_distribution must be probabilities between 0 and 1")):
        offpolicy.direct_method(PREDICTIONS, [[1.5, 0.0], [0.5, 0.5], [0.0, 1.0]])
    with pytest.raises(ValueError, match=exactly(
            "reward_predictions must be finite wherever the evaluated policy may act")):
        offpolicy.direct_method([[np.nan, 0.1], [0.2, 0.9], [0.3, 0.4]], DISTRIBUTION)


def test_a_prediction_the_policy_never_takes_may_be_missing_and_adds_nothing():
    estimate = offpolicy.direct_method([[0.5, np.nan], [0.2, 0.9], [np.inf, 0.4]], DISTRIBUTION, resamples=20)
    assert estimate.estimate == pytest.approx((0.5 + 0.55 + 0.4) / 3)


def test_bad_settings_are_refused_in_words():
    with pytest.raises(ValueError, match=exactly("level 1.0 must lie strictly between 0 and 1")):
        offpolicy.ips([1.0], [0.5], [1.0], level=1.0)
    with pytest.raises(ValueError, match=exactly("resamples must be at least 1")):
        offpolicy.ips([1.0], [0.5], [1.0], resamples=0)
    with pytest.raises(ValueError, match=exactly("no decisions to estimate from")):
        offpolicy.mean_interval([])


def test_a_single_resample_is_allowed_and_gives_one_replicate():
    estimate = offpolicy.mean_interval([0.0, 1.0, 1.0, 0.0], resamples=1, seed=4)
    assert estimate.estimate == 0.5 and len(estimate.replicates) == 1


def test_the_percentile_interval_leaves_half_the_missing_level_in_each_tail():
    assert offpolicy._percentile_interval(np.arange(101.0), 0.9) == pytest.approx((5.0, 95.0))
    assert offpolicy._percentile_interval(np.arange(101.0), 0.5) == pytest.approx((25.0, 75.0))


def test_every_item_can_be_drawn_into_a_resample():
    counts = np.concatenate(list(offpolicy._draw_counts(seed=0, count=3, resamples=400)))
    assert counts.shape == (400, 3) and (counts.sum(axis=1) == 3).all()
    assert (counts > 0).any(axis=0).all(), "the first item is drawn too"
    assert counts.mean(axis=0) == pytest.approx([1.0, 1.0, 1.0], abs=0.15)


def test_the_effective_sample_size_of_unequal_weights():
    assert offpolicy.effective_sample_size([2.0, 0.5, 1.0]) == pytest.approx(3.5 ** 2 / 5.25)
    assert offpolicy.effective_sample_size([0.5]) == pytest.approx(1.0)
    assert offpolicy.effective_sample_size([0.0, 0.0]) == 0.0
