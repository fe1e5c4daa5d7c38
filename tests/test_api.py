"""The operator guide's Python API: the workflow function, its events and cancellation, the version store."""

import sys
import threading

import pytest

from memabra import run_online_learning_workflow
from memabra.errors import BadInputError, LockHeldError
from memabra.router_versioning import RouterVersionStore
from memabra.storage.lock import StoreLock
from memabra.workflow import STAGES
from tests.helpers import run_python


def test_workflow_reports_every_stage_in_order(seeded_store):
    events = []
    result = run_online_learning_workflow(base_dir=seeded_store, min_new_trajectories=10, on_event=events.append)
    assert result["status"] == "promoted"
    stages = list(dict.fromkeys(event.stage for event in events))
    assert stages == list(STAGES)
    assert all(0 <= event.done <= event.total for event in events if event.total)
    evaluate = [event for event in events if event.stage == "evaluate"]
    assert evaluate[-1].done == evaluate[-1].total == 320


def test_cancelled_cycle_writes_nothing(seeded_store):
    cancel = threading.Event()

    def cancel_during_evaluation(event):
        if event.stage == "evaluate":
            cancel.set()

    result = run_online_learning_workflow(base_dir=seeded_store, on_event=cancel_during_evaluation, cancel=cancel)
    assert result["status"] == "cancelled" and "nothing was written" in result["reasons"][0]
    assert not (seeded_store / "training-reports").exists()
    assert not (seeded_store / "router-versions").exists()
    assert not (seeded_store / "seen-trajectories.json").exists()


def test_workflow_refuses_to_run_while_locked(seeded_store):
    with StoreLock(seeded_store, "cycle"):
        with pytest.raises(LockHeldError) as caught:
            run_online_learning_workflow(base_dir=seeded_store)
    assert caught.value.exit_code == 75
    assert run_online_learning_workflow(base_dir=seeded_store)["status"] == "promoted"


def test_version_store_save_list_current_rollback(seeded_store):
    first = run_online_learning_workflow(base_dir=seeded_store)["challenger_version_id"]
    store = RouterVersionStore(base_dir=seeded_store)
    second = store.save(store.get_version(first).router, training_trajectory_count=1)
    assert second.version_id > first, "ids never collide, even within one second"
    assert [v["version_id"] for v in store.list_versions()] == [second.version_id, first]
    assert store.get_current()["version_id"] == first
    current = store.rollback(second.version_id)
    assert current["version_id"] == second.version_id and current["rollback_from"] == first
    assert store.get_current() == current
    with pytest.raises(BadInputError, match="already active"):
        store.rollback(second.version_id)
    with pytest.raises(BadInputError, match="malformed"):
        store.rollback("../../x")


def test_version_store_defaults_to_artifacts_in_the_working_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("MEMABRA_BASE_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    store = RouterVersionStore()
    assert str(store.base_dir) == "artifacts"
    assert store.get_current() is None and store.list_versions() == []


def test_engine_never_imports_textual():
    code = ("import sys, memabra, memabra.cli, memabra.workflow, memabra.status, memabra.demo, "
            "memabra.router_versioning, memabra.evaluation, memabra.runtime, memabra.check, "
            "memabra.overview, memabra.demo.history, memabra.api, memabra.results; "
            "assert 'textual' not in sys.modules, sorted(m for m in sys.modules if 'textual' in m)")
    ran = run_python("-c", code)
    assert ran.code == 0, ran.stderr
