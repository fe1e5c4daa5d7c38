"""Importance weights: 1/propensity capped in training, and the off-policy report's warnings about them."""

import numpy as np
import pytest

from memabra.evaluation.counterfactual import compare_routers
from memabra.learning.dataset import DatasetBuilder
from memabra.learning.pair_features import LearnerConfig
from memabra.learning.train import train_router
from memabra.learning.routers import HeuristicRouter
from memabra.models import Trajectory
from tests.helpers import trajectory_doc


def logged(propensity, reward=0.9, chosen="direct:answer", text="What's the weather in Oslo?") -> Trajectory:
    document = trajectory_doc(reward=reward)
    document["task"]["text"] = text
    document["decision"] = {"chosen_candidate_id": chosen, "propensity": propensity}
    return Trajectory.model_validate(document)


MAX_IMPORTANCE_WEIGHT = LearnerConfig().max_importance_weight
UNDECAYED = LearnerConfig(half_life=None)


def weight_and_weighted_reward(stats) -> tuple[float, float]:
    """The summed row weights, and the weighted reward sum (the bias column of the moment)."""
    bias = stats.config.dense_start
    return float(stats.weight.sum()), float(stats.moment[:, bias].sum())


@pytest.mark.parametrize("propensity, weight", [
    (0.5, 2.0), (0.25, 4.0), (1 / MAX_IMPORTANCE_WEIGHT, MAX_IMPORTANCE_WEIGHT), (0.001, MAX_IMPORTANCE_WEIGHT),
    (None, 1.0),
])
def test_a_logged_pick_weighs_one_over_its_propensity_up_to_the_cap(propensity, weight):
    stats = DatasetBuilder(UNDECAYED).stats([logged(propensity, reward=0.5)])
    assert MAX_IMPORTANCE_WEIGHT == 5.0
    assert stats.count == 1
    weights, rewards = weight_and_weighted_reward(stats)
    assert weights == pytest.approx(weight, rel=1e-12)
    assert rewards == pytest.approx(0.5 * weight, rel=1e-12)


def test_one_unlikely_pick_cannot_dominate_what_is_learned():
    common = [logged(0.5, reward=0.2, text=f"task {i}") for i in range(40)]
    rare = logged(0.0005, reward=1.0, text="task rare")  # 1/p = 2,000, capped at 5
    capped = DatasetBuilder(UNDECAYED).stats(common + [rare])
    weights, rewards = weight_and_weighted_reward(capped)
    assert weights == pytest.approx(40 * 2 + 5)
    assert rewards / weights == pytest.approx((40 * 2 * 0.2 + 5 * 1.0) / 85)
    uncapped_config = LearnerConfig(half_life=None, max_importance_weight=1e9)
    uncapped = DatasetBuilder(uncapped_config).stats(common + [rare])
    assert weight_and_weighted_reward(uncapped)[0] == pytest.approx(40 * 2 + 2000)
    assert not np.allclose(train_router(capped, UNDECAYED).weights,
                           train_router(uncapped, uncapped_config).weights)


def heuristic_picks(trajectory: Trajectory) -> str:
    return HeuristicRouter().route(trajectory.task, trajectory.candidates).chosen_candidate_id


def test_capped_weights_are_counted_and_warned_about_per_router():
    picked = heuristic_picks(logged(0.5))
    log = [logged(0.01, chosen=picked, text=f"t{i}") for i in range(3)] + [logged(0.5, chosen=picked, text=f"u{i}")
                                                                              for i in range(5)]
    report = compare_routers(log, HeuristicRouter(), HeuristicRouter(), resamples=20).model_dump()
    assert report["clipped_count"] == {"baseline": 3, "challenger": 3}
    capped = [warning for warning in report["warnings"] if "were capped" in warning]
    assert capped == [
        "3 of the baseline's importance weights were capped at 50 (logged propensities below 0.02); its estimates "
        "lean low",
        "3 of the challenger's importance weights were capped at 50 (logged propensities below 0.02); its estimates "
        "lean low"]
    assert report["mean_importance_weight"]["baseline"] == pytest.approx((3 * 50 + 5 * 2) / 8)


def test_a_log_without_exploration_is_warned_about_and_not_checked_for_consistency():
    picked = heuristic_picks(logged(0.5))
    log = [logged(1.0, chosen=picked, text=f"t{i}") for i in range(10)]
    report = compare_routers(log, HeuristicRouter(), HeuristicRouter(), resamples=20).model_dump()
    assert any(warning.startswith("every held-out decision was logged with propensity 1 (no exploration)")
               for warning in report["warnings"])
    assert report["logging_check"] is None and report["propensities_suspect"] is False
    assert report["clipped_count"] == {"baseline": 0, "challenger": 0}
    exploring = compare_routers(log[:-1] + [logged(0.9, chosen=picked)], HeuristicRouter(), HeuristicRouter(),
                                resamples=20).model_dump()
    assert not any("no exploration" in warning for warning in exploring["warnings"])
    assert exploring["logging_check"] is not None


def test_a_mean_interval_is_seeded_by_default_and_counts_every_item():
    from memabra.evaluation import offpolicy

    differences = [0.1, -0.2, 0.3, 0.0, 0.25, -0.05, 0.4]
    default = offpolicy.mean_interval(differences, resamples=200)
    assert (default.estimate, default.ess, default.count, default.clipped_count, default.seed) == (
        pytest.approx(sum(differences) / 7), 7.0, 7, 0, 0)
    again = offpolicy.mean_interval(differences, resamples=200, seed=0)
    assert (default.low, default.high) == (again.low, again.high)
    assert default.low < default.estimate < default.high
    assert default.to_dict()["ess"] == 7.0


def test_direct_method_and_doubly_robust_are_seeded_and_count_their_capped_weights():
    from memabra.evaluation import offpolicy

    rewards = [1.0, 0.0, 0.5, 1.0]
    propensities = [0.5, 0.04, 0.5, 0.25]
    targets = [1.0, 1.0, 0.0, 1.0]
    predictions = [[0.8, 0.2], [0.1, 0.3], [0.5, 0.5], [0.6, 0.9]]
    distribution = [[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]]
    actions = [0.0, 1.0, 1.0, 1.0]  # as JSON gives them back: floats that name columns
    dm = offpolicy.direct_method(predictions, distribution, resamples=100)
    assert (dm.estimate, dm.ess, dm.clipped_count, dm.seed) == (pytest.approx((0.8 + 0.3 + 0.5 + 0.9) / 4), 4.0, 0, 0)
    dr = offpolicy.doubly_robust(rewards, propensities, targets, predictions, distribution, actions, resamples=100,
                                 max_weight=20.0)
    weights = [2.0, 20.0, 0.0, 4.0]  # 1/0.04 = 25 is capped at 20
    logged = [0.8, 0.3, 0.5, 0.9]
    model = [0.8, 0.3, 0.5, 0.9]
    expected = sum(m + w * (r - p) for m, w, r, p in zip(model, weights, rewards, logged)) / 4
    assert dr.estimate == pytest.approx(expected) and dr.clipped_count == 1 and dr.seed == 0
    assert dr.ess == pytest.approx(offpolicy.effective_sample_size(weights))
    assert offpolicy.doubly_robust(rewards, propensities, targets, predictions, distribution, actions,
                                   resamples=100).clipped_count == 0, "the default cap of 50 is above 1/0.04"


@pytest.mark.parametrize("shorten", ["rewards", "propensities", "predictions", "actions"])
def test_doubly_robust_refuses_arrays_of_different_lengths(shorten):
    from memabra.evaluation import offpolicy

    arrays = {"rewards": [1.0, 0.0, 0.5], "propensities": [0.5, 0.5, 0.5], "targets": [1.0, 0.0, 1.0],
              "predictions": [[0.8, 0.2], [0.1, 0.3], [0.5, 0.5]],
              "distribution": [[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], "actions": [0, 1, 1]}
    arrays[shorten] = arrays[shorten][:2]
    if shorten == "propensities":
        arrays["targets"] = arrays["targets"][:2]
    if shorten == "predictions":
        arrays["distribution"] = arrays["distribution"][:2]
    with pytest.raises(ValueError, match=r"^arrays differ in length: \[2, 3\]$"):
        offpolicy.doubly_robust(arrays["rewards"], arrays["propensities"], arrays["targets"], arrays["predictions"],
                                arrays["distribution"], arrays["actions"], resamples=10)


@pytest.mark.parametrize("actions", [[0, 2], [-1, 1], [0, -1]])
def test_doubly_robust_refuses_a_logged_action_outside_the_predicted_columns(actions):
    from memabra.evaluation import offpolicy

    with pytest.raises(ValueError, match="^logged_actions must index columns of reward_predictions$"):
        offpolicy.doubly_robust([1.0, 0.0], [0.5, 0.5], [1.0, 1.0], [[0.8, 0.2], [0.1, 0.3]],
                                [[1.0, 0.0], [0.0, 1.0]], actions, resamples=10)


def test_doubly_robust_needs_a_finite_prediction_for_every_logged_action():
    from memabra.evaluation import offpolicy

    predictions = [[0.8, np.nan], [0.1, 0.3]]  # the evaluated policy never takes column 1 of row 0; the log did
    distribution = [[1.0, 0.0], [0.0, 1.0]]
    assert offpolicy.direct_method(predictions, distribution, resamples=10).estimate == pytest.approx(0.55)
    with pytest.raises(ValueError, match="^reward_predictions must be finite for every logged action$"):
        offpolicy.doubly_robust([1.0, 0.0], [0.5, 0.5], [0.0, 1.0], predictions, distribution, [1, 1], resamples=10)


def test_a_pick_without_a_propensity_weighs_one_without_a_division_warning():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stats = DatasetBuilder(UNDECAYED).stats([logged(None, reward=0.5), logged(None, reward=0.5, text="other")])
    assert weight_and_weighted_reward(stats) == (pytest.approx(2.0), pytest.approx(1.0))


def test_the_importance_power_bends_the_capped_weight():
    config = LearnerConfig(half_life=None, importance_power=0.5)
    stats = DatasetBuilder(config).stats([logged(0.25, reward=1.0), logged(0.01, reward=1.0, text="rare")])
    assert weight_and_weighted_reward(stats)[0] == pytest.approx(4 ** 0.5 + 5 ** 0.5)


def test_decay_factors_scale_each_rows_importance_weight():
    rows = [logged(0.5, reward=1.0, text="old"), logged(0.25, reward=1.0, text="new")]
    stats = DatasetBuilder(LearnerConfig(half_life=2.0)).stats(rows, ages=[2.0, 0.0])
    assert weight_and_weighted_reward(stats)[0] == pytest.approx(0.5 * 2.0 + 1.0 * 4.0)
    assert stats.rows.dtype == np.int64 and int(stats.rows.sum()) == 2
    doubled = stats.copy().add(stats)
    assert int(doubled.rows.sum()) == 4 and doubled.count == 4


def test_ips_and_snips_default_to_seed_zero_and_refuse_arrays_of_different_lengths():
    from memabra.evaluation import offpolicy

    rewards, propensities, targets = [1.0, 0.0, 0.5, 1.0], [0.5, 0.04, 0.5, 0.25], [1.0, 1.0, 0.0, 1.0]
    for estimator in (offpolicy.ips, offpolicy.snips):
        default = estimator(rewards, propensities, targets, resamples=50)
        seeded = estimator(rewards, propensities, targets, resamples=50, seed=0)
        assert default.seed == 0 and (default.low, default.high) == (seeded.low, seeded.high)
        with pytest.raises(ValueError, match=r"^arrays differ in length: \[3, 4\]$"):
            estimator(rewards[:3], propensities, targets, resamples=10)
    capped = offpolicy.snips(rewards, propensities, targets, resamples=10, max_weight=2.0)
    assert capped.clipped_count == 2 and capped.estimate == pytest.approx((2 * 1 + 2 * 0 + 2 * 1) / 6)


def test_a_paired_delta_keeps_the_log_size_level_seed_and_both_routers_capped_counts():
    from memabra.evaluation import offpolicy

    rewards, propensities = [1.0, 0.0, 0.5, 1.0], [0.5, 0.01, 0.5, 0.25]
    baseline = offpolicy.ips(rewards, propensities, [1.0, 1.0, 0.0, 1.0], resamples=30, seed=4, level=0.8)
    challenger = offpolicy.ips(rewards, propensities, [1.0, 1.0, 1.0, 0.0], resamples=30, seed=4, level=0.8)
    paired = offpolicy.delta(baseline, challenger)
    assert (paired.count, paired.level, paired.seed, paired.clipped_count) == (4, 0.8, 4, 2)
    assert paired.estimate == pytest.approx(challenger.estimate - baseline.estimate)
    assert np.array_equal(paired.replicates, challenger.replicates - baseline.replicates)
    with pytest.raises(ValueError, match="^a paired delta needs two estimates over the same log with the same seed, "
                                         "level, resamples$"):
        offpolicy.delta(baseline, offpolicy.ips(rewards, propensities, [1.0] * 4, resamples=30, seed=5, level=0.8))


def test_the_effective_sample_size_is_kish_s_formula():
    from memabra.evaluation import offpolicy

    assert offpolicy.effective_sample_size([1.0, 1.0, 2.0]) == pytest.approx(16 / 6)
    assert offpolicy.effective_sample_size([0.5]) == pytest.approx(1.0)
    assert offpolicy.effective_sample_size([0.0, 0.0]) == 0.0


def test_whole_number_propensities_in_plain_documents_weigh_like_floats():
    from memabra.learning.learner_stats import LearnerStatsBuilder

    documents = []
    for propensity, text in ((1, "sure"), (1, "also sure")):
        document = trajectory_doc(reward=1.0)
        document["task"]["text"] = text
        document["decision"] = {"chosen_candidate_id": "direct:answer", "propensity": propensity}
        documents.append(document)
    stats = LearnerStatsBuilder(UNDECAYED).stats_of_documents(documents)
    assert weight_and_weighted_reward(stats) == (pytest.approx(2.0), pytest.approx(2.0))


def test_decay_factors_halve_per_half_life_of_newer_trajectories():
    from memabra.learning.learner_stats import decay_factors

    assert decay_factors([10, 20, 40], half_life=20.0) == pytest.approx([0.5 ** 3, 0.5 ** 2, 1.0])
    assert decay_factors([5], half_life=1.0) == [1.0]
    assert decay_factors([], half_life=3.0) == []


def test_tasks_without_a_word_still_weigh_and_sum_their_rewards():
    stats = DatasetBuilder(UNDECAYED).stats([logged(0.5, reward=1.0, text="?!"), logged(0.25, reward=0.5, text="...")])
    assert weight_and_weighted_reward(stats) == (pytest.approx(6.0), pytest.approx(2.0 * 1.0 + 4.0 * 0.5))


def test_decay_factors_may_be_any_numbers():
    from decimal import Decimal

    from memabra.learning.learner_stats import LearnerStatsBuilder

    rows = [logged(0.5, reward=1.0, text="old"), logged(0.25, reward=1.0, text="new")]
    stats = LearnerStatsBuilder(UNDECAYED).stats(rows, factors=[Decimal("0.5"), 1])
    assert weight_and_weighted_reward(stats) == (pytest.approx(5.0), pytest.approx(5.0))
