"""Off-policy estimators: safe on awkward input, and right against the demo world's ground truth."""

import random

import numpy as np
import pytest

from memabra.demo.generate import generate_demo_trajectories
from memabra.demo.world import DemoWorld
from memabra.evaluation import offpolicy
from memabra.evaluation.counterfactual import LoggedDecisions, compare_routers, estimate_router
from memabra.learning.dataset import DatasetBuilder
from memabra.learning.train import train_router
from memabra.learning.exploration import ExplorationPolicy
from memabra.learning.routers import HeuristicRouter
from memabra.runtime.runner import AgentRunner
from memabra.storage.trajectories import TrajectoryStore

SEEDS = range(50)
LOG_SIZE = 600
EXPLORATION = ExplorationPolicy("epsilon_greedy", epsilon=0.5)


def test_zero_and_tiny_propensities_are_capped_and_counted_never_inf_or_nan():
    rewards = np.array([1.0, 0.5, 0.2, 0.9])
    propensities = np.array([0.0, 1e-12, 0.5, np.nan])
    targets = np.array([1.0, 1.0, 1.0, 0.0])
    for estimator in (offpolicy.ips, offpolicy.snips):
        estimate = estimator(rewards, propensities, targets, max_weight=20.0, resamples=50)
        values = [estimate.estimate, estimate.low, estimate.high, estimate.ess]
        assert all(np.isfinite(values)), values
        assert estimate.clipped_count == 2, "the zero and the tiny propensity were capped; NaN with target 0 was not"
    assert offpolicy.ips(rewards, propensities, targets, max_weight=20.0).estimate == pytest.approx(
        (20 * 1.0 + 20 * 0.5 + 2 * 0.2) / 4)


def test_snips_without_any_overlap_is_zero_with_zero_effective_samples():
    estimate = offpolicy.snips([0.4, 0.6], [0.5, 0.5], [0.0, 0.0], resamples=20)
    assert (estimate.estimate, estimate.low, estimate.high, estimate.ess) == (0.0, 0.0, 0.0, 0.0)


def test_intervals_are_seeded_and_their_level_is_configurable():
    rng = np.random.default_rng(0)
    rewards = rng.random(300)
    propensities = rng.uniform(0.1, 1.0, 300)
    targets = (rng.random(300) < 0.5).astype(float)
    first = offpolicy.snips(rewards, propensities, targets, seed=3)
    again = offpolicy.snips(rewards, propensities, targets, seed=3)
    other = offpolicy.snips(rewards, propensities, targets, seed=4)
    narrow = offpolicy.snips(rewards, propensities, targets, seed=3, level=0.5)
    assert (first.low, first.high) == (again.low, again.high)
    assert (first.low, first.high) != (other.low, other.high)
    assert first.low < narrow.low <= first.estimate and first.estimate <= narrow.high < first.high


def test_paired_delta_of_a_router_with_itself_is_exactly_zero():
    rng = np.random.default_rng(1)
    rewards, propensities = rng.random(100), rng.uniform(0.2, 1.0, 100)
    targets = (rng.random(100) < 0.6).astype(float)
    same = offpolicy.delta(offpolicy.ips(rewards, propensities, targets), offpolicy.ips(rewards, propensities, targets))
    assert (same.estimate, same.low, same.high) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="same log"):
        offpolicy.delta(offpolicy.ips(rewards, propensities, targets, seed=1),
                        offpolicy.ips(rewards, propensities, targets, seed=2))


@pytest.mark.parametrize("bad", [dict(level=1.0), dict(level=0.0), dict(resamples=0)])
def test_bad_settings_are_refused(bad):
    with pytest.raises(ValueError):
        offpolicy.ips([1.0], [0.5], [1.0], **bad)


def test_bad_arrays_are_refused():
    with pytest.raises(ValueError, match="no decisions"):
        offpolicy.snips([], [], [])
    with pytest.raises(ValueError, match="finite"):
        offpolicy.ips([np.inf], [0.5], [1.0])
    with pytest.raises(ValueError, match="probabilities"):
        offpolicy.ips([1.0], [0.5], [1.5])


# -- ground truth -------------------------------------------------------------------------------------------


def _run_log(world, router, count, seed, exploration=EXPLORATION, tmp=None):
    """`count` demo tasks routed by `router` under the exploring logging policy (kept in memory)."""
    rng = random.Random(seed)
    app = AgentRunner(tmp, retriever=world, executor=world, router=router, exploration=exploration,
                     seed=rng.getrandbits(64))
    return [app.run_task(world.sample_task(rng), source="demo", save=False) for _ in range(count)]


def _true_value(world, router, tasks=8000) -> float:
    rng = random.Random(99)
    total = 0.0
    for _ in range(tasks):
        task = world.sample_task(rng)
        candidates = world.candidates(task)
        total += world.expected_reward(task, candidates[int(np.argmax(router.scores(task, candidates)))])
    return total / tasks


def _train(trajectories):
    builder = DatasetBuilder()
    return train_router(builder.stats(trajectories))


@pytest.fixture(scope="module")
def ground_truth(tmp_path_factory):
    """A fixed learned policy, its true value, and every estimator's estimate of it on 50 independently seeded
    logs of a weaker learned router that explores."""
    tmp = tmp_path_factory.mktemp("offpolicy")
    world = DemoWorld(7)
    target = _train(_run_log(world, HeuristicRouter(), 3000, seed=1000, tmp=tmp))
    logging_router = _train(_run_log(world, HeuristicRouter(), 300, seed=2000, tmp=tmp))
    truth = _true_value(world, target)
    estimates = {name: [] for name in ("ips", "snips", "dm", "dr")}
    for seed in SEEDS:
        decisions = LoggedDecisions.from_trajectories(_run_log(world, logging_router, LOG_SIZE, seed, tmp=tmp))
        found, _ = estimate_router(decisions, target, target, resamples=300, seed=seed)
        for name, estimate in found.items():
            estimates[name].append(estimate)
    return truth, estimates


@pytest.mark.parametrize("estimator", ["snips", "dr"])
def test_95_percent_intervals_cover_the_true_value_in_at_least_90_percent_of_seeds(ground_truth, estimator):
    truth, estimates = ground_truth
    covered = sum(item.low <= truth <= item.high for item in estimates[estimator])
    assert covered >= 0.9 * len(SEEDS), f"{estimator} covered {truth:.4f} in {covered} of {len(SEEDS)} logs"


def test_doubly_robust_errs_less_than_ips_on_average(ground_truth):
    truth, estimates = ground_truth
    error = {name: np.mean([abs(item.estimate - truth) for item in items]) for name, items in estimates.items()}
    assert error["dr"] < error["ips"], error


def _stored_log(tmp_path, count, seed, router):
    generate_demo_trajectories(tmp_path, count, router, exploration=EXPLORATION, world=DemoWorld(7), seed=seed)
    trajectories, _ = TrajectoryStore(tmp_path).load_all()
    return trajectories


def test_a_log_with_wrong_propensities_is_flagged_and_a_right_one_is_not(tmp_path):
    router = HeuristicRouter()
    challenger = _train(_stored_log(tmp_path / "train", 1000, 5, router))
    log = _stored_log(tmp_path / "log", 500, 6, router)
    right = compare_routers(log, router, challenger, challenger, resamples=100).model_dump()
    assert right["propensities_suspect"] is False and right["logging_check"]["mean_uniform_weight"] == pytest.approx(
        1.0, abs=0.15)
    # a common logging bug: the agent records the greedy pick's probability whatever it actually chose
    greedy_probability = 1 - EXPLORATION.epsilon + EXPLORATION.epsilon / 5
    wrong_log = [t.model_copy(update={"decision": t.decision.model_copy(update={"propensity": greedy_probability})})
                 for t in log]
    wrong = compare_routers(wrong_log, router, challenger, challenger, resamples=100).model_dump()
    assert wrong["propensities_suspect"] is True
    assert wrong["logging_check"]["mean_uniform_weight"] < 0.5
    assert any("propensities do not add up" in warning for warning in wrong["warnings"])


def test_trajectories_without_a_propensity_are_left_out_and_counted(tmp_path):
    router = HeuristicRouter()
    log = _stored_log(tmp_path, 200, 8, router)
    stripped = [t.model_copy(update={"decision": t.decision.model_copy(update={"propensity": None})})
                if index % 4 == 0 else t for index, t in enumerate(log)]
    report = compare_routers(stripped, router, router, resamples=50).model_dump()
    assert (report["held_out_count"], report["excluded_count"], report["used_count"]) == (200, 50, 150)
    assert set(report["estimators"]) == {"ips", "snips"}, "no reward model: no DM or DR"
    assert report["estimators"]["snips"]["delta"] == {"estimate": 0.0, "low": 0.0, "high": 0.0,
                                                     "ess": report["estimators"]["snips"]["baseline"]["ess"]}
    nothing = compare_routers(stripped[::4], router, router).model_dump()
    assert nothing["used_count"] == 0 and nothing["estimators"] == {} and nothing["warnings"]


def test_the_runner_logs_under_the_policy_the_environment_names(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMABRA_EXPLORATION", "softmax")
    monkeypatch.setenv("MEMABRA_TEMPERATURE", "0.05")
    world = DemoWorld(7)
    app = AgentRunner(tmp_path, retriever=world, executor=world, seed=1)
    trajectory = app.run_task(world.sample_task(random.Random(2)), save=False)
    scores = [trajectory.decision.scores[c.candidate_id] for c in trajectory.candidates]
    chosen = [c.candidate_id for c in trajectory.candidates].index(trajectory.decision.chosen_candidate_id)
    assert trajectory.decision.policy == "softmax(0.05)"
    assert trajectory.decision.propensity == pytest.approx(ExplorationPolicy("softmax", temperature=0.05)
                                                           .probabilities(scores)[chosen])


def test_demo_flags_choose_the_logging_policy_and_every_pick_records_its_propensity(cli, tmp_path):
    result = cli("--base-dir", tmp_path, "--demo-trajectories", "40", "--exploration", "epsilon_greedy",
                 "--epsilon", "0.4", "--seed", "3")
    assert result.code == 0, result.stderr
    assert result.json["exploration"] == "epsilon_greedy(0.4)"
    trajectories, _ = TrajectoryStore(tmp_path).load_all()
    assert {round(t.decision.propensity, 9) for t in trajectories} == {0.68, 0.08}
    bad = cli("--base-dir", tmp_path, "--demo-trajectories", "1", env={"MEMABRA_EXPLORATION": "sometimes"})
    assert bad.code == 2 and bad.error_lines and "MEMABRA_EXPLORATION" in bad.error_lines[0]


def test_a_served_router_explores_as_the_environment_says(tmp_path, monkeypatch):
    from memabra.serving import ActiveRouter

    monkeypatch.setenv("MEMABRA_EXPLORATION", "epsilon_greedy")
    monkeypatch.setenv("MEMABRA_EPSILON", "0.3")
    assert ActiveRouter(tmp_path).exploration == ExplorationPolicy("epsilon_greedy", epsilon=0.3)
