"""Every flag of `python -m memabra.cli`, asserted on its JSON, its files and its exit code."""

import json
import signal
import time

import pytest

from tests.helpers import start_python

STATUS_KEYS = {
    "base_dir", "current", "active_router", "trajectory_count", "training_trajectory_count",
    "benchmark_trajectory_count", "unseen_trajectory_count", "invalid_trajectory_count", "seen_trajectory_count",
    "version_count", "report_count", "latest_report", "lock", "recent_value", "drift", "settings", "guard", "warnings",
}
RESULT_KEYS = {
    "status", "report_id", "dry_run", "baseline_version_id", "challenger_version_id", "new_trajectory_count",
    "invalid_trajectory_count", "baseline", "challenger", "reward_delta", "error_rate_delta", "latency_delta_ms",
    "policy", "accepted", "reasons", "started_at", "finished_at",
}


def files(folder):
    return sorted(path.name for path in folder.iterdir()) if folder.exists() else []


def test_status_on_a_fresh_base_dir(cli, tmp_path):
    missing = cli("--base-dir", tmp_path / "mistyped", "--status")
    assert missing.code == 2 and "does not exist" in missing.stderr and not (tmp_path / "mistyped").exists()
    (tmp_path / "fresh").mkdir()
    result = cli("--base-dir", tmp_path / "fresh", "--status")
    assert result.code == 0, result.stderr
    status = result.json
    assert set(status) == STATUS_KEYS
    assert status["current"] is None and status["lock"] is None and status["trajectory_count"] == 0


def test_demo_trajectories_then_cycle_promotes(cli, tmp_path):
    base = tmp_path / "store"
    appended = cli("--base-dir", base, "--demo-trajectories", "600", "--seed", "3")
    assert appended.code == 0 and appended.json["appended"] == 600
    result = cli("--base-dir", base)
    assert result.code == 0, result.stderr
    cycle = result.json
    assert RESULT_KEYS <= set(cycle)
    assert cycle["status"] == "promoted" and cycle["accepted"] is True and cycle["reasons"] == []
    assert cycle["new_trajectory_count"] == 600
    assert cycle["policy"] == {"min_reward_delta": 0.0, "max_error_rate_increase": 0.05,
                               "max_latency_increase_ms": 1000.0, "required_task_count": 20,
                               "reward_delta_bound": "off", "min_effective_sample_size": 0.0,
                               "confidence_level": 0.95, "interval": "bootstrap", "gate_profile": "lenient"}
    assert cycle["reward_delta"] >= 0.0 and cycle["challenger"]["task_count"] == 160
    current = json.loads((base / "router-versions" / "current.json").read_text())
    assert current["version_id"] == cycle["challenger_version_id"]
    assert current["promotion_source"] == "cycle" and current["benchmark_summary"]["task_count"] == 160
    report = json.loads((base / "training-reports" / f"{cycle['report_id']}.json").read_text())
    assert report["status"] == "promoted" and report["dry_run"] is False
    version = json.loads((base / "router-versions" / "versions" / f"{current['version_id']}.json").read_text())
    assert version["report_id"] == cycle["report_id"] and version["training_trajectory_count"] == 600 - 120, "the newest 20% are held out"
    status = cli("--base-dir", base, "--status").json
    assert status["unseen_trajectory_count"] == 0 and status["version_count"] == 1
    assert status["benchmark_trajectory_count"] == 320, "baseline and challenger runs are stored, tagged"


def test_second_cycle_without_new_data_is_skipped_and_writes_no_report(cli, seeded_store):
    assert cli("--base-dir", seeded_store).json["status"] == "promoted"
    reports_before = files(seeded_store / "training-reports")
    again = cli("--base-dir", seeded_store)
    assert again.code == 0
    assert again.json["status"] == "skipped" and again.json["new_trajectory_count"] == 0
    assert "at least 50" in again.json["reasons"][0]
    assert files(seeded_store / "training-reports") == reports_before


def test_min_new_trajectories_flag(cli, seeded_store):
    result = cli("--base-dir", seeded_store, "--min-new-trajectories", "5000")
    assert result.json["status"] == "skipped" and result.json["new_trajectory_count"] == 2000


def store_files(base_dir):
    """Every path in the store except the lock and derived caches (which change no result)."""
    return {path.relative_to(base_dir) for path in base_dir.rglob("*")
            if path.name != ".lock" and path.relative_to(base_dir).parts[0] != ".cache"}


def test_dry_run_writes_only_its_report_and_its_challenger(cli, seeded_store):
    before = store_files(seeded_store)
    result = cli("--base-dir", seeded_store, "--dry-run")
    assert result.code == 0
    cycle = result.json
    assert cycle["status"] == "dry_run" and cycle["dry_run"] is True and cycle["challenger_version_id"] is None
    after = store_files(seeded_store)
    assert after - before == {
        (seeded_store / "training-reports").relative_to(seeded_store),
        (seeded_store / "training-reports" / f"{cycle['report_id']}.json").relative_to(seeded_store),
        (seeded_store / "training-reports" / "challengers").relative_to(seeded_store),
        (seeded_store / "training-reports" / "challengers" / f"{cycle['report_id']}.json").relative_to(seeded_store),
    }
    report = json.loads((seeded_store / "training-reports" / f"{cycle['report_id']}.json").read_text())
    assert report["dry_run"] is True
    assert cli("--base-dir", seeded_store, "--status").json["unseen_trajectory_count"] == 2000


def test_rejected_challenger_leaves_current_unchanged(cli, seeded_store):
    segments = sorted(path.stem for path in (seeded_store / "trajectories").glob("*.json"))
    result = cli("--base-dir", seeded_store, "--min-reward-delta", "0.9", "--max-error-rate-increase", "0",
                 "--max-latency-increase-ms", "1", "--required-task-count", "1000")
    cycle = result.json
    assert result.code == 0 and cycle["status"] == "rejected" and cycle["accepted"] is False
    assert cycle["policy"] == {"min_reward_delta": 0.9, "max_error_rate_increase": 0.0,
                               "max_latency_increase_ms": 1.0, "required_task_count": 1000,
                               "reward_delta_bound": "off", "min_effective_sample_size": 0.0,
                               "confidence_level": 0.95, "interval": "bootstrap", "gate_profile": "lenient"}
    assert any(reason.startswith("reward_delta") and "min_reward_delta 0.9" in reason for reason in cycle["reasons"])
    assert any(reason.startswith("task_count 160") for reason in cycle["reasons"])
    assert not (seeded_store / "router-versions" / "current.json").exists()
    assert files(seeded_store / "router-versions" / "versions") == []
    assert (seeded_store / "training-reports" / f"{cycle['report_id']}.json").exists()
    seen = json.loads((seeded_store / "seen-trajectories.json").read_text())
    assert seen["segments"] == segments and seen["trajectory_ids"] == [], "a wholly seen segment is listed by key"
    assert cli("--base-dir", seeded_store, "--status").json["seen_trajectory_count"] == 2000


def test_baseline_version_pins_the_baseline(cli, seeded_store):
    first = cli("--base-dir", seeded_store).json
    cli("--base-dir", seeded_store, "--demo-trajectories", "300", "--seed", "5")
    pinned = cli("--base-dir", seeded_store, "--baseline-version", first["challenger_version_id"], "--dry-run")
    assert pinned.code == 0, pinned.stderr
    assert pinned.json["baseline_version_id"] == first["challenger_version_id"]
    report = json.loads((seeded_store / "training-reports" / f"{pinned.json['report_id']}.json").read_text())
    assert report["baseline_version_id"] == first["challenger_version_id"]


def test_unknown_or_malformed_baseline_version_is_bad_input(cli, seeded_store):
    unknown = cli("--base-dir", seeded_store, "--baseline-version", "20200101-000000")
    assert unknown.code == 2 and unknown.error_lines == [unknown.stderr.strip()]
    assert "does not exist" in unknown.stderr
    malformed = cli("--base-dir", seeded_store, "--baseline-version", "latest")
    assert malformed.code == 2 and "malformed" in malformed.stderr


def test_list_versions_and_rollback(cli, seeded_store):
    first = cli("--base-dir", seeded_store).json["challenger_version_id"]
    cli("--base-dir", seeded_store, "--demo-trajectories", "400", "--seed", "9")
    second = cli("--base-dir", seeded_store, "--min-reward-delta", "-1").json["challenger_version_id"]
    listing = cli("--base-dir", seeded_store, "--list-versions").json["versions"]
    assert [v["version_id"] for v in listing] == [second, first]
    assert [v["active"] for v in listing] == [True, False]
    assert "weights" not in json.dumps(listing)

    rolled = cli("--base-dir", seeded_store, "--rollback", first)
    assert rolled.code == 0, rolled.stderr
    current = rolled.json
    assert current["version_id"] == first and current["promotion_source"] == "rollback"
    assert current["rollback_from"] == second and current["rolled_back_at"]
    assert current["prior_version_id"] == second
    assert current["rollback_history"][-1]["version_id"] == first
    on_disk = json.loads((seeded_store / "router-versions" / "current.json").read_text())
    assert on_disk == current
    assert cli("--base-dir", seeded_store, "--list-versions").json["versions"][1]["active"] is True


@pytest.mark.parametrize("version_id, message", [
    ("20200101-000000", "does not exist"),
    ("../../etc/passwd", "malformed"),
    ("2020-01-01", "malformed"),
    ("", "malformed"),
])
def test_rollback_refuses_unknown_and_path_like_ids(cli, seeded_store, version_id, message):
    result = cli("--base-dir", seeded_store, "--rollback", version_id)
    assert result.code == 2
    assert len(result.error_lines) == 1 and message in result.error_lines[0]
    assert "Traceback" not in result.stderr


def test_case_index_rebuild_and_load(cli, seeded_store):
    rebuilt = cli("--base-dir", seeded_store, "--rebuild-case-index", "--dry-run")
    assert rebuilt.code == 0, rebuilt.stderr
    summary = rebuilt.json["case_index"]
    assert summary["rebuilt"] is True and summary["case_count"] > 0
    index_path = seeded_store / "case-index.json"
    assert summary["path"] == str(index_path)
    cases = json.loads(index_path.read_text())["cases"]
    assert len(cases) == summary["case_count"]

    custom = seeded_store / "custom-index.json"
    cycle = cli("--base-dir", seeded_store, "--case-index", custom).json
    assert cycle["status"] == "promoted"
    assert cycle["case_index"]["rebuilt"] is True
    # Rebuilt after evaluation: the benchmark's inputs are now in the index too.
    custom_cases = json.loads(custom.read_text())["cases"]
    assert cycle["case_index"]["case_count"] == len(custom_cases) > summary["case_count"]
    assert set(cases) < set(custom_cases)
    assert all(case["trajectory_id"] for case in custom_cases.values())


def test_demo_trajectories_with_a_case_index_offer_episodic_hints(cli, seeded_store):
    cli("--base-dir", seeded_store, "--rebuild-case-index", "--status")
    cli("--base-dir", seeded_store, "--demo-trajectories", "200", "--case-index",
        seeded_store / "case-index.json", "--seed", "2")
    newest = max((seeded_store / "trajectories").glob("*.json"), key=lambda p: p.stat().st_mtime)
    documents = json.loads(newest.read_text())["trajectories"].values()
    assert any(c["kind"] == "episodic" for doc in documents for c in doc["candidates"])


def test_seen_trajectory_store_flag(cli, seeded_store, tmp_path):
    seen = tmp_path / "elsewhere" / "seen.json"
    assert cli("--base-dir", seeded_store, "--seen-trajectory-store", seen).json["status"] == "promoted"
    assert len(json.loads(seen.read_text())["segments"]) == 1
    assert not (seeded_store / "seen-trajectories.json").exists()
    status = cli("--base-dir", seeded_store, "--status", "--seen-trajectory-store", seen).json
    assert status["unseen_trajectory_count"] == 0


def test_base_dir_from_environment(cli, seeded_store):
    status = cli("--status", env={"MEMABRA_BASE_DIR": str(seeded_store)}).json
    assert status["trajectory_count"] == 2000


@pytest.mark.parametrize("args", [
    ["--min-new-trajectories", "many"],
    ["--min-new-trajectories", "-3"],
    ["--min-reward-delta", "nan"],
    ["--status", "--list-versions"],
    ["--no-such-flag"],
    ["--demo-trajectories"],
])
def test_bad_flags_exit_2_with_one_error_line(cli, tmp_path, args):
    result = cli("--base-dir", tmp_path, *args)
    assert result.code == 2
    assert result.error_lines == [result.stderr.strip()], result.stderr
    assert result.stdout == ""


def test_unusable_base_dir_is_bad_input(cli, tmp_path):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    result = cli("--base-dir", not_a_folder, "--status")
    assert result.code == 2 and "is a file" in result.stderr


def test_corrupt_current_is_one_line_and_debug_adds_traceback(cli, seeded_store):
    current = seeded_store / "router-versions" / "current.json"
    current.parent.mkdir(parents=True)
    current.write_text("{not json")
    plain = cli("--base-dir", seeded_store, "--list-versions")
    assert plain.code == 1 and plain.error_lines == [plain.stderr.strip()]
    assert "current.json" in plain.stderr and "--check" in plain.stderr
    debug = cli("--base-dir", seeded_store, "--list-versions", "--debug")
    assert debug.code == 1 and "Traceback" in debug.stderr


def test_second_cycle_while_one_runs_exits_75(cli, seeded_store):
    holder = start_python(
        "-c", "import sys, time; from memabra.storage.lock import StoreLock; "
        "lock = StoreLock(sys.argv[1], 'cycle').acquire(); print('held', flush=True); time.sleep(60)",
        seeded_store)
    try:
        assert holder.stdout.readline().strip() == "held", "the holder died before taking the lock"
        started = time.monotonic()
        blocked = cli("--base-dir", seeded_store)
        assert blocked.code == 75
        assert f"process {holder.pid}" in blocked.stderr and blocked.error_lines == [blocked.stderr.strip()]
        assert time.monotonic() - started < 30, "a locked base dir fails at once, it does not wait"
        status = cli("--base-dir", seeded_store, "--status").json
        assert status["lock"]["pid"] == holder.pid and status["lock"]["started_at"]
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=60)
    # The dead holder's lock is taken over.
    assert cli("--base-dir", seeded_store, "--status").json["lock"] is None
    assert cli("--base-dir", seeded_store).json["status"] == "promoted"


def test_stdout_is_one_json_document_and_progress_goes_to_stderr(cli, seeded_store):
    result = cli("--base-dir", seeded_store, "--dry-run")
    assert result.code == 0
    assert result.stdout.count("\n") == result.stdout.rstrip("\n").count("\n") + 1, "one document, one final newline"
    assert result.json["status"] == "dry_run" and result.json["dry_run"] is True
    assert "evaluate:" in result.stderr and "train:" in result.stderr
    assert all(not line.lstrip().startswith("{") for line in result.stderr.splitlines())
