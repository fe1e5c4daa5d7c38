"""The dataset stage: stored trajectories become the learner's additive statistics, one importance-weighted row per
logged decision, older rows counting less.

Decay is exact per trajectory and still additive per file: inside a file each row is weighted 0.5 ** (rows after it
in the file / half_life), and the scan scales each file's statistics by 0.5 ** (training trajectories in newer files
/ half_life), so every row ends up weighted by its age over the whole store.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from memabra.learning.learner_stats import LearnerStats, LearnerStatsBuilder
from memabra.learning.pair_features import LearnerConfig
from memabra.models import Trajectory
from memabra.settings import Settings

TrainingStats = LearnerStats
"""The statistics the dataset stage produces and the train stage fits."""


def decay_factor(age: float, half_life: float | None) -> float:
    """How much a row counts `age` trajectories after it was logged (1 with no half-life)."""
    return 1.0 if not half_life else 0.5 ** (age / half_life)


class DatasetBuilder:
    """Turns trajectories into training statistics under one learner configuration and half-life."""

    def __init__(self, config: LearnerConfig | None = None):
        self.config = config or LearnerConfig()
        self._builder = LearnerStatsBuilder(self.config)

    @property
    def half_life(self) -> float | None:
        return self.config.half_life

    def signature(self) -> dict[str, Any]:
        """What a file's statistics depend on, so cached ones are reused only when they still hold."""
        return {**self.config.statistics_signature(), "half_life": self.half_life}

    def ages_factors(self, ages: Sequence[float]) -> np.ndarray | None:
        """Each row's decay factor from its age in trajectories (None when nothing decays)."""
        if not self.half_life:
            return None
        return 0.5 ** (np.asarray(ages, dtype=np.float64) / self.half_life)

    def within_file_factors(self, count: int) -> np.ndarray | None:
        """Decay inside one file: its last row counts 1, each earlier one half as much per half-life."""
        return self.ages_factors(np.arange(count - 1, -1, -1)) if count else None

    def stats(self, trajectories: Sequence[Trajectory], ages: Sequence[float] | None = None) -> TrainingStats:
        """Statistics of the given trajectories, each row decayed by its age when ages are given."""
        factors = None if ages is None else self.ages_factors(ages)
        return self._builder.stats(trajectories, factors)

    def file_stats(self, trajectories: Sequence[Trajectory]) -> TrainingStats:
        """Statistics of one file's training trajectories (in file order), decayed within the file."""
        return self._builder.stats(trajectories, self.within_file_factors(len(trajectories)))

    def file_stats_of_documents(self, documents: Sequence[dict]) -> TrainingStats:
        """The same from validated plain documents (the fast path); equal to `file_stats` of the same runs."""
        return self._builder.stats_of_documents(documents, self.within_file_factors(len(documents)))

    def stats_of_documents(self, documents: Sequence[dict]) -> TrainingStats:
        """Undecayed statistics of validated plain documents; equal to `stats` of the same trajectories."""
        return self._builder.stats_of_documents(documents)


def learner_config(settings: Settings) -> LearnerConfig:
    """The learner configuration the settings name (half-life and optional metadata and payload features)."""
    return LearnerConfig(half_life=settings.half_life, metadata_words=tuple(settings.metadata_words),
                         metadata_features=tuple(settings.metadata_features),
                         payload_features=tuple(settings.payload_features))


def dataset_builder(settings: Settings) -> DatasetBuilder:
    """The dataset builder every scan of a store uses, so all of them share the store's cached statistics."""
    return DatasetBuilder(learner_config(settings))
