"""Stores for the guard's tests: a prior and a promoted version, and traffic the promoted one served."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from memabra.demo.world import DemoWorld
from memabra.learning.exploration import ExplorationPolicy
from memabra.learning.features import FeatureConfig
from memabra.learning.routers import HeuristicRouter, ScoringRouter, SimpleLearningRouter
from memabra.learning.versions import active_router
from memabra.models import CANDIDATE_KINDS, Outcome, Trajectory
from memabra.storage.store import Store
from memabra.storage.trajectories import TrajectoryWriter

START = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)


def anti_heuristic() -> SimpleLearningRouter:
    """A learned router that picks the candidate with the lowest retrieval score (the heuristic's opposite)."""
    config = FeatureConfig()
    weights = np.zeros((len(CANDIDATE_KINDS), config.block_size))
    weights[:, config.bias_column + 1] = -1.0
    return SimpleLearningRouter(weights, config)


def promoted_store(base: Path, promoted: ScoringRouter, prior: ScoringRouter, *, with_prior: bool = True,
                   later: timedelta = timedelta(minutes=1)) -> Store:
    """A store whose active version `promoted` was created and promoted `later` than `prior` (its
    current.prior_version_id)."""
    store = Store(base)
    prior_version = store.versions.save(prior, now=START)
    if with_prior:
        store.versions.promote(prior_version, now=START)
    promoted_version = store.versions.save(promoted, now=START + later)
    store.versions.promote(promoted_version, now=START + later)
    return store


def serve(base: Path, count: int, *, failing: bool, seed: int = 0, epsilon: float = 0.2) -> None:
    """Traffic served epsilon-greedy by the active version; `failing`: its own picks fail and every other pick
    succeeds, otherwise the demo world decides."""
    store = Store(base)
    router = active_router(store.versions)
    world, rng = DemoWorld(seed), random.Random(seed)
    exploration = ExplorationPolicy("epsilon_greedy", epsilon=epsilon)
    with TrajectoryWriter(base) as writer:
        for _ in range(count):
            task = world.sample_task(rng)
            candidates = world.candidates(task)
            scores = router.scores(task, candidates)
            decision = exploration.decide(candidates, scores, rng, router.version_id)
            index = [c.candidate_id for c in candidates].index(decision.chosen_candidate_id)
            if failing:
                outcome = (Outcome(reward=0.0, latency_ms=80.0, error="the promoted pick failed")
                           if index == int(np.argmax(scores)) else Outcome(reward=1.0, latency_ms=80.0))
            else:
                outcome = world.execute(task, candidates[index])
            writer.append(Trajectory(task=task, candidates=candidates, decision=decision, outcome=outcome))


def bad_promotion(base: Path, served: int, seed: int = 0) -> Store:
    """The acceptance case: the promoted version's picks always fail, every other pick succeeds."""
    store = promoted_store(base, anti_heuristic(), HeuristicRouter())
    serve(base, served, failing=True, seed=seed)
    return store


def honest_promotion(base: Path, served: int, seed: int = 0) -> Store:
    """An honest case: the heuristic promoted over the worse anti-heuristic, the demo world deciding rewards."""
    store = promoted_store(base, HeuristicRouter(), anti_heuristic())
    serve(base, served, failing=False, seed=seed)
    return store
