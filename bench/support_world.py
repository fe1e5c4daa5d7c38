"""A small support-desk world for measuring learners: several candidates per kind whose best depends on the task
text, 3-7 offered per task, misleading retrieval scores for some families, and a drift that changes three families'
best candidate. Ground truth is exact (expected reward per candidate)."""

from __future__ import annotations

import random

from memabra.models import Candidate, Decision, Outcome, Task, Trajectory

CANDIDATES = {
    "memory": ("customer history", "order notes", "faq notes"),
    "skill": ("refund workflow", "troubleshooting guide", "email composer"),
    "tool": ("order tracker", "ticketing system", "billing api", "knowledge search", "shipping calculator"),
    "episodic": ("similar past ticket", "last resolution"),
    "direct": ("quick answer", "policy answer"),
    "clarify": ("ask for order number", "ask for details"),
}
ALL = [(kind, name) for kind, names in CANDIDATES.items() for name in names]
ITEMS = ("headphones", "a blender", "the desk lamp", "running shoes", "a phone case", "the backpack")
ACTIONS = ("reset my password", "export my data", "change my address", "add a user", "cancel the plan")
CITIES = ("Lyon", "Austin", "Porto", "Kyoto", "Accra", "Quito")
MONTHS = ("March", "April", "May", "June")
ORDERS = ("A-1182", "B-2291", "C-7730", "D-4410", "E-9001")

# family: (templates, slots, {candidate name: quality}, {candidate name: retrieval centre})
FAMILIES = {
    "order_status": (("Where is my order {order}?", "Has order {order} shipped yet?", "Tracking for {order} please"),
                     {"order": ORDERS},
                     {"order tracker": 0.9, "ticketing system": 0.45, "shipping calculator": 0.4,
                      "order notes": 0.6, "ask for order number": 0.35},
                     {"ticketing system": 0.75, "order tracker": 0.6, "order notes": 0.55}),
    "refund": (("I want a refund for {item}", "Return {item}, it arrived broken", "Money back for {item}"),
               {"item": ITEMS},
               {"refund workflow": 0.85, "billing api": 0.55, "policy answer": 0.5, "ticketing system": 0.4},
               {"refund workflow": 0.7, "billing api": 0.6, "policy answer": 0.6}),
    "billing": (("Why was I charged twice in {month}?", "My invoice for {month} looks wrong",
                 "Billing error on the {month} statement"),
                {"month": MONTHS},
                {"billing api": 0.88, "knowledge search": 0.35, "customer history": 0.5, "ticketing system": 0.45},
                {"knowledge search": 0.78, "billing api": 0.62, "customer history": 0.5}),
    "bug": (("The app crashes when I {action}", "Error when I try to {action}", "Cannot {action}, it fails"),
            {"action": ACTIONS},
            {"ticketing system": 0.85, "troubleshooting guide": 0.65, "knowledge search": 0.5},
            {"troubleshooting guide": 0.72, "ticketing system": 0.66, "knowledge search": 0.6}),
    "howto": (("How do I {action}?", "Where can I {action}?", "Steps to {action}"),
              {"action": ACTIONS},
              {"knowledge search": 0.82, "faq notes": 0.7, "quick answer": 0.55, "troubleshooting guide": 0.45},
              {"faq notes": 0.7, "knowledge search": 0.68, "quick answer": 0.62}),
    "shipping": (("How much is shipping to {city}?", "Delivery cost to {city} for {item}",
                  "Can you ship {item} to {city}?"),
                 {"city": CITIES, "item": ITEMS},
                 {"shipping calculator": 0.9, "order tracker": 0.35, "policy answer": 0.5, "quick answer": 0.45},
                 {"order tracker": 0.74, "shipping calculator": 0.58, "policy answer": 0.55}),
    "complaint": (("I am really unhappy with {item}", "Terrible service with {item}", "Complaint about {item}"),
                  {"item": ITEMS},
                  {"email composer": 0.8, "policy answer": 0.55, "customer history": 0.5, "quick answer": 0.3},
                  {"quick answer": 0.7, "email composer": 0.62, "customer history": 0.55}),
    "vague": (("It does not work", "Help with {item}", "Something is wrong"),
              {"item": ITEMS},
              {"ask for details": 0.85, "ask for order number": 0.5, "quick answer": 0.3},
              {"quick answer": 0.72, "ask for details": 0.6, "ask for order number": 0.5}),
    "followup": (("Any update on my ticket about {item}?", "Following up on {item} again",
                  "Still waiting about {item}"),
                 {"item": ITEMS},
                 {"similar past ticket": 0.8, "customer history": 0.7, "ticketing system": 0.55,
                  "last resolution": 0.5},
                 {"customer history": 0.7, "ticketing system": 0.66, "similar past ticket": 0.6}),
}
DRIFT = {
    "order_status": {"order tracker": 0.35, "ticketing system": 0.85},
    "billing": {"billing api": 0.4, "knowledge search": 0.85},
    "howto": {"knowledge search": 0.45, "faq notes": 0.88},
}
DEFAULT_QUALITY, DEFAULT_CENTRE, SCORE_NOISE = 0.25, 0.42, 0.12


class SupportWorld:
    """Tasks, retrieval and exact expected rewards; `drifted` switches three families' best candidate."""

    def __init__(self, seed: int = 0, drifted: bool = False):
        self.seed, self.drifted = seed, drifted

    def quality(self, family: str, name: str) -> float:
        qualities = FAMILIES[family][2]
        if self.drifted and name in DRIFT.get(family, {}):
            return DRIFT[family][name]
        return qualities.get(name, DEFAULT_QUALITY)

    def sample(self, rng: random.Random) -> tuple[Task, list[Candidate], dict[str, float]]:
        """One task, its offered candidates and each one's expected reward."""
        family = rng.choice(list(FAMILIES))
        templates, slots, qualities, centres = FAMILIES[family]
        text = rng.choice(templates).format(**{slot: rng.choice(values) for slot, values in slots.items()})
        named = list(dict.fromkeys(list(qualities)[:2] + list(centres)))
        others = [pair for pair in ALL if pair[1] not in named]
        offered_names = named[:2] + rng.sample(named[2:], k=rng.randint(0, len(named) - 2))
        count = rng.randint(max(3, len(offered_names)), 7)
        kind_of = {name: kind for kind, name in ALL}
        pairs = [(kind_of[name], name) for name in offered_names] + rng.sample(others, count - len(offered_names))
        rng.shuffle(pairs)
        candidates, expected = [], {}
        for index, (kind, name) in enumerate(pairs):
            score = min(max(centres.get(name, DEFAULT_CENTRE) + rng.uniform(-SCORE_NOISE, SCORE_NOISE), 0.0), 1.0)
            payload = {"hint_reward": round(rng.uniform(0.3, 0.7), 3)} if kind == "episodic" else {}
            candidate_id = f"c{index}-{name.replace(' ', '-')}"
            candidates.append(Candidate(candidate_id=candidate_id, kind=kind, name=name, score=round(score, 4),
                                        payload=payload))
            expected[candidate_id] = self.quality(family, name)
        task = Task(task_id=f"t{rng.getrandbits(48):012x}", text=text, metadata={"family": family})
        return task, candidates, expected

    def logs(self, count: int, rng: random.Random, epsilon: float = 0.3) -> list[Trajectory]:
        """Trajectories logged by epsilon-greedy over the retrieval score, with exact propensities."""
        trajectories = []
        for _ in range(count):
            task, candidates, expected = self.sample(rng)
            best = max(range(len(candidates)), key=lambda index: candidates[index].score)
            pick = best if rng.random() >= epsilon else rng.randrange(len(candidates))
            propensity = epsilon / len(candidates) + (1 - epsilon if pick == best else 0.0)
            chosen = candidates[pick]
            reward = 1.0 if rng.random() < expected[chosen.candidate_id] else 0.0
            trajectories.append(Trajectory(
                task=task, candidates=candidates, source="demo",
                decision=Decision(chosen_candidate_id=chosen.candidate_id, propensity=propensity),
                outcome=Outcome(reward=reward, latency_ms=100.0)))
        return trajectories
