"""Real processes killed with SIGKILL at seeded-random points, inside writes too: the store stays whole.

Kills inside writes come from MEMABRA_FAULT_INJECT=kill@N (the process kills itself at its Nth write step: half a
file written, all of it written, or a rename done); kills at arbitrary moments come from the test itself.
"""

import json
import random
import shutil
import signal
import subprocess

from memabra.check import check_store
from memabra.learning.routers import HeuristicRouter
from memabra.status import store_status
from memabra.storage.seen import SeenTrajectories
from memabra.storage.trajectories import TrajectoryStore
from memabra.storage.versions import RouterVersionStore
from tests.helpers import assert_store_intact, run_cli, start_python, trajectory_doc

SEED = 20260414

# A first cycle on the store below takes 661 write steps: summary cache 1-3, version 4-6, report 7-9, report id on
# the version 10-12, promotion 13-15, seen ids 16-18, 320 benchmark trajectories 19-658 (two steps each), seal
# 659-661; later ones first seal what a killed cycle left (3 steps more).
DOCUMENT_STEPS = range(1, 19)
APPEND_STEPS = range(19, 662)

APPENDER = """
import sys
from memabra.storage.trajectories import TrajectoryWriter
from tests.helpers import trajectory_doc
writer = TrajectoryWriter(sys.argv[1], max_documents=7)
while True:
    print(writer.append(trajectory_doc()).trajectory_id, flush=True)
"""


def test_cycles_and_promotions_killed_at_random_write_steps(small_store):
    rng = random.Random(SEED)
    steps = sorted(rng.sample(DOCUMENT_STEPS, 8)) + sorted(rng.sample(APPEND_STEPS, 3)) + [600]
    killed = 0
    for step in steps:
        before = store_status(small_store)["current"]
        cycle = run_cli("--base-dir", small_store, "--min-new-trajectories", "0", fault=f"kill@{step}")
        assert cycle.returncode in (-signal.SIGKILL, 0), cycle.stderr
        killed += cycle.returncode == -signal.SIGKILL
        after = assert_store_intact(small_store)["current"]
        if after != before:
            # Promoted: only after the version and its report were complete.
            report = json.loads((small_store / "training-reports" / f"{after['report_id']}.json").read_text())
            assert report["status"] == "promoted" and report["challenger_version_id"] == after["version_id"]
            assert RouterVersionStore(small_store).get_version(after["version_id"]).report_id == after["report_id"]
    assert killed == len(steps)

    finished = run_cli("--base-dir", small_store, "--min-new-trajectories", "0")
    assert finished.returncode == 0, finished.stderr
    # A cycle runs to its end and writes its report (earlier killed cycles may have promoted an equal challenger).
    assert json.loads(finished.stdout)["status"] in ("promoted", "rejected") and json.loads(finished.stdout)["report_id"]
    repaired = check_store(small_store, repair=True)
    assert repaired["healthy"] and check_store(small_store)["problems"] == []
    assert run_cli("--base-dir", small_store, "--status").returncode == 0


def test_rollback_killed_inside_its_write_leaves_old_or_new_current(small_store):
    versions = RouterVersionStore(small_store)
    for _ in range(2):
        versions.promote(versions.save(HeuristicRouter()))
    newest, older = [v["version_id"] for v in versions.list_versions()][:2]
    for step in (1, 2, 3):
        rolled = run_cli("--base-dir", small_store, "--rollback", older, fault=f"kill@{step}")
        assert rolled.returncode == -signal.SIGKILL
        current = assert_store_intact(small_store)["current"]
        assert current["version_id"] == (older if step == 3 else newest), "the rename is the moment it switches"
        if step == 3:
            assert current["rollback_from"] == newest
            run_cli("--base-dir", small_store, "--rollback", newest)
    assert check_store(small_store, repair=True)["healthy"]


def _start_appender(base, fault=None):
    return start_python("-c", APPENDER, base, fault=fault, stderr=subprocess.DEVNULL)


def test_appenders_killed_at_any_moment_lose_no_returned_trajectory(tmp_path):
    base = tmp_path / "store"
    rng = random.Random(SEED)
    # Half kill themselves inside a write (a journal line, or a segment being sealed every 7 appends) ...
    self_killed = [_start_appender(base, f"kill@{rng.randint(1, 120)}") for _ in range(4)]
    # ... half are killed by us once they have returned a random number of appends.
    killed = [(_start_appender(base), rng.randint(1, 60)) for _ in range(4)]
    returned = []
    for appender, count in killed:
        for _ in range(count):
            returned.append(appender.stdout.readline().strip())
        appender.send_signal(signal.SIGKILL)
    for appender in self_killed + [a for a, _ in killed]:
        returned.extend(line.strip() for line in appender.stdout if line.strip())
        assert appender.wait(timeout=120) == -signal.SIGKILL
    assert len(returned) >= 4
    assert_store_intact(base, returned)

    cycle = run_cli("--base-dir", base, "--min-new-trajectories", "1", "--dry-run")
    assert cycle.returncode == 0, cycle.stderr
    # Appends that were written but killed before they returned may be stored too; none that returned is missing.
    dry_run = json.loads(cycle.stdout)
    assert dry_run["training_trajectory_count"] + dry_run["off_policy"]["held_out_count"] >= len(set(returned))
    real = run_cli("--base-dir", base, "--min-new-trajectories", "1")
    assert real.returncode == 0, real.stderr
    assert not list((base / "trajectories").glob(".journal-*")), "the cycle sealed every dead writer's journal"
    assert_store_intact(base, returned)
    seen = SeenTrajectories.model_validate_json((base / "seen-trajectories.json").read_bytes())
    stored_training = {t.trajectory_id for t in TrajectoryStore(base).load_all()[0] if not t.is_benchmark}
    assert set(returned) <= stored_training
    problems = check_store(base)["problems"]
    assert all(p["problem"].startswith("temp file") for p in problems), problems
    assert seen.segments


def test_repair_killed_at_any_write_step_loses_nothing(small_store, tmp_path):
    segment = next(p for p in (small_store / "trajectories").glob("*.json"))
    table = json.loads(segment.read_text())
    first = next(iter(table["trajectories"]))
    table["trajectories"][first]["outcome"]["reward"] = "lots"
    segment.write_text(json.dumps(table))
    good_ids = {doc["trajectory_id"] for key, doc in table["trajectories"].items() if key != first}
    journal = segment.with_name(".journal-20260101000000-4000000-abcdef-000000.jsonl")
    journal.write_text(json.dumps({**trajectory_doc(), "trajectory_id": "from-a-dead-writer"}) + "\n")
    seen = small_store / "seen-trajectories.json"
    seen.write_text(json.dumps({"trajectory_ids": ["gone"], "segments": []}))
    template = tmp_path / "damaged"
    shutil.copytree(small_store, template)
    for step in sorted(random.Random(SEED).sample(range(1, 16), 6)):
        store = tmp_path / f"repair-{step}"
        shutil.copytree(template, store)
        killed = run_cli("--base-dir", store, "--check", "--repair", fault=f"kill@{step}")
        assert killed.returncode == -signal.SIGKILL
        finished = run_cli("--base-dir", store, "--check", "--repair")
        assert finished.returncode == 0, finished.stdout
        assert run_cli("--base-dir", store, "--check").returncode == 0
        stored = {t.trajectory_id for t in TrajectoryStore(store).load_all()[0]}
        assert good_ids | {"from-a-dead-writer"} <= stored
        originals = [json.loads(p.read_text()) for p in (store / "quarantine" / "trajectories").iterdir()]
        assert table in originals, "the whole damaged segment was kept"
