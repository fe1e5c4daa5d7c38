"""Several processes on one store at once: one cycle at a time, and readers never see a partial state."""

import json
import threading

from memabra.check import check_store
from memabra.learning.versions import active_router
from memabra.status import store_status
from memabra.storage.lock import lock_holder
from memabra.storage.versions import RouterVersionStore
from tests.helpers import build_store, finish, run_cli, start_cli, wait_until


def start_cycle(base, *args):
    return start_cli("--base-dir", base, *args)


def test_two_cycles_started_together_one_runs_the_other_exits_75(tmp_path, monkeypatch):
    base = tmp_path / "store"
    build_store(base, 200, seed=4)
    # The first cycle's executor waits for a gate file, so it holds the lock until the test creates it.
    gate = tmp_path / "gate"
    monkeypatch.setenv("MEMABRA_TEST_GATE", str(gate))
    gated = ("--executor", "tests.executor_plugins:make_gated_demo_executor")
    first = start_cycle(base, "--min-new-trajectories", "1", *gated)
    try:
        def first_holds_the_lock():
            assert first.poll() is None, first.communicate()
            return lock_holder(base)

        wait_until(first_holds_the_lock, 60, "the first cycle never showed as the lock's holder")
        second = start_cycle(base, "--min-new-trajectories", "1", *gated)
        blocked, blocked_out, blocked_err = finish(second)
        gate.touch()
    except BaseException:
        first.kill()
        first.communicate()
        raise
    ran, ran_out, _ = finish(first)
    assert (ran, blocked) == (0, 75)
    assert json.loads(ran_out)["status"] == "promoted"
    assert blocked_out == "" and blocked_err.startswith("error:") and "is locked by process" in blocked_err
    assert len(list((base / "training-reports").glob("*.json"))) == 1


def test_readers_never_see_a_partial_state_while_cycles_write(tmp_path):
    base = tmp_path / "store"
    build_store(base, 200, seed=6)
    errors, snapshots = [], []
    done = threading.Event()

    def read_in_a_loop():
        while True:
            finished = done.is_set()
            try:
                status = store_status(base)
                if status["current"] is not None:
                    active_router(RouterVersionStore(base))
                found = check_store(base)
                assert found["problems"] == [], found["problems"]
                snapshots.append(status)
            except Exception as exc:  # noqa: BLE001 - every failure is collected and reported below
                errors.append(repr(exc))
            if finished:
                return

    reader = threading.Thread(target=read_in_a_loop)
    reader.start()
    try:
        for gate in ("-1", "0.9"):  # one promotes, one is rejected
            code, _, err = finish(start_cycle(base, "--min-new-trajectories", "0", "--min-reward-delta", gate))
            assert code == 0, err
            assert run_cli("--base-dir", base, "--status").code == 0
    finally:
        done.set()
        reader.join(timeout=60)
    assert not reader.is_alive(), "the reader did not finish its last round within 60 s"
    assert errors == []
    assert snapshots
    counts = [snapshot["trajectory_count"] for snapshot in snapshots]
    assert counts == sorted(counts), "trajectories only ever appear, never vanish"
    assert snapshots[-1]["version_count"] == 1 and snapshots[-1]["report_count"] == 2
