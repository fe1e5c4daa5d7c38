"""Benchmark suites: fixed tasks with their candidates, and the executor that runs them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import orjson
from pydantic import Field, ValidationError, model_validator

from memabra.errors import BadInputError
from memabra.models import Candidate, Document, Task
from memabra.storage.documents import describe_validation_error


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
        """Mean of the best expected reward per task, when every task knows the expected reward of every candidate."""
        if not self.tasks or any(len(item.expected_rewards or {}) < len(item.candidates) for item in self.tasks):
            return None
        return sum(max(item.expected_rewards.values()) for item in self.tasks) / len(self.tasks)


class BenchmarkTaskDocument(Document):
    """One task of a suite file: the task, its candidates and, where known, each candidate's expected reward."""

    task: Task
    candidates: list[Candidate] = Field(min_length=1)
    expected_rewards: dict[str, float] | None = None

    @model_validator(mode="after")
    def _ids_match(self) -> "BenchmarkTaskDocument":
        ids = [candidate.candidate_id for candidate in self.candidates]
        if len(set(ids)) != len(ids):
            raise ValueError("candidates: candidate_id values must be unique within a task")
        unknown = sorted(set(self.expected_rewards or {}) - set(ids))
        if unknown:
            raise ValueError(f"expected_rewards: {unknown} are not candidate ids of task {self.task.task_id}")
        return self


class BenchmarkSuiteDocument(Document):
    """A benchmark suite file: a name and at least one task, task ids unique."""

    name: str | None = None
    tasks: list[BenchmarkTaskDocument] = Field(min_length=1)

    @model_validator(mode="after")
    def _task_ids_unique(self) -> "BenchmarkSuiteDocument":
        seen: set[str] = set()
        for item in self.tasks:
            if item.task.task_id in seen:
                raise ValueError(f"tasks: task_id {item.task.task_id!r} appears twice")
            seen.add(item.task.task_id)
        return self


def load_benchmark_suite(path: Path | str) -> BenchmarkSuite:
    """Read a suite file (docs: README, "Benchmark suite file"); BadInputError says what is wrong with it."""
    path = Path(path)
    try:
        data = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise BadInputError(f"--benchmark-suite {path} does not exist; give a suite .json file") from None
    except OSError as exc:
        raise BadInputError(f"--benchmark-suite {path} cannot be read: {exc.strerror or exc}") from None
    except orjson.JSONDecodeError as exc:
        raise BadInputError(f"--benchmark-suite {path} is not valid JSON ({exc})") from None
    try:
        document = BenchmarkSuiteDocument.model_validate(data)
    except ValidationError as exc:
        raise BadInputError(f"--benchmark-suite {path}: {describe_validation_error(exc)}") from None
    tasks = [BenchmarkTask(item.task, item.candidates, item.expected_rewards) for item in document.tasks]
    return BenchmarkSuite(document.name or path.stem, tasks)
