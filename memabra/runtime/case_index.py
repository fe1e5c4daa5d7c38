"""Episodic memory: the best past trajectory for each task input seen before, offered as a hint."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from pydantic import ValidationError

from memabra.errors import CorruptDocumentError
from memabra.models import Candidate, CandidateKind, Document, Trajectory
from memabra.storage.documents import describe_validation_error, read_table, write_table
from memabra.storage.trajectories import TrajectoryStore

CASES_TABLE = "cases"
EPISODIC_SCORE = 0.7
"""Retrieval score given to an episodic hint (an exact match of a past input)."""

_NON_WORD = re.compile(r"[^a-z0-9]+")


def normalize_input(text: str) -> str:
    """The form two inputs share when they ask the same thing (case, punctuation and spacing ignored)."""
    return _NON_WORD.sub(" ", text.lower()).strip()


class Case(Document):
    """The best past run of one input."""

    key: str
    trajectory_id: str
    task_text: str
    candidate_id: str
    kind: CandidateKind
    name: str = ""
    reward: float


class CaseIndex:
    """Maps normalised task inputs to their best past trajectory."""

    def __init__(self, cases: dict[str, Case] | None = None):
        self.cases: dict[str, Case] = cases or {}

    def __len__(self) -> int:
        return len(self.cases)

    @classmethod
    def build(cls, trajectories: Iterable[Trajectory]) -> "CaseIndex":
        """Keep, for every input, the highest-reward run (the newest on ties) that did not error."""
        cases: dict[str, Case] = {}
        for trajectory in trajectories:
            if trajectory.outcome.error is not None:
                continue
            chosen = trajectory.chosen
            if chosen.kind == CandidateKind.episodic:
                continue  # a hint of a hint says nothing new
            key = normalize_input(trajectory.task.text)
            best = cases.get(key)
            if best is None or trajectory.outcome.reward >= best.reward:
                cases[key] = Case(key=key, trajectory_id=trajectory.trajectory_id, task_text=trajectory.task.text,
                                  candidate_id=chosen.candidate_id, kind=chosen.kind, name=chosen.name,
                                  reward=trajectory.outcome.reward)
        return cls(cases)

    def lookup(self, text: str) -> Case | None:
        """The best past run of this input, if it was seen before."""
        return self.cases.get(normalize_input(text))

    def episodic_candidate(self, text: str) -> Candidate | None:
        """A candidate carrying the best past run of this input as a hint, or None for a new input."""
        case = self.lookup(text)
        if case is None:
            return None
        return Candidate(
            candidate_id=f"episodic:{case.trajectory_id}",
            kind=CandidateKind.episodic,
            name=f"replay {case.name or case.kind.value}",
            score=EPISODIC_SCORE,
            payload={"hint_kind": case.kind.value, "hint_candidate_id": case.candidate_id,
                     "hint_reward": case.reward, "source_trajectory_id": case.trajectory_id},
        )

    @classmethod
    def rebuild(cls, trajectories: TrajectoryStore | Path, path: Path) -> "CaseIndex":
        """Build the index from every stored trajectory (benchmark runs included) and save it at path."""
        store = trajectories if isinstance(trajectories, TrajectoryStore) else TrajectoryStore(trajectories)
        index = cls.build(trajectory for batch in store.iter_batches() for trajectory in batch.trajectories)
        index.save(path)
        return index

    def save(self, path: Path) -> None:
        """Write the index as one TinyDB table, atomically."""
        write_table(path, CASES_TABLE, [case.model_dump(mode="json") for case in self.cases.values()])

    @classmethod
    def load(cls, path: Path) -> "CaseIndex":
        """Read an index written by save(); an absent file is an empty index."""
        rows = read_table(path, CASES_TABLE)
        cases = {}
        for row in rows:
            try:
                case = Case.model_validate(dict(row))
            except ValidationError as exc:
                raise CorruptDocumentError(path, describe_validation_error(exc)) from exc
            cases[case.key] = case
        return cls(cases)


def rebuild_case_index(trajectories: TrajectoryStore | Path, path: Path) -> CaseIndex:
    """Build the index from every stored trajectory (benchmark runs included) and save it at path."""
    return CaseIndex.rebuild(trajectories, path)
