"""Scores a router on a benchmark suite: every task routed, executed and logged as a benchmark trajectory."""

from __future__ import annotations

import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterator, Protocol

from memabra.errors import CycleCancelled
from memabra.evaluation.benchmark import BenchmarkSuite
from memabra.models import BenchmarkMetrics, Candidate, Decision, Outcome, Task, Trajectory

CANCEL_CHECK_EVERY = 16
"""Tasks between two looks at the cancel flag (and two progress reports)."""


class Executor(Protocol):
    """Runs a chosen candidate for a task and reports the outcome."""

    def execute(self, task: Task, candidate: Candidate) -> Outcome: ...


@dataclass
class Evaluation:
    """How one router did on one suite, with what it chose and the trajectories it produced."""

    metrics: BenchmarkMetrics
    decisions: dict[str, str] = field(default_factory=dict)
    family_rewards: dict[str, float] = field(default_factory=dict)
    expected_value: float | None = None
    trajectories: list[Trajectory] = field(default_factory=list)

    @property
    def avg_reward(self) -> float:
        return self.metrics.avg_reward

    @property
    def error_rate(self) -> float:
        return self.metrics.error_rate

    @property
    def avg_latency_ms(self) -> float:
        return self.metrics.avg_latency_ms

    @property
    def task_count(self) -> int:
        return self.metrics.task_count


def run_candidate(executor: Executor, task: Task, candidate: Candidate, timeout: float | None = None) -> Outcome:
    """Execute one candidate; an executor that raises, returns no outcome or overruns `timeout` seconds yields an
    error outcome instead of a crash."""
    if timeout is None:
        return _execute(executor, task, candidate)
    finished: list[Outcome] = []
    worker = threading.Thread(target=lambda: finished.append(_execute(executor, task, candidate)),
                              name=f"memabra-execute-{task.task_id}", daemon=True)
    worker.start()
    worker.join(timeout)
    if not finished:
        # The call cannot be stopped from outside; its daemon thread is abandoned and its result ignored.
        return Outcome(reward=0.0, latency_ms=timeout * 1000.0, error=f"executor timed out after {timeout:g} s")
    return finished[0]


def _execute(executor: Executor, task: Task, candidate: Candidate) -> Outcome:
    try:
        outcome = executor.execute(task, candidate)
        return outcome if isinstance(outcome, Outcome) else Outcome.model_validate(outcome)
    except Exception as exc:  # noqa: BLE001 - a failing executor is an outcome, not a crashed cycle
        return Outcome(reward=0.0, latency_ms=0.0, error=f"executor raised {type(exc).__name__}: {exc}"[:2000])


class Evaluator:
    """Runs routers over benchmark suites (`Evaluator().evaluate(router, suite)`)."""

    def __init__(self, executor: Executor | None = None, concurrency: int = 1, timeout: float | None = None):
        self.executor = executor
        self.concurrency = max(1, concurrency)
        self.timeout = timeout

    def evaluate(
        self,
        router,
        suite: BenchmarkSuite,
        on_progress: Callable[[int, int], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> Evaluation:
        """Route, execute and log every task of the suite; return the metrics and what was chosen."""
        executor = self.executor or suite.executor
        if executor is None:
            raise ValueError(f"suite {suite.name} has no executor; pass one to Evaluator(executor=...)")
        total = len(suite.tasks)
        rewards_by_family: dict[str, list[float]] = defaultdict(list)
        decisions: dict[str, str] = {}
        trajectories: list[Trajectory] = []
        reward_sum = latency_sum = 0.0
        errors = 0
        expected_sum = 0.0
        expected_known = True
        runs = self._runs(router, executor, suite)
        for done, item in enumerate(suite.tasks, start=1):
            decision, chosen, outcome = next(runs)
            reward_sum += outcome.reward
            latency_sum += outcome.latency_ms
            errors += outcome.error is not None
            family = str(item.task.metadata.get("family", "all")) if item.task.metadata else "all"
            rewards_by_family[family].append(outcome.reward)
            decisions[item.task.task_id] = chosen.candidate_id
            if item.expected_rewards and chosen.candidate_id in item.expected_rewards:
                expected_sum += item.expected_rewards[chosen.candidate_id]
            else:
                expected_known = False
            trajectories.append(Trajectory(source="benchmark", task=item.task, candidates=item.candidates,
                                           decision=decision, outcome=outcome))
            if done % CANCEL_CHECK_EVERY == 0 or done == total:
                if cancel is not None and cancel.is_set():
                    runs.close()
                    raise CycleCancelled("the cycle was cancelled during evaluation; nothing was written")
                if on_progress:
                    on_progress(done, total)
        count = max(total, 1)
        metrics = BenchmarkMetrics(
            avg_reward=reward_sum / count,
            error_rate=errors / count,
            avg_latency_ms=latency_sum / count,
            task_count=total,
        )
        return Evaluation(
            metrics=metrics,
            decisions=decisions,
            family_rewards={name: sum(values) / len(values) for name, values in sorted(rewards_by_family.items())},
            expected_value=expected_sum / count if expected_known and total else None,
            trajectories=trajectories,
        )

    def _runs(self, router, executor: Executor, suite: BenchmarkSuite) -> Iterator[tuple[Decision, Candidate, Outcome]]:
        """Each task's decision, chosen candidate and outcome, in suite order; up to `concurrency` execute at once
        (routing stays in the caller's thread, so routers need not be thread-safe)."""
        chosen_runs = []
        for item in suite.tasks:
            decision = router.route(item.task, item.candidates)
            chosen = next(c for c in item.candidates if c.candidate_id == decision.chosen_candidate_id)
            if self.concurrency == 1:
                yield decision, chosen, run_candidate(executor, item.task, chosen, self.timeout)
            else:
                chosen_runs.append((item.task, decision, chosen))
        if not chosen_runs:
            return
        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="memabra-benchmark")
        try:
            futures = [pool.submit(run_candidate, executor, task, chosen, self.timeout)
                       for task, _, chosen in chosen_runs]
            for (_, decision, chosen), future in zip(chosen_runs, futures):
                yield decision, chosen, future.result()
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
