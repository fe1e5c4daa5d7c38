"""The train stage: fit the challenger from the dataset's statistics (the hierarchical ridge learner)."""

from __future__ import annotations

from memabra.learning.dataset import TrainingStats
from memabra.learning.hierarchical import HierarchicalRouter, train
from memabra.learning.pair_features import LearnerConfig


def train_router(stats: TrainingStats, config: LearnerConfig | None = None) -> HierarchicalRouter:
    """Fit the challenger router from training statistics."""
    return train(stats, config)
