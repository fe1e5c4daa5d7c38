"""The dataset stage: stored trajectories become additive training statistics, one importance-weighted row per
logged decision."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from memabra.learning.features import KIND_INDEX, FeatureConfig, Featurizer, hint_reward, hint_value
from memabra.learning.threads import single_threaded_blas
from memabra.models import CANDIDATE_KINDS, Trajectory

MAX_IMPORTANCE_WEIGHT = 50.0
"""Importance weights 1/propensity are clipped here so one unlikely pick cannot dominate training."""


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

    def subtract(self, other: "TrainingStats") -> None:
        """Take a subset's statistics back out (the inverse of `add`)."""
        self.gram -= other.gram
        self.moment -= other.moment
        self.kind_counts -= other.kind_counts
        self.reward_sum -= other.reward_sum
        self.weight_sum -= other.weight_sum
        self.count -= other.count

def _chosen_document(document: dict) -> dict:
    chosen_id = document["decision"]["chosen_candidate_id"]
    for candidate in document["candidates"]:
        if candidate["candidate_id"] == chosen_id:
            return candidate
    raise LookupError(chosen_id)  # unreachable after validation


class DatasetBuilder:
    """Turns trajectories into training statistics: one importance-weighted row per logged decision."""

    def __init__(self, config: FeatureConfig | None = None, max_importance_weight: float = MAX_IMPORTANCE_WEIGHT):
        self.config = config or FeatureConfig()
        self.featurizer = Featurizer(self.config)
        self.max_importance_weight = max_importance_weight

    def stats(self, trajectories: list[Trajectory]) -> TrainingStats:
        """Sufficient statistics of the given trajectories."""
        chosen = [trajectory.chosen for trajectory in trajectories]
        return self._stats(
            texts=[trajectory.task.text for trajectory in trajectories],
            names=[candidate.name for candidate in chosen],
            kinds=[candidate.kind for candidate in chosen],
            scores=[candidate.score for candidate in chosen],
            hints=[hint_value(candidate) if candidate.payload else 0.0 for candidate in chosen],
            rewards=[trajectory.outcome.reward for trajectory in trajectories],
            propensities=[trajectory.decision.propensity for trajectory in trajectories],
        )

    def stats_of_documents(self, documents: list[dict]) -> TrainingStats:
        """Sufficient statistics of trajectories given as validated plain documents (missing fields take the
        model's defaults); equal to stats() of the same trajectories."""
        chosen = [_chosen_document(document) for document in documents]
        return self._stats(
            texts=[document["task"]["text"] for document in documents],
            names=[candidate.get("name", "") for candidate in chosen],
            kinds=[candidate["kind"] for candidate in chosen],
            scores=[candidate.get("score", 0.0) for candidate in chosen],
            hints=[hint_reward(payload) if (payload := candidate.get("payload")) else 0.0 for candidate in chosen],
            rewards=[document["outcome"]["reward"] for document in documents],
            propensities=[document["decision"].get("propensity") for document in documents],
        )

    def _stats(self, texts, names, kinds, scores, hints, rewards, propensities) -> TrainingStats:
        stats = TrainingStats.zeros(self.config)
        if not texts:
            return stats
        # Importance weight: 1/propensity of the logged pick, clipped; 1 when no propensity was recorded.
        propensity = np.array([value or 0.0 for value in propensities], dtype=np.float64)
        inverse = np.divide(1.0, propensity, out=np.ones_like(propensity), where=propensity > 0)
        weight_of_row = np.where(propensity > 0, np.minimum(inverse, self.max_importance_weight), 1.0)
        kinds = [KIND_INDEX[kind] for kind in kinds]
        text_of_row, text_matrix = self.featurizer.distinct_task_rows(texts)
        candidate_rows = self.featurizer.candidate_rows(names, scores, hints)
        kind_of_row = np.array(kinds, dtype=np.int64)
        reward_of_row = np.array(rewards, dtype=np.float64)
        task_size = self.config.task_buckets
        with single_threaded_blas():
            for kind in range(len(CANDIDATE_KINDS)):
                mask = kind_of_row == kind
                if not mask.any():
                    continue
                weight, text, candidate = weight_of_row[mask], text_of_row[mask], candidate_rows[mask]
                weighted_reward = weight * reward_of_row[mask]
                # Task features repeat per distinct text: sum the weights per text before multiplying.
                text_weight = np.bincount(text, weights=weight, minlength=len(text_matrix))
                task_rows = text_matrix[text]
                gram, moment = stats.gram[kind], stats.moment[kind]
                gram[:task_size, :task_size] += text_matrix.T @ (text_weight[:, None] * text_matrix)
                cross = (task_rows * weight[:, None]).T @ candidate
                gram[:task_size, task_size:] += cross
                gram[task_size:, :task_size] += cross.T
                gram[task_size:, task_size:] += (candidate * weight[:, None]).T @ candidate
                moment[:task_size] += text_matrix.T @ np.bincount(text, weights=weighted_reward,
                                                                  minlength=len(text_matrix))
                moment[task_size:] += candidate.T @ weighted_reward
                stats.kind_counts[kind] += int(mask.sum())
        stats.reward_sum = float(weight_of_row @ reward_of_row)
        stats.weight_sum = float(weight_of_row.sum())
        stats.count = len(texts)
        return stats
