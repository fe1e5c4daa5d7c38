"""The support-desk world has what real agents have: same-kind candidates whose best depends on the text, varying
offers, misleading scores in some families, metadata and cost that matter, and a drift switch."""

import random
from collections import Counter, defaultdict

import pytest

from memabra.demo.generate import generate_demo_trajectories
from memabra.demo.support import CATALOGUE, DRIFTED_FAMILIES, FAMILIES, SupportDeskWorld
from memabra.demo.world import DemoWorld
from memabra.demo.worlds import WORLDS, make_world
from memabra.errors import BadInputError
from memabra.evaluation import Evaluator
from memabra.learning.exploration import ExplorationPolicy
from memabra.learning.routers import HeuristicRouter
from memabra.models import Candidate, Task
from memabra.storage.trajectories import TrajectoryStore


def _tasks(world, count, seed=1):
    rng = random.Random(seed)
    return [world.sample_task(rng) for _ in range(count)]


def _every_candidate(world: SupportDeskWorld, task: Task) -> list[Candidate]:
    """Every candidate of the task's family, each at its typical cost."""
    family = world.family_of(task)
    return [Candidate(candidate_id=offer.candidate_id, kind=offer.kind, name=offer.name,
                      payload={"cost": offer.cost}) for offer in CATALOGUE if offer.candidate_id in family.pool]


def test_same_seed_same_tasks_candidates_and_outcomes_other_seed_differs():
    first, second, other = SupportDeskWorld(seed=3), SupportDeskWorld(seed=3), SupportDeskWorld(seed=4)
    tasks = _tasks(first, 30)
    assert tasks == _tasks(second, 30)
    assert [first.candidates(task) for task in tasks] == [second.candidates(task) for task in tasks]
    assert [first.candidates(task) for task in tasks] != [other.candidates(task) for task in tasks]
    task = tasks[0]
    candidate = first.candidates(task)[0]
    assert first.execute(task, candidate) == second.execute(task, candidate)
    assert first.benchmark_suite(30).tasks[5].candidates == second.benchmark_suite(30).tasks[5].candidates


def test_nine_families_seventeen_candidates_all_six_kinds_several_per_kind():
    assert len(FAMILIES) == 9 and len(CATALOGUE) == 17
    kinds = Counter(offer.kind for offer in CATALOGUE)
    assert set(kinds) == {"tool", "skill", "memory", "episodic", "direct", "clarify"}
    assert kinds["tool"] == 4 and kinds["skill"] == 3 and kinds["memory"] == 3
    world = SupportDeskWorld()
    offered = {c.candidate_id for task in _tasks(world, 400) for c in world.candidates(task)}
    assert offered == {offer.candidate_id for offer in CATALOGUE}


def test_best_tool_depends_on_the_words_of_the_request():
    world = SupportDeskWorld()
    tools = [Candidate(candidate_id=o.candidate_id, kind="tool", name=o.name, payload={"cost": 0.2})
             for o in CATALOGUE if o.kind == "tool"]
    order = Task(task_id="t1", text="Where is my order A1042?", metadata={"family": "order_status"})
    charge = Task(task_id="t2", text="Why was I charged twice on Monday?", metadata={"family": "billing_charge"})
    assert world.best_candidate_id(order, tools) == "tool:order-lookup"
    assert world.best_candidate_id(charge, tools) == "tool:billing"
    # Within one family too: without an order number, asking for it beats the lookup.
    no_number = Task(task_id="t3", text="When will my blender arrive?", metadata={"family": "order_status"})
    assert world.best_candidate_id(order, _every_candidate(world, order)) == "tool:order-lookup"
    assert world.best_candidate_id(no_number, _every_candidate(world, no_number)) == \
        "clarify:order-number"


def test_metadata_and_cost_change_the_best_candidate():
    world = SupportDeskWorld()
    chat = Task(task_id="p1", text="Reset my password please", metadata={"family": "password", "channel": "chat"})
    phone = chat.model_copy(update={"metadata": {"family": "password", "channel": "phone"}})
    assert world.best_candidate_id(chat, _every_candidate(world, chat)) == "skill:account-recovery"
    assert world.best_candidate_id(phone, _every_candidate(world, phone)) == "tool:ticketing"
    bug = Task(task_id="b1", text="The app crashes when I check out", metadata={"family": "bug_report"})
    cheap = Candidate(candidate_id="skill:troubleshoot", kind="skill", name="troubleshooting guide",
                      payload={"cost": 0.2})
    dear = cheap.model_copy(update={"payload": {"cost": 0.8}})
    assert world.expected_reward(bug, cheap) > world.expected_reward(bug, dear) + 0.15


def test_offers_vary_per_task_and_sometimes_miss_the_best():
    world = SupportDeskWorld()
    tasks = _tasks(world, 600)
    offers = [world.candidates(task) for task in tasks]
    assert {len(offer) for offer in offers} == {3, 4, 5, 6, 7}
    by_family = defaultdict(set)
    for task, offer in zip(tasks, offers):
        by_family[task.metadata["family"]].add(tuple(c.candidate_id for c in offer))
    assert all(len(sets) > 10 for sets in by_family.values())
    missing = sum(world.best_candidate_id(task, _every_candidate(world, task)) not in {c.candidate_id for c in offer}
                  for task, offer in zip(tasks, offers))
    assert 0.03 * len(tasks) < missing < 0.3 * len(tasks)
    assert all(set(task.metadata) == {"family", "channel", "tier"} for task in tasks)
    assert all(isinstance(c.payload["cost"], float) for offer in offers for c in offer)


def test_retrieval_score_is_right_for_some_families_and_misleading_for_others():
    world = SupportDeskWorld()
    trusted, best = Counter(), Counter()
    for task in _tasks(world, 1800):
        offer = world.candidates(task)
        top = max(offer, key=lambda c: c.score)
        trusted[task.metadata["family"]] += world.expected_reward(task, top)
        best[task.metadata["family"]] += max(world.expected_reward(task, c) for c in offer)
    share = {family: trusted[family] / best[family] for family in best}
    assert share["follow_up"] > 0.9 and share["password"] > 0.85
    assert share["billing_charge"] < 0.7 and share["vague"] < 0.7 and share["policy_question"] < 0.75


def test_phase_two_changes_the_best_candidate_of_three_families():
    before, after = SupportDeskWorld(phase=1), SupportDeskWorld(phase=2)
    best_before, best_after = defaultdict(Counter), defaultdict(Counter)
    for task in _tasks(before, 900):
        every = _every_candidate(before, task)
        best_before[task.metadata["family"]][before.best_candidate_id(task, every)] += 1
        best_after[task.metadata["family"]][after.best_candidate_id(task, every)] += 1
    changed = {family for family in best_before
               if best_before[family].most_common(1)[0][0] != best_after[family].most_common(1)[0][0]}
    assert changed == set(DRIFTED_FAMILIES) and len(changed) == 3
    task = _tasks(before, 1)[0]
    assert before.candidates(task) == after.candidates(task)  # retrieval does not know about the drift


def test_generation_and_the_evaluator_take_the_support_world_unchanged(tmp_path):
    world = SupportDeskWorld(seed=11)
    summary = generate_demo_trajectories(tmp_path, 120, HeuristicRouter(), ExplorationPolicy("epsilon_greedy", 0.3),
                                         world=world, seed=5)
    assert summary["appended"] == 120
    trajectories, invalid = TrajectoryStore(tmp_path).load_all()
    assert len(trajectories) == 120 and not invalid
    assert len({len(t.candidates) for t in trajectories}) >= 4
    assert {t.task.metadata["family"] for t in trajectories} == {family.name for family in FAMILIES}
    assert all(0.0 < t.decision.propensity <= 1.0 for t in trajectories)
    suite = world.benchmark_suite(90)
    evaluation = Evaluator().evaluate(HeuristicRouter(), suite)
    assert evaluation.task_count == 90
    assert 0.55 * suite.oracle_value() < evaluation.expected_value < 0.85 * suite.oracle_value()


def test_make_world_names_the_shipped_worlds():
    assert isinstance(make_world("support", seed=3, phase=2), SupportDeskWorld)
    assert make_world("support", seed=3, phase=2).phase == 2
    assert isinstance(make_world("demo"), DemoWorld)
    assert set(WORLDS) == {"demo", "support"}
    with pytest.raises(BadInputError, match="demo, support"):
        make_world("kitchen")
    with pytest.raises(BadInputError):
        make_world("demo", phase=2)
