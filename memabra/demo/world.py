"""A deterministic simulated agent world with ground truth, so memabra has real work without an agent.

Task families differ in which candidate kind serves them best, and in some of them the retrieval score
points at the wrong kind: trusting it (the heuristic router) stays far below the best possible value.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from pydantic import TypeAdapter

from memabra.evaluation.benchmark import BenchmarkSuite, BenchmarkTask
from memabra.models import Candidate, CandidateKind, Outcome, Task

OFFERED_KINDS = ("memory", "skill", "tool", "direct", "clarify")
"""Kinds every demo task is offered; an episodic candidate is added by the runner's case index."""

ERROR_RATE = {"memory": 0.01, "skill": 0.04, "tool": 0.08, "episodic": 0.01, "direct": 0.01, "clarify": 0.0}
BASE_LATENCY_MS = {"memory": 120.0, "skill": 1200.0, "tool": 700.0, "episodic": 90.0, "direct": 350.0,
                   "clarify": 150.0}
LATENCY_SIGMA = 0.25
SCORE_NOISE = 0.12
REWARD_NOISE = 0.15
EPISODIC_BONUS = 0.03


@dataclass(frozen=True)
class Family:
    """One kind of task: how it is phrased, how well each kind serves it, and what retrieval thinks."""

    name: str
    templates: tuple[str, ...]
    slots: dict[str, tuple[str, ...]]
    quality: dict[str, float]
    """Chance-free success quality of each kind on this family (before errors)."""
    retrieval: dict[str, float]
    """Centre of the retrieval score each kind gets on this family."""
    names: dict[str, str]
    episodic_bonus: float = EPISODIC_BONUS


CITIES = ("Paris", "Lagos", "Osaka", "Lima", "Oslo", "Denver", "Pune", "Cairo")
TOPICS = ("the budget", "the hiring plan", "kubernetes", "the offsite", "pricing", "the roadmap", "vendor X",
          "the launch")
PEOPLE = ("Ana", "Bilal", "Chen", "Dara", "Emeka", "Farah", "Goran", "Hina")

FAMILIES: tuple[Family, ...] = (
    Family(
        "weather",
        ("What's the weather in {city} {when}?", "Will it rain in {city} {when}?",
         "Temperature forecast for {city} {when}"),
        {"city": CITIES, "when": ("today", "tomorrow", "this weekend", "tonight")},
        {"memory": 0.30, "skill": 0.40, "tool": 0.92, "direct": 0.20, "clarify": 0.25},
        {"memory": 0.50, "skill": 0.45, "tool": 0.60, "direct": 0.72, "clarify": 0.30},
        {"memory": "notes about places", "skill": "trip planner", "tool": "weather api",
         "direct": "answer from model knowledge", "clarify": "ask which day"},
    ),
    Family(
        "recall",
        ("What did I say about {topic} last {period}?", "Remind me what I noted on {topic}",
         "What was my decision about {topic}?"),
        {"topic": TOPICS, "period": ("week", "month", "quarter")},
        {"memory": 0.92, "skill": 0.20, "tool": 0.25, "direct": 0.15, "clarify": 0.30},
        {"memory": 0.80, "skill": 0.40, "tool": 0.35, "direct": 0.55, "clarify": 0.30},
        {"memory": "personal notes", "skill": "meeting summariser", "tool": "search engine",
         "direct": "answer from model knowledge", "clarify": "ask what was said"},
    ),
    Family(
        "vague",
        ("Can you help me with {thing}?", "Fix {thing} please", "I need something for {thing}"),
        {"thing": ("the thing", "that stuff", "it", "this", "the usual", "my problem")},
        {"memory": 0.30, "skill": 0.30, "tool": 0.20, "direct": 0.35, "clarify": 0.86},
        {"memory": 0.50, "skill": 0.72, "tool": 0.40, "direct": 0.62, "clarify": 0.45},
        {"memory": "recent notes", "skill": "general helper", "tool": "search engine",
         "direct": "best guess answer", "clarify": "ask what is meant"},
    ),
    Family(
        "arithmetic",
        ("What is {a} times {b}?", "Convert {a} {unit} to metres", "How much is {a} percent of {b}?"),
        {"a": ("17", "243", "3.5", "88", "1200", "64"), "b": ("19", "7", "412", "0.25", "96", "33"),
         "unit": ("feet", "yards", "miles", "inches")},
        {"memory": 0.10, "skill": 0.50, "tool": 0.95, "direct": 0.55, "clarify": 0.20},
        {"memory": 0.30, "skill": 0.50, "tool": 0.62, "direct": 0.76, "clarify": 0.25},
        {"memory": "saved numbers", "skill": "spreadsheet helper", "tool": "calculator",
         "direct": "mental arithmetic", "clarify": "ask for the units"},
    ),
    Family(
        "drafting",
        ("Draft an email to {person} about {topic}", "Write a short note to {person} on {topic}",
         "Summarise {topic} for {person}"),
        {"person": PEOPLE, "topic": TOPICS},
        {"memory": 0.40, "skill": 0.88, "tool": 0.20, "direct": 0.60, "clarify": 0.35},
        {"memory": 0.74, "skill": 0.64, "tool": 0.30, "direct": 0.60, "clarify": 0.35},
        {"memory": "past emails with people", "skill": "email drafter", "tool": "mail client",
         "direct": "quick reply", "clarify": "ask about tone"},
    ),
    Family(
        "smalltalk",
        ("Thanks, {ack}!", "Hi there, {ack}", "Good morning! {ack}"),
        {"ack": ("that was great", "you rock", "appreciate it", "have a nice day", "cheers")},
        {"memory": 0.20, "skill": 0.15, "tool": 0.10, "direct": 0.95, "clarify": 0.30},
        {"memory": 0.50, "skill": 0.30, "tool": 0.20, "direct": 0.80, "clarify": 0.45},
        {"memory": "conversation history", "skill": "small talk", "tool": "greeting card api",
         "direct": "friendly reply", "clarify": "ask how to help"},
    ),
    Family(
        "repeat",
        ("Run the {report} report again like last time", "Same {report} export as before",
         "Redo the {report} summary we did last week"),
        {"report": ("sales", "churn", "weekly ops", "incident", "billing", "usage")},
        {"memory": 0.50, "skill": 0.70, "tool": 0.35, "direct": 0.25, "clarify": 0.40},
        {"memory": 0.75, "skill": 0.62, "tool": 0.35, "direct": 0.45, "clarify": 0.40},
        {"memory": "report archive", "skill": "report builder", "tool": "bi export",
         "direct": "describe the report", "clarify": "ask which report"},
        episodic_bonus=0.25,
    ),
    Family(
        "lookup",
        ("Find the latest news on {topic}", "Search the web for {topic} reviews", "Look up current prices for {topic}"),
        {"topic": ("electric bikes", "GPUs", "solar panels", "flights to Rome", "noise cancelling headphones",
                   "standing desks")},
        {"memory": 0.35, "skill": 0.30, "tool": 0.86, "direct": 0.30, "clarify": 0.20},
        {"memory": 0.73, "skill": 0.35, "tool": 0.58, "direct": 0.60, "clarify": 0.25},
        {"memory": "saved bookmarks", "skill": "research digest", "tool": "web search",
         "direct": "answer from model knowledge", "clarify": "ask what to look for"},
    ),
)
FAMILY_BY_NAME = {family.name: family for family in FAMILIES}
_OFFERS = {
    family.name: [(CandidateKind(kind), f"{kind}:{family.names[kind].replace(' ', '-')}", family.names[kind],
                   family.retrieval[kind]) for kind in OFFERED_KINDS]
    for family in FAMILIES
}
"""Per family, what retrieval offers for each kind: (kind, candidate id, name, centre of its score)."""
_CANDIDATE_LIST = TypeAdapter(list[Candidate])


def _keyed_rng(*parts: object) -> random.Random:
    """A random stream fixed by its key, the same in every process."""
    return random.Random(":".join(map(str, parts)))


class DemoWorld:
    """The simulated world: a task source, a retriever, an executor and ground truth in one."""

    def __init__(self, seed: int = 7):
        self.seed = seed

    # -- tasks and retrieval -------------------------------------------------------------------
    def sample_task(self, rng: random.Random) -> Task:
        """Draw a task from a random family with random slot values."""
        family = rng.choice(FAMILIES)
        return self._make_task(family, rng, f"task-{rng.getrandbits(64):016x}")

    def _make_task(self, family: Family, rng: random.Random, task_id: str) -> Task:
        template = rng.choice(family.templates)
        values = {slot: rng.choice(options) for slot, options in family.slots.items()}
        return Task(task_id=task_id, text=template.format(**values), metadata={"family": family.name})

    def family_of(self, task: Task) -> Family:
        """The task's family, read from its metadata; tasks from elsewhere cannot run here."""
        name = task.metadata.get("family") if task.metadata else None
        if name not in FAMILY_BY_NAME:
            raise ValueError(f"task {task.task_id} is not a demo world task (no known metadata.family)")
        return FAMILY_BY_NAME[name]

    def candidates(self, task: Task) -> list[Candidate]:
        """The candidates retrieval offers for a task, with noisy (and in places misleading) scores."""
        family = self.family_of(task)
        rng = _keyed_rng(self.seed, "retrieval", task.task_id)
        uniform = rng.uniform
        return _CANDIDATE_LIST.validate_python([
            {"candidate_id": candidate_id, "kind": kind, "name": name,
             "score": round(min(max(centre + uniform(-SCORE_NOISE, SCORE_NOISE), 0.0), 1.0), 4)}
            for kind, candidate_id, name, centre in _OFFERS[family.name]])

    # -- ground truth and execution ------------------------------------------------------------
    def quality(self, task: Task, candidate: Candidate) -> float:
        """Success quality of a candidate on a task before errors."""
        family = self.family_of(task)
        kind = candidate.kind.value
        if kind == "episodic":
            hinted = (candidate.payload or {}).get("hint_kind")
            base = family.quality.get(hinted, 0.2)
            return min(0.97, base + family.episodic_bonus)
        return family.quality[kind]

    def expected_reward(self, task: Task, candidate: Candidate) -> float:
        """The noise-free expected reward of choosing this candidate for this task."""
        return (1.0 - ERROR_RATE[candidate.kind.value]) * self.quality(task, candidate)

    def execute(self, task: Task, candidate: Candidate) -> Outcome:
        """Run the candidate: seeded noise keyed on task and candidate, simulated latency (never slept)."""
        kind = candidate.kind.value
        rng = _keyed_rng(self.seed, "execute", task.task_id, candidate.candidate_id)
        z = rng.gauss(0.0, 1.0)
        latency = BASE_LATENCY_MS[kind] * math.exp(LATENCY_SIGMA * z - LATENCY_SIGMA ** 2 / 2)
        if rng.random() < ERROR_RATE[kind]:
            return Outcome(reward=0.0, latency_ms=round(latency, 3), error=f"{kind} failed: simulated error")
        quality = self.quality(task, candidate)
        spread = min(REWARD_NOISE, quality, 1.0 - quality)
        return Outcome(reward=round(quality + spread * rng.uniform(-1.0, 1.0), 6), latency_ms=round(latency, 3))

    # -- benchmark ------------------------------------------------------------------------------
    def benchmark_suite(self, size: int = 160) -> BenchmarkSuite:
        """A fixed, family-balanced suite of tasks with their true expected rewards."""
        rng = _keyed_rng(self.seed, "benchmark")
        tasks = []
        for index in range(size):
            family = FAMILIES[index % len(FAMILIES)]
            task = self._make_task(family, rng, f"bench-{index:04d}")
            candidates = self.candidates(task)
            expected = {c.candidate_id: self.expected_reward(task, c) for c in candidates}
            tasks.append(BenchmarkTask(task, candidates, expected))
        return BenchmarkSuite(f"demo-world(seed={self.seed})", tasks, executor=self)
