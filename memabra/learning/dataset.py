"""From stored trajectories to training data: ArtifactIndex finds them, DatasetBuilder turns them into statistics."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from memabra.learning.features import FeatureConfig, Featurizer
from memabra.learning.routers import SimpleLearningRouter
from memabra.models import CANDIDATE_KINDS, Trajectory
from memabra.storage.trajectories import InvalidTrajectory, TrajectoryStore

MAX_IMPORTANCE_WEIGHT = 50.0
"""Importance weights 1/propensity are clipped here so one unlikely pick cannot dominate training."""


@dataclass
class ArtifactIndex:
    """What the store holds for training: valid non-benchmark trajectories, refused ones, and which are unseen."""

    training: list[Trajectory]
    invalid: list[InvalidTrajectory]
    benchmark_count: int
    files: list[str]
    unseen_ids: list[str] = field(default_factory=list)

    @classmethod
    def scan(cls, base_dir: Path, seen_ids: set[str], on_file=None) -> "ArtifactIndex":
        """Read every trajectory file once; `on_file(done, total)` reports progress."""
        store = TrajectoryStore(base_dir)
        files = store.files()
        training: list[Trajectory] = []
        invalid: list[InvalidTrajectory] = []
        benchmark_count = 0
        known: set[str] = set()
        for done, item in enumerate(files, start=1):
            batch = store.read_batch(item)
            invalid.extend(batch.invalid)
            for trajectory in batch.trajectories:
                if trajectory.trajectory_id in known:
                    continue
                known.add(trajectory.trajectory_id)
                if trajectory.is_benchmark:
                    benchmark_count += 1
                else:
                    training.append(trajectory)
            if on_file:
                on_file(done, len(files))
        unseen = [t.trajectory_id for t in training if t.trajectory_id not in seen_ids]
        return cls(training, invalid, benchmark_count, [item.key for item in files], unseen)


@dataclass
class TrainingStats:
    """Sufficient statistics of an importance-weighted ridge regression per candidate kind.

    Adding the statistics of two batches equals computing them on their union, so training can extend them.
    """

    gram: np.ndarray
    moment: np.ndarray
    kind_counts: np.ndarray
    reward_sum: float = 0.0
    weight_sum: float = 0.0
    count: int = 0

    @classmethod
    def zeros(cls, config: FeatureConfig) -> "TrainingStats":
        kinds, size = len(CANDIDATE_KINDS), config.block_size
        return cls(np.zeros((kinds, size, size)), np.zeros((kinds, size)), np.zeros(kinds, dtype=np.int64))

    def add(self, other: "TrainingStats") -> None:
        """Fold another batch's statistics into these."""
        self.gram += other.gram
        self.moment += other.moment
        self.kind_counts += other.kind_counts
        self.reward_sum += other.reward_sum
        self.weight_sum += other.weight_sum
        self.count += other.count

    def solve(self, l2: float = 1.0) -> np.ndarray:
        """Ridge weights per kind, shrunk towards predicting the overall mean reward."""
        mean_reward = self.reward_sum / self.weight_sum if self.weight_sum > 0 else 0.0
        kinds, size = self.moment.shape
        prior = np.zeros(size)
        bias_column = size - 3
        prior[bias_column] = mean_reward
        weights = np.empty((kinds, size))
        identity = np.eye(size)
        for kind in range(kinds):
            weights[kind] = np.linalg.solve(self.gram[kind] + l2 * identity, self.moment[kind] + l2 * prior)
        return weights


class DatasetBuilder:
    """Turns trajectories into training statistics: one importance-weighted row per logged decision."""

    def __init__(self, config: FeatureConfig | None = None, max_importance_weight: float = MAX_IMPORTANCE_WEIGHT):
        self.config = config or FeatureConfig()
        self.featurizer = Featurizer(self.config)
        self.max_importance_weight = max_importance_weight

    def importance_weight(self, trajectory: Trajectory) -> float:
        """1/propensity of the logged pick, clipped; 1 when no propensity was recorded."""
        propensity = trajectory.decision.propensity
        if not propensity:
            return 1.0
        return min(1.0 / propensity, self.max_importance_weight)

    def stats(self, trajectories: list[Trajectory]) -> TrainingStats:
        """Sufficient statistics of the given trajectories."""
        stats = TrainingStats.zeros(self.config)
        if not trajectories:
            return stats
        pairs = [self.featurizer.pair(t.task.text, t.chosen) for t in trajectories]
        kinds, rows = self.featurizer.dense_rows(pairs)
        rewards = np.fromiter((t.outcome.reward for t in trajectories), dtype=np.float64, count=len(trajectories))
        weights = np.fromiter((self.importance_weight(t) for t in trajectories), dtype=np.float64,
                              count=len(trajectories))
        for kind in range(len(CANDIDATE_KINDS)):
            mask = kinds == kind
            if not mask.any():
                continue
            kind_rows, kind_weights = rows[mask], weights[mask]
            weighted = kind_rows * kind_weights[:, None]
            stats.gram[kind] += weighted.T @ kind_rows
            stats.moment[kind] += weighted.T @ rewards[mask]
            stats.kind_counts[kind] += int(mask.sum())
        stats.reward_sum = float(weights @ rewards)
        stats.weight_sum = float(weights.sum())
        stats.count = len(trajectories)
        return stats

    def train(self, stats: TrainingStats, l2: float = 1.0) -> SimpleLearningRouter:
        """Fit a SimpleLearningRouter from statistics."""
        return SimpleLearningRouter(stats.solve(l2), self.config)
