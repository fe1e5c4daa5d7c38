"""Attacks on the store and the command line that once got through (issue 12), one test per attack."""

import json
import os
import shutil
import stat

import numpy as np
import pytest

from memabra.errors import BadInputError
from memabra.models import Trajectory
from memabra.serving import ActiveRouter, append_trajectory
from memabra.storage import safe_io
from memabra.storage.trajectories import TrajectoryStore
from tests.helpers import run_main
from tests.helpers import trajectory_doc


def snapshot(folder):
    """Every file under a folder with its bytes (links by target), to prove nothing outside the store changed."""
    found = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            found[path] = os.readlink(path) if os.path.islink(path) else open(path, "rb").read()
    return found


def jsonl(path, documents):
    for number, document in enumerate(documents):
        document["trajectory_id"] = f"attack-{path.stem}-{number}"
    path.write_bytes(b"".join(json.dumps(d).encode() + b"\n" for d in documents))
    return path


def current_id(store):
    return json.loads((store / "router-versions" / "current.json").read_text())["version_id"]


def test_1_unreadable_current_keeps_the_live_router_and_the_cycle_refuses_the_heuristic(history_store):
    live = ActiveRouter(history_store, check_interval=0)
    serving = live.version_id
    (history_store / "router-versions" / "current.json").unlink()
    assert live.version_id == serving and "--rollback" in live.last_error
    code, printed, stderr = run_main("--base-dir", history_store, "--min-new-trajectories", "0")
    assert code == 1 and printed == "" and "current.json is missing" in stderr and "--rollback" in stderr
    status = json.loads(run_main("--base-dir", history_store, "--status")[1])
    assert status["current"] is None and "current.json is missing" in status["warnings"][0]
    checked = json.loads(run_main("--base-dir", history_store, "--check")[1])
    assert any(p["path"] == "router-versions/current.json" and "--rollback" in p["fix"] for p in checked["problems"])


def test_2_deep_nesting_is_refused_per_line(history_store, tmp_path):
    deep = trajectory_doc()
    node = deep["task"].setdefault("metadata", {})
    for _ in range(400):
        node["x"] = {}
        node = node["x"]
    good = [trajectory_doc() for _ in range(20)]
    path = jsonl(tmp_path / "in.jsonl", good[:10] + [deep] + good[10:])
    code, printed, _ = run_main("--base-dir", history_store, "--ingest", path)
    result = json.loads(printed)
    assert code == 0 and result["stored_count"] == 20 and result["invalid_count"] == 1
    assert result["invalid"][0]["line"] == 11 and "nested deeper" in result["invalid"][0]["error"]
    with pytest.raises(BadInputError, match="nested deeper"):
        append_trajectory(deep, base_dir=tmp_path / "other")


@pytest.mark.parametrize("field, value", [("reward", 1e308), ("reward", True), ("latency_ms", 1e300),
                                          ("reward", "0.5")])
def test_3_out_of_bounds_or_mistyped_numbers_are_refused(history_store, tmp_path, field, value):
    documents = [trajectory_doc() for _ in range(3)]
    for document in documents:
        document["outcome"][field] = value
    code, printed, _ = run_main("--base-dir", history_store, "--ingest", jsonl(tmp_path / "in.jsonl", documents))
    assert code == 4 and json.loads(printed)["invalid_count"] == 3  # every line refused: exit 4
    assert f"outcome.{field}" == json.loads(printed)["invalid"][0]["field"]
    code, printed, stderr = run_main("--base-dir", history_store, "--dry-run", "--min-new-trajectories", "0")
    assert code == 0, stderr


def test_4_a_planted_lock_link_never_truncates_the_outside_file(history_store, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    (history_store / ".lock").unlink(missing_ok=True)
    (history_store / ".lock").symlink_to(outside)
    code, printed, stderr = run_main("--base-dir", history_store, "--dry-run", "--min-new-trajectories", "0")
    assert code == 1 and "lock file" in stderr and "symbolic link" in stderr
    assert outside.read_text() == "precious"
    code, printed, _ = run_main("--base-dir", history_store, "--check")
    assert code == 4 and any(p["path"] == ".lock" and "symbolic link" in p["problem"]
                             for p in json.loads(printed)["problems"])
    assert run_main("--base-dir", history_store, "--check", "--repair")[0] == 0
    assert outside.read_text() == "precious"


@pytest.mark.parametrize("flag", ["--case-index", "--seen-trajectory-store"])
def test_5_user_named_paths_holding_other_files_are_refused(history_store, tmp_path, flag):
    foreign = tmp_path / "package.json"
    foreign.write_text('{"name": "app", "version": "1.0.0"}')
    args = (["--rebuild-case-index", "--list-versions"] if flag == "--case-index"
            else ["--dry-run", "--min-new-trajectories", "0"])
    code, printed, stderr = run_main("--base-dir", history_store, flag, foreign, *args)
    assert code == 2 and printed == "" and "not memabra's" in stderr and flag in stderr
    assert foreign.read_text() == '{"name": "app", "version": "1.0.0"}'


def test_6_links_to_devices_and_huge_files_are_refused_without_reading_them(history_store, monkeypatch):
    segment = history_store / "trajectories" / "zzz-000000.json"
    segment.symlink_to("/dev/zero")
    for args in (["--status"], ["--dry-run", "--min-new-trajectories", "0"]):
        code, printed, stderr = run_main("--base-dir", history_store, *args)
        assert code == 0, stderr
    code, printed, _ = run_main("--base-dir", history_store, "--check")
    assert code == 4 and any("symbolic link" in p["problem"] for p in json.loads(printed)["problems"])
    segment.unlink()
    current = history_store / "router-versions" / "current.json"
    current.unlink()
    current.symlink_to("/dev/zero")
    assert run_main("--base-dir", history_store, "--status")[0] == 0
    assert run_main("--base-dir", history_store, "--check")[0] == 4
    current.unlink()
    big = history_store / "training-reports" / "20991231-235959.json"
    big.write_bytes(b" " * 2000)
    monkeypatch.setattr(safe_io, "MAX_DOCUMENT_BYTES", 1000)
    with pytest.raises(Exception, match="over the limit of 1,000 bytes"):
        safe_io.read_store_bytes(big)


@pytest.mark.parametrize("tamper", ["shape", "string", "empty", "missing", "unknown_key", "zero_buckets", "nan"])
def test_7_tampered_weights_name_the_file_and_check_reports_them(history_store, tamper):
    path = history_store / "router-versions" / "versions" / f"{current_id(history_store)}.json"
    version = json.loads(path.read_text())
    router = version["router"]
    assert router["kind"] == "hierarchical_ridge"
    if tamper == "shape":
        router["kind_weights"][0].pop()
    elif tamper == "string":
        router["global_weights"] = "weights"
    elif tamper == "empty":
        router["id_weights"] = []
    elif tamper == "missing":
        del router["kind_weights"]
    elif tamper == "unknown_key":
        router["config"]["colour"] = 3
    elif tamper == "zero_buckets":
        router["config"]["task_buckets"] = 0
    else:
        router["global_weights"][0] = "NaN"
    path.write_text(json.dumps(version))
    code, printed, stderr = run_main("--base-dir", history_store, "--status")
    assert code == 0 and json.loads(printed)["recent_value"] is None
    code, printed, stderr = run_main("--base-dir", history_store, "--dry-run", "--min-new-trajectories", "0")
    assert code == 1 and path.name in stderr and "does not load" in stderr
    code, printed, _ = run_main("--base-dir", history_store, "--check")
    assert code == 4 and any(p["path"].endswith(path.name) for p in json.loads(printed)["problems"])


def test_8_names_that_are_not_ids_are_ignored_and_reported(history_store):
    odd = history_store / "training-reports" / "20991231-235959\n.json"
    shutil.copy(next((history_store / "training-reports").glob("*.json")), odd)
    code, printed, stderr = run_main("--base-dir", history_store, "--dry-run", "--min-new-trajectories", "0")
    assert code == 0, stderr
    problems = json.loads(run_main("--base-dir", history_store, "--check")[1])["problems"]
    assert any("is not a report id" in p["problem"] for p in problems)
    for bad in ("20261129-222314\n", "２０２６１１２９-２２２３１４", "20261399-999999"):
        code, _, stderr = run_main("--base-dir", history_store, "--rollback", bad)
        assert code == 2 and "malformed" in stderr


def test_9_a_failure_after_the_promotion_reports_the_promotion(seeded_store, monkeypatch):
    from memabra.errors import StoreWriteError
    from memabra.storage.trajectories import TrajectoryWriter

    def full_disk(self, trajectories):
        raise StoreWriteError("cannot write x: the disk is full; free some space and try again (nothing was changed)")

    monkeypatch.setattr(TrajectoryWriter, "append_many", full_disk)
    code, printed, stderr = run_main("--base-dir", seeded_store)
    result = json.loads(printed)
    assert code == 1 and result["status"] == "promoted" and current_id(seeded_store) == result["challenger_version_id"]
    assert result["unfinished"] and "benchmark trajectories" in result["unfinished"][0]
    assert "which stands" in stderr and "nothing was changed" not in stderr.splitlines()[-1].split("did not finish")[0]


def test_9_a_full_disk_after_the_promotion_in_a_real_process(tmp_path):
    from memabra.demo.generate import generate_demo_trajectories
    from memabra.demo.world import DemoWorld
    from memabra.learning.routers import HeuristicRouter
    from tests.helpers import run_cli

    base = tmp_path / "store"
    generate_demo_trajectories(base, 200, HeuristicRouter(), world=DemoWorld(7), seed=3)
    failed = run_cli("--base-dir", base, "--min-new-trajectories", "1", fault="enospc@30")
    result = json.loads(failed.stdout)
    assert failed.returncode == 1 and result["status"] == "promoted" and "disk is full" in result["unfinished"][0]
    assert current_id(base) == result["challenger_version_id"]


def test_9_demo_generation_says_how_many_it_kept_and_is_bounded(tmp_path, monkeypatch):
    from memabra.errors import StoreWriteError
    from memabra.runtime.runner import AgentRunner

    calls = {"n": 0}
    original = AgentRunner.run_task

    def failing(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 30:
            raise StoreWriteError("cannot write x: the disk is full; free some space and try again (nothing was changed)")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(AgentRunner, "run_task", failing)
    code, _, stderr = run_main("--base-dir", tmp_path / "s", "--demo-trajectories", "100")
    assert code == 1 and "after keeping 30 of 100" in stderr and "nothing was changed" not in stderr
    code, _, stderr = run_main("--base-dir", tmp_path / "s", "--demo-trajectories", "99999999999999999999")
    assert code == 2 and "--demo-trajectories" in stderr and "1,000,000" in stderr
    code, _, stderr = run_main("--base-dir", tmp_path / "s", "--seed", "-1", "--demo-trajectories", "1")
    assert code == 2 and "--seed" in stderr


def test_10_files_it_cannot_read_are_skipped_and_reported(history_store, monkeypatch):
    report = sorted((history_store / "training-reports").glob("*.json"))[0]
    version = sorted((history_store / "router-versions" / "versions").glob("*.json"))[0]
    denied = {str(report), str(version)}
    real_open = os.open

    def open_as_other_user(path, flags, *args):
        if str(path) in denied:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(safe_io.os, "open", open_as_other_user)
    real_access = os.access
    monkeypatch.setattr("memabra.check_files.os.access",
                        lambda path, mode: str(path) not in denied and real_access(path, mode))
    monkeypatch.setattr("memabra.check.os.access",
                        lambda path, mode: str(path) not in denied and real_access(path, mode))
    for args in (["--status"], ["--list-versions"]):
        code, printed, stderr = run_main("--base-dir", history_store, *args)
        assert code == 0, stderr
    code, printed, _ = run_main("--base-dir", history_store, "--check")
    problems = [p for p in json.loads(printed)["problems"] if "permission denied" in p["problem"]]
    assert code == 4 and len(problems) == 2


def test_11_a_forged_cache_is_not_trusted_and_check_reports_it(history_store):
    run_main("--base-dir", history_store, "--dry-run", "--min-new-trajectories", "0")
    cached = sorted((history_store / ".cache" / "segments").glob("*.npz"))[0]
    with np.load(cached) as arrays:
        content = {name: arrays[name] for name in arrays.files}
    content["stats_moment"] = content["stats_moment"] + 100.0
    np.savez(cached, **content)
    os.rename(str(cached) + ".npz", cached) if os.path.exists(str(cached) + ".npz") else None
    code, printed, _ = run_main("--base-dir", history_store, "--check")
    assert code == 4 and any("fails its digest" in p["problem"] for p in json.loads(printed)["problems"])
    from memabra.learning.dataset import DatasetBuilder
    from memabra.learning.summaries import SummaryCache
    from memabra.storage.layout import StoreLayout

    store = TrajectoryStore(history_store)
    item = next(item for item in store.files() if item.key == cached.stem)
    assert SummaryCache(StoreLayout(history_store), DatasetBuilder()).load(item) is None
    assert run_main("--base-dir", history_store, "--check", "--repair")[0] == 0
    assert not cached.exists()


def test_also_propensity_types_and_fifos_and_symlinked_folders(history_store, tmp_path):
    documents = [trajectory_doc() for _ in range(2)]
    documents[0]["decision"]["propensity"], documents[1]["decision"]["propensity"] = True, "0.5"
    folder = tmp_path / "logs"
    folder.mkdir()
    jsonl(folder / "a.jsonl", documents)
    os.mkfifo(folder / "b.jsonl")
    code, printed, _ = run_main("--base-dir", history_store, "--ingest", folder)
    result = json.loads(printed)
    assert code == 4 and result["invalid_count"] == 2 and "FIFO" in result["skipped_files"][0]["reason"]
    outside = tmp_path / "outside-reports"
    shutil.move(history_store / "training-reports", outside)
    (history_store / "training-reports").symlink_to(outside)
    (outside / ".x.json.1.deadbeef.tmp").write_text("{")
    before = snapshot(outside)
    code, printed, _ = run_main("--base-dir", history_store, "--check", "--repair")
    assert code == 4 and any("leads outside the store" in p["problem"] for p in json.loads(printed)["problems"])
    assert snapshot(outside) == before


def test_also_the_console_status_warns_and_shows_its_own_lock(history_store):
    from memabra.overview import load_overview
    from memabra.settings import load_settings
    from memabra.tui.format import status_text

    (history_store / "router-versions" / "current.json").unlink()
    overview = load_overview(history_store)
    text = status_text(overview, load_settings(base_dir=history_store), running="cycle").plain
    assert "warning:" in text and "current.json is missing" in text and "held by this console: cycle" in text
