"""A second simulated world, a customer-support desk, with the traits real agents have and the demo world lacks.

Several candidates share a kind (four tools, three skills, three memories, three episodic sources) and which of
them is best depends on the task text; retrieval offers 3 to 7 of them per task (the best sometimes missing), its
scores are right for some families and misleading for others; task metadata (`channel`, `tier`) and a candidate's
`payload["cost"]` change what is best in some families; `phase=2` changes the best candidate of three families.
Same duck-typed interface as `DemoWorld`, so generation, the evaluator and benchmark suites take it unchanged.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass, field

from pydantic import TypeAdapter

from memabra.evaluation.benchmark import BenchmarkSuite, BenchmarkTask
from memabra.models import Candidate, Outcome, Task

SCORE_NOISE = 0.12
REWARD_NOISE = 0.15
LATENCY_SIGMA = 0.3
BEST_OFFER_WEIGHT = 3.0
"""Retrieval draws a family's strong candidates this many times as often as the rest (so they are usually offered)."""
UNKNOWN_QUALITY = 0.1
"""Quality of a candidate this desk does not know (it cannot do the desk's work)."""
HINT_BONUS = 0.03
MIN_QUALITY, MAX_QUALITY = 0.02, 0.97


@dataclass(frozen=True)
class Offer:
    """A candidate the desk can offer: its identity, error rate, latency and typical cost per use."""

    candidate_id: str
    name: str
    error_rate: float
    latency_ms: float
    cost: float

    @property
    def kind(self) -> str:
        return self.candidate_id.split(":", 1)[0]


CATALOGUE: tuple[Offer, ...] = (
    Offer("tool:order-lookup", "order lookup", 0.05, 600.0, 0.25),
    Offer("tool:billing", "billing console", 0.06, 800.0, 0.30),
    Offer("tool:ticketing", "ticket tracker", 0.03, 500.0, 0.20),
    Offer("tool:help-search", "help centre search", 0.02, 400.0, 0.15),
    Offer("skill:refund-flow", "refund workflow", 0.04, 1500.0, 0.45),
    Offer("skill:troubleshoot", "troubleshooting guide", 0.05, 1800.0, 0.50),
    Offer("skill:account-recovery", "account recovery", 0.03, 1300.0, 0.40),
    Offer("memory:customer-history", "customer history", 0.01, 150.0, 0.05),
    Offer("memory:policy-notes", "policy notes", 0.01, 120.0, 0.05),
    Offer("memory:past-resolutions", "past resolutions", 0.01, 140.0, 0.05),
    Offer("episodic:last-ticket", "this customer's last ticket", 0.01, 100.0, 0.04),
    Offer("episodic:similar-case", "closest solved case", 0.02, 110.0, 0.04),
    Offer("episodic:saved-macro", "saved reply macro", 0.01, 90.0, 0.03),
    Offer("direct:quick-answer", "quick answer", 0.01, 300.0, 0.02),
    Offer("direct:apology", "empathetic reply", 0.005, 250.0, 0.02),
    Offer("clarify:order-number", "ask for the order number", 0.0, 150.0, 0.10),
    Offer("clarify:details", "ask for details", 0.0, 150.0, 0.10),
)
OFFER_BY_ID = {offer.candidate_id: offer for offer in CATALOGUE}

CHANNELS = (("chat", 0.5), ("email", 0.3), ("phone", 0.2))
TIERS = (("free", 0.5), ("pro", 0.35), ("enterprise", 0.15))
HAS_NUMBER = r"\d"


@dataclass(frozen=True)
class SupportFamily:
    """One kind of support request: its phrasings, and per offered candidate (quality, centre of retrieval score)."""

    name: str
    templates: tuple[str, ...]
    slots: dict[str, tuple[str, ...]]
    pool: dict[str, tuple[float, float]]
    """Candidates retrieval may offer for this family: candidate id -> (quality before errors, score centre)."""
    text_rules: tuple[tuple[str, dict[str, float]], ...] = ()
    """(regex, quality changes) applied when the task text matches: the best can depend on the words."""
    metadata_rules: tuple[tuple[str, str, dict[str, float]], ...] = ()
    """(metadata key, value, quality changes) applied when the task's metadata has that value."""
    cost_weight: float = 0.0
    """How much each unit of a candidate's `payload["cost"]` takes off its quality on this family."""
    phase2: dict[str, float] = field(default_factory=dict)
    """Qualities that change in phase 2 (drift)."""

    def strong(self) -> set[str]:
        """Candidates that are best for some task of this family in either phase (retrieval favours them)."""
        def best(qualities: dict[str, float]) -> str:
            return max(qualities, key=qualities.__getitem__)

        base = {cid: quality for cid, (quality, _) in self.pool.items()}
        found = {best(base), best({**base, **self.phase2})}
        for changes in [changes for _, changes in self.text_rules] + [c for _, _, c in self.metadata_rules]:
            found.add(best({cid: quality + changes.get(cid, 0.0) for cid, quality in base.items()}))
        return found


ITEMS = ("headphones", "blender", "running shoes", "laptop stand", "coffee grinder", "phone case", "desk lamp")
ORDERS = ("A1042", "B2291", "C3310", "D4187", "E5023", "F6654", "G7719")
TICKETS = ("#48213", "#50977", "#51236", "#53380", "#55012")
DAYS = ("Monday", "Tuesday", "Friday", "the weekend", "last week")

FAMILIES: tuple[SupportFamily, ...] = (
    SupportFamily(
        "order_status",
        ("Where is my order {order}?", "Has order {order} shipped yet?",
         "Tracking for order {order} has not updated since {day}", "When will my {item} arrive?"),
        {"order": ORDERS, "day": DAYS, "item": ITEMS},
        {"tool:order-lookup": (0.90, 0.70), "tool:ticketing": (0.45, 0.50), "tool:billing": (0.30, 0.45),
         "memory:customer-history": (0.55, 0.60), "episodic:last-ticket": (0.50, 0.55),
         "direct:quick-answer": (0.20, 0.40), "clarify:order-number": (0.55, 0.35), "clarify:details": (0.30, 0.30)},
        text_rules=((r"^When will my", {"clarify:order-number": 0.33, "tool:order-lookup": -0.40}),),
        phase2={"tool:order-lookup": 0.42, "memory:customer-history": 0.84},
    ),
    SupportFamily(
        "refund",
        ("I want a refund for my {item}", "Please refund order {order}, the {item} arrived broken",
         "Can I get my money back for the {item}?"),
        {"item": ITEMS, "order": ORDERS},
        {"skill:refund-flow": (0.90, 0.55), "tool:billing": (0.62, 0.75), "tool:order-lookup": (0.40, 0.60),
         "memory:policy-notes": (0.45, 0.65), "direct:quick-answer": (0.20, 0.45),
         "episodic:saved-macro": (0.50, 0.50), "clarify:order-number": (0.40, 0.30),
         "skill:troubleshoot": (0.20, 0.50), "skill:account-recovery": (0.15, 0.40)},
        text_rules=((r"^I want a refund", {"clarify:order-number": 0.40}),),
        cost_weight=0.35,
        phase2={"skill:refund-flow": 0.50, "tool:billing": 0.93},
    ),
    SupportFamily(
        "billing_charge",
        ("Why was I charged twice on {day}?", "My invoice for {month} is wrong",
         "I was billed for the {plan} plan but I am on {plan2}"),
        {"day": DAYS, "month": ("March", "April", "May", "June"), "plan": ("team", "business", "premium"),
         "plan2": ("basic", "starter", "free")},
        {"tool:billing": (0.90, 0.58), "tool:order-lookup": (0.35, 0.70), "memory:customer-history": (0.55, 0.66),
         "skill:refund-flow": (0.50, 0.55), "direct:apology": (0.30, 0.40), "clarify:details": (0.35, 0.30),
         "episodic:similar-case": (0.55, 0.50), "tool:ticketing": (0.45, 0.55), "tool:help-search": (0.40, 0.50)},
    ),
    SupportFamily(
        "password",
        ("I cannot log in to my account", "Reset my password please", "I am locked out after {n} attempts",
         "The two-factor code never arrives on my {device}"),
        {"n": ("3", "5", "10"), "device": ("phone", "tablet", "work phone")},
        {"skill:account-recovery": (0.90, 0.75), "tool:help-search": (0.55, 0.55), "tool:ticketing": (0.45, 0.45),
         "direct:quick-answer": (0.35, 0.50), "memory:customer-history": (0.30, 0.40),
         "episodic:saved-macro": (0.60, 0.60), "clarify:details": (0.30, 0.30),
         "skill:troubleshoot": (0.40, 0.65)},
        metadata_rules=(("channel", "phone", {"skill:account-recovery": -0.35, "tool:ticketing": 0.38}),),
    ),
    SupportFamily(
        "bug_report",
        ("The app crashes when I {action}", "{feature} is broken since the last update",
         "Error {code} when I try to {action}"),
        {"action": ("upload a photo", "check out", "open settings", "sync my data"),
         "feature": ("Search", "Dark mode", "Export", "Notifications"), "code": ("E102", "E417", "E503")},
        {"skill:troubleshoot": (0.88, 0.55), "tool:ticketing": (0.70, 0.60), "tool:help-search": (0.50, 0.74),
         "memory:past-resolutions": (0.60, 0.65), "episodic:similar-case": (0.62, 0.60),
         "direct:quick-answer": (0.20, 0.45), "clarify:details": (0.45, 0.35),
         "skill:account-recovery": (0.20, 0.45)},
        text_rules=((r"^Error ", {"memory:past-resolutions": 0.32}),),
        cost_weight=0.35,
    ),
    SupportFamily(
        "policy_question",
        ("What is your return policy for {item}?", "Do you ship to {country}?",
         "How long is the warranty on the {item}?"),
        {"item": ITEMS, "country": ("Canada", "Brazil", "Japan", "Kenya", "Norway")},
        {"memory:policy-notes": (0.86, 0.55), "direct:quick-answer": (0.50, 0.75), "tool:help-search": (0.60, 0.62),
         "episodic:saved-macro": (0.55, 0.52), "skill:refund-flow": (0.25, 0.40), "clarify:details": (0.20, 0.25),
         "memory:customer-history": (0.30, 0.45), "memory:past-resolutions": (0.50, 0.60)},
        phase2={"memory:policy-notes": 0.35, "tool:help-search": 0.88},
    ),
    SupportFamily(
        "follow_up",
        ("Any update on ticket {ticket}?", "Following up on case {ticket}", "I wrote to you on {day} and heard nothing"),
        {"ticket": TICKETS, "day": DAYS},
        {"episodic:last-ticket": (0.85, 0.72), "tool:ticketing": (0.76, 0.68), "memory:customer-history": (0.60, 0.60),
         "direct:apology": (0.40, 0.45), "clarify:details": (0.35, 0.35), "direct:quick-answer": (0.20, 0.40),
         "episodic:similar-case": (0.55, 0.50), "tool:order-lookup": (0.40, 0.55)},
        text_rules=((HAS_NUMBER, {"tool:ticketing": 0.16}),),
    ),
    SupportFamily(
        "complaint",
        ("This is the {nth} time my {item} broke and I am furious", "Your service is terrible, {problem}",
         "I am cancelling unless someone fixes {problem}"),
        {"nth": ("second", "third", "fourth"), "item": ITEMS,
         "problem": ("nobody answers", "the delivery was late again", "I was overcharged", "the app keeps failing")},
        {"direct:apology": (0.80, 0.50), "skill:troubleshoot": (0.45, 0.70), "memory:customer-history": (0.60, 0.60),
         "tool:ticketing": (0.50, 0.62), "episodic:similar-case": (0.50, 0.55), "clarify:details": (0.30, 0.40),
         "direct:quick-answer": (0.25, 0.45), "memory:past-resolutions": (0.45, 0.55)},
        metadata_rules=(("tier", "enterprise", {"memory:customer-history": 0.32}),),
    ),
    SupportFamily(
        "vague",
        ("It does not work", "Help with {thing}", "Something is wrong with my {thing}", "Can you look into my order?"),
        {"thing": ("account", "stuff", "settings", "the thing", "subscription")},
        {"clarify:details": (0.82, 0.40), "clarify:order-number": (0.50, 0.35), "tool:help-search": (0.40, 0.70),
         "direct:quick-answer": (0.35, 0.62), "skill:troubleshoot": (0.35, 0.55),
         "memory:customer-history": (0.45, 0.50), "episodic:saved-macro": (0.30, 0.45)},
        text_rules=((r"order", {"clarify:order-number": 0.35, "clarify:details": -0.15}),),
        metadata_rules=(("channel", "email", {"clarify:details": -0.35, "clarify:order-number": -0.35}),),
    ),
)
FAMILY_BY_NAME = {family.name: family for family in FAMILIES}
DRIFTED_FAMILIES = tuple(family.name for family in FAMILIES if family.phase2)
_COMPILED = {pattern: re.compile(pattern) for family in FAMILIES for pattern, _ in family.text_rules}
_STRONG = {family.name: family.strong() for family in FAMILIES}
_CANDIDATE_LIST = TypeAdapter(list[Candidate])


def _keyed_rng(*parts: object) -> random.Random:
    """A random stream fixed by its key, the same in every process."""
    return random.Random(":".join(map(str, parts)))


def _weighted_choice(rng: random.Random, options: tuple[tuple[str, float], ...]) -> str:
    draw, cumulative = rng.random(), 0.0
    for value, weight in options:
        cumulative += weight
        if draw < cumulative:
            return value
    return options[-1][0]


class SupportDeskWorld:
    """The support-desk world: a task source, a retriever, an executor and ground truth in one."""

    def __init__(self, seed: int = 7, phase: int = 1):
        if phase not in (1, 2):
            raise ValueError(f"phase must be 1 or 2, not {phase!r}")
        self.seed = seed
        self.phase = phase

    # -- tasks and retrieval -------------------------------------------------------------------
    def sample_task(self, rng: random.Random) -> Task:
        """Draw a task from a random family with random slot values, channel and customer tier."""
        family = rng.choice(FAMILIES)
        return self._make_task(family, rng, f"support-{rng.getrandbits(64):016x}")

    def _make_task(self, family: SupportFamily, rng: random.Random, task_id: str) -> Task:
        template = rng.choice(family.templates)
        values = {slot: rng.choice(options) for slot, options in family.slots.items()}
        metadata = {"family": family.name, "channel": _weighted_choice(rng, CHANNELS),
                    "tier": _weighted_choice(rng, TIERS)}
        return Task(task_id=task_id, text=template.format(**values), metadata=metadata)

    def family_of(self, task: Task) -> SupportFamily:
        """The task's family, read from its metadata; tasks from elsewhere cannot run here."""
        name = task.metadata.get("family") if task.metadata else None
        if name not in FAMILY_BY_NAME:
            raise ValueError(f"task {task.task_id} is not a support desk task (no known metadata.family)")
        return FAMILY_BY_NAME[name]

    def candidates(self, task: Task) -> list[Candidate]:
        """The 3 to 7 candidates retrieval offers for a task, with noisy (in places misleading) scores and costs."""
        family = self.family_of(task)
        rng = _keyed_rng(self.seed, "retrieval", task.task_id)
        count = rng.randint(3, min(7, len(family.pool)))
        strong = _STRONG[family.name]
        # Weighted sampling without replacement: each candidate's key is u ** (1 / weight), the largest win.
        keys = {cid: rng.random() ** (1.0 / (BEST_OFFER_WEIGHT if cid in strong else 1.0)) for cid in family.pool}
        offered = sorted(family.pool, key=keys.__getitem__, reverse=True)[:count]
        documents = []
        for cid in offered:
            offer, centre = OFFER_BY_ID[cid], family.pool[cid][1]
            score = min(max(centre + rng.uniform(-SCORE_NOISE, SCORE_NOISE), 0.0), 1.0)
            cost = offer.cost * rng.uniform(0.3, 1.7)
            documents.append({"candidate_id": cid, "kind": offer.kind, "name": offer.name, "score": round(score, 4),
                              "payload": {"cost": round(cost, 4)}})
        return _CANDIDATE_LIST.validate_python(documents)

    # -- ground truth and execution ------------------------------------------------------------
    def base_quality(self, task: Task, candidate_id: str) -> float:
        """Quality of a desk candidate on a task from its family, phase, text and metadata (before cost)."""
        family = self.family_of(task)
        if candidate_id not in family.pool:
            return UNKNOWN_QUALITY
        quality = family.pool[candidate_id][0]
        if self.phase == 2:
            quality = family.phase2.get(candidate_id, quality)
        for pattern, changes in family.text_rules:
            if _COMPILED[pattern].search(task.text):
                quality += changes.get(candidate_id, 0.0)
        for key, value, changes in family.metadata_rules:
            if task.metadata.get(key) == value:
                quality += changes.get(candidate_id, 0.0)
        return min(max(quality, MIN_QUALITY), MAX_QUALITY)

    def quality(self, task: Task, candidate: Candidate) -> float:
        """Success quality of a candidate on a task before errors, its cost taken off where the family cares."""
        payload = candidate.payload or {}
        if candidate.candidate_id not in OFFER_BY_ID and "hint_candidate_id" in payload:
            # An episodic replay of a past run (the case index's hint): as good as what it replays, slightly better.
            return min(MAX_QUALITY, self.base_quality(task, str(payload["hint_candidate_id"])) + HINT_BONUS)
        quality = self.base_quality(task, candidate.candidate_id)
        cost = payload.get("cost", 0.0)
        if isinstance(cost, (int, float)):
            quality -= self.family_of(task).cost_weight * float(cost)
        return min(max(quality, MIN_QUALITY), MAX_QUALITY)

    def _error_rate(self, candidate: Candidate) -> float:
        offer = OFFER_BY_ID.get(candidate.candidate_id)
        return offer.error_rate if offer else 0.01

    def expected_reward(self, task: Task, candidate: Candidate) -> float:
        """The noise-free expected reward of choosing this candidate for this task."""
        return (1.0 - self._error_rate(candidate)) * self.quality(task, candidate)

    def best_candidate_id(self, task: Task, candidates: list[Candidate] | None = None) -> str:
        """The candidate with the highest expected reward among those given (default: every desk candidate)."""
        if candidates is None:
            candidates = _CANDIDATE_LIST.validate_python([
                {"candidate_id": offer.candidate_id, "kind": offer.kind, "name": offer.name,
                 "payload": {"cost": offer.cost}} for offer in CATALOGUE])
        return max(candidates, key=lambda candidate: self.expected_reward(task, candidate)).candidate_id

    def execute(self, task: Task, candidate: Candidate) -> Outcome:
        """Run the candidate: seeded noise keyed on task and candidate, simulated latency (never slept)."""
        offer = OFFER_BY_ID.get(candidate.candidate_id)
        rng = _keyed_rng(self.seed, "execute", task.task_id, candidate.candidate_id)
        z = rng.gauss(0.0, 1.0)
        base_latency = offer.latency_ms if offer else 100.0
        latency = base_latency * math.exp(LATENCY_SIGMA * z - LATENCY_SIGMA ** 2 / 2)
        if rng.random() < self._error_rate(candidate):
            return Outcome(reward=0.0, latency_ms=round(latency, 3),
                           error=f"{candidate.candidate_id} failed: simulated error")
        quality = self.quality(task, candidate)
        spread = min(REWARD_NOISE, quality, 1.0 - quality)
        return Outcome(reward=round(quality + spread * rng.uniform(-1.0, 1.0), 6), latency_ms=round(latency, 3))

    # -- benchmark ------------------------------------------------------------------------------
    def benchmark_suite(self, size: int = 180) -> BenchmarkSuite:
        """A fixed, family-balanced suite of tasks with their true expected rewards."""
        rng = _keyed_rng(self.seed, "benchmark")
        tasks = []
        for index in range(size):
            task = self._make_task(FAMILIES[index % len(FAMILIES)], rng, f"bench-{index:04d}")
            candidates = self.candidates(task)
            expected = {c.candidate_id: self.expected_reward(task, c) for c in candidates}
            tasks.append(BenchmarkTask(task, candidates, expected))
        return BenchmarkSuite(f"support-desk(seed={self.seed}, phase={self.phase})", tasks, executor=self)
