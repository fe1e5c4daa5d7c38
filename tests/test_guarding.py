"""The guard on a store: `--guard-check` verdicts and exit codes, alert and rollback, missing evidence, `--watch`."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from memabra.guarding import GuardRollbackReport, evaluate_guard, guard_reports, run_guard_check
from memabra.learning.routers import HeuristicRouter
from memabra.settings import GuardSettings, Settings, setting_fields
from memabra.storage.store import Store
from tests.helpers import ROOT, run_main
from tests.guard_store import anti_heuristic, bad_promotion, honest_promotion, promoted_store, serve


def watch(base: Path, *flags: str, env: dict | None = None) -> tuple[subprocess.Popen, queue.Queue]:
    """`--watch` in a subprocess, its stdout lines arriving on a queue (so every read has a deadline)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "memabra.cli", "--base-dir", str(base), "--watch", "--watch-interval", "0.2", *flags],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    return process, lines


def next_event(lines: queue.Queue, timeout: float = 90) -> dict:
    return json.loads(lines.get(timeout=timeout))


def guard_check(base: Path, *flags: str) -> tuple[int, dict]:
    code, stdout, _ = run_main("--base-dir", base, "--guard-check", *flags)
    return code, json.loads(stdout)


def test_a_promoted_version_whose_picks_always_fail_is_regressed_within_2000_trajectories(tmp_path):
    base = tmp_path / "store"
    store = bad_promotion(base, 2000)
    code, found = guard_check(base)
    assert code == 3 and found["verdict"] == "regressed" and found["action"] == "alert"
    assert found["served_count"] == 2000 and found["promoted_version_id"] != found["prior_version_id"]
    # every promoted pick fails and the heuristic never agrees with its opposite: a true difference of -1
    assert found["difference"]["high"] < -0.5 and found["promoted"]["value"]["high"] < 0.05
    trace = evaluate_guard(store, GuardSettings(), trace=True).trace
    first = next(point.served_count for point in trace if point.difference.high < -0.01)
    assert first <= 2000 and [point.served_count for point in trace[:2]] == [50, 100]
    current_before = store.versions.current()
    status = run_main("--base-dir", base, "--status")
    guard = json.loads(status[1])["guard"]
    assert guard["alert"] is True and guard["verdict"] == "regressed" and guard["mode"] == "alert"
    assert store.versions.current() == current_before, "alert mode never changes the active version"


def test_rollback_mode_rolls_back_to_the_prior_with_a_guard_reason_and_report(tmp_path):
    base = tmp_path / "store"
    store = bad_promotion(base, 600)
    promoted_id, prior_id = store.versions.current().version_id, store.versions.current().prior_version_id
    code, found = guard_check(base, "--guard-mode", "rollback")
    assert code == 3 and found["verdict"] == "rolled_back" and found["rolled_back_to"] == prior_id
    current = store.versions.current()
    assert current.version_id == prior_id and current.promotion_source == "rollback"
    assert current.reason.startswith(f"guard: {promoted_id} is worse than {prior_id}")
    assert current.rollback_history[-1].rollback_from == promoted_id
    document = guard_reports(store).get(found["guard_report_id"])
    assert isinstance(document, GuardRollbackReport) and document.rolled_back_from == promoted_id
    assert document.report.verdict == "regressed" and document.reason == current.reason
    assert (base / "guard-reports" / f"{found['guard_report_id']}.json").is_file()
    code, checked, _ = run_main("--base-dir", base, "--check")
    assert code == 0 and json.loads(checked)["checked"]["guard_reports"] == 1
    code, again = guard_check(base, "--guard-mode", "rollback")
    assert code == 0 and again["verdict"] == "idle" and "after a rollback by the guard" in again["reason"]


def test_honest_traffic_is_never_regressed_at_any_check(tmp_path):
    store = honest_promotion(tmp_path / "store", 2000, seed=3)
    check = run_guard_check(store, GuardSettings(mode="rollback"), trace=True)
    assert check.verdict == "healthy" and check.action == "none" and check.difference.low > 0
    assert len(check.trace) == 40 and all(point.difference.high >= -0.01 for point in check.trace)
    assert store.versions.current().promotion_source == "cycle"


def test_idle_without_a_version_or_a_prior_and_watching_on_little_traffic(tmp_path):
    (tmp_path / "empty").mkdir()
    code, found = guard_check(tmp_path / "empty")
    assert code == 0 and found["verdict"] == "idle" and "nothing to watch" in found["reason"]
    alone = promoted_store(tmp_path / "alone", anti_heuristic(), HeuristicRouter(), with_prior=False)
    serve(alone.base_dir, 300, failing=True)
    code, found = guard_check(alone.base_dir, "--guard-mode", "rollback")
    assert code == 0 and found["verdict"] == "idle" and "no prior version" in found["reason"]
    few = bad_promotion(tmp_path / "few", 150)
    code, found = guard_check(few.base_dir, "--guard-mode", "rollback")
    assert code == 0 and found["verdict"] == "watching" and found["served_count"] == 150
    assert "min_traffic 200" in found["reason"] and few.versions.current().promotion_source == "cycle"


def test_a_missing_prior_version_never_rolls_back(tmp_path):
    store = bad_promotion(tmp_path / "store", 1000)
    before = store.versions.current()
    store.versions.versions.path(before.prior_version_id).unlink()
    code, found = guard_check(store.base_dir, "--guard-mode", "rollback")
    assert code == 0 and found["verdict"] == "idle"
    assert f"cannot read the prior version {before.prior_version_id}" in found["reason"]
    assert store.versions.current() == before and not guard_reports(store).ids()


def test_a_locked_store_defers_the_rollback_and_changes_nothing(tmp_path):
    store = bad_promotion(tmp_path / "store", 600)
    before = store.versions.current()
    with store.lock("a cycle"):
        check = run_guard_check(store, GuardSettings(mode="rollback"))
    assert check.verdict == "regressed" and check.action == "alert" and "not rolled back yet" in check.reason
    assert store.versions.current() == before and not guard_reports(store).ids()


def test_guard_settings_are_one_table_without_flags_but_the_mode(monkeypatch):
    assert "guard" not in setting_fields() and "margin" not in setting_fields()
    guard = Settings().guard
    assert (guard.mode, guard.margin, guard.min_traffic, guard.max_watch, guard.level) == ("alert", 0.01, 200, 5000,
                                                                                           0.9)
    assert GuardSettings.model_fields["mode"].description.startswith("`off`")
    monkeypatch.setenv("MEMABRA_GUARD", '{"margin": 0.02}')
    merged = Settings(guard={"mode": "rollback"}).guard
    assert (merged.mode, merged.margin) == ("rollback", 0.02)
    code, _, stderr = run_main("--guard-check", "--guard-mode", "sometimes")
    assert code == 2 and "--guard-mode" in stderr


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_watch_checks_cycles_and_stops_cleanly_on_a_signal(tmp_path, signum, code):
    store = bad_promotion(tmp_path / "store", 300)
    process, lines = watch(store.base_dir, "--min-new-trajectories", "100000",
                           env={"MEMABRA_GUARD": '{"mode": "rollback"}'})
    try:
        event = next_event(lines)  # the first look
        assert event["event"] == "guard" and event["verdict"] == "rolled_back"
        serve(store.base_dir, 20, failing=False, seed=5)  # new traffic (of the prior, now active): another look
        event = next_event(lines)
        assert event["event"] == "guard" and event["verdict"] == "idle"
        process.send_signal(signum)
        process.wait(timeout=30)
        stderr = process.stderr.read()
    finally:
        process.kill()
    assert process.returncode == code
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"watch: stopped by {signal.Signals(signum).name} after 2 looks, 2 guard checks, 0 cycles")
    assert "Traceback" not in stderr


def test_watch_starts_a_cycle_once_enough_trajectories_are_new(tmp_path):
    store = honest_promotion(tmp_path / "store", 120)
    process, lines = watch(store.base_dir, "--min-new-trajectories", "100", "--guard-mode", "off")
    try:
        event = next_event(lines)
        process.terminate()
        process.wait(timeout=60)
    finally:
        process.kill()
    assert event["event"] == "cycle" and event["new_trajectory_count"] == 120
    assert event["status"] in ("promoted", "rejected") and (store.base_dir / "training-reports").is_dir()
    assert process.returncode == 143


def test_the_console_words_the_guard_and_announces_a_guard_rollback(tmp_path):
    from memabra.status import store_status
    from memabra.tui.guard_panel import announcement, guard_text

    store = bad_promotion(tmp_path / "store", 600)
    status = store_status(store, guard=GuardSettings())
    words = guard_text(status.guard).plain
    assert "REGRESSED (alert)" in words and f"watching  {status.current.version_id}" in words
    assert "600 served" in words and "Δvalue    -1.000" in words
    assert announcement(status.guard, status.current.reason) is None
    run_guard_check(store, GuardSettings(mode="rollback"))
    status = store_status(store, guard=GuardSettings())
    message = announcement(status.guard, status.current.reason)
    assert message.startswith("The guard rolled back automatically") and status.guard.last_guard_report_id in message
