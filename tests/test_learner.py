"""The hierarchical ridge learner: additive statistics, both builders, serialisation, and how it routes."""

from __future__ import annotations

import io
import json
import random

import numpy as np
import pytest

from memabra.learning.hierarchical import ROUTER_KIND, HierarchicalRouter, train
from memabra.learning.learner_stats import LearnerStats, LearnerStatsBuilder, decay_factors, decayed_sum
from memabra.learning.pair_features import LearnerConfig
from memabra.learning.routers import ScoringRouter
from memabra.learning.versions import router_from_dict
from memabra.models import Candidate, Decision, Outcome, Task, Trajectory

CONFIG = LearnerConfig(task_buckets=32, id_buckets=8, metadata_features=("priority",), payload_features=("cost",),
                       metadata_words=("channel",))
SUBJECTS = {"invoice": ("my invoice is wrong", "invoice total looks off", "question about an invoice"),
            "parcel": ("where is my parcel", "parcel never arrived", "track the parcel please")}
ORDINAL = ("today", "again", "urgently", "for order 7", "since monday", "kindly")


def _tools(rng: random.Random) -> list[Candidate]:
    """Two tools at near-equal scores, plus a direct answer that scores highest and is never best."""
    return [Candidate(candidate_id="billing", kind="tool", name="billing console", score=round(rng.uniform(0.5, 0.6), 3),
                      payload={"cost": rng.uniform(0.1, 0.3)}),
            Candidate(candidate_id="shipping", kind="tool", name="shipping tracker", score=round(rng.uniform(0.5, 0.6), 3)),
            Candidate(candidate_id="answer", kind="direct", name="quick answer", score=0.8)]


def _task(rng: random.Random, subject: str) -> Task:
    text = f"{rng.choice(SUBJECTS[subject])} {rng.choice(ORDINAL)}"
    return Task(task_id=f"t{rng.getrandbits(40)}", text=text,
                metadata={"priority": rng.choice([1, 2, 3]), "channel": rng.choice(["chat", "email"])})


def _expected(subject: str, candidate_id: str, best_for: dict[str, str], answer: float = 0.3) -> float:
    if candidate_id == "answer":
        return answer
    return 0.9 if best_for[subject] == candidate_id else 0.2


def _logs(count: int, seed: int, best_for: dict[str, str] | None = None, answer: float = 0.3) -> list[Trajectory]:
    """Uniformly random picks (propensity 1/3) with 0/1 rewards drawn from the expected values (`answer` is the
    direct answer's, the highest-scored candidate)."""
    best_for = best_for or {"invoice": "billing", "parcel": "shipping"}
    rng = random.Random(seed)
    trajectories = []
    for _ in range(count):
        subject = rng.choice(list(SUBJECTS))
        candidates = _tools(rng)
        chosen = rng.choice(candidates)
        reward = float(rng.random() < _expected(subject, chosen.candidate_id, best_for, answer))
        trajectories.append(Trajectory(task=_task(rng, subject), candidates=candidates,
                                       decision=Decision(chosen_candidate_id=chosen.candidate_id, propensity=1 / 3),
                                       outcome=Outcome(reward=reward, latency_ms=10.0)))
    return trajectories


def _assert_same(left: LearnerStats, right: LearnerStats) -> None:
    assert (left.count, left.reward_low, left.reward_high) == (right.count, right.reward_low, right.reward_high)
    np.testing.assert_array_equal(left.keys, right.keys)
    np.testing.assert_array_equal(left.rows, right.rows)
    np.testing.assert_allclose(left.gram, right.gram, atol=1e-9)
    np.testing.assert_allclose(left.moment, right.moment, atol=1e-9)
    np.testing.assert_allclose(left.weight, right.weight, atol=1e-9)
    np.testing.assert_allclose(left.square, right.square, atol=1e-9)


def _through_npz(stats: LearnerStats) -> LearnerStats:
    """The statistics saved with `np.savez` and read back, as a cache file holds them."""
    buffer = io.BytesIO()
    np.savez(buffer, **stats.to_arrays())
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as arrays:
        return LearnerStats.from_arrays(CONFIG, arrays)


def _picks(router, subject: str, seed: int = 99, count: int = 40) -> dict[str, int]:
    rng = random.Random(seed)
    picked: dict[str, int] = {}
    for _ in range(count):
        chosen = router.route(_task(rng, subject), _tools(rng)).chosen_candidate_id
        picked[chosen] = picked.get(chosen, 0) + 1
    return picked


def test_statistics_of_two_halves_add_up_to_the_whole_and_subtract_back():
    builder = LearnerStatsBuilder(CONFIG)
    logs = _logs(300, seed=1)
    whole, first, second = builder.stats(logs), builder.stats(logs[:120]), builder.stats(logs[120:])
    assert whole.count == 300 and len(whole.keys) == 3  # three identities were chosen
    _assert_same(first.copy().add(second), whole)
    _assert_same(whole.copy().subtract(second), first)
    _assert_same(LearnerStats.zeros(CONFIG).add(whole), whole)
    halved = whole.scaled(0.5)
    np.testing.assert_allclose(halved.gram, whole.gram * 0.5)
    assert halved.count == 300 and list(halved.rows) == list(whole.rows)


def _rescaled(logs: list[Trajectory], offset: float, factor: float) -> list[Trajectory]:
    """The same trajectories with every reward r logged as offset + factor * r."""
    return [trajectory.model_copy(update={"outcome": trajectory.outcome.model_copy(
        update={"reward": offset + factor * trajectory.outcome.reward})}) for trajectory in logs]


def test_statistics_keep_the_rewards_range_when_added_saved_and_subtracted():
    builder = LearnerStatsBuilder(CONFIG)
    logs = _logs(200, seed=22)
    high, low = builder.stats(_rescaled(logs[:100], 2.0, 3.0)), builder.stats(_rescaled(logs[100:], -1.0, 1.0))
    assert (high.reward_low, high.reward_high, low.reward_low, low.reward_high) == (2.0, 5.0, -1.0, 0.0)
    both = high.copy().add(low)
    assert (both.reward_low, both.reward_high) == (-1.0, 5.0) and both.reward_scale() == (-1.0, 6.0)
    assert both.copy().subtract(low).reward_scale() == (-1.0, 6.0)  # a subtraction keeps the wider range
    assert LearnerStats.zeros(CONFIG).reward_scale() == (0.0, 1.0)  # no rewards: the 0..1 scale
    assert builder.stats(_rescaled(logs[:3], 2.0, 0.0)).reward_scale() == (0.0, 1.0)  # one reward value alike
    for stats in (both, LearnerStats.zeros(CONFIG)):
        _assert_same(_through_npz(stats), stats)
    for damaged in ([5.0, 2.0], [np.nan, 1.0], [0.0]):
        with pytest.raises(ValueError, match="reward range"):
            LearnerStats.from_arrays(CONFIG, {**both.to_arrays(), "reward_range": np.array(damaged)})


def test_rewards_in_other_units_train_the_same_router():
    """Rewards logged as a + b r (another unit, an offset) make every score a + b times the old one and keep every
    pick: the prior reads retrieval scores on the rewards' span and the shrinkage measures noise in it."""
    logs = _logs(400, seed=21)
    base = train(LearnerStatsBuilder(CONFIG).stats(logs))
    shifted = train(LearnerStatsBuilder(CONFIG).stats(_rescaled(logs, -5.0, 10.0)))
    assert shifted.noise_scale == pytest.approx(base.noise_scale, rel=1e-9) and base.noise_scale > 1
    rng = random.Random(5)
    for _ in range(50):
        task, offer = _task(rng, rng.choice(list(SUBJECTS))), _tools(rng)
        np.testing.assert_allclose(shifted.scores(task, offer), [-5.0 + 10.0 * score for score in base.scores(task, offer)],
                                   rtol=0, atol=1e-8)


def test_builder_from_plain_documents_equals_builder_from_models():
    builder = LearnerStatsBuilder(CONFIG)
    logs = _logs(200, seed=2)
    documents = [json.loads(trajectory.model_dump_json()) for trajectory in logs]
    _assert_same(builder.stats_of_documents(documents), builder.stats(logs))
    # A document that leaves out fields with defaults counts as its model does.
    sparse = {"task": {"task_id": "t", "text": "parcel lost"}, "outcome": {"reward": 1.0, "latency_ms": 1.0},
              "candidates": [{"candidate_id": "a", "kind": "tool"}, {"candidate_id": "b", "kind": "memory", "score": 0.4}],
              "decision": {"chosen_candidate_id": "a"}}
    _assert_same(builder.stats_of_documents([sparse]), builder.stats([Trajectory.model_validate(sparse)]))


def test_statistics_survive_an_npz_round_trip_and_damaged_files_are_refused():
    stats = LearnerStatsBuilder(CONFIG).stats(_logs(150, seed=3))
    _assert_same(_through_npz(stats), stats)
    damaged = stats.to_arrays()
    damaged["gram"] = damaged["gram"].copy()
    damaged["gram"][0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        LearnerStats.from_arrays(CONFIG, damaged)
    with pytest.raises(ValueError, match="other feature settings"):
        LearnerStats.from_arrays(LearnerConfig(task_buckets=16), stats.to_arrays())
    truncated = {**stats.to_arrays(), "moment": stats.moment[:, :5]}
    with pytest.raises(ValueError, match="shapes"):
        LearnerStats.from_arrays(CONFIG, truncated)
    with pytest.raises(ValueError, match="missing"):
        LearnerStats.from_arrays(CONFIG, {key: value for key, value in stats.to_arrays().items() if key != "rows"})


def test_router_saved_as_json_is_rebuilt_with_the_same_scores():
    router = train(LearnerStatsBuilder(CONFIG).stats(_logs(400, seed=4)))
    saved = json.loads(json.dumps(router.to_dict()))
    assert saved["kind"] == ROUTER_KIND == "hierarchical_ridge"
    rebuilt = router_from_dict(saved, version_id="20260101-000000")
    assert isinstance(rebuilt, HierarchicalRouter) and rebuilt.version_id == "20260101-000000"
    rng = random.Random(5)
    for _ in range(10):
        task, candidates = _task(rng, "parcel"), _tools(rng)
        assert rebuilt.scores(task, candidates) == pytest.approx(router.scores(task, candidates))
    saved["id_weights"] = saved["id_weights"][:-1]
    with pytest.raises(ValueError):
        router_from_dict(saved)


def test_the_pick_between_two_tools_depends_on_the_task_words():
    router = train(LearnerStatsBuilder(CONFIG).stats(_logs(1500, seed=6)))
    assert _picks(router, "invoice") == {"billing": 40}
    assert _picks(router, "parcel") == {"shipping": 40}
    swapped = train(LearnerStatsBuilder(CONFIG).stats(
        _logs(1500, seed=7, best_for={"invoice": "shipping", "parcel": "billing"})))
    assert _picks(swapped, "invoice") == {"shipping": 40}


@pytest.mark.parametrize(("count", "least_agreement"), [(30, 0.85), (100, 0.95)])
def test_without_data_it_is_the_heuristic_and_with_little_data_it_stays_close(count, least_agreement):
    empty = train(LearnerStats.zeros(CONFIG))
    assert _picks(empty, "invoice") == {"answer": 40}  # the highest retrieval score, as the heuristic picks
    # Where the heuristic is right (the top-scored answer, 0.6, beats both tools, 0.2, everywhere), a few noisy
    # logs must not move it.
    neither = {"invoice": "none", "parcel": "none"}
    unscaled = LearnerConfig(**{**CONFIG.to_dict(), "noise_reference": 0.0})
    agree = {CONFIG: 0, unscaled: 0}
    for config in agree:
        for seed in range(5):
            little = train(LearnerStatsBuilder(config).stats(_logs(count, seed=seed, best_for=neither, answer=0.6)))
            agree[config] += sum(_picks(little, subject, seed=seed, count=20).get("answer", 0) for subject in SUBJECTS)
    assert agree[CONFIG] >= least_agreement * 5 * 40
    # What keeps it there: shrinkage grows with the estimated noise of 0/1 rewards; without that it drifts off.
    assert agree[unscaled] < agree[CONFIG]


def test_decay_lets_recent_data_win_after_the_best_tool_switches():
    builder = LearnerStatsBuilder(CONFIG)
    before = _logs(3000, seed=9)
    after = _logs(800, seed=10, best_for={"invoice": "shipping", "parcel": "billing"})
    segments = [builder.stats(part[start:start + 400]) for part in (before, after) for start in range(0, len(part), 400)]
    assert decay_factors([400, 400, 400], 400) == [0.25, 0.5, 1.0]
    anchored = train(decayed_sum(segments, CONFIG, half_life=1e9))
    recent = train(decayed_sum(segments, CONFIG, half_life=400))
    assert _picks(anchored, "invoice").get("billing", 0) > 30  # old data still rules without decay
    assert _picks(recent, "invoice") == {"shipping": 40}
    assert _picks(recent, "parcel") == {"billing": 40}


def test_any_offer_routes_and_an_identity_never_logged_uses_its_kind():
    router = train(LearnerStatsBuilder(CONFIG).stats(_logs(600, seed=11)))
    task = Task(task_id="x", text="where is my parcel today")  # no metadata: those features count as 0
    lone = [Candidate(candidate_id="new", kind="skill", name="brand new skill", score=0.1)]
    assert router.route(task, lone).chosen_candidate_id == "new"
    mixed = _tools(random.Random(12)) + [Candidate(candidate_id=f"m{i}", kind="memory", name=f"note {i}", score=0.2)
                                          for i in range(5)]
    decision = router.route(task, mixed)
    assert decision.chosen_candidate_id == "shipping" and len(decision.scores) == 8
    unseen = Candidate(candidate_id="u", kind="tool", name="never seen tool", score=0.5)
    kind_only = router.scores(task, [unseen])[0]
    assert np.isfinite(kind_only)


def test_configuration_errors_say_what_to_change():
    with pytest.raises(ValueError, match="task_buckets"):
        LearnerConfig(task_buckets=0)
    with pytest.raises(ValueError, match="unknown learner settings"):
        LearnerConfig.from_dict({"task_bucket": 3})
    with pytest.raises(ValueError, match="different feature settings"):
        LearnerStats.zeros(CONFIG).add(LearnerStats.zeros(LearnerConfig()))


def test_routing_scores_use_the_same_features_training_saw():
    config = LearnerConfig(task_buckets=32, id_buckets=8, metadata_features=("priority",), payload_features=("cost",),
                           metadata_words=("channel",), score_cross=True)
    router = train(LearnerStatsBuilder(config).stats(_logs(500, seed=13)))
    rng = random.Random(14)
    for index in range(20):
        task, candidates = _task(rng, rng.choice(list(SUBJECTS))), _tools(rng)
        candidates.append(Candidate(candidate_id="memo", kind="episodic", name="past parcel case", score=0.3,
                                    payload={"hint_reward": 0.7}))
        chosen = candidates[index % len(candidates)]
        # One trajectory with reward 1 and no propensity (weight 1): its moment is exactly its feature row.
        single = Trajectory(task=task, candidates=candidates, decision=Decision(chosen_candidate_id=chosen.candidate_id),
                            outcome=Outcome(reward=1.0, latency_ms=1.0))
        row = LearnerStatsBuilder(config).stats([single])
        weights = router._rows[int(row.keys[0])]
        assert router.scores(task, candidates)[candidates.index(chosen)] == pytest.approx(
            float(np.dot(weights, row.moment[0])))


def test_route_decides_as_every_scoring_router_does():
    router = train(LearnerStatsBuilder(CONFIG).stats(_logs(300, seed=15)))
    rng = random.Random(16)
    task, candidates = _task(rng, "parcel"), _tools(rng)
    decision = router.route(task, candidates)
    reference = ScoringRouter.route(router, task, candidates)
    assert decision.model_dump() == reference.model_dump()
    assert json.loads(decision.model_dump_json())["chosen_candidate_id"] == reference.chosen_candidate_id
