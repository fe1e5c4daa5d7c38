"""The hierarchical ridge router: a reward model per candidate identity, shrunk to its kind's, shrunk to a global one,
shrunk to the heuristic (reward = retrieval score), so it follows the heuristic until the logs say otherwise.

The three levels are fitted jointly (the exact posterior mode of the Gaussian hierarchy): each identity's rows are
folded into its kind as the evidence they give about the kind once the identity's own deviation is allowed for, and
each kind into the global level likewise, so what one identity does differently does not leak into its kind.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Any

import numpy as np

from memabra.learning.learner_stats import LearnerStats
from memabra.learning.pair_features import (
    DENSE_NAMES, KIND_INDEX, LearnerConfig, hint_of, identity_key, name_tokens, numeric, task_features,
)
from memabra.learning.routers import ScoringRouter
from memabra.learning.threads import single_threaded_blas
from memabra.models import CANDIDATE_KINDS, Candidate, Decision, Task

ROUTER_KIND = "hierarchical_ridge"


def _solve(gram: np.ndarray, moment: np.ndarray, l2: np.ndarray, parent: np.ndarray) -> np.ndarray:
    """Ridge weights shrunk towards `parent`: (G + diag(l2))^-1 (m + l2 * parent)."""
    system = gram + np.diag(l2)
    return np.linalg.solve(system, moment + l2 * parent)


def _penalty(config: LearnerConfig, l2: float) -> np.ndarray:
    """The global or kind level's shrinkage per column: task-word columns `task_l2_scale` times the rest."""
    penalty = np.full(config.size, float(l2))
    penalty[:config.dense_start] *= config.task_l2_scale
    return penalty


def _identity_penalty(config: LearnerConfig, scale: float = 1.0) -> np.ndarray:
    """The identity level's shrinkage per column: `l2_id_words` on task words, `l2_id` on the rest."""
    penalty = np.full(config.size, config.l2_id * scale)
    penalty[:config.dense_start] = config.l2_id_words * scale
    return penalty


def prior_weights(config: LearnerConfig, low: float = 0.0, span: float = 1.0) -> np.ndarray:
    """The weights every level shrinks back to when it has no data: the heuristic's reward = score, with scores read
    on the scale of rewards that run from `low` over `span` (so the fit does not depend on the rewards' units)."""
    prior = np.zeros(config.size)
    prior[config.bias_column] = low
    prior[config.score_column] = config.prior_score_weight * span
    return prior


def train(stats: LearnerStats, config: LearnerConfig | None = None) -> "HierarchicalRouter":
    """Fit the router from statistics: every level at once (the joint posterior mode), solved top-down."""
    config = config or stats.config
    if config.statistics_signature() != stats.config.statistics_signature():
        raise ValueError("the statistics were built with other feature settings than the training configuration")
    with single_threaded_blas():  # small systems: extra BLAS threads only spin (3x slower)
        return _train(stats, config)


def _train(stats: LearnerStats, config: LearnerConfig) -> "HierarchicalRouter":
    scale = 1.0
    if config.noise_reference > 0 and len(stats.keys):
        first = _fit(stats, config, 1.0)
        span = stats.reward_scale()[1]
        scale = min(max(noise_variance(stats, config, first) / span ** 2 / config.noise_reference, 0.1), 100.0)
    global_weights, kind_weights, id_weights, _ = _fit(stats, config, scale)
    return HierarchicalRouter(config, global_weights, kind_weights, stats.keys.copy(), id_weights, noise_scale=scale)


def _fold(gram: np.ndarray, moment: np.ndarray, l2: np.ndarray):
    """What systems (G, m) whose weights are shrunk by `l2` towards a shared parent tell about that parent, with their
    own deviation integrated out: Gram L (G + L)^-1 G and moment L (G + L)^-1 m (over the first axis); and
    (G + L)^-1 G and (G + L)^-1 m themselves, from which each system's weights follow once the parent's are known.
    Each system is solved over the columns its rows touch: the others decouple exactly and contribute nothing."""
    solved_gram, solved_moment = np.zeros_like(gram), np.zeros_like(moment)
    nonzero = gram != 0
    for at, touched in enumerate(nonzero.any(axis=2) | nonzero.any(axis=1)):
        used = np.flatnonzero(touched)
        if not len(used):
            continue
        block = np.ix_(used, used)
        part = gram[at][block]
        solved = np.linalg.solve(part + np.diag(l2[used]), np.column_stack([part, moment[at, used]]))
        solved_gram[at][block], solved_moment[at, used] = solved[:, :-1], solved[:, -1]
    return l2[:, None] * solved_gram, l2 * solved_moment, solved_gram, solved_moment


def _under(parents: np.ndarray, solved_gram: np.ndarray, solved_moment: np.ndarray) -> np.ndarray:
    """Weights shrunk towards `parents`, (G + L)^-1 (m + L p) = S m + p - S G p with S = (G + L)^-1."""
    return solved_moment + parents - np.einsum("kij,kj->ki", solved_gram, parents)


def _fit(stats: LearnerStats, config: LearnerConfig, scale: float):
    """Global, kind and identity weights, the joint posterior mode, with every level's shrinkage times `scale`:
    identities folded into kinds, kinds into the global level, then solved top-down. Also each identity's
    (G + L)^-1 G, whose trace is the identity fit's degrees of freedom."""
    kind_of_key = stats.keys // config.id_buckets
    l2_global, l2_kind = (_penalty(config, l2 * scale) for l2 in (config.l2_global, config.l2_kind))
    kinds, starts = np.unique(kind_of_key, return_index=True)  # keys are sorted: each kind's identities are contiguous
    id_gram, id_moment, id_solved_gram, id_solved_moment = _fold(stats.gram, stats.moment,
                                                                 _identity_penalty(config, scale))
    kind_gram = np.add.reduceat(id_gram, starts, axis=0) if len(kinds) else id_gram
    kind_moment = np.add.reduceat(id_moment, starts, axis=0) if len(kinds) else id_moment
    folded_gram, folded_moment, kind_solved_gram, kind_solved_moment = _fold(kind_gram, kind_moment, l2_kind)
    global_weights = _solve(folded_gram.sum(axis=0), folded_moment.sum(axis=0), l2_global,
                            prior_weights(config, *stats.reward_scale()))
    kind_weights = np.tile(global_weights, (len(CANDIDATE_KINDS), 1))
    kind_weights[kinds] = _under(np.tile(global_weights, (len(kinds), 1)), kind_solved_gram, kind_solved_moment)
    id_weights = _under(kind_weights[kind_of_key], id_solved_gram, id_solved_moment)
    return global_weights, kind_weights, id_weights.reshape(len(stats.keys), config.size), id_solved_gram


def noise_variance(stats: LearnerStats, config: LearnerConfig, fit) -> float:
    """Reward noise per unit weight: residual sum of squares over the weight left after the fitted degrees of
    freedom, from the identity fits when they leave at least half the weight free, else from the global fit."""
    global_weights, _, id_weights, id_solved_gram = fit
    fitted = np.einsum("ki,kij,kj->k", id_weights, stats.gram, id_weights)
    residual = float(np.sum(stats.square - 2 * np.einsum("ki,ki->k", id_weights, stats.moment) + fitted))
    freedom = np.trace(id_solved_gram, axis1=1, axis2=2)
    free = float(np.sum(stats.weight - stats.weight / np.maximum(stats.rows, 1) * freedom))
    total = float(stats.weight.sum())
    if free >= 0.5 * total:
        return max(residual / free, 0.0)
    gram, weights = stats.gram.sum(axis=0), global_weights
    residual = stats.square.sum() - 2 * weights @ stats.moment.sum(axis=0) + weights @ gram @ weights
    freedom = np.trace(np.linalg.solve(gram + np.diag(_penalty(config, config.l2_global)), gram))
    mean_weight = total / max(int(stats.rows.sum()), 1)
    return max(residual / max(total - mean_weight * freedom, 0.5 * total), 0.0)


class HierarchicalRouter(ScoringRouter):
    """Scores each candidate with its identity bucket's weights (its kind's when the identity was never logged)."""

    def __init__(self, config: LearnerConfig, global_weights: np.ndarray, kind_weights: np.ndarray,
                 id_keys: np.ndarray, id_weights: np.ndarray, version_id: str | None = None,
                 noise_scale: float = 1.0):
        size = config.size
        if (global_weights.shape != (size,) or kind_weights.shape != (len(CANDIDATE_KINDS), size)
                or id_weights.shape != (len(id_keys), size)):
            raise ValueError(f"router weights do not fit {size} features; retrain the router")
        if not all(np.isfinite(array).all() for array in (global_weights, kind_weights, id_weights)):
            raise ValueError("router weights hold non-finite values; retrain the router")
        self.config = config
        self.global_weights, self.kind_weights = global_weights, kind_weights
        self.id_keys, self.id_weights = np.asarray(id_keys, dtype=np.int64), id_weights
        self.version_id = version_id
        self.noise_scale = noise_scale
        kind_rows = kind_weights.tolist()
        self._rows = {kind * config.id_buckets + bucket: kind_rows[kind]
                      for kind in range(len(CANDIDATE_KINDS)) for bucket in range(config.id_buckets)}
        self._rows.update(zip(self.id_keys.tolist(), id_weights.tolist()))
        self._identities: dict[tuple[str, str], tuple[list[float], frozenset[str]]] = {}

    def _identity(self, kind: str, name: str) -> tuple[list[float], frozenset[str]]:
        """An identity's weight row and name tokens, remembered (a bounded number of them)."""
        if len(self._identities) > 100_000:
            self._identities.clear()
        found = self._identities[kind, name] = (
            self._rows[identity_key(kind, name, self.config.id_buckets)], name_tokens(name))
        return found

    @property
    def weights(self) -> np.ndarray:
        """Every weight of the router in one flat array (global, each kind, each identity), for comparisons."""
        return np.concatenate([self.global_weights, self.kind_weights.ravel(), self.id_weights.ravel()])

    def scores(self, task: Task, candidates: list[Candidate]) -> list[float]:
        config = self.config
        base, cross = config.dense_start, config.task_buckets if config.score_cross else 0
        indices, value, tokens = task_features(task.text, task.metadata, config)
        offered_scores = sorted(candidate.score for candidate in candidates)
        count, best = len(offered_scores), offered_scores[-1]
        rank_share = 1.0 / (count - 1) if count > 1 else 0.0
        extra_start = base + len(DENSE_NAMES)
        metadata_values = [numeric(task.metadata, key) for key in config.metadata_features]
        payload_start = extra_start + len(metadata_values)
        payload_features = config.payload_features
        identities, identity = self._identities, self._identity
        scores = []
        for candidate in candidates:
            name = candidate.name
            row, name_words = identities.get((candidate.kind, name)) or identity(candidate.kind.value, name)
            score, payload = candidate.score, candidate.payload
            higher = count - bisect_right(offered_scores, score)
            total = value * sum([row[index] for index in indices])
            if cross:
                total += value * score * sum([row[cross + index] for index in indices])
            total += row[base] + row[base + 1] * score + row[base + 2] * (score - best) + row[base + 4] * higher * rank_share
            if higher == 0:
                total += row[base + 3]
            if name_words:
                total += row[base + 6] * len(name_words & tokens) / len(name_words)
            if payload:
                total += row[base + 5] * hint_of(payload)
                for column, key in enumerate(payload_features, payload_start):
                    total += row[column] * numeric(payload, key)
            for column, feature in enumerate(metadata_values, extra_start):
                total += row[column] * feature
            scores.append(total)
        return scores

    def route(self, task: Task, candidates: list[Candidate]) -> Decision:
        """The highest-scoring candidate (ties go to the first), as ScoringRouter.route decides, built faster."""
        scores = self.scores(task, candidates)
        best = max(range(len(scores)), key=scores.__getitem__)
        return Decision.model_construct(
            chosen_candidate_id=candidates[best].candidate_id,
            scores={candidate.candidate_id: score for candidate, score in zip(candidates, scores)},
            propensity=1.0, router_version_id=self.version_id, policy="greedy")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": ROUTER_KIND, "config": self.config.to_dict(), "candidate_kinds": list(CANDIDATE_KINDS),
                "global_weights": self.global_weights.tolist(), "kind_weights": self.kind_weights.tolist(),
                "id_keys": self.id_keys.tolist(), "id_weights": self.id_weights.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any], version_id: str | None = None) -> "HierarchicalRouter":
        """Rebuild a router from `to_dict()` output; ValueError when it does not fit together."""
        if list(data.get("candidate_kinds", CANDIDATE_KINDS)) != list(CANDIDATE_KINDS):
            raise ValueError("the saved router knows other candidate kinds than this memabra; retrain it")
        try:
            config = LearnerConfig.from_dict(data["config"])
            id_keys = np.asarray(data["id_keys"], dtype=np.int64).reshape(-1)
            id_weights = np.asarray(data["id_weights"], dtype=np.float64).reshape(len(id_keys), config.size)
            router = cls(config, np.asarray(data["global_weights"], dtype=np.float64),
                         np.asarray(data["kind_weights"], dtype=np.float64), id_keys, id_weights, version_id)
        except (KeyError, TypeError) as error:
            raise ValueError(f"the saved router lacks or garbles {error}; retrain it") from None
        if len(id_keys) and (id_keys.min() < 0 or id_keys.max() >= len(KIND_INDEX) * config.id_buckets):
            raise ValueError("the saved router has identity keys out of range; retrain it")
        return router
