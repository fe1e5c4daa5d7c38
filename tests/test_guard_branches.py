"""The guard's quieter answers, in process on small stores: idle and watching reasons, the served traffic it reads,
the arrays it builds, and the rollback it writes to the store and the audit log."""

from __future__ import annotations

import math
import os
import time
from datetime import timedelta

import pytest

from memabra.evaluation.guard import CandidateKeys, GuardPolicy, batch_from_trajectories, guard_check
from memabra.guarding import evaluate_guard, guard_reports, guard_rollback, run_guard_check, served_traffic
from memabra.learning.routers import HeuristicRouter
from memabra.models import Trajectory
from memabra.settings import GuardSettings
from memabra.storage.store import Store
from tests.guard_store import START, anti_heuristic, bad_promotion, promoted_store, serve

SMALL = GuardSettings(min_traffic=40, max_watch=400)


class Unscorable(HeuristicRouter):
    def scores(self, task, candidates):
        raise ValueError("weights do not match the features")


@pytest.fixture(scope="module")
def failing_store(tmp_path_factory):
    """A promoted version whose own picks always fail, with 120 served trajectories."""
    return bad_promotion(tmp_path_factory.mktemp("guard") / "store", 120)


def served(store: Store) -> list[Trajectory]:
    return served_traffic(store, store.versions.current().version_id, None, 10_000)


def test_guard_check_is_idle_without_a_promoted_version_or_a_prior():
    router = HeuristicRouter()
    nothing = guard_check([], None, router, prior_version_id="p")
    assert nothing.verdict == "idle" and nothing.reason == "no promoted version to watch"
    assert nothing.prior_version_id == "p" and nothing.served_count == 0 and nothing.policy == GuardPolicy()
    unnamed = guard_check([], router, router)
    assert unnamed.verdict == "idle" and unnamed.reason == "no promoted version to watch"
    alone = guard_check([], router, None, promoted_version_id="v2")
    assert alone.verdict == "idle" and alone.promoted_version_id == "v2"
    assert alone.reason == "version v2 has no prior version to compare with (nothing to roll back to)"


def test_guard_check_names_a_router_that_cannot_score_and_bad_reward_ranges(failing_store):
    traffic = served(failing_store)
    promoted_id = failing_store.versions.current().version_id
    broken = guard_check(traffic, anti_heuristic(), Unscorable(), promoted_version_id=promoted_id)
    assert broken.verdict == "watching" and broken.served_count == 120 and broken.used_count == 0
    assert broken.reason.startswith("the guard could not score the served traffic with both versions "
                                    "(ValueError: weights do not match the features)")
    traffic[3].outcome.reward = -2.0
    outside = guard_check(traffic, anti_heuristic(), HeuristicRouter(), promoted_version_id=promoted_id)
    assert outside.verdict == "watching" and outside.served_count == 120 and outside.used_count == 0
    assert "served rewards run -2..1, outside the guard's reward range [0, 1]" in outside.reason
    low_only = GuardPolicy(reward_low=None, min_traffic=40)
    judged = guard_check(traffic, anti_heuristic(), HeuristicRouter(), low_only, promoted_version_id=promoted_id)
    assert judged.used_count == 120 and "reward range" not in judged.reason and judged.difference.estimate < -0.3
    assert judged.served_value.estimate == pytest.approx(sum(t.outcome.reward for t in traffic) / 120)
    high_only = GuardPolicy(reward_high=None, min_traffic=40)
    assert "range [0, 1]" in guard_check(traffic, anti_heuristic(), HeuristicRouter(), high_only,
                                         promoted_version_id=promoted_id).reason
    traffic[3].outcome.reward = 1.0
    flat = GuardPolicy(reward_low=1.0, reward_high=1.0, min_traffic=40)
    empty_range = guard_check(traffic, anti_heuristic(), HeuristicRouter(), flat, promoted_version_id=promoted_id)
    assert "outside the guard's reward range [1, 2]" in empty_range.reason


def test_guard_check_reads_every_batch_and_judges_small_traffic(failing_store):
    traffic = served(failing_store)
    promoted_id = failing_store.versions.current().version_id
    for batch_size in (7, 50, 500):
        report = guard_check(traffic, anti_heuristic(), HeuristicRouter(), SMALL.policy(),
                             promoted_version_id=promoted_id, prior_version_id="prior", batch_size=batch_size)
        assert report.served_count == report.used_count == 120 and report.difference.estimate < -0.5
        assert report.verdict == ("regressed" if batch_size == 50 else report.verdict)
        assert report.prior_version_id == "prior" and report.promoted_version_id == promoted_id
    none_served = guard_check(traffic, anti_heuristic(), HeuristicRouter(), promoted_version_id="other")
    assert none_served.verdict == "watching" and none_served.served_count == 0
    assert none_served.reason == "no trajectory served by the promoted version yet"


def test_batch_from_trajectories_holds_outcomes_propensities_and_both_picks(failing_store):
    traffic = served(failing_store)[:5]
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
                             "do not match the features); check that the prior version suits these candidates")
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
    off = run_guard_check(store, SMALL.model_copy(update={"mode": "off"}))
    assert off.verdict == "regressed" and off.action == "none"
    check = run_guard_check(store, SMALL.model_copy(update={"mode": "rollback"}))
    assert check.verdict == "rolled_back" and check.action == "rolled_back"
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
    again = guard_rollback(store, alert)
    assert again.verdict == "regressed" and again.action == "alert" and again.guard_report_id is None
    assert again.reason.startswith(f"{alert.reason}; not rolled back: ") and "no longer active" in again.reason
    assert guard_reports(store).ids() == [check.guard_report_id]
