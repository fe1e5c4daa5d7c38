"""The train stage: fit the challenger from the dataset's statistics (ridge regression per candidate kind)."""

from __future__ import annotations

import numpy as np

from memabra.learning.dataset import TrainingStats
from memabra.learning.features import FeatureConfig
from memabra.learning.routers import SimpleLearningRouter
from memabra.learning.threads import single_threaded_blas


def ridge_weights(stats: TrainingStats, l2: float = 1.0) -> np.ndarray:
    """Ridge weights per kind, shrunk towards predicting the overall mean reward."""
    mean_reward = stats.reward_sum / stats.weight_sum if stats.weight_sum > 0 else 0.0
    kinds, size = stats.moment.shape
    prior = np.zeros(size)
    bias_column = size - 3
    prior[bias_column] = mean_reward
    weights = np.empty((kinds, size))
    identity = np.eye(size)
    with single_threaded_blas():
        for kind in range(kinds):
            weights[kind] = np.linalg.solve(stats.gram[kind] + l2 * identity, stats.moment[kind] + l2 * prior)
    return weights


def train_router(stats: TrainingStats, config: FeatureConfig | None = None, l2: float = 1.0) -> SimpleLearningRouter:
    """Fit the challenger router from training statistics."""
    return SimpleLearningRouter(ridge_weights(stats, l2), config)
