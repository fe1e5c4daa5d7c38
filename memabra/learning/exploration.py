"""Logging policies: how the runner picks among scored candidates, and the probability of each pick."""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from memabra.models import Candidate, Decision


@dataclass(frozen=True)
class ExplorationPolicy:
    """Greedy, epsilon-greedy or softmax over router scores; every pick carries its propensity."""

    kind: str = "epsilon_greedy"
    epsilon: float = 0.2
    temperature: float = 0.1

    def __post_init__(self):
        if self.kind not in ("greedy", "epsilon_greedy", "softmax"):
            raise ValueError(f"unknown exploration {self.kind!r}: use greedy, epsilon_greedy or softmax")

    @classmethod
    def from_settings(cls, settings) -> "ExplorationPolicy":
        """The logging policy the settings name (`exploration`, `epsilon`, `temperature`)."""
        return cls(settings.exploration, settings.epsilon, settings.temperature)

    @property
    def name(self) -> str:
        if self.kind == "epsilon_greedy":
            return f"epsilon_greedy({self.epsilon:g})"
        if self.kind == "softmax":
            return f"softmax({self.temperature:g})"
        return "greedy"

    def probabilities(self, scores: list[float] | np.ndarray) -> np.ndarray:
        """The probability of picking each candidate given its score."""
        values = np.asarray(scores, dtype=np.float64)
        count = len(values)
        if self.kind == "softmax":
            shifted = (values - values.max()) / self.temperature
            weights = np.exp(shifted)
            return weights / weights.sum()
        greedy = np.zeros(count)
        greedy[int(np.argmax(values))] = 1.0
        if self.kind == "greedy":
            return greedy
        return (1.0 - self.epsilon) * greedy + self.epsilon / count

    def choose(self, scores: list[float], rng: random.Random) -> tuple[int, float]:
        """Pick a candidate index and return it with its propensity."""
        if self.kind == "softmax":
            probabilities = self.probabilities(scores).tolist()
        else:  # the same floats as probabilities(), without numpy's per-call cost on a handful of scores
            count = len(scores)
            best = max(range(count), key=scores.__getitem__)
            if self.kind == "greedy":
                return best, 1.0
            probabilities = [self.epsilon / count] * count
            probabilities[best] = (1.0 - self.epsilon) + self.epsilon / count
        draw = rng.random()
        cumulative = 0.0
        for index, probability in enumerate(probabilities):
            cumulative += probability
            if draw < cumulative:
                break
        return index, probabilities[index]

    def decide(self, candidates: list[Candidate], scores: list[float], rng: random.Random,
               router_version_id: str | None = None) -> Decision:
        """Pick among scored candidates and return the decision with its propensity and this policy's name."""
        index, propensity = self.choose(scores, rng)
        return Decision(
            chosen_candidate_id=candidates[index].candidate_id,
            scores={candidate.candidate_id: score for candidate, score in zip(candidates, scores)},
            propensity=propensity,
            router_version_id=router_version_id,
            policy=self.name,
        )
