"""The agent's side: the active router follows promotions and rollbacks by itself, and runs are logged."""

import sys

import pytest

from memabra import append_trajectory, load_active_router
from memabra import run_online_learning_workflow
from memabra.demo.world import DemoWorld
from memabra.errors import BadInputError
from memabra.learning.exploration import ExplorationPolicy
from memabra.router_versioning import RouterVersionStore
from memabra.storage.trajectories import TrajectoryStore
from memabra import serving
from tests.helpers import run_python

WORLD = DemoWorld(7)
SUITE = WORLD.benchmark_suite(40)


def route_all(router):
    return [router.route(item.task, item.candidates) for item in SUITE.tasks]


def test_empty_store_serves_the_heuristic_with_propensities(tmp_path):
    router = load_active_router(tmp_path / "store", seed=1)
    assert router.version_id is None
    policy = ExplorationPolicy("epsilon_greedy", 0.2)
    for item, decision in zip(SUITE.tasks, route_all(router)):
        scores = [candidate.score for candidate in item.candidates]
        chosen = [c.candidate_id for c in item.candidates].index(decision.chosen_candidate_id)
        assert decision.propensity == pytest.approx(policy.probabilities(scores)[chosen])
        assert decision.policy == "epsilon_greedy(0.2)" and decision.router_version_id is None


def test_exploration_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMABRA_EXPLORATION", "greedy")
    router = load_active_router(tmp_path / "store")
    decisions = route_all(router)
    assert {decision.policy for decision in decisions} == {"greedy"}
    assert all(d.chosen_candidate_id == max(item.candidates, key=lambda c: c.score).candidate_id
               for item, d in zip(SUITE.tasks, decisions))


def test_router_follows_promotion_and_rollback_with_one_stat_per_check(seeded_store, monkeypatch):
    loads = []
    original = serving.active_router
    monkeypatch.setattr(serving, "active_router", lambda versions: loads.append(1) or original(versions))
    router = load_active_router(seeded_store, exploration=ExplorationPolicy("greedy"))
    router.check_interval = 0.0  # look at current.json on every call
    route_all(router)
    assert router.version_id is None and loads == [], "no current.json: the heuristic, nothing loaded"

    first = run_online_learning_workflow(base_dir=seeded_store, min_new_trajectories=10)["challenger_version_id"]
    assert {decision.router_version_id for decision in route_all(router)} == {first}
    assert len(loads) == 1, "an unchanged current.json is looked at, never reloaded"

    store = RouterVersionStore(seeded_store)
    second = store.save(store.get_version(first).router).version_id
    store.rollback(second)
    assert router.version_id == second
    store.rollback(first)
    assert {decision.router_version_id for decision in route_all(router)} == {first}


def test_router_checks_current_only_after_its_interval(seeded_store):
    router = load_active_router(seeded_store)
    router.check_interval = 3600.0
    router.refresh()
    version = run_online_learning_workflow(base_dir=seeded_store, min_new_trajectories=10)["challenger_version_id"]
    assert router.version_id is None, "no look at current.json before the interval is over"
    assert router.refresh() is True and router.version_id == version


def test_a_corrupt_current_keeps_the_previous_router_serving(seeded_store):
    version = run_online_learning_workflow(base_dir=seeded_store, min_new_trajectories=10)["challenger_version_id"]
    router = load_active_router(seeded_store)
    current = seeded_store / "router-versions" / "current.json"
    current.write_text("{broken")
    assert router.refresh() is False
    assert router.version_id == version and "current.json" in router.last_error
    decision = router.route(SUITE.tasks[0].task, SUITE.tasks[0].candidates)
    assert decision.router_version_id == version
    assert decision.chosen_candidate_id in {c.candidate_id for c in SUITE.tasks[0].candidates}


def test_append_trajectory_logs_a_run_and_names_the_bad_field(tmp_path):
    router = load_active_router(tmp_path / "store", seed=3)
    item = SUITE.tasks[0]
    decision = router.route(item.task, item.candidates)
    chosen = next(c for c in item.candidates if c.candidate_id == decision.chosen_candidate_id)
    stored = append_trajectory(task=item.task, candidates=item.candidates, decision=decision,
                               outcome=WORLD.execute(item.task, chosen), base_dir=tmp_path / "store")
    trajectories, invalid = TrajectoryStore(tmp_path / "store").load_all()
    assert [t.trajectory_id for t in trajectories] == [stored.trajectory_id] and invalid == []
    assert trajectories[0].decision.propensity == decision.propensity
    with pytest.raises(BadInputError, match="outcome.latency_ms"):
        append_trajectory({**stored.model_dump(mode="json"), "outcome": {"reward": 1.0}}, base_dir=tmp_path / "store")
    with pytest.raises(BadInputError, match="candidates\\[0\\].kind"):
        router.route(item.task, [{"candidate_id": "x", "kind": "oracle"}])


def test_importing_memabra_stays_light():
    code = ("import sys, memabra; assert 'memabra.serving' not in sys.modules and 'pydantic' not in sys.modules; "
            "from memabra import load_active_router, append_trajectory, TrajectoryWriter; "
            "import memabra.ingest, memabra.schema, memabra.evaluation.plugins; "
            "assert 'textual' not in sys.modules")
    ran = run_python("-c", code)
    assert ran.code == 0, ran.stderr


def test_a_version_this_code_cannot_load_keeps_the_previous_router_serving(seeded_store):
    first = run_online_learning_workflow(base_dir=seeded_store, min_new_trajectories=10)["challenger_version_id"]
    router = load_active_router(seeded_store)
    store = RouterVersionStore(seeded_store)
    second = store.save(store.get_version(first).router).version_id
    path = seeded_store / "router-versions" / "versions" / f"{second}.json"
    path.write_text(path.read_text().replace('"hierarchical_ridge"', '"mystery"'))
    store.rollback(second)
    assert router.refresh() is False
    assert router.version_id == first and "unknown router kind 'mystery'" in router.last_error
