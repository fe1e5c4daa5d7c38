"""Routing under a lock: one swappable router deciding under an exploration policy, shared by the runner and the
agent's ActiveRouter."""

from __future__ import annotations

import random
import threading

from memabra.learning.exploration import ExplorationPolicy
from memabra.learning.routers import ScoringRouter
from memabra.models import Candidate, Decision, Task


class ExploringRouter:
    """A router that can be swapped while other threads route; every pick is drawn under the logging policy."""

    def __init__(self, router: ScoringRouter, exploration: ExplorationPolicy, seed: int | None = None):
        self.exploration = exploration
        self._router = router
        self._rng = random.Random(seed)
        self.mutex = threading.Lock()
        """Held while deciding and swapping; a caller may hold it to swap after its own checks."""

    @property
    def router(self) -> ScoringRouter:
        return self._router

    def swap(self, router: ScoringRouter) -> None:
        """Route every later task with this router."""
        with self.mutex:
            self._router = router

    def swap_locked(self, router: ScoringRouter) -> None:
        """Swap while the caller already holds `mutex`."""
        self._router = router

    def decide(self, task: Task, candidates: list[Candidate]) -> Decision:
        """Score the candidates and pick one under the logging policy, recording its propensity."""
        with self.mutex:
            router = self._router
            scores = router.scores(task, candidates)
            return self.exploration.decide(candidates, scores, self._rng, router.version_id)
