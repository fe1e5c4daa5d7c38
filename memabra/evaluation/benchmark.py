"""Benchmark suites: fixed tasks with their candidates, and the executor that runs them."""

from __future__ import annotations

from dataclasses import dataclass, field

from memabra.models import Candidate, Task


@dataclass
class BenchmarkTask:
    """One benchmark task with the candidates it offers and, where known, each candidate's true expected reward."""

    task: Task
    candidates: list[Candidate]
    expected_rewards: dict[str, float] | None = None


@dataclass
class BenchmarkSuite:
    """A fixed list of tasks a router is scored on, with the executor that runs them."""

    name: str
    tasks: list[BenchmarkTask]
    executor: object | None = None
    metadata: dict = field(default_factory=dict)

    def oracle_value(self) -> float | None:
        """Mean of the best expected reward per task, when every task knows its expected rewards."""
        if not self.tasks or any(not item.expected_rewards for item in self.tasks):
            return None
        return sum(max(item.expected_rewards.values()) for item in self.tasks) / len(self.tasks)
