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


@pytest.fixture(autouse=True)
def fresh_caches(monkeypatch):
    """Empty the bootstrap-count and t-quantile caches, so each test computes what it checks."""
    monkeypatch.setattr(offpolicy, "_COUNTS_CACHE", {})
    offpolicy._t_quantile.cache_clear()


def test_more_resamples_than_one_chunk_fill_every_replicate(monkeypatch):
    monkeypatch.setattr(offpolicy, "_BOOTSTRAP_CHUNK_CELLS", 10)
    assert [len(chunk) for chunk in offpolicy._draw_counts(0, 10, 3)] == [1, 1, 1], "never more cells than allowed"
    monkeypatch.setattr(offpolicy, "_BOOTSTRAP_CHUNK_CELLS", 40)
    values = np.random.default_rng(5).integers(0, 2, size=10).astype(float)
    estimate = offpolicy.mean_interval(values, resamples=25, seed=2)  # chunks of 4 resamples
    counts = np.concatenate(list(offpolicy._draw_counts(2, 10, 25)))
    assert counts.shape == (25, 10)
    assert estimate.replicates.tolist() == pytest.approx((counts @ values / 10).tolist())


def test_counts_are_drawn_once_per_sample_and_kept_for_the_last_few(monkeypatch):
    monkeypatch.setattr(offpolicy, "_COUNTS_CACHE_SIZE", 2)
    first = offpolicy._resample_counts(1, 5, 30)
    assert offpolicy._resample_counts(1, 5, 30) is first and list(offpolicy._COUNTS_CACHE) == [(1, 5, 30)]
    offpolicy._resample_counts(2, 5, 30)
    offpolicy._resample_counts(3, 5, 30)
    assert list(offpolicy._COUNTS_CACHE) == [(2, 5, 30), (3, 5, 30)]
    monkeypatch.setattr(offpolicy, "_COUNTS_CACHE_CELLS", 150)
    offpolicy._resample_counts(5, 5, 30)
    assert (5, 5, 30) in offpolicy._COUNTS_CACHE, "a sample of exactly the cell limit is kept"
    monkeypatch.setattr(offpolicy, "_COUNTS_CACHE_CELLS", 100)
    assert np.concatenate(list(offpolicy._resample_counts(4, 5, 30))).shape == (30, 5)
    assert (4, 5, 30) not in offpolicy._COUNTS_CACHE


def test_two_decisions_widen_the_percentile_interval_and_one_does_not():
    two = offpolicy.mean_interval([0.0, 1.0], resamples=200, seed=1)
    low, high = offpolicy._percentile_interval(two.replicates, 0.95)
    factor = offpolicy.student_t_quantile(0.975, 1.0) / 1.959963984540054 * 2 ** 0.5
    assert (two.low, two.high) == pytest.approx((0.5 - (0.5 - low) * factor, 0.5 + (high - 0.5) * factor))
    one = offpolicy.mean_interval([0.7], resamples=50, seed=1)
    assert (one.estimate, one.low, one.high) == pytest.approx((0.7, 0.7, 0.7))


def test_student_t_quantiles_are_computed_not_remembered():
    assert offpolicy.student_t_quantile(0.975, 3.0) == pytest.approx(3.182446, abs=1e-5)
    assert offpolicy.student_t_quantile(0.95, 10.0) == pytest.approx(1.812461, abs=1e-5)
    assert offpolicy.student_t_quantile(0.5, 4.0) == pytest.approx(0.0, abs=1e-6)
    assert offpolicy.student_t_quantile(0.9, 2e4) == pytest.approx(1.281552, abs=1e-5)
    with pytest.raises(ValueError, match=exactly(
            "student_t_quantile needs 0.5 <= probability < 1 and positive degrees of freedom")):
        offpolicy.student_t_quantile(0.4, 3.0)
    with pytest.raises(ValueError, match="^student_t_quantile needs"):
        offpolicy.student_t_quantile(0.9, 0.0)
    between = offpolicy.student_t_quantile(0.975, 2.5)
    assert offpolicy.student_t_quantile(0.975, 3.0) < between < offpolicy.student_t_quantile(0.975, 2.0)
    assert offpolicy.student_t_quantile(0.975, 1e4) == pytest.approx(1.960201, abs=2e-5)
    assert offpolicy.student_t_quantile(0.975, 10000.5) == pytest.approx(1.959964, abs=1e-6)
    with pytest.raises(ValueError):
        offpolicy.student_t_quantile(1.0, 3.0)


def test_degrees_of_freedom_are_read_to_hundredths_so_a_tiny_fraction_of_ess_moves_no_bound():
    assert offpolicy.student_t_quantile(0.975, 3.004) == pytest.approx(3.182446, abs=1e-5)
    assert offpolicy.student_t_quantile(0.975, 3.006) == offpolicy.student_t_quantile(0.975, 3.01)
    assert offpolicy.student_t_quantile(0.975, 3.01) == pytest.approx(3.176473, abs=1e-5)
    assert offpolicy._widened(0.5, 0.4, 0.6, 4.004, 10, 0.95) == offpolicy._widened(0.5, 0.4, 0.6, 4.0, 10, 0.95)


def test_refusals_of_bad_weights_inputs_are_worded():
    with pytest.raises(ValueError, match=exactly("logged_propensities has shape (2,), target_probabilities (3,)")):
        offpolicy.importance_weights([0.5, 0.5], [1.0, 0.0, 1.0])
    with pytest.raises(ValueError, match=exactly("target_probabilities must be probabilities between 0 and 1")):
        offpolicy.importance_weights([0.5], [-0.1])
    assert offpolicy.importance_weights([0.5], [1.0], max_weight=0.5)[0].tolist() == [0.5]
    with pytest.raises(ValueError, match=exactly("max_weight must be positive")):
        offpolicy.importance_weights([0.5], [1.0], max_weight=0.0)
    with pytest.raises(ValueError, match=exactly("rewards must be a one-dimensional array")):
        offpolicy.ips([[1.0]], [0.5], [1.0])
    with pytest.raises(ValueError, match=exactly("rewards must be finite numbers")):
        offpolicy.ips([np.nan], [0.5], [1.0])


def test_a_zero_propensity_weighs_the_cap_or_nothing_and_a_target_just_over_one_is_rounding():
    weights, clipped = offpolicy.importance_weights([0.0, 0.0, np.nan], [1.0, 0.0, 0.0], max_weight=20.0)
    assert weights.tolist() == [20.0, 0.0, 0.0] and clipped == 1
    weights, _ = offpolicy.importance_weights([0.5], [1.0 + 1e-9])
    assert weights.tolist() == pytest.approx([2.0])
    targets = decimals([1.0, 0.5, 0.0])
    assert offpolicy.importance_weights([0.5, 0.25, 0.2], targets)[0].tolist() == [2.0, 2.0, 0.0]
    assert offpolicy.ips(decimals(REWARDS), [0.5, 0.5, 0.5], [1.0, 1.0, 1.0], resamples=20).estimate == \
        pytest.approx(4.0 / 3.0)
