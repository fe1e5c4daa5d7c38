"""The demo world is hard enough that learning matters, and a cycle really learns it."""

from memabra.demo.world import DemoWorld
from memabra.evaluation import Evaluator
from memabra.learning.routers import HeuristicRouter
from memabra import run_online_learning_workflow


def test_world_is_deterministic_per_seed():
    first = DemoWorld(seed=3).benchmark_suite(40)
    second = DemoWorld(seed=3).benchmark_suite(40)
    assert [t.task.text for t in first.tasks] == [t.task.text for t in second.tasks]
    world = DemoWorld(seed=3)
    item = first.tasks[0]
    assert world.execute(item.task, item.candidates[0]) == world.execute(item.task, item.candidates[0])


def test_heuristic_router_stays_well_below_the_oracle():
    suite = DemoWorld(seed=7).benchmark_suite()
    evaluation = Evaluator().evaluate(HeuristicRouter(), suite)
    assert evaluation.expected_value <= 0.75 * suite.oracle_value()
    assert evaluation.task_count == 160


def test_expected_reward_matches_the_average_outcome():
    world = DemoWorld(seed=5)
    suite = world.benchmark_suite(16)
    item = suite.tasks[0]
    candidate = item.candidates[2]
    rewards = []
    for index in range(4000):
        task = item.task.model_copy(update={"task_id": f"copy-{index}"})
        rewards.append(world.execute(task, candidate).reward)
    assert abs(sum(rewards) / len(rewards) - world.expected_reward(item.task, candidate)) < 0.02


def test_cycle_over_2000_trajectories_promotes_a_router_that_beats_the_heuristic(seeded_store):
    result = run_online_learning_workflow(base_dir=seeded_store)
    assert result["status"] == "promoted"
    assert result["baseline_version_id"] is None and result["baseline_router"] == "heuristic"
    assert result["challenger"]["avg_reward"] > result["baseline"]["avg_reward"] + 0.15
    benchmark = result["benchmark"]
    assert benchmark["challenger_expected_value"] >= 0.95 * benchmark["oracle_value"]
    assert (seeded_store / "router-versions" / "versions" / f"{result['challenger_version_id']}.json").exists()
