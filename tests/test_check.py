"""`--check` finds every kind of damage and `--check --repair` fixes it without losing data."""

import json
import os
import random
import shutil

import pytest

from memabra.check import check_store
from memabra.learning.routers import HeuristicRouter
from memabra.status import store_status
from memabra.storage.lock import StoreLock
from memabra.storage.trajectories import TrajectoryStore
from memabra.storage.versions import RouterVersionStore
from memabra import run_online_learning_workflow
from tests.helpers import build_store, run_main, trajectory_doc


@pytest.fixture(scope="module")
def _cycled_template(tmp_path_factory):
    base = tmp_path_factory.mktemp("check") / "store"
    build_store(base, 200, seed=5)
    run_online_learning_workflow(base_dir=base, min_new_trajectories=1, case_index=base / "case-index.json")
    RouterVersionStore(base).save(HeuristicRouter())  # an older-looking spare version, not current
    return base


@pytest.fixture
def store(_cycled_template, tmp_path):
    """200 demo trajectories, one promoted cycle (version, report, seen ids, case index) and a spare version."""
    target = tmp_path / "store"
    shutil.copytree(_cycled_template, target)
    return target


def current_id(base):
    return json.loads((base / "router-versions" / "current.json").read_text())["version_id"]


def demo_segment(base):
    """The segment of the 200 demo trajectories (the other one holds the cycle's benchmark runs)."""
    return next(p for p in (base / "trajectories").glob("*.json")
                if len(json.loads(p.read_text())["trajectories"]) == 200)


def spare_version(base):
    return next(p for p in (base / "router-versions" / "versions").glob("*.json") if p.stem != current_id(base))


def test_healthy_store_checks_clean(store, cli):
    result = cli("--base-dir", store, "--check")
    assert result.code == 0, result.stderr
    report = result.json
    assert report["healthy"] is True and report["problems"] == []
    assert report["checked"]["trajectories"] == 200 + 320 and report["checked"]["versions"] == 2
    assert report["checked"]["reports"] == 1 and report["checked"]["trajectory_files"] == 2


PLACES = {
    "segment": demo_segment,
    "report": lambda base: next((base / "training-reports").glob("*.json")),
    "spare version": spare_version,
    "seen ids": lambda base: base / "seen-trajectories.json",
    "case index": lambda base: base / "case-index.json",
    "other json": lambda base: base / "notes.json",
}


DAMAGE = [b"", b'{"trunc', b"[1, 2]"]


# A JSON array is a whole document for a file memabra does not own, so that pair is no damage.
@pytest.mark.parametrize("place, damage", [(place, damage) for place in PLACES for damage in DAMAGE
                                           if (place, damage) != ("other json", b"[1, 2]")])
def test_unreadable_file_is_named_then_quarantined_whole(store, place, damage):
    path = PLACES[place](store)
    path.write_bytes(damage)
    relative = str(path.relative_to(store))
    found = check_store(store)
    assert found["healthy"] is False
    paths = [problem["path"] for problem in found["problems"]]
    if place != "seen ids":  # damage elsewhere may also leave seen ids naming what is gone
        paths = [path for path in paths if not path.startswith("seen")]
    assert paths == [relative]
    assert any(p["path"] == relative and "--repair" in p["fix"] for p in found["problems"])

    repaired = check_store(store, repair=True)
    assert repaired["healthy"] is True and all(p["repaired"] for p in repaired["problems"])
    quarantined = store / "quarantine" / f"{relative}.quarantined"
    assert quarantined.read_bytes() == damage, "the file was set aside as it was, not deleted"
    assert not path.exists()
    assert check_store(store)["problems"] == []
    assert store_status(store)["current"]["version_id"] == current_id(store)


def test_corrupt_report_stops_neither_a_cycle_nor_listing(store, cli):
    older = next((store / "training-reports").glob("*.json"))
    build_store(store, 60, seed=8)
    newer = run_online_learning_workflow(base_dir=store, min_new_trajectories=1, dry_run=True)["report_id"]
    (store / "training-reports" / f"{newer}.json").write_text('{"report_id": "' + newer)
    status = cli("--base-dir", store, "--status")
    assert status.code == 0 and status.json["latest_report"]["report_id"] == older.stem
    assert cli("--base-dir", store, "--list-versions").code == 0
    cycle = cli("--base-dir", store, "--min-new-trajectories", "1")
    assert cycle.code == 0, cycle.stderr
    assert cycle.json["status"] in ("promoted", "rejected")


def test_corrupt_segment_is_left_out_of_a_cycle_and_named(store, cli):
    segment = demo_segment(store)
    segment.write_bytes(segment.read_bytes()[:500])
    status = cli("--base-dir", store, "--status")
    assert status.code == 0 and status.json["invalid_trajectory_count"] == 1
    build_store(store, 60, seed=8)
    cycle = cli("--base-dir", store, "--min-new-trajectories", "1")
    assert cycle.code == 0, cycle.stderr
    assert segment.name in cycle.stderr and "--check" in cycle.stderr
    assert cycle.json["training_trajectory_count"] + cycle.json["off_policy"]["held_out_count"] == 60


def test_unreadable_current_is_left_for_the_operator_to_roll_back(store, cli):
    active, spare = current_id(store), spare_version(store).stem
    current = store / "router-versions" / "current.json"
    current.write_text('{"version_id": ')
    checked = cli("--base-dir", store, "--check", "--repair")
    assert checked.code == 4
    problem = checked.json["problems"][0]
    assert problem["path"] == "router-versions/current.json" and problem["repaired"] is False
    assert f"--rollback {max(active, spare)}" in problem["fix"]
    assert current.read_text() == '{"version_id": ', "repair does not choose the active router"
    assert "current.json" in checked.stderr

    rolled = cli("--base-dir", store, "--rollback", active)
    assert rolled.code == 0, rolled.stderr
    assert rolled.json["version_id"] == active and rolled.json["rollback_from"] is None
    assert (store / "quarantine" / "router-versions" / "current.json.quarantined").read_text() == '{"version_id": '
    assert cli("--base-dir", store, "--check").code == 0


def test_current_naming_a_missing_version(store, cli):
    spare = spare_version(store)
    (store / "router-versions" / "versions" / f"{current_id(store)}.json").unlink()
    found = cli("--base-dir", store, "--check", "--repair")
    assert found.code == 4 and f"--rollback {spare.stem}" in found.json["problems"][0]["fix"]
    spare.unlink()
    repaired = cli("--base-dir", store, "--check", "--repair")
    assert repaired.code == 0, repaired.stdout
    assert "heuristic" in repaired.json["problems"][0]["fix"]
    assert cli("--base-dir", store, "--status").json["active_router"] == "heuristic"


def test_invalid_documents_in_a_segment_are_moved_out(store):
    segment = demo_segment(store)
    original = json.loads(segment.read_text())
    table = original["trajectories"]
    first, second = list(table)[:2]
    table[first]["outcome"]["reward"] = "lots"
    table[second]["outcome"]["latency_ms"] = -5
    segment.write_text(json.dumps(original))
    found = check_store(store)
    assert found["checked"]["invalid_trajectories"] == 2 and "2 of 200" in found["problems"][0]["problem"]
    assert check_store(store, repair=True)["healthy"]
    kept = json.loads(segment.read_text())["trajectories"]
    assert len(kept) == 198 and first not in kept
    assert json.loads((store / "quarantine" / "trajectories" / f"{segment.name}.quarantined").read_text()) == original
    assert check_store(store)["problems"] == []


def test_dead_writers_journal_is_sealed_and_stale_temp_files_removed(store):
    folder = store / "trajectories"
    dead_pid = 4_000_000  # above any pid_max: no such process
    journal = folder / f".journal-20260101000000-{dead_pid}-abcdef-000000.jsonl"
    lines = [json.dumps({**trajectory_doc(), "trajectory_id": f"j{i}"}) for i in range(3)]
    journal.write_text("\n".join(lines) + '\n{"trajectory_id": "torn')
    stale = folder / f".{min(folder.glob('*.json')).name}.{dead_pid}.0badc0de.tmp"
    stale.write_text("{half")
    live = folder / f".x.json.{os.getpid()}.0123abcd.tmp"
    live.write_text("{in progress")
    found = check_store(store)
    assert {p["path"] for p in found["problems"]} == {str(journal.relative_to(store)), str(stale.relative_to(store))}
    assert found["checked"]["trajectories"] == 523, "an unsealed journal is read meanwhile"

    assert check_store(store, repair=True)["healthy"]
    assert not journal.exists() and not stale.exists() and live.exists()
    segment = json.loads((folder / f"{journal.name[len('.journal-'):-len('.jsonl')]}.json").read_text())
    assert [doc["trajectory_id"] for doc in segment["trajectories"].values()] == ["j0", "j1", "j2"]
    live.unlink()
    assert check_store(store)["problems"] == []


def test_seen_ids_of_missing_trajectories_are_dropped_with_a_copy_kept(store):
    seen_path = store / "seen-trajectories.json"
    seen = json.loads(seen_path.read_text())
    seen["trajectory_ids"].append("gone-forever")
    seen_path.write_text(json.dumps(seen))
    found = check_store(store)
    assert "1 seen ids" in found["problems"][0]["problem"]
    assert check_store(store, repair=True)["healthy"]
    assert "gone-forever" not in json.loads(seen_path.read_text())["trajectory_ids"]
    assert "gone-forever" in (store / "quarantine" / "seen-trajectories.json.quarantined").read_text()
    assert store_status(store)["unseen_trajectory_count"] == 0


def test_check_flags_are_validated(store, cli, tmp_path):
    alone = cli("--base-dir", store, "--repair")
    assert alone.code == 2 and alone.error_lines and "--check" in alone.stderr
    missing = cli("--base-dir", tmp_path / "nowhere", "--check")
    assert missing.code == 2 and "nowhere" in missing.stderr
    with StoreLock(store, "cycle"):
        locked = cli("--base-dir", store, "--check", "--repair")
        assert locked.code == 75
        assert cli("--base-dir", store, "--check").code == 0, "a plain check reads without the lock"


def test_trajectory_count_survives_repair(store):
    before = {t.trajectory_id for t in TrajectoryStore(store).load_all()[0]}
    report = min((store / "training-reports").glob("*.json"))
    report.write_text("nope")
    check_store(store, repair=True)
    assert {t.trajectory_id for t in TrajectoryStore(store).load_all()[0]} == before


def test_truncating_any_document_names_it_and_leaves_the_rest_usable(store):
    rng = random.Random(11)
    documents = sorted(path for path in store.rglob("*.json") if ".cache" not in path.parts)
    assert len(documents) == 9, "segments, versions, report, current, seen ids, case index, a history entry"
    active_version = f"router-versions/versions/{current_id(store)}.json"
    stopped = set()
    for path in documents:
        original = path.read_bytes()
        path.write_bytes(original[:rng.randrange(len(original))])
        relative = str(path.relative_to(store))
        checked = run_main("--base-dir", store, "--check")
        assert checked[0] == 4 and relative in [p["path"] for p in json.loads(checked[1])["problems"]]
        for args in (["--status"], ["--list-versions"], ["--dry-run", "--min-new-trajectories", "0"]):
            code, printed, stderr = run_main("--base-dir", store, *args)
            assert "Traceback" not in stderr
            if code == 0:
                json.loads(printed)
            else:
                assert code == 1 and printed == "", (relative, args)
                assert relative in stderr.splitlines()[-1] and "--check" in stderr.splitlines()[-1]
                stopped.add((relative, args[0]))
        path.write_bytes(original)
    # Only what needs the file stops, with one line naming it; a cycle cannot compare against an unreadable baseline.
    # --status keeps working and warns about an unreadable current.json.
    assert stopped == {
        ("router-versions/current.json", "--list-versions"),
        ("router-versions/current.json", "--dry-run"), (active_version, "--dry-run"),
        ("seen-trajectories.json", "--status"), ("seen-trajectories.json", "--dry-run"),
    }
