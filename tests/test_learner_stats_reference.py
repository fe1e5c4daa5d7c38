"""The batch statistics builder against a row-by-row reference: the same sums, and so the same trained router."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest

from memabra.learning.hierarchical import train
from memabra.learning.learner_stats import LearnerStats, LearnerStatsBuilder
from memabra.learning.pair_features import (
    LearnerConfig, hint_of, identity_key, numeric, overlap, task_features,
)
from memabra.models import Candidate, Decision, Outcome, Task, Trajectory

WORDS = ("refund", "parcel", "invoice", "late", "broken", "account", "password", "order", "where", "help")
NAMES = ("billing console", "shipping tracker", "refund desk", "faq search", "quick answer", "ask the user")
KINDS = ("tool", "tool", "tool", "memory", "direct", "clarify")
CHANNEL_VALUES = ("chat", "email", True, 1, 1.0, None, ["not", "hashable"])


def _trajectories(count: int, seed: int) -> list[Trajectory]:
    """Varied logs: repeated and unique texts, odd metadata values, missing payloads and propensities."""
    rng = random.Random(seed)
    trajectories = []
    for index in range(count):
        words = rng.sample(WORDS, rng.randint(0, 4))
        text = " ".join(words) + (f" case {index}" if rng.random() < 0.3 else "") or "?"
        metadata = {"channel": rng.choice(CHANNEL_VALUES), "priority": rng.choice([1, 2.5, "high", None, True])}
        offered = rng.sample(range(len(NAMES)), rng.randint(1, 5))
        candidates = []
        for position in offered:
            payload = rng.choice([{}, {"cost": rng.uniform(0, 1)}, {"cost": float("nan"), "hint_reward": 0.4},
                                  {"hint_reward": rng.uniform(0, 1), "cost": "cheap"}])
            candidates.append(Candidate(candidate_id=f"c{position}", kind=KINDS[position], name=NAMES[position],
                                        score=round(rng.uniform(0, 1), 2), payload=payload))
        chosen = rng.choice(candidates)
        propensity = rng.choice([None, 0.05, 0.5, 1.0])
        trajectories.append(Trajectory(
            task=Task(task_id=f"t{index}", text=text, metadata=metadata), candidates=candidates,
            decision=Decision(chosen_candidate_id=chosen.candidate_id, propensity=propensity),
            outcome=Outcome(reward=rng.uniform(-1, 1), latency_ms=1.0)))
    return trajectories


def _reference(trajectories: list[Trajectory], config: LearnerConfig, factors) -> LearnerStats:
    """Each trajectory's feature row written out in full, summed one row at a time."""
    size, sums = config.size, {}
    for trajectory, factor in zip(trajectories, factors):
        task = trajectory.task
        chosen = next(c for c in trajectory.candidates if c.candidate_id == trajectory.decision.chosen_candidate_id)
        offered = [candidate.score for candidate in trajectory.candidates]
        indices, value, tokens = task_features(task.text, task.metadata, config)
        row = np.zeros(size)
        row[list(indices)] = value
        if config.score_cross:
            row[config.task_buckets:2 * config.task_buckets] = row[:config.task_buckets] * chosen.score
        higher = sum(score > chosen.score for score in offered)
        dense = [1.0, chosen.score, chosen.score - max(offered), float(higher == 0),
                 higher / (len(offered) - 1) if len(offered) > 1 else 0.0, hint_of(chosen.payload),
                 overlap(tokens, chosen.name)]
        dense += [numeric(task.metadata, key) for key in config.metadata_features]
        dense += [numeric(chosen.payload, key) for key in config.payload_features]
        row[config.dense_start:] = dense
        propensity = trajectory.decision.propensity
        weight = (min(1 / propensity, config.max_importance_weight) ** config.importance_power
                  if propensity else 1.0) * factor
        reward = trajectory.outcome.reward
        key = identity_key(chosen.kind.value, chosen.name, config.id_buckets)
        gram, moment, total = sums.setdefault(key, [np.zeros((size, size)), np.zeros(size), [0.0, 0.0, 0]])
        gram += weight * np.outer(row, row)
        moment += weight * reward * row
        total[0] += weight
        total[1] += weight * reward * reward
        total[2] += 1
    keys = sorted(sums)
    return LearnerStats(config, np.array(keys, dtype=np.int64), np.array([sums[k][0] for k in keys]),
                        np.array([sums[k][1] for k in keys]), np.array([sums[k][2][0] for k in keys]),
                        np.array([sums[k][2][1] for k in keys]), np.array([sums[k][2][2] for k in keys]),
                        len(trajectories), min(t.outcome.reward for t in trajectories),
                        max(t.outcome.reward for t in trajectories))


def _assert_equal(built: LearnerStats, expected: LearnerStats) -> None:
    assert (built.count, built.reward_low, built.reward_high) == (expected.count, expected.reward_low,
                                                                  expected.reward_high)
    np.testing.assert_array_equal(built.keys, expected.keys)
    np.testing.assert_array_equal(built.rows, expected.rows)
    for name in ("gram", "moment", "weight", "square"):
        np.testing.assert_allclose(getattr(built, name), getattr(expected, name), rtol=0, atol=1e-9, err_msg=name)


@pytest.mark.parametrize("config", [
    LearnerConfig(task_buckets=16, id_buckets=4, metadata_words=("channel",), metadata_features=("priority",),
                  payload_features=("cost",)),
    LearnerConfig(task_buckets=8, id_buckets=2, score_cross=True, importance_power=0.5),
    LearnerConfig(task_buckets=32, id_buckets=64, metadata_features=("priority", "channel")),
], ids=["metadata-and-payload", "score-cross", "plain"])
def test_batch_statistics_equal_the_row_by_row_sums_and_train_the_same_router(config):
    trajectories = _trajectories(400, seed=len(config.metadata_words) + config.task_buckets)
    factors = 0.5 ** (np.arange(len(trajectories) - 1, -1, -1) / 150)
    expected = _reference(trajectories, config, factors)
    builder = LearnerStatsBuilder(config)
    from_models = builder.stats(trajectories, factors)
    documents = [json.loads(trajectory.model_dump_json()) for trajectory in trajectories]
    from_documents = builder.stats_of_documents(documents, factors)
    _assert_equal(from_models, expected)
    _assert_equal(from_documents, expected)
    assert len(expected.keys) > 1 and not math.isclose(float(expected.gram.sum()), 0.0)
    np.testing.assert_allclose(train(from_documents).weights, train(expected).weights, rtol=0, atol=1e-9)


def test_one_trajectory_and_none_build_like_the_reference():
    config = LearnerConfig(task_buckets=16, id_buckets=4, metadata_words=("channel",))
    single = _trajectories(1, seed=5)
    _assert_equal(LearnerStatsBuilder(config).stats(single), _reference(single, config, [1.0]))
    empty = LearnerStatsBuilder(config).stats_of_documents([])
    assert empty.count == 0 and len(empty.keys) == 0 and empty.reward_scale() == (0.0, 1.0)
