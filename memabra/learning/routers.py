"""Routers: anything with `route(task, candidates) -> Decision` is one. Two ship: heuristic and learned."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from memabra.learning.features import KIND_INDEX, FeatureConfig, Featurizer
from memabra.learning.router_check import validate_router_document
from memabra.models import CANDIDATE_KINDS, Candidate, Decision, Task


@runtime_checkable
class Router(Protocol):
    """What a router must do: pick one of the candidates for a task."""

    def route(self, task: Task, candidates: list[Candidate]) -> Decision: ...


class ScoringRouter:
    """A router that scores every candidate and picks the best (ties go to the first)."""

    version_id: str | None = None

    def scores(self, task: Task, candidates: list[Candidate]) -> list[float]:
        raise NotImplementedError

    def route(self, task: Task, candidates: list[Candidate]) -> Decision:
        scores = self.scores(task, candidates)
        best = int(np.argmax(scores))
        return Decision(
            chosen_candidate_id=candidates[best].candidate_id,
            scores={candidate.candidate_id: score for candidate, score in zip(candidates, scores)},
            propensity=1.0,
            router_version_id=self.version_id,
            policy="greedy",
        )

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError


class HeuristicRouter(ScoringRouter):
    """The built-in baseline: trust the retrieval score."""

    def scores(self, task: Task, candidates: list[Candidate]) -> list[float]:
        return [float(candidate.score) for candidate in candidates]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "heuristic"}


class SimpleLearningRouter(ScoringRouter):
    """A linear reward model per candidate kind over hashed task and candidate features."""

    def __init__(self, weights: np.ndarray, config: FeatureConfig | None = None, version_id: str | None = None):
        self.config = config or FeatureConfig()
        self.featurizer = Featurizer(self.config)
        expected = (len(CANDIDATE_KINDS), self.config.block_size)
        if weights.shape != expected:
            raise ValueError(f"weights have shape {weights.shape}, expected {expected}")
        self.weights = weights
        self._weight_rows = weights.tolist()
        self.version_id = version_id

    def scores(self, task: Task, candidates: list[Candidate]) -> list[float]:
        task_indices, task_value = self.featurizer.task_features(task.text)
        scores = []
        for candidate in candidates:
            row = self._weight_rows[KIND_INDEX[candidate.kind.value]]
            columns, values = self.featurizer.candidate_columns(candidate)
            score = task_value * sum(row[index] for index in task_indices)
            score += sum(row[column] * value for column, value in zip(columns, values))
            scores.append(score)
        return scores

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "simple_learning",
            "feature_config": self.config.to_dict(),
            "candidate_kinds": list(CANDIDATE_KINDS),
            "weights": self.weights.tolist(),
        }
