"""Additive statistics of the hierarchical learner: one weighted ridge system per candidate identity bucket.

Per identity bucket (kind + hashed name) they hold G = sum w x x^T, m = sum w x r, the weight sum and the row count;
a kind's and the global system are sums of these, so nothing else is stored. Statistics of two batches add up to
the statistics of their union, and `scaled` decays a segment's evidence without changing that.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits
import orjson

from memabra.learning.pair_features import (
    DENSE_NAMES, KIND_INDEX, LearnerConfig, hint_of, identity_key, numeric, overlap, task_features,
)
from memabra.models import CANDIDATE_KINDS, Trajectory

STATS_FORMAT = 2
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
                            self.weight * factor, self.square * factor, self.rows.copy(), self.count)

    def copy(self) -> "LearnerStats":
        return self.scaled(1.0)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain numpy arrays (for `np.savez`), the small JSON meta among them as bytes."""
        meta = {"format": STATS_FORMAT, "count": self.count, "signature": self.config.statistics_signature()}
        return {"keys": self.keys, "gram": self.gram, "moment": self.moment, "weight": self.weight,
                "square": self.square, "rows": self.rows, "meta": np.frombuffer(orjson.dumps(meta), dtype=np.uint8)}

    @classmethod
    def from_arrays(cls, config: LearnerConfig, arrays) -> "LearnerStats":
        """Statistics from `to_arrays()` output (or an open .npz), checked against `config`; ValueError if unusable."""
        problem = "learner statistics are unusable ({}); delete the cache file so they are rebuilt"
        try:
            meta = orjson.loads(np.asarray(arrays["meta"], dtype=np.uint8).tobytes())
            keys, gram, moment = (np.asarray(arrays[name]) for name in ("keys", "gram", "moment"))
            weight, rows = np.asarray(arrays["weight"]), np.asarray(arrays["rows"])
            square = np.asarray(arrays["square"])
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
        return cls(config, keys.astype(np.int64), gram.astype(np.float64), moment.astype(np.float64),
                   weight.astype(np.float64), square.astype(np.float64), rows.astype(np.int64), count)


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
    row per logged decision, filed under the chosen candidate's identity bucket."""

    def __init__(self, config: LearnerConfig | None = None):
        self.config = config or LearnerConfig()

    def stats(self, trajectories: Sequence[Trajectory], factors: np.ndarray | None = None) -> LearnerStats:
        """Statistics of trajectory models; `factors` scales each row's weight (decay by age)."""
        columns = _Columns(self.config)
        add = columns.add
        for trajectory in trajectories:
            task, decision = trajectory.task, trajectory.decision
            chosen_id, scores, chosen = decision.chosen_candidate_id, [], None
            for candidate in trajectory.candidates:
                scores.append(candidate.score)
                if candidate.candidate_id == chosen_id:
                    chosen = candidate
            add(task.text, task.metadata, chosen.kind.value, chosen.name, chosen.score, chosen.payload, scores,
                trajectory.outcome.reward, decision.propensity)
        return self._build(columns, factors)

    def stats_of_documents(self, documents: Sequence[dict], factors: np.ndarray | None = None) -> LearnerStats:
        """Statistics of validated plain trajectory documents (missing fields take the model's defaults); equal to
        `stats()` of the same trajectories."""
        columns = _Columns(self.config)
        add = columns.add
        for document in documents:
            decision, task = document["decision"], document["task"]
            chosen_id, scores, chosen = decision["chosen_candidate_id"], [], None
            for candidate in document["candidates"]:
                scores.append(candidate.get("score", 0.0))
                if candidate["candidate_id"] == chosen_id:
                    chosen = candidate
            add(task["text"], task.get("metadata"), chosen["kind"], chosen.get("name", ""), chosen.get("score", 0.0),
                chosen.get("payload"), scores, document["outcome"]["reward"], decision.get("propensity"))
        return self._build(columns, factors)

    def _build(self, columns: "_Columns", factors: np.ndarray | None) -> LearnerStats:
        with threadpool_limits(limits=1, user_api="blas"):  # small products: extra BLAS threads only spin
            return self._build_single_threaded(columns, factors)

    def _build_single_threaded(self, columns: "_Columns", factors: np.ndarray | None) -> LearnerStats:
        config = self.config
        stats = LearnerStats.zeros(config)
        count = len(columns.texts)
        if not count:
            return stats
        texts, keys, rewards, propensities = columns.texts, columns.keys, columns.rewards, columns.propensities
        propensity = np.array([value or 0.0 for value in propensities], dtype=np.float64)
        inverse = np.divide(1.0, propensity, out=np.ones_like(propensity), where=propensity > 0)
        row_weight = np.minimum(inverse, config.max_importance_weight) ** config.importance_power
        row_weight[propensity <= 0] = 1.0
        if factors is not None:
            row_weight = row_weight * np.asarray(factors, dtype=np.float64)
        matrix = np.empty((count, config.size))
        dense = matrix[:, config.dense_start:]
        dense[:, 0] = 1.0
        dense[:, 1] = score = np.array(columns.scores)
        dense[:, 2] = score - np.array(columns.bests)
        higher, offered = np.array(columns.highers, dtype=np.float64), np.array(columns.offered, dtype=np.float64)
        dense[:, 3] = higher == 0
        dense[:, 4] = np.divide(higher, offered - 1, out=np.zeros(count), where=offered > 1)
        dense[:, 5] = columns.hints
        dense[:, 6] = columns.overlaps
        if columns.extras:
            dense[:, len(DENSE_NAMES):] = columns.extras
        positions: dict[tuple[tuple[int, ...], float], int] = {}
        text_row = np.fromiter((positions.setdefault(text, len(positions)) for text in texts), dtype=np.int64,
                               count=count)
        text_matrix = np.zeros((len(positions), config.task_buckets))
        for (indices, value), row in positions.items():
            text_matrix[row, list(indices)] = value
        matrix[:, :config.task_buckets] = text_matrix[text_row]
        if config.score_cross:
            buckets = config.task_buckets
            matrix[:, buckets:2 * buckets] = matrix[:, :buckets] * matrix[:, config.score_column, None]
        key_of_row = np.array(keys, dtype=np.int64)
        reward = np.array(rewards, dtype=np.float64)
        order = np.argsort(key_of_row, kind="stable")
        unique, starts, row_counts = np.unique(key_of_row[order], return_index=True, return_counts=True)
        size = config.size
        gram, moment = np.empty((len(unique), size, size)), np.empty((len(unique), size))
        weight, square = np.empty(len(unique)), np.empty(len(unique))
        for slot, (start, rows) in enumerate(zip(starts.tolist(), row_counts.tolist())):
            picked = order[start:start + rows]
            block, block_weight = matrix[picked], row_weight[picked]
            weighted = block * block_weight[:, None]
            gram[slot] = weighted.T @ block
            moment[slot] = weighted.T @ reward[picked]
            weight[slot] = block_weight.sum()
            square[slot] = block_weight @ np.square(reward[picked])
        stats.keys, stats.gram, stats.moment = unique.astype(np.int64), gram, moment
        stats.weight, stats.square = weight, square
        stats.rows, stats.count = row_counts.astype(np.int64), count
        return stats


class _Columns:
    """The per-trajectory values a build needs, column by column (cheaper than a row list each)."""

    def __init__(self, config: LearnerConfig):
        self.config = config
        self.texts, self.keys, self.rewards, self.propensities = [], [], [], []
        self.scores, self.bests, self.highers, self.offered, self.hints, self.overlaps = [], [], [], [], [], []
        self.extras: list[list[float]] = []

    def add(self, text, metadata, kind, name, score, payload, offered_scores, reward, propensity) -> None:
        config = self.config
        indices, value, tokens = task_features(text, metadata, config)
        self.texts.append((indices, value))
        self.keys.append(identity_key(kind, name, config.id_buckets))
        self.rewards.append(reward)
        self.propensities.append(propensity)
        self.scores.append(score)
        self.bests.append(max(offered_scores))
        self.highers.append(sum(other > score for other in offered_scores))
        self.offered.append(len(offered_scores))
        self.hints.append(hint_of(payload) if payload else 0.0)
        self.overlaps.append(overlap(tokens, name))
        if config.metadata_features or config.payload_features:
            self.extras.append([numeric(metadata, key) for key in config.metadata_features]
                               + [numeric(payload, key) for key in config.payload_features])


__all__ = ["KIND_INDEX", "LearnerStats", "LearnerStatsBuilder", "decay_factors", "decayed_sum"]
