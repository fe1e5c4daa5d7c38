"""A tiny rule-based agent (no network, no model) that routes with memabra's active router and logs every run.

Five candidates per task: a calculator tool, a unit-converter skill, a notes memory, a quick direct answer and
a clarifying question. Retrieval is overconfident about the quick answer, so the built-in heuristic router
mostly guesses; a router learned from the agent's own trajectories learns which candidate each kind of task
needs.
"""

from __future__ import annotations

import random
import re
import time
from pathlib import Path
from typing import IO

import memabra
from memabra.learning.exploration import ExplorationPolicy
from memabra.models import Candidate, Outcome, Task, Trajectory

NOTES = {"dentist": "Tuesday at 9", "passport": "the top drawer", "wifi password": "tinyagent42",
         "team offsite": "Lisbon in May"}
UNITS = {"km": ("miles", 0.621371), "kg": ("pounds", 2.20462), "litres": ("gallons", 0.264172)}
GREETINGS = ("Hi there!", "Good morning!", "Thanks a lot!", "Hello agent")
VAGUE = ("Can you sort it out?", "Do the usual thing", "Help me with that", "Fix it please")
CLARIFY_ANSWER = "Could you tell me a little more about what you need?"

_ARITHMETIC = re.compile(r"what is (\d+) (plus|times|minus) (\d+)", re.I)
_CONVERSION = re.compile(r"convert (\d+) (km|kg|litres)", re.I)


def make_task(rng: random.Random, task_id: str) -> Task:
    """Draw one task of a random family; its metadata carries the right answer so the grader can score."""
    family = rng.choice(("arithmetic", "conversion", "recall", "greeting", "vague"))
    if family == "arithmetic":
        a, b, op = rng.randint(2, 99), rng.randint(2, 99), rng.choice(("plus", "times", "minus"))
        text, answer = f"What is {a} {op} {b}?", str(_calculate(a, op, b))
    elif family == "conversion":
        amount, unit = rng.randint(1, 500), rng.choice(tuple(UNITS))
        text, answer = f"Convert {amount} {unit} to {UNITS[unit][0]}", _convert(amount, unit)
    elif family == "recall":
        topic = rng.choice(tuple(NOTES))
        text, answer = f"Where or when is my {topic}?", NOTES[topic]
    elif family == "greeting":
        text, answer = rng.choice(GREETINGS), "Hello! How can I help?"
    else:
        text, answer = rng.choice(VAGUE), CLARIFY_ANSWER
    return Task(task_id=task_id, text=text, metadata={"family": family, "answer": answer})


def _calculate(a: int, op: str, b: int) -> int:
    return {"plus": a + b, "times": a * b, "minus": a - b}[op]


def _convert(amount: int, unit: str) -> str:
    target, factor = UNITS[unit]
    return f"{amount * factor:.1f} {target}"


def retrieve(task: Task) -> list[Candidate]:
    """Every candidate, scored by naive keyword matching that always favours the quick answer."""
    text = task.text.lower()
    return [
        Candidate(candidate_id="tool:calculator", kind="tool", name="calculator",
                  score=0.55 if any(ch.isdigit() for ch in text) else 0.2),
        Candidate(candidate_id="skill:unit-converter", kind="skill", name="unit converter",
                  score=0.5 if "convert" in text else 0.15),
        Candidate(candidate_id="memory:notes", kind="memory", name="notes", score=0.45 if "my" in text else 0.3),
        Candidate(candidate_id="direct:quick-answer", kind="direct", name="quick answer", score=0.8),
        Candidate(candidate_id="clarify:ask-back", kind="clarify", name="ask back", score=0.25),
    ]


def answer(task: Task, candidate: Candidate) -> str:
    """What the chosen candidate produces for the task; raises when it cannot handle the task at all."""
    if candidate.name == "calculator":
        match = _ARITHMETIC.search(task.text)
        if not match:
            raise ValueError("no arithmetic in the task")
        return str(_calculate(int(match[1]), match[2].lower(), int(match[3])))
    if candidate.name == "unit converter":
        match = _CONVERSION.search(task.text)
        if not match:
            raise ValueError("no conversion in the task")
        return _convert(int(match[1]), match[2].lower())
    if candidate.name == "notes":
        for topic, note in NOTES.items():
            if topic in task.text.lower():
                return note
        return "I have no note about that."
    if candidate.name == "quick answer":
        return "Hello! How can I help?" if task.metadata.get("family") == "greeting" else "Probably 42."
    return CLARIFY_ANSWER


class TinyAgentExecutor:
    """Runs a candidate for real and grades the answer against the task's: 1 right, 0.2 for asking back, else 0."""

    def execute(self, task: Task, candidate: Candidate) -> Outcome:
        started = time.perf_counter()
        try:
            text = answer(task, candidate)
        except ValueError as exc:
            return Outcome(reward=0.0, latency_ms=(time.perf_counter() - started) * 1000, error=str(exc))
        right = text == task.metadata.get("answer")
        reward = 1.0 if right else (0.2 if text == CLARIFY_ANSWER else 0.0)
        return Outcome(reward=reward, latency_ms=(time.perf_counter() - started) * 1000)


def make_executor() -> TinyAgentExecutor:
    """The benchmark's executor (`--executor examples.tiny_agent.agent:make_executor`)."""
    return TinyAgentExecutor()


class TinyAgent:
    """Handles tasks: retrieve, ask memabra's active router, execute, log the run.

    Runs go to memabra's writer, or, while `jsonl_log` is an open file, to a JSON Lines log for `--ingest`."""

    def __init__(self, base_dir: Path, epsilon: float = 0.3, seed: int = 0, jsonl_log: IO[str] | None = None):
        self.base_dir = Path(base_dir)
        self.router = memabra.load_active_router(self.base_dir, ExplorationPolicy("epsilon_greedy", epsilon),
                                                 seed=seed)
        self.executor = TinyAgentExecutor()
        self.jsonl_log = jsonl_log

    def handle(self, task: Task) -> Trajectory:
        """Route, execute and log one task; return the logged run."""
        candidates = retrieve(task)
        decision = self.router.route(task, candidates)
        chosen = next(c for c in candidates if c.candidate_id == decision.chosen_candidate_id)
        outcome = self.executor.execute(task, chosen)
        run = Trajectory(task=task, candidates=candidates, decision=decision, outcome=outcome)
        if self.jsonl_log is None:
            memabra.append_trajectory(run, base_dir=self.base_dir)
        else:
            self.jsonl_log.write(run.model_dump_json() + "\n")
        return run


def benchmark_suite(task_count: int = 40, seed: int = 2024) -> dict:
    """A fixed suite of the agent's tasks with every candidate's reward, in memabra's suite-file format."""
    rng = random.Random(seed)
    executor = TinyAgentExecutor()
    tasks = []
    for index in range(task_count):
        task = make_task(rng, f"bench-{index:03d}")
        candidates = retrieve(task)
        tasks.append({
            "task": task.model_dump(mode="json"),
            "candidates": [candidate.model_dump(mode="json") for candidate in candidates],
            "expected_rewards": {c.candidate_id: executor.execute(task, c).reward for c in candidates},
        })
    return {"name": "tiny-agent", "tasks": tasks}
