"""The guard on a store: `--guard-check` verdicts and exit codes, alert and rollback, missing evidence, `--watch`;
and in process on small stores, its idle and watching reasons, the served traffic it reads, the arrays it builds and
the rollback it writes to the store and the audit log."""

from __future__ import annotations

import json
import math
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from memabra.evaluation.guard import CandidateKeys, GuardPolicy, GuardReport, batch_from_trajectories
from memabra.evaluation.guard import guard_check as check_traffic
from memabra.guarding import (FILE_CLOCK_SLACK, GuardRollbackReport, evaluate_guard, guard_reports, guard_rollback,
                              run_guard_check, served_traffic)
from memabra.learning.routers import HeuristicRouter
from memabra.learning.versions import load_version_router
from memabra.models import Trajectory
from memabra.settings import GuardSettings, Settings, setting_fields
from memabra.storage.store import Store
from memabra.storage.trajectories import TrajectoryWriter
from tests.helpers import ROOT, run_main
from tests.guard_store import START, anti_heuristic, bad_promotion, honest_promotion, promoted_store, serve


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


SMALL = GuardSettings(min_traffic=40, max_watch=400)
LATER = START + timedelta(days=31)


class Unscorable(HeuristicRouter):
    def scores(self, task, candidates):
        raise ValueError("weights do not match the features")


@pytest.fixture(scope="module")
def failing_store(tmp_path_factory):
    """A promoted version whose own picks always fail, with 120 served trajectories."""
    return bad_promotion(tmp_path_factory.mktemp("guard") / "store", 120)


def served_list(store: Store) -> list[Trajectory]:
    return served_traffic(store, store.versions.current().version_id, None, 10_000)


def test_guard_check_is_idle_without_a_promoted_version_or_a_prior():
    router = HeuristicRouter()
    nothing = check_traffic([], None, router, prior_version_id="p")
    assert nothing.verdict == "idle" and nothing.reason == "no promoted version to watch"
    assert nothing.prior_version_id == "p" and nothing.served_count == 0 and nothing.policy == GuardPolicy()
    unnamed = check_traffic([], router, router)
    assert unnamed.verdict == "idle" and unnamed.reason == "no promoted version to watch"
    alone = check_traffic([], router, None, promoted_version_id="v2")
    assert alone.verdict == "idle" and alone.promoted_version_id == "v2"
    assert alone.reason == "version v2 has no prior version to compare with (nothing to roll back to)"
    observed = check_traffic([], router, router, GuardPolicy(reward_low=None, reward_high=None),
                             promoted_version_id="v2")
    assert observed.verdict == "watching" and observed.reason == "no trajectory served by the promoted version yet"


def test_guard_check_names_a_router_that_cannot_score_and_bad_reward_ranges(failing_store):
    traffic = served_list(failing_store)
    promoted_id = failing_store.versions.current().version_id
    broken = check_traffic(traffic, anti_heuristic(), Unscorable(), promoted_version_id=promoted_id)
    assert broken.verdict == "watching" and broken.served_count == 120 and broken.used_count == 0
    assert broken.reason == ("the guard could not score the served traffic with both versions (ValueError: weights do "
                             "not match the features); check that the prior version loads and suits these candidates")
    traffic[3].outcome.reward = -2.0
    outside = check_traffic(traffic, anti_heuristic(), HeuristicRouter(), promoted_version_id=promoted_id)
    assert outside.verdict == "watching" and outside.served_count == 120 and outside.used_count == 0
    assert outside.reason == ("served rewards run -2..1, outside the guard's reward range [0, 1]; set reward_low and "
                              "reward_high to the rewards' true range")
    low_only = GuardPolicy(reward_low=None, min_traffic=40)
    judged = check_traffic(traffic, anti_heuristic(), HeuristicRouter(), low_only, promoted_version_id=promoted_id)
    assert judged.used_count == 120 and "reward range" not in judged.reason and judged.difference.estimate < -0.3
    assert judged.served_value.estimate == pytest.approx(sum(t.outcome.reward for t in traffic) / 120)
    high_only = GuardPolicy(reward_high=None, min_traffic=40)
    assert "range [0, 1]" in check_traffic(traffic, anti_heuristic(), HeuristicRouter(), high_only,
                                         promoted_version_id=promoted_id).reason
    traffic[3].outcome.reward = 2.0  # the observed top, 2, is the range's
    judge = lambda policy: check_traffic(traffic, anti_heuristic(), HeuristicRouter(), policy,  # noqa: E731
                                         promoted_version_id=promoted_id)
    assert judge(high_only).used_count == 120
    traffic[3].outcome.reward = 1.0
    given_high, explicit = (judge(GuardPolicy(reward_low=low, reward_high=5.0, min_traffic=40)) for low in (None, 0.0))
    assert given_high.used_count == 120 and given_high.difference == explicit.difference
    flat = GuardPolicy(reward_low=1.0, reward_high=1.0, min_traffic=40)
    empty_range = check_traffic(traffic, anti_heuristic(), HeuristicRouter(), flat, promoted_version_id=promoted_id)
    assert "outside the guard's reward range [1, 2]" in empty_range.reason


def test_guard_check_reads_every_batch_and_judges_small_traffic(failing_store):
    traffic = served_list(failing_store)
    promoted_id = failing_store.versions.current().version_id
    for batch_size in (7, 50, 500):
        report = check_traffic(traffic, anti_heuristic(), HeuristicRouter(), SMALL.policy(),
                             promoted_version_id=promoted_id, prior_version_id="prior", batch_size=batch_size)
        assert report.served_count == report.used_count == 120 and report.difference.estimate < -0.5
        assert report.verdict == ("regressed" if batch_size == 50 else report.verdict)
        assert report.prior_version_id == "prior" and report.promoted_version_id == promoted_id
        if batch_size == 50:  # the default
            assert check_traffic(traffic, anti_heuristic(), HeuristicRouter(), SMALL.policy(),
                                 promoted_version_id=promoted_id, prior_version_id="prior") == report
    none_served = check_traffic(traffic, anti_heuristic(), HeuristicRouter(), promoted_version_id="other")
    assert none_served.verdict == "watching" and none_served.served_count == 0
    assert none_served.reason == "no trajectory served by the promoted version yet"


def test_batch_from_trajectories_holds_outcomes_propensities_and_both_picks(failing_store):
    traffic = served_list(failing_store)[:5]
    traffic[1].decision.propensity = None
    traffic[2].outcome.error = "timeout"
    keys = CandidateKeys()
    batch = batch_from_trajectories(traffic, anti_heuristic(), HeuristicRouter(), keys)
    assert len(batch) == 5 and list(batch.rewards) == [t.outcome.reward for t in traffic]
    assert math.isnan(batch.propensities[1])
    assert batch.propensities[0] == pytest.approx(traffic[0].decision.propensity)
    assert list(batch.latencies_ms) == [t.outcome.latency_ms for t in traffic]
    assert batch.errors[2] and batch.errors.dtype == bool
    assert list(batch.errors) == [t.outcome.error is not None for t in traffic]
    assert list(batch.logged_keys) == [keys(t.decision.chosen_candidate_id) for t in traffic]
    for router, picks in ((anti_heuristic(), batch.promoted_keys), (HeuristicRouter(), batch.prior_keys)):
        expected = [keys(max(zip(router.scores(t.task, t.candidates), t.candidates), key=lambda p: p[0])[1]
                         .candidate_id) for t in traffic]
        assert list(picks) == expected and picks.dtype.kind == "i"
    assert (batch.promoted_keys != batch.prior_keys).all()
    empty = batch_from_trajectories([], anti_heuristic(), HeuristicRouter(), CandidateKeys())
    assert len(empty) == 0 and all(len(array) == 0 for array in vars(empty).values())
    assert empty.errors.dtype == bool and empty.prior_keys.dtype.kind == "i"


def test_served_traffic_reads_only_the_versions_own_newest_files_oldest_first(tmp_path):
    store = promoted_store(tmp_path / "store", anti_heuristic(), HeuristicRouter())
    serve(store.base_dir, 30, failing=True, seed=1)
    current = store.versions.current()
    every = served_traffic(store, current.version_id, None, 1000)
    assert len(every) == 30 and all(t.decision.router_version_id == current.version_id for t in every)
    assert [t.created_at for t in every] == sorted(t.created_at for t in every)
    assert served_traffic(store, current.version_id, None, 12) == every[:12]
    assert served_traffic(store, current.prior_version_id, None, 1000) == []
    files = [item.path for item in store.trajectories.files()]
    old = time.time() - 3600
    for path in files:
        os.utime(path, (old, old))
    assert served_traffic(store, current.version_id, None, 1000) == every
    now = START.__class__.now(START.tzinfo)
    assert served_traffic(store, current.version_id, now, 1000) == []
    assert len(served_traffic(store, current.version_id, now - timedelta(minutes=55), 1000)) == 30


def test_evaluate_guard_idle_reasons_say_what_is_missing(tmp_path):
    empty = Store(tmp_path / "empty")
    check = evaluate_guard(empty, SMALL)
    assert check.verdict == "idle" and check.mode == "alert" and check.promoted_version_id is None
    assert check.reason == "no version is active (the built-in heuristic serves); nothing to watch"
    alone = promoted_store(tmp_path / "alone", anti_heuristic(), HeuristicRouter(), with_prior=False)
    current = alone.versions.current()
    check = evaluate_guard(alone, SMALL.model_copy(update={"mode": "rollback"}))
    assert check.verdict == "idle" and check.mode == "rollback" and check.promoted_version_id == current.version_id
    assert check.reason == (f"version {current.version_id} has no prior version to compare with (nothing to roll "
                            "back to)")
    corrupt = promoted_store(tmp_path / "corrupt", anti_heuristic(), HeuristicRouter())
    corrupt.versions.current_file.path.write_text("{not json")
    check = evaluate_guard(corrupt, SMALL)
    assert check.verdict == "idle" and check.reason.startswith("the guard cannot read current.json (")
    assert check.reason.endswith("); run --check") and check.promoted_version_id is None


def test_evaluate_guard_idle_after_a_rollback_names_who_rolled_back(tmp_path):
    store = promoted_store(tmp_path / "store", anti_heuristic(), HeuristicRouter())
    prior = store.versions.current().prior_version_id
    store.versions.rollback(prior, reason="operator: bad answers")
    check = evaluate_guard(store, SMALL)
    assert check.verdict == "idle" and check.promoted_version_id == prior
    assert check.reason == (f"version {prior} is active after a rollback; the guard watches promoted versions only")


def test_evaluate_guard_idle_when_the_promoted_version_or_the_traffic_cannot_be_read(tmp_path, monkeypatch):
    store = promoted_store(tmp_path / "store", anti_heuristic(), HeuristicRouter())
    serve(store.base_dir, 10, failing=True)
    current = store.versions.current()
    store.versions.versions.path(current.version_id).unlink()
    check = evaluate_guard(store, SMALL)
    assert check.verdict == "idle" and check.prior_version_id == current.prior_version_id
    assert check.reason.startswith(f"the guard cannot read the promoted version {current.version_id} (")
    assert check.reason.endswith("it does nothing until that version loads (run --check)")
    other = promoted_store(tmp_path / "other", anti_heuristic(), HeuristicRouter())

    def unreadable(*args, **kwargs):
        raise PermissionError("trajectories/ is not readable")

    monkeypatch.setattr("memabra.guarding.served_traffic", unreadable)
    check = evaluate_guard(other, SMALL)
    assert check.verdict == "idle" and check.reason == ("the guard cannot read the served traffic (trajectories/ is "
                                                        "not readable); it does nothing until it can")
    assert check.promoted_version_id == other.versions.current().version_id and check.prior_version_id is not None


def test_evaluate_guard_watches_scoring_errors_and_bad_rewards_and_traces_small_traffic(failing_store, monkeypatch):
    current = failing_store.versions.current()
    check = evaluate_guard(failing_store, SMALL, trace=True)
    assert check.verdict == "regressed" and check.served_count == check.used_count == 120
    assert check.promoted_version_id == current.version_id and check.prior_version_id == current.prior_version_id
    assert [point.served_count for point in check.trace] == [50, 100, 120]
    assert check.trace[-1].difference == check.difference and check.trace[-1].promoted == check.promoted.value
    assert check.trace[-1].prior == check.prior.value and check.mode == "alert"
    assert evaluate_guard(failing_store, SMALL).trace == []
    ended = evaluate_guard(failing_store, GuardSettings(max_watch=100))
    assert ended.verdict == "healthy" and ended.served_count == 100 and ended.watch_complete
    assert ended.reason.startswith("the watch of 100 trajectories ended without a regression: ")
    watching = evaluate_guard(failing_store, GuardSettings())
    assert watching.verdict == "watching" and watching.served_count == 120 and "min_traffic 200" in watching.reason
    monkeypatch.setattr("memabra.guarding.load_version_router", lambda versions, version_id: Unscorable())
    broken = evaluate_guard(failing_store, SMALL)
    assert broken.verdict == "watching" and broken.served_count == 120 and broken.mode == "alert"
    assert broken.reason == ("the guard could not score the served traffic with both versions (ValueError: weights "
                             "do not match the features); check that the prior version loads and suits these candidates")
    assert broken.promoted_version_id == current.version_id and broken.prior_version_id == current.prior_version_id


def test_evaluate_guard_names_rewards_outside_the_range(failing_store):
    narrow = SMALL.model_copy(update={"reward_high": 0.5})
    check = evaluate_guard(failing_store, narrow)
    assert check.verdict == "watching" and check.served_count == 120 and check.used_count == 0
    assert check.reason == ("served rewards run 0..1, outside the guard's reward range [0, 0.5]; set reward_low and "
                            "reward_high in [guard] to the rewards' true range")
    observed = evaluate_guard(failing_store, SMALL.model_copy(update={"reward_low": None, "reward_high": None}))
    assert observed.verdict == "regressed" and observed.served_value.low >= 0.0
    flat = evaluate_guard(failing_store, SMALL.model_copy(update={"reward_low": 1.0, "reward_high": 1.0}))
    assert "outside the guard's reward range [1, 2]" in flat.reason


def test_a_guard_rollback_writes_current_the_audit_log_and_the_guard_report(tmp_path):
    store = bad_promotion(tmp_path / "store", 120)
    before = store.versions.current()
    alert = run_guard_check(store, SMALL)
    assert alert.verdict == "regressed" and alert.action == "alert" and store.versions.current() == before
    assert alert.trace == []
    off = run_guard_check(store, SMALL.model_copy(update={"mode": "off"}))
    assert off.verdict == "regressed" and off.action == "none"
    check = run_guard_check(store, SMALL.model_copy(update={"mode": "rollback"}), clock=lambda: LATER)
    assert check.verdict == "rolled_back" and check.action == "rolled_back"
    assert check.guard_report_id == "20260401-090000"  # named by the clock
    assert check.rolled_back_to == before.prior_version_id and check.reason.startswith(
        f"guard: {before.version_id} is worse than {before.prior_version_id} by ")
    assert check.reason.endswith("margin 0.01) over 120 served decisions")
    current = store.versions.current()
    assert current.version_id == before.prior_version_id and current.reason == check.reason
    changes = [entry for entry in store.versions.history.version_changes() if entry.reason == check.reason]
    assert len(changes) == 1 and changes[0].version_id == before.prior_version_id
    assert changes[0].source == "rollback"
    document = guard_reports(store).get(check.guard_report_id)
    assert document.rolled_back_from == before.version_id and document.rolled_back_to == before.prior_version_id
    assert document.reason == check.reason and document.rolled_back_at == current.rolled_back_at
    assert document.report.verdict == "regressed" and document.report.used_count == 120
    assert document.report.difference == check.difference
    again = guard_rollback(store, off)
    assert again.verdict == "regressed" and again.action == "alert" and again.guard_report_id is None
    assert again.reason.startswith(f"{off.reason}; not rolled back: ") and "no longer active" in again.reason
    assert guard_reports(store).ids() == [check.guard_report_id]


def test_evaluate_guard_judges_the_served_traffic_as_guard_check_does(failing_store, monkeypatch):
    current = failing_store.versions.current()
    routers = [load_version_router(failing_store.versions, version) for version in (current.version_id,
                                                                                     current.prior_version_id)]
    traffic = served_list(failing_store)
    for trajectory in traffic:  # rewards 0.25 and 0.75: the observed range is [0.25, 0.75]
        trajectory.outcome.reward = 0.25 + trajectory.outcome.reward / 2
    monkeypatch.setattr("memabra.guarding.served_traffic", lambda *args: traffic)
    for update in ({"reward_low": None, "reward_high": None}, {"reward_low": -1.0, "reward_high": 2.0}):
        guard = SMALL.model_copy(update=update)
        check = evaluate_guard(failing_store, guard)
        expected = check_traffic(traffic, *routers, guard.policy(), promoted_version_id=current.version_id,
                                 prior_version_id=current.prior_version_id)
        assert check.model_dump(include=set(GuardReport.model_fields)) == expected.model_dump()
    monkeypatch.setattr("memabra.guarding.served_traffic", lambda *args: [])
    unserved = evaluate_guard(failing_store, SMALL.model_copy(update={"reward_low": None, "reward_high": None}))
    assert unserved.verdict == "watching" and unserved.reason == "no trajectory served by the promoted version yet"


def test_the_store_guard_reads_open_journals_and_skips_files_written_before_the_version(tmp_path):
    store = promoted_store(tmp_path / "store", anti_heuristic(), HeuristicRouter(), later=timedelta(days=1))
    current = store.versions.current()
    serve(store.base_dir, 10, failing=True, seed=1)
    serve(store.base_dir, 10, failing=True, seed=2)
    first, second = (item.path for item in store.trajectories.files())
    edge = (LATER - FILE_CLOCK_SLACK).timestamp()  # whole seconds: an exact mtime
    os.utime(first, (edge - 1, edge - 1))
    os.utime(second, (edge, edge))
    assert len(served_traffic(store, current.version_id, LATER, 1000)) == 10  # the first is older than the slack
    stamp = (START + timedelta(hours=12)).timestamp()  # before the version existed (by more than the slack)
    os.utime(second, (stamp, stamp))
    assert evaluate_guard(store, SMALL).served_count == 10
    with TrajectoryWriter(store.base_dir) as writer:
        for trajectory in served_list(store)[:3]:
            writer.append(Trajectory(task=trajectory.task, candidates=trajectory.candidates,
                                     decision=trajectory.decision, outcome=trajectory.outcome))
        other = trajectory.decision.model_copy(update={"router_version_id": current.prior_version_id})
        writer.append(Trajectory(task=trajectory.task, candidates=trajectory.candidates, decision=other,
                                 outcome=trajectory.outcome))
        assert len(served_traffic(store, current.version_id, None, 1000)) == 23  # the open journal's 3 too


def test_the_store_guard_judges_only_the_watched_traffic(tmp_path):
    store = bad_promotion(tmp_path / "store", 120)
    late = served_list(store)[0]
    with TrajectoryWriter(store.base_dir) as writer:  # served after the watch's 100: never read
        writer.append(Trajectory(task=late.task, candidates=late.candidates, decision=late.decision,
                                 outcome=late.outcome.model_copy(update={"reward": 5.0})))
    check = evaluate_guard(store, GuardSettings(max_watch=100))
    assert check.verdict == "healthy" and check.served_count == 100 and check.watch_complete
