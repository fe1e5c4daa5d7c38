"""Features of a (task, candidate) pair, crossed with the candidate's kind so a score can depend on the task."""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from memabra.models import CANDIDATE_KINDS, Candidate

KIND_INDEX = {kind: index for index, kind in enumerate(CANDIDATE_KINDS)}
"""Kind name to weight block; a CandidateKind member finds its block too (a str enum hashes as its value)."""
_TOKEN = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class FeatureConfig:
    """Sizes of the hashed feature spaces; one block of `block_size` weights per candidate kind."""

    task_buckets: int = 128
    name_buckets: int = 16

    @property
    def block_size(self) -> int:
        # task buckets, name buckets, then bias, retrieval score, episodic hint reward
        return self.task_buckets + self.name_buckets + 3

    @property
    def bias_column(self) -> int:
        return self.task_buckets + self.name_buckets

    def to_dict(self) -> dict:
        return {"task_buckets": self.task_buckets, "name_buckets": self.name_buckets}


def _bucket(token: str, buckets: int) -> int:
    return zlib.crc32(token.encode()) % buckets


@lru_cache(maxsize=200_000)
def _hashed_tokens(text: str, buckets: int) -> tuple[tuple[int, ...], float]:
    """Unique hash buckets of a text's lowercase tokens and the value each gets (unit norm)."""
    indices = tuple(sorted({_bucket(token, buckets) for token in _TOKEN.findall(text.lower())}))
    return indices, (1.0 / math.sqrt(len(indices)) if indices else 0.0)


class Featurizer:
    """Turns (task, candidate) into (kind index, column indices, values) inside that kind's weight block."""

    def __init__(self, config: FeatureConfig | None = None):
        self.config = config or FeatureConfig()

    def task_features(self, text: str) -> tuple[tuple[int, ...], float]:
        return _hashed_tokens(text, self.config.task_buckets)

    def candidate_columns(self, candidate: Candidate) -> tuple[list[int], list[float]]:
        """Columns and values of the candidate's own features (name, bias, score, hint)."""
        config = self.config
        name_indices, name_value = _hashed_tokens(candidate.name, config.name_buckets)
        columns = [config.task_buckets + index for index in name_indices]
        values = [name_value] * len(name_indices)
        columns += [config.bias_column, config.bias_column + 1, config.bias_column + 2]
        values += [1.0, float(candidate.score), hint_value(candidate)]
        return columns, values

    def distinct_task_rows(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Each text's row number, and one row of task features per distinct text (each hashed once)."""
        return _distinct_token_rows(texts, self.config.task_buckets)

    def candidate_rows(self, names: list[str], scores: list[float], hints: list[float]) -> np.ndarray:
        """Dense candidate-feature rows (name buckets, bias, score, hint), the columns after the task block."""
        config = self.config
        name_of_row, name_matrix = _distinct_token_rows(names, config.name_buckets)
        rows = np.empty((len(names), config.name_buckets + 3))
        rows[:, :config.name_buckets] = name_matrix[name_of_row]
        rows[:, config.name_buckets] = 1.0
        rows[:, config.name_buckets + 1] = scores
        rows[:, config.name_buckets + 2] = hints
        return rows


def hint_value(candidate: Candidate) -> float:
    """The reward an episodic hint reports (0 for every other candidate)."""
    return hint_reward(candidate.payload)


def hint_reward(payload: dict | None) -> float:
    """The `hint_reward` of a candidate's payload, 0 when absent or not a number."""
    hint = payload.get("hint_reward", 0.0) if payload else 0.0
    return float(hint) if isinstance(hint, (int, float)) else 0.0


def _distinct_token_rows(texts: list[str], buckets: int) -> tuple[np.ndarray, np.ndarray]:
    """Each text's row number and one hashed token row per distinct text."""
    positions: dict[str, int] = {}
    index = np.fromiter((positions.setdefault(text, len(positions)) for text in texts), dtype=np.int64,
                        count=len(texts))
    matrix = np.zeros((len(positions), buckets))
    for text, row in positions.items():
        indices, value = _hashed_tokens(text, buckets)
        matrix[row, list(indices)] = value
    return index, matrix
