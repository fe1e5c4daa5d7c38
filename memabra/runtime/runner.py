"""The agent runner: retrieval, then the router, then the executor, and the run logged as a trajectory."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from memabra.evaluation.evaluator import Executor, run_candidate
from memabra.learning.exploration import ExplorationPolicy
from memabra.learning.routers import HeuristicRouter, ScoringRouter
from memabra.models import Candidate, Decision, Task, Trajectory
from memabra.runtime.case_index import CaseIndex
from memabra.runtime.routing import ExploringRouter
from memabra.settings import load_settings
from memabra.storage.trajectories import TrajectoryWriter, shared_writer


class Retriever(Protocol):
    """Finds the candidates for a task."""

    def candidates(self, task: Task) -> list[Candidate]: ...


class AgentRunner:
    """Routes tasks with the active router under an exploring logging policy and logs every run."""

    def __init__(
        self,
        base_dir: Path | str,
        retriever: Retriever,
        executor: Executor,
        router: ScoringRouter | None = None,
        exploration: ExplorationPolicy | None = None,
        case_index: CaseIndex | None = None,
        writer: TrajectoryWriter | None = None,
        seed: int | None = None,
    ):
        self.base_dir = Path(base_dir)
        self.retriever = retriever
        self.executor = executor
        self.routing = ExploringRouter(router or HeuristicRouter(),
                                       exploration or ExplorationPolicy.from_settings(load_settings()), seed)
        self.case_index = case_index
        self.writer = writer or shared_writer(self.base_dir)

    @property
    def router(self) -> ScoringRouter:
        return self.routing.router

    @property
    def exploration(self) -> ExplorationPolicy:
        return self.routing.exploration

    def set_router(self, router: ScoringRouter) -> None:
        """Swap the router used for every later task."""
        self.routing.swap(router)

    def retrieve(self, task: Task) -> list[Candidate]:
        """The retriever's candidates, plus an episodic hint when the case index knows this input."""
        candidates = list(self.retriever.candidates(task))
        if self.case_index is not None:
            hint = self.case_index.episodic_candidate(task.text)
            if hint is not None:
                candidates.append(hint)
        return candidates

    def decide(self, task: Task, candidates: list[Candidate]) -> Decision:
        """Score the candidates with the router and pick one under the logging policy, recording its propensity."""
        return self.routing.decide(task, candidates)

    def run_task(self, task: Task, source: str = "agent", save: bool = True) -> Trajectory:
        """Retrieve, decide, execute and (by default) store one task's trajectory."""
        candidates = self.retrieve(task)
        decision = self.decide(task, candidates)
        chosen = next(c for c in candidates if c.candidate_id == decision.chosen_candidate_id)
        outcome = run_candidate(self.executor, task, chosen)
        trajectory = Trajectory(source=source, task=task, candidates=candidates, decision=decision, outcome=outcome)
        if save:
            self.writer.append(trajectory)
        return trajectory
