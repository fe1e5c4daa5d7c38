"""Features of one (task, candidate) pair for the hierarchical learner, and each candidate's identity bucket.

A row holds hashed task words (unit norm), then bias, retrieval score, gap to the best offered score, whether the
candidate has the best score, its rank share, episodic hint reward, task-name word overlap, and the numeric
`task.metadata` and candidate `payload` values the configuration names (missing or non-numeric -> 0).
"""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

from memabra.models import CANDIDATE_KINDS

KIND_INDEX = {kind: index for index, kind in enumerate(CANDIDATE_KINDS)}
_TOKEN = re.compile(r"[a-z0-9]+")
DENSE_NAMES = ("bias", "score", "gap", "is_top", "rank_share", "hint", "overlap")
"""The fixed columns after the task words, in order."""


@dataclass(frozen=True)
class LearnerConfig:
    """Feature sizes, shrinkage strengths, importance weighting and decay of the hierarchical learner."""

    task_buckets: int = 128
    id_buckets: int = 64
    """Identity buckets per candidate kind: names hash into these, so memory stays bounded when names are unique."""
    metadata_features: tuple[str, ...] = ()
    """Numeric `task.metadata` values used as features (missing or not a number -> 0)."""
    payload_features: tuple[str, ...] = ()
    """Numeric candidate `payload` values used as features (missing or not a number -> 0)."""
    metadata_words: tuple[str, ...] = ()
    """`task.metadata` keys whose values join the task words as `key=value` (for categories such as a channel)."""
    score_cross: bool = False
    """Add task words x retrieval score columns, so how far the score is trusted can depend on the task (off: on
    the support world it gained 0.2 points at 10k and nothing below, for twice the columns)."""
    l2_global: float = 6.6
    """Pull of the global weights towards the prior (reward = score), per column."""
    l2_kind: float = 30.0
    """Pull of each kind's weights towards the global ones."""
    l2_id: float = 5.0
    """Pull of each identity's weights towards its kind's on the columns after the task words."""
    l2_id_words: float = 0.6
    """Pull of each identity's task-word weights towards its kind's: weak, so what an identity is good at can depend
    on the task's words, while its score, rank and cost weights stay near its kind's. Measured with the levels
    fitted jointly (support world, 500 logs, 12 seeds): global 20 / kind 10 / identity 1 on every column gave 91.2% of
    the oracle, these values 91.9% (VW 91.6%); identity 2 / words 0.6 gave 91.7%, identity 3 / words 0.6 91.8%."""
    task_l2_scale: float = 1.0
    """Shrinkage on the global and kind levels' task-word columns is this many times the level's (words are many and
    fit noise first)."""
    noise_reference: float = 0.015
    """When above 0, every shrinkage is multiplied by the estimated reward noise variance, in units of the logged
    rewards' span (highest - lowest) squared, over this (noisier rewards, stronger pull to the prior); 0 keeps the
    shrinkages as set. 0.015 is the noise of the shipped worlds (rewards spanning 0..1), where the shrinkages were
    tuned; 0/1 rewards (variance ~0.2) then shrink about 13 times as hard, and rewards in other units alike."""
    prior_score_weight: float = 1.0
    """The prior every level shrinks back to predicts reward = lowest reward + this x retrieval score x the rewards'
    span, i.e. the heuristic on the rewards' scale (reward = score for rewards spanning 0..1)."""
    max_importance_weight: float = 5.0
    """Clip of 1/propensity: measured on both shipped worlds, 5 beat 20 and 50 at every size (less variance)."""
    importance_power: float = 1.0
    """Rows weigh min(1/propensity, max_importance_weight) ** importance_power (0 = unweighted)."""
    half_life: float | None = 1_000.0
    """Trajectories after which a segment's statistics count half; the caller applies it per segment. Measured:
    after a drift, 10k old + 2k new logs reach 98% of new-only on the drifted families (65% with no decay), while
    10k stationary logs lose under a point against no decay."""

    def __post_init__(self):
        for name in ("task_buckets", "id_buckets"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"learner setting {name} must be a positive whole number")
        for name in ("l2_global", "l2_kind", "l2_id", "l2_id_words", "task_l2_scale", "max_importance_weight"):
            if not getattr(self, name) > 0:
                raise ValueError(f"learner setting {name} must be above 0")
        if self.half_life is not None and not self.half_life > 0:
            raise ValueError("learner setting half_life must be above 0, or none for no decay")
        object.__setattr__(self, "metadata_features", tuple(self.metadata_features))
        object.__setattr__(self, "payload_features", tuple(self.payload_features))
        object.__setattr__(self, "metadata_words", tuple(self.metadata_words))

    @property
    def dense_start(self) -> int:
        return self.task_buckets * (2 if self.score_cross else 1)

    @property
    def size(self) -> int:
        """Columns of one feature row."""
        return (self.dense_start + len(DENSE_NAMES) + len(self.metadata_features)
                + len(self.payload_features))

    @property
    def bias_column(self) -> int:
        return self.dense_start

    @property
    def score_column(self) -> int:
        return self.dense_start + 1

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["metadata_features"] = list(self.metadata_features)
        data["payload_features"] = list(self.payload_features)
        data["metadata_words"] = list(self.metadata_words)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LearnerConfig":
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown learner settings {unknown}; known are {sorted(known)}")
        return cls(**data)

    def statistics_signature(self) -> dict[str, Any]:
        """What statistics depend on: two configurations with equal signatures can share cached statistics."""
        return {"task_buckets": self.task_buckets, "id_buckets": self.id_buckets,
                "metadata_features": list(self.metadata_features), "payload_features": list(self.payload_features),
                "metadata_words": list(self.metadata_words), "score_cross": self.score_cross,
                "max_importance_weight": self.max_importance_weight, "importance_power": self.importance_power}


@lru_cache(maxsize=200_000)
def task_words(text: str, buckets: int) -> tuple[tuple[int, ...], float, frozenset[str]]:
    """A text's distinct hash buckets, the value each gets (unit norm) and its set of lowercase tokens."""
    tokens = frozenset(_TOKEN.findall(text.lower()))
    indices = tuple(sorted({zlib.crc32(token.encode()) % buckets for token in tokens}))
    return indices, (1.0 / math.sqrt(len(indices)) if indices else 0.0), tokens


@lru_cache(maxsize=200_000)
def _words_with_metadata(text: str, values: tuple, types: tuple, keys: tuple[str, ...],
                         buckets: int) -> tuple[tuple[int, ...], float, frozenset[str]]:
    # `types` is part of the cache key only: True, 1 and 1.0 are equal keys but different words.
    indices, _, tokens = task_words(text, buckets)
    extra = [f"{key}={value}" for key, value in zip(keys, values) if isinstance(value, (str, int, float))]
    merged = tuple(sorted(set(indices).union(zlib.crc32(word.encode()) % buckets for word in extra)))
    return merged, (1.0 / math.sqrt(len(merged)) if merged else 0.0), tokens


def task_features(text: str, metadata: dict | None, config: LearnerConfig) -> tuple[tuple[int, ...], float,
                                                                                    frozenset[str]]:
    """The task's hashed word buckets (metadata words included), their value (unit norm) and the text's tokens."""
    keys = config.metadata_words
    if not keys:
        return task_words(text, config.task_buckets)
    metadata = metadata or {}
    values = tuple(metadata.get(key) for key in keys)
    try:
        return _words_with_metadata(text, values, tuple(map(type, values)), keys, config.task_buckets)
    except TypeError:  # an unhashable metadata value (a list or mapping) is no word
        values = tuple(value if isinstance(value, (str, int, float)) else None for value in values)
        return _words_with_metadata(text, values, tuple(map(type, values)), keys, config.task_buckets)


@lru_cache(maxsize=100_000)
def name_tokens(name: str) -> frozenset[str]:
    """The lowercase tokens of a candidate name."""
    return frozenset(_TOKEN.findall(name.lower()))


@lru_cache(maxsize=100_000)
def identity_key(kind: str, name: str, id_buckets: int) -> int:
    """The candidate identity's bucket: kind index x id_buckets + hash of the name within its kind."""
    return KIND_INDEX[kind] * id_buckets + zlib.crc32(name.encode()) % id_buckets


def overlap(task_tokens: frozenset[str], name: str) -> float:
    """Share of the candidate name's tokens that occur in the task text."""
    tokens = name_tokens(name)
    return len(tokens & task_tokens) / len(tokens) if tokens else 0.0


def numeric(mapping: dict | None, key: str) -> float:
    """A mapping's value as a float when it is a finite number (not a bool), else 0."""
    value = mapping.get(key) if mapping else None
    kind = type(value)
    if kind is float:
        return value if math.isfinite(value) else 0.0
    if kind is int or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return float(value) if math.isfinite(value) else 0.0
    return 0.0


def hint_of(payload: dict | None) -> float:
    """The `hint_reward` an episodic candidate's payload reports, 0 when absent or not a number."""
    return numeric(payload, "hint_reward")
