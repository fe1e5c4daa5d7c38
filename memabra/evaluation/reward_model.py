"""A reward model for the direct method and doubly robust estimates, fitted independently of the routers evaluated.

Each held-out decision's predicted rewards come from the project's learner fitted on the other folds of the held-out
traffic (cross-fitting), so no prediction has seen the reward it is checked against, and no router's own scores are
ever read: a router that scores itself optimistically cannot make its own estimate optimistic.
"""

from __future__ import annotations

import numpy as np

from memabra.learning.dataset import DatasetBuilder
from memabra.learning.train import train_router
from memabra.models import Trajectory

DEFAULT_FOLDS = 5
MIN_PER_FOLD = 10
"""Fewer held-out trajectories than this per fold lowers the number of folds (never below 2)."""


def fit_reward_model(trajectories: list[Trajectory]):
    """The project's learner fitted on these trajectories; its scores are predicted rewards."""
    return train_router(DatasetBuilder().stats(trajectories))


class CrossFittedRewardModel:
    """Predicted rewards for logged decisions: a trajectory in fold k is predicted by a model fitted on the other
    folds (seeded assignment); one not among the fitted trajectories by a model fitted on all of them."""

    def __init__(self, trajectories: list[Trajectory], folds: int = DEFAULT_FOLDS, seed: int = 0):
        self.trajectories = list(trajectories)
        count = len(self.trajectories)
        self.folds = max(2, min(folds, count // MIN_PER_FOLD)) if count >= 2 else 0
        order = np.random.default_rng(seed).permutation(count)
        self.fold_of = {self.trajectories[index].trajectory_id: position % self.folds if self.folds else 0
                        for position, index in enumerate(order)}
        rewards = [trajectory.outcome.reward for trajectory in self.trajectories]
        self.reward_range = (min(rewards), max(rewards)) if rewards else (0.0, 1.0)
        self._models: dict[int, object] = {}
        self._fitted_count = 0
        self._predicted: dict[tuple, np.ndarray] = {}

    def describe(self) -> str:
        """The model in words, as reports name it."""
        return (f"cross-fitted: the learner fitted on {self.folds} folds of the {len(self.trajectories)} held-out "
                "trajectories, each predicted by the folds it is not in (no router's own scores)")

    def model(self, fold: int | None):
        """The model fitted without `fold` (None: on every trajectory), fitted on first use."""
        key = -1 if fold is None else fold
        if key not in self._models:
            used = [trajectory for trajectory in self.trajectories
                    if fold is None or self.fold_of[trajectory.trajectory_id] != fold]
            self._models[key] = fit_reward_model(used)
            self._fitted_count += 1
        return self._models[key]

    def predictions(self, trajectories: list[Trajectory], width: int) -> np.ndarray:
        """Predicted reward of every offered candidate, one row per trajectory, padded with 0, clipped to the
        observed reward range (kept: comparing several routers on one log predicts it once)."""
        key = (tuple(trajectory.trajectory_id for trajectory in trajectories), width)
        if key not in self._predicted:
            self._predicted = {key: self._predict(trajectories, width)}
        return self._predicted[key].copy()

    def _predict(self, trajectories: list[Trajectory], width: int) -> np.ndarray:
        matrix = np.zeros((len(trajectories), width))
        low, high = self.reward_range
        for row, trajectory in enumerate(trajectories):
            fold = self.fold_of.get(trajectory.trajectory_id) if self.folds else None
            scores = self.model(fold).scores(trajectory.task, trajectory.candidates)
            matrix[row, :len(scores)] = np.clip(scores, low, high)
        return matrix
