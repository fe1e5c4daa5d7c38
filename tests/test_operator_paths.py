"""What an operator relies on: the rollback audit trail, which settings win, a locked rollback, seen ids after cycles."""

import json

from memabra.learning.routers import HeuristicRouter
from memabra.status import store_status
from memabra.storage.lock import StoreLock
from memabra.storage.versions import RouterVersionStore
from memabra import run_online_learning_workflow
from tests.helpers import build_store


def saved_versions(base, count):
    store = RouterVersionStore(base)
    versions = []
    for _ in range(count):
        version = store.save(HeuristicRouter())
        store.promote(version)
        versions.append(version.version_id)
    return store, versions


def trail(current) -> list[tuple]:
    return [(entry.rollback_from, entry.version_id) for entry in current.rollback_history]


def test_rollback_history_grows_with_each_rollback_and_survives_a_promotion(tmp_path):
    store, (v1, v2, v3) = saved_versions(tmp_path, 3)
    assert store.current().rollback_history == []
    store.rollback(v1)
    assert trail(store.current()) == [(v3, v1)]
    store.rollback(v2)
    current = store.current()
    assert trail(current) == [(v3, v1), (v1, v2)]
    assert (current.version_id, current.rollback_from, current.prior_version_id) == (v2, v1, v1)
    assert current.rollback_history[0].rolled_back_at <= current.rollback_history[1].rolled_back_at
    v4 = store.save(HeuristicRouter())
    store.promote(v4)
    promoted = store.current()
    assert promoted.promotion_source == "cycle" and promoted.prior_version_id == v2
    assert promoted.rollback_from is None and promoted.rolled_back_at is None
    assert trail(promoted) == [(v3, v1), (v1, v2)], "a promotion keeps the audit trail"
    store.rollback(v3)
    assert trail(store.current()) == [(v3, v1), (v1, v2), (v4.version_id, v3)]
    on_disk = json.loads((tmp_path / "router-versions" / "current.json").read_text())
    assert [entry["version_id"] for entry in on_disk["rollback_history"]] == [v1, v2, v3]


def test_a_rollback_while_a_cycle_holds_the_lock_exits_75_and_changes_nothing(cli, tmp_path):
    store, (older, newest) = saved_versions(tmp_path, 2)
    before = (tmp_path / "router-versions" / "current.json").read_bytes()
    with StoreLock(tmp_path, "cycle"):
        blocked = cli("--base-dir", tmp_path, "--rollback", older)
    assert blocked.code == 75 and blocked.stdout == ""
    assert blocked.error_lines == [blocked.stderr.strip()] and "is locked by process" in blocked.stderr
    assert (tmp_path / "router-versions" / "current.json").read_bytes() == before
    rolled = cli("--base-dir", tmp_path, "--rollback", older)
    assert rolled.code == 0 and rolled.json["version_id"] == older and rolled.json["rollback_from"] == newest


def test_flags_override_the_environment_which_overrides_defaults(cli, small_store, tmp_path):
    env = {"MEMABRA_BASE_DIR": str(tmp_path / "elsewhere"), "MEMABRA_MIN_REWARD_DELTA": "0.9",
           "MEMABRA_REQUIRED_TASK_COUNT": "7", "MEMABRA_MIN_NEW_TRAJECTORIES": "5000"}
    from_env = cli("--base-dir", small_store, "--dry-run", "--min-new-trajectories", "1", env=env)
    assert from_env.code == 0, from_env.stderr
    policy = from_env.json["policy"]
    assert (policy["min_reward_delta"], policy["required_task_count"]) == (0.9, 7), "the environment beat defaults"
    assert from_env.json["status"] == "dry_run", "--min-new-trajectories beat MEMABRA_MIN_NEW_TRAJECTORIES"
    assert (small_store / "training-reports" / f"{from_env.json['report_id']}.json").exists()
    assert not (tmp_path / "elsewhere").exists(), "--base-dir beat MEMABRA_BASE_DIR"
    from_flags = cli("--base-dir", small_store, "--dry-run", "--min-new-trajectories", "1",
                     "--min-reward-delta", "0.1", "--required-task-count", "3", env=env)
    policy = from_flags.json["policy"]
    assert (policy["min_reward_delta"], policy["required_task_count"]) == (0.1, 3)
    skipped = cli("--base-dir", small_store, "--dry-run", env=env)
    assert skipped.json["status"] == "skipped" and "at least 5000" in skipped.json["reasons"][0]


def test_a_cycle_marks_its_trajectories_seen_unless_it_is_a_dry_run(small_store):
    dry = run_online_learning_workflow(base_dir=small_store, dry_run=True, min_new_trajectories=1)
    assert dry["status"] == "dry_run" and store_status(small_store)["unseen_trajectory_count"] == 200
    rejected = run_online_learning_workflow(base_dir=small_store, min_new_trajectories=1, min_reward_delta=0.9)
    assert rejected["status"] == "rejected"
    status = store_status(small_store)
    assert status["unseen_trajectory_count"] == 0 and status["seen_trajectory_count"] == 200
    build_store(small_store, 60, seed=9)
    assert store_status(small_store)["unseen_trajectory_count"] == 60
    promoted = run_online_learning_workflow(base_dir=small_store, min_new_trajectories=1, min_reward_delta=-1)
    assert promoted["status"] == "promoted" and promoted["new_trajectory_count"] == 60
    status = store_status(small_store)
    assert status["unseen_trajectory_count"] == 0 and status["seen_trajectory_count"] == 260
