"""The hierarchical learner's levels are fitted jointly: the exact posterior mode of identity, kind and global weights,
so an identity's own habits stay with it instead of setting what its kind (and so an unlogged sibling) is expected to do."""

from __future__ import annotations

import random

import numpy as np
import pytest

from memabra.learning.hierarchical import _identity_penalty, _penalty, prior_weights, train
from memabra.learning.learner_stats import LearnerStatsBuilder
from memabra.learning.pair_features import LearnerConfig
from memabra.models import CANDIDATE_KINDS, Candidate, Decision, Outcome, Task, Trajectory

CONFIG = LearnerConfig(task_buckets=8, id_buckets=4, noise_reference=0.0, half_life=None)
TEXTS = ("refund my order", "where is my parcel", "reset my password", "invoice looks wrong")


def _logs(picks: dict[tuple[str, str], tuple[int, float]], seed: int = 1) -> list[Trajectory]:
    """`count` logged picks of each (kind, name) with reward `reward`, on random texts, the pick scored 0.5."""
    rng = random.Random(seed)
    trajectories = []
    for (kind, name), (count, reward) in picks.items():
        for index in range(count):
            chosen = Candidate(candidate_id=f"{kind}:{name}", kind=kind, name=name, score=0.5)
            other = Candidate(candidate_id="direct:answer", kind="direct", name="answer", score=0.6)
            trajectories.append(Trajectory(
                task=Task(task_id=f"{name}-{index}", text=rng.choice(TEXTS)), candidates=[chosen, other],
                decision=Decision(chosen_candidate_id=chosen.candidate_id, propensity=0.5),
                outcome=Outcome(reward=round(reward + rng.uniform(-0.1, 0.1), 4), latency_ms=1.0)))
    return trajectories


def _joint_reference(stats, config: LearnerConfig) -> np.ndarray:
    """Global, kind and identity weights from one stacked system: every level's weights minimise the weighted squared
    error of the identities' rows plus each level's shrinkage towards its parent."""
    size, keys = config.size, stats.keys.tolist()
    kinds = sorted({key // config.id_buckets for key in keys})
    blocks = 1 + len(kinds) + len(keys)
    hessian, gradient = np.zeros((blocks * size, blocks * size)), np.zeros(blocks * size)

    def at(block: int) -> slice:
        return slice(block * size, (block + 1) * size)

    def pull(child: int, parent: int | None, l2: np.ndarray, target: np.ndarray | None = None) -> None:
        hessian[at(child), at(child)] += np.diag(l2)
        if parent is None:
            gradient[at(child)] += l2 * target
        else:
            hessian[at(parent), at(parent)] += np.diag(l2)
            hessian[at(child), at(parent)] -= np.diag(l2)
            hessian[at(parent), at(child)] -= np.diag(l2)

    pull(0, None, _penalty(config, config.l2_global), prior_weights(config, *stats.reward_scale()))
    for index, kind in enumerate(kinds, 1):
        pull(index, 0, _penalty(config, config.l2_kind))
    for index, key in enumerate(keys):
        block = 1 + len(kinds) + index
        hessian[at(block), at(block)] += stats.gram[index]
        gradient[at(block)] += stats.moment[index]
        pull(block, 1 + kinds.index(key // config.id_buckets), _identity_penalty(config))
    return np.linalg.solve(hessian, gradient).reshape(blocks, size), kinds


def test_the_three_levels_are_the_joint_posterior_mode():
    defaults = _identity_penalty(LearnerConfig(task_buckets=4))  # an identity's words pulled weakly, the rest firmly
    np.testing.assert_allclose(defaults, [0.6] * 4 + [5.0] * 7)
    logs = _logs({("tool", "billing console"): (40, 0.9), ("tool", "order lookup"): (6, 0.2),
                  ("memory", "policy notes"): (15, 0.7), ("memory", "past cases"): (3, 0.4),
                  ("skill", "refund flow"): (10, 0.5)})
    stats = LearnerStatsBuilder(CONFIG).stats(logs)
    router = train(stats)
    reference, kinds = _joint_reference(stats, CONFIG)
    np.testing.assert_allclose(router.global_weights, reference[0], atol=1e-9)
    np.testing.assert_allclose(router.kind_weights[kinds], reference[1:1 + len(kinds)], atol=1e-9)
    np.testing.assert_allclose(router.id_weights, reference[1 + len(kinds):], atol=1e-9)
    untouched = [index for index in range(len(CANDIDATE_KINDS)) if index not in kinds]
    np.testing.assert_allclose(router.kind_weights[untouched], np.tile(reference[0], (len(untouched), 1)))


def test_a_much_logged_identity_does_not_set_what_an_unlogged_sibling_is_expected_to_do():
    # One tool logged 300 times at reward 0.9, another 30 times at 0.2: a third, never logged, tool is expected to be
    # about as good as the kind's tools on average, not as good as the one that happens to be logged most.
    stats = LearnerStatsBuilder(CONFIG).stats(_logs({("tool", "billing console"): (300, 0.9),
                                                     ("tool", "order lookup"): (30, 0.2)}))
    router = train(stats)
    task = Task(task_id="new", text="refund my order")
    offer = [Candidate(candidate_id=f"tool:{name}", kind="tool", name=name, score=0.5)
             for name in ("billing console", "order lookup", "shipping tracker")]
    busy, rare, unlogged = router.scores(task, offer)
    assert busy == pytest.approx(0.83, abs=0.03)
    assert rare == pytest.approx(0.28, abs=0.03)
    # fitted level by level (the kind on all its rows first) the unlogged tool came out at 0.75, near the busy one
    assert unlogged == pytest.approx(0.52, abs=0.04)
