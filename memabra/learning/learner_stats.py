"""Additive statistics of the hierarchical learner: one weighted ridge system per candidate identity bucket.

Per identity bucket (kind + hashed name) they hold G = sum w x x^T, m = sum w x r, the weight sum and the row count;
a kind's and the global system are sums of these, so nothing else is stored. Statistics of two batches add up to
the statistics of their union, and `scaled` decays a segment's evidence without changing that.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import orjson

from memabra.learning.pair_features import KIND_INDEX, LearnerConfig
from memabra.learning.stats_columns import BatchColumns, columns_of_documents, columns_of_trajectories
from memabra.learning.stats_rows import accumulate
from memabra.models import CANDIDATE_KINDS, Trajectory
from memabra.storage.trajectories import gc_paused

STATS_FORMAT = 3
"""Bumped whenever what the arrays hold changes, so older caches are refused."""


@dataclass
class LearnerStats:
    """Weighted ridge statistics per identity bucket, keys sorted; `count` is the number of trajectories."""

    config: LearnerConfig
    keys: np.ndarray
    gram: np.ndarray
    moment: np.ndarray
    weight: np.ndarray
    square: np.ndarray
    """Per identity bucket, sum w r^2: with G and m it gives any weights' residual sum of squares."""
    rows: np.ndarray
    count: int = 0
    reward_low: float = math.inf
    reward_high: float = -math.inf
    """The lowest and highest reward among the rows (a subtraction keeps them, so they may then be wider)."""

    @classmethod
    def zeros(cls, config: LearnerConfig) -> "LearnerStats":
        size = config.size
        return cls(config, np.zeros(0, dtype=np.int64), np.zeros((0, size, size)), np.zeros((0, size)),
                   np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64), 0)

    def _check_compatible(self, other: "LearnerStats") -> None:
        if self.config.statistics_signature() != other.config.statistics_signature():
            raise ValueError("learner statistics built with different feature settings cannot be combined; "
                             "rebuild them with one configuration")

    def _combine(self, other: "LearnerStats", sign: float) -> "LearnerStats":
        self._check_compatible(other)
        keys = np.union1d(self.keys, other.keys)
        size = self.config.size
        gram, moment = np.zeros((len(keys), size, size)), np.zeros((len(keys), size))
        weight, square, rows = np.zeros(len(keys)), np.zeros(len(keys)), np.zeros(len(keys), dtype=np.int64)
        for source, factor in ((self, 1.0), (other, sign)):
            at = np.searchsorted(keys, source.keys)
            gram[at] += factor * source.gram
            moment[at] += factor * source.moment
            weight[at] += factor * source.weight
            square[at] += factor * source.square
            rows[at] += int(factor) * source.rows
        kept = rows != 0
        self.keys, self.gram, self.moment = keys[kept], gram[kept], moment[kept]
        self.weight, self.square, self.rows = weight[kept], square[kept], rows[kept]
        self.count += int(sign) * other.count
        if sign > 0:
            self.reward_low = min(self.reward_low, other.reward_low)
            self.reward_high = max(self.reward_high, other.reward_high)
        return self

    def add(self, other: "LearnerStats") -> "LearnerStats":
        """Fold another batch's statistics into these (in place; returns self)."""
        return self._combine(other, 1.0)

    def subtract(self, other: "LearnerStats") -> "LearnerStats":
        """Take a subset's statistics back out, the inverse of `add` (in place; returns self)."""
        return self._combine(other, -1.0)

    def scaled(self, factor: float) -> "LearnerStats":
        """A copy whose evidence counts `factor` times as much (decay); row and trajectory counts are unchanged."""
        if not (factor >= 0 and np.isfinite(factor)):
            raise ValueError(f"decay factor must be a finite number >= 0, got {factor!r}")
        return LearnerStats(self.config, self.keys.copy(), self.gram * factor, self.moment * factor,
                            self.weight * factor, self.square * factor, self.rows.copy(), self.count,
                            self.reward_low, self.reward_high)

    def copy(self) -> "LearnerStats":
        return self.scaled(1.0)

    def reward_scale(self) -> tuple[float, float]:
        """The rewards' lowest value and their span (highest - lowest); (0, 1) without rows or with one reward."""
        span = self.reward_high - self.reward_low
        return (self.reward_low, span) if span > 0 else (0.0, 1.0)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain numpy arrays (for `np.savez`), the small JSON meta among them as bytes."""
        meta = {"format": STATS_FORMAT, "count": self.count, "signature": self.config.statistics_signature()}
        reward_range = [self.reward_low, self.reward_high] if self.reward_low <= self.reward_high else []
        return {"keys": self.keys, "gram": self.gram, "moment": self.moment, "weight": self.weight,
                "square": self.square, "rows": self.rows, "reward_range": np.array(reward_range, dtype=np.float64),
                "meta": np.frombuffer(orjson.dumps(meta), dtype=np.uint8)}

    @classmethod
    def from_arrays(cls, config: LearnerConfig, arrays) -> "LearnerStats":
        """Statistics from `to_arrays()` output (or an open .npz), checked against `config`; ValueError if unusable."""
        problem = "learner statistics are unusable ({}); delete the cache file so they are rebuilt"
        try:
            meta = orjson.loads(np.asarray(arrays["meta"], dtype=np.uint8).tobytes())
            keys, gram, moment = (np.asarray(arrays[name]) for name in ("keys", "gram", "moment"))
            weight, rows = np.asarray(arrays["weight"]), np.asarray(arrays["rows"])
            square, reward_range = np.asarray(arrays["square"]), np.asarray(arrays["reward_range"])
        except (KeyError, TypeError, ValueError, orjson.JSONDecodeError) as error:
            raise ValueError(problem.format(f"missing or unreadable part: {error}")) from None
        if not isinstance(meta, dict) or meta.get("format") != STATS_FORMAT:
            raise ValueError(problem.format(f"format {meta.get('format') if isinstance(meta, dict) else meta!r}, "
                                            f"expected {STATS_FORMAT}"))
        if meta.get("signature") != config.statistics_signature():
            raise ValueError(problem.format("built with other feature settings"))
        count, size, total = meta.get("count"), config.size, len(CANDIDATE_KINDS) * config.id_buckets
        n = len(keys) if keys.ndim == 1 else -1
        shapes_ok = (keys.ndim == 1 and gram.shape == (n, size, size) and moment.shape == (n, size)
                     and weight.shape == (n,) and square.shape == (n,) and rows.shape == (n,))
        if not shapes_ok:
            raise ValueError(problem.format(f"array shapes {keys.shape}, {gram.shape}, {moment.shape}, "
                                            f"{weight.shape}, {rows.shape} do not fit {size} features"))
        if not (np.issubdtype(keys.dtype, np.integer) and np.issubdtype(rows.dtype, np.integer)):
            raise ValueError(problem.format("keys and rows must be integers"))
        if n and (keys.min() < 0 or keys.max() >= total or np.any(np.diff(keys) <= 0)):
            raise ValueError(problem.format("identity keys out of range or not sorted"))
        if not all(np.isfinite(array).all() for array in (gram, moment, weight, square)):
            raise ValueError(problem.format("non-finite values"))
        if not isinstance(count, int) or count < 0:
            raise ValueError(problem.format(f"trajectory count {count!r}"))
        if reward_range.shape not in ((0,), (2,)) or not np.isfinite(reward_range).all() or (
                len(reward_range) and reward_range[0] > reward_range[1]):
            raise ValueError(problem.format(f"reward range {reward_range.tolist()!r}"))
        low, high = (float(value) for value in reward_range) if len(reward_range) else (math.inf, -math.inf)
        return cls(config, keys.astype(np.int64), gram.astype(np.float64), moment.astype(np.float64),
                   weight.astype(np.float64), square.astype(np.float64), rows.astype(np.int64), count, low, high)


def decay_factors(counts: Sequence[int], half_life: float) -> list[float]:
    """Each segment's decay factor, oldest first: 0.5 ** (trajectories in newer segments / half_life)."""
    factors, newer = [], 0
    for count in reversed(counts):
        factors.append(0.5 ** (newer / half_life))
        newer += count
    return factors[::-1]


def decayed_sum(segments: Sequence[LearnerStats], config: LearnerConfig,
                half_life: float | None = None) -> LearnerStats:
    """The sum of per-segment statistics (oldest first), each scaled by its decay factor."""
    total = LearnerStats.zeros(config)
    factors = decay_factors([segment.count for segment in segments], half_life or config.half_life)
    for segment, factor in zip(segments, factors):
        total.add(segment if factor == 1.0 else segment.scaled(factor))
    return total


class LearnerStatsBuilder:
    """Turns logged trajectories (models or validated plain documents) into `LearnerStats`: one importance-weighted
    row per logged decision, filed under the chosen candidate's identity bucket, the whole batch at once."""

    def __init__(self, config: LearnerConfig | None = None):
        self.config = config or LearnerConfig()

    def stats(self, trajectories: Sequence[Trajectory], factors: np.ndarray | None = None) -> LearnerStats:
        """Statistics of trajectory models; `factors` scales each row's weight (decay by age)."""
        if not trajectories:
            return LearnerStats.zeros(self.config)
        with gc_paused():  # the read pass allocates a tuple per row; collections would walk every trajectory
            return self._build(columns_of_trajectories(trajectories, self.config), factors)

    def stats_of_documents(self, documents: Sequence[dict], factors: np.ndarray | None = None) -> LearnerStats:
        """Statistics of validated plain trajectory documents (missing fields take the model's defaults); equal to
        `stats()` of the same trajectories."""
        if not documents:
            return LearnerStats.zeros(self.config)
        with gc_paused():
            return self._build(columns_of_documents(documents, self.config), factors)

    def _build(self, columns: BatchColumns, factors: np.ndarray | None) -> LearnerStats:
        keys, gram, moment, weight, square, rows = accumulate(columns, self.config, factors)
        rewards = columns.rewards
        return LearnerStats(self.config, keys, gram, moment, weight, square, rows, len(columns.texts),
                            float(min(rewards)), float(max(rewards)))


__all__ = ["KIND_INDEX", "LearnerStats", "LearnerStatsBuilder", "decay_factors", "decayed_sum"]
