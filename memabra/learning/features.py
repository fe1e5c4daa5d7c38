"""Features of a (task, candidate) pair, crossed with the candidate's kind so a score can depend on the task."""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from memabra.models import CANDIDATE_KINDS, Candidate, Task

KIND_INDEX = {kind: index for index, kind in enumerate(CANDIDATE_KINDS)}
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
        hint = candidate.payload.get("hint_reward", 0.0) if candidate.payload else 0.0
        columns += [config.bias_column, config.bias_column + 1, config.bias_column + 2]
        values += [1.0, float(candidate.score), float(hint) if isinstance(hint, (int, float)) else 0.0]
        return columns, values

    def pair(self, task_text: str, candidate: Candidate) -> tuple[int, list[int], list[float]]:
        """The pair's kind index and sparse feature columns/values inside that kind's block."""
        task_indices, task_value = self.task_features(task_text)
        columns, values = self.candidate_columns(candidate)
        return (
            KIND_INDEX[candidate.kind.value],
            list(task_indices) + columns,
            [task_value] * len(task_indices) + values,
        )

    def dense_rows(self, pairs: list[tuple[int, list[int], list[float]]]) -> tuple[np.ndarray, np.ndarray]:
        """Stack sparse pairs into (kind indices, dense block rows)."""
        kinds = np.fromiter((kind for kind, _, _ in pairs), dtype=np.int64, count=len(pairs))
        rows = np.zeros((len(pairs), self.config.block_size), dtype=np.float64)
        row_index = np.repeat(np.arange(len(pairs)), [len(columns) for _, columns, _ in pairs])
        columns = np.fromiter((c for _, cols, _ in pairs for c in cols), dtype=np.int64, count=len(row_index))
        values = np.fromiter((v for _, _, vals in pairs for v in vals), dtype=np.float64, count=len(row_index))
        rows[row_index, columns] = values
        return kinds, rows
