"""Held-out off-policy estimates in the cycle, the gates that read them, and the active router's recent value."""

import json

import pytest

from memabra.learning.scan import ArtifactIndex
from memabra.status import store_status
from memabra import run_online_learning_workflow

ESTIMATE_KEYS = {"estimate", "low", "high", "ess"}
from tests.helpers import build_store


def test_a_cycle_estimates_both_routers_on_held_out_traffic_it_did_not_train_on(seeded_store):
    result = run_online_learning_workflow(base_dir=seeded_store, dry_run=True)
    off_policy = result["off_policy"]
    assert (off_policy["held_out_count"], off_policy["excluded_count"]) == (400, 0), "newest 20% of 2000 new"
    assert result["training_trajectory_count"] == 1600
    assert set(off_policy["estimators"]) == {"ips", "snips", "dm", "dr"}
    for estimator in off_policy["estimators"].values():
        assert set(estimator) == {"baseline", "challenger", "delta"}
        for values in estimator.values():
            assert set(values) == ESTIMATE_KEYS and values["low"] <= values["high"]
    dr = off_policy["estimators"]["dr"]
    assert dr["delta"]["estimate"] == pytest.approx(dr["challenger"]["estimate"] - dr["baseline"]["estimate"])
    assert dr["delta"]["estimate"] > 0, "the learned challenger is better than the heuristic on logged traffic"
    assert off_policy["propensities_suspect"] is False and off_policy["warnings"] == []
    interval = result["benchmark"]["reward_delta_interval"]
    assert interval["low"] <= result["reward_delta"] <= interval["high"]
    report = json.loads((seeded_store / "training-reports" / f"{result['report_id']}.json").read_text())
    assert report["off_policy"] == off_policy


def test_holding_nothing_out_trains_on_everything_and_says_why_nothing_was_estimated(seeded_store):
    result = run_online_learning_workflow(base_dir=seeded_store, dry_run=True, holdout_share=0)
    assert result["training_trajectory_count"] == 2000
    assert result["off_policy"]["held_out_count"] == 0 and result["off_policy"]["estimators"] == {}
    assert "no trajectories were held out" in result["off_policy"]["warnings"][0]


def test_default_policy_has_only_the_four_lenient_gates(seeded_store):
    result = run_online_learning_workflow(base_dir=seeded_store, dry_run=True)
    gates = result["gates"]
    assert [gate["gate"] for gate in gates] == ["reward_delta", "error_rate_delta", "latency_delta_ms", "task_count"]
    assert [(gate["comparison"], gate["threshold"]) for gate in gates] == [
        (">=", 0.0), ("<=", 0.05), ("<=", 1000.0), (">=", 20)]
    assert gates[0]["value"] == pytest.approx(result["reward_delta"])
    assert gates[1]["value"] == pytest.approx(result["error_rate_delta"])
    assert gates[2]["value"] == pytest.approx(result["latency_delta_ms"])
    assert gates[3]["value"] == result["challenger"]["task_count"] == 160
    for gate in gates:
        within = (gate["value"] >= gate["threshold"] if gate["comparison"] == ">=" else
                  gate["value"] <= gate["threshold"])
        assert gate["passed"] == within, gate
    assert result["accepted"] == all(gate["passed"] for gate in gates)


@pytest.mark.parametrize("source", ["benchmark", "doubly_robust"])
def test_a_gain_whose_interval_reaches_below_the_threshold_is_rejected(seeded_store, source):
    probe = run_online_learning_workflow(base_dir=seeded_store, dry_run=True)
    if source == "benchmark":
        low, point = probe["benchmark"]["reward_delta_interval"]["low"], probe["reward_delta"]
    else:
        delta = probe["off_policy"]["estimators"]["dr"]["delta"]
        low, point = delta["low"], min(delta["estimate"], probe["reward_delta"])
    threshold = (low + point) / 2  # the point estimates clear it, the interval's low end does not
    result = run_online_learning_workflow(base_dir=seeded_store, dry_run=True, reward_delta_bound=source,
                                          min_reward_delta=threshold)
    assert result["accepted"] is False
    gate = next(gate for gate in result["gates"] if gate["gate"] == "reward_delta_lower_bound")
    assert gate["value"] == pytest.approx(low) and gate["passed"] is False
    assert next(gate for gate in result["gates"] if gate["gate"] == "reward_delta")["passed"] is True
    [reason] = result["reasons"]
    assert reason.startswith("the challenger's reward gain is not clearly above min_reward_delta")
    assert "95% interval" in reason and ("benchmark tasks" if source == "benchmark" else "held-out") in reason
    lenient = run_online_learning_workflow(base_dir=seeded_store, dry_run=True, reward_delta_bound=source,
                                           min_reward_delta=low - 0.01)
    assert lenient["accepted"] is True


def test_too_few_effective_samples_are_rejected_in_plain_words(seeded_store):
    result = run_online_learning_workflow(base_dir=seeded_store, dry_run=True, min_effective_sample_size=1000)
    ess = result["off_policy"]["estimators"]["dr"]["challenger"]["ess"]
    assert result["accepted"] is False
    [reason] = result["reasons"]
    assert reason.startswith(f"too little held-out traffic supports the challenger's estimate: {ess:.1f} effective")
    assert run_online_learning_workflow(base_dir=seeded_store, dry_run=True,
                                        min_effective_sample_size=ess - 1)["accepted"] is True


def test_a_bound_from_held_out_traffic_fails_when_nothing_was_held_out(seeded_store):
    result = run_online_learning_workflow(base_dir=seeded_store, dry_run=True, holdout_share=0,
                                          reward_delta_bound="doubly_robust")
    assert result["accepted"] is False
    assert result["reasons"] == ["the challenger's reward gain could not be bounded: no trajectories were held out "
                                 "(holdout_share is 0 or too few are new)"]


def test_newest_training_returns_the_newest_unseen_by_creation_time(seeded_store):
    build_store(seeded_store, 30, seed=21)
    index = ArtifactIndex.scan(seeded_store, set())
    newest = index.newest_training(30)
    everything = sorted(index.iter_training(), key=lambda t: t.created_at)
    assert [t.trajectory_id for t in newest] == [t.trajectory_id for t in everything[-30:]]
    some = {t.trajectory_id for t in everything[:5]}
    assert {t.trajectory_id for t in index.newest_training(3, only=some)} == {t.trajectory_id for t in
                                                                              everything[2:5]}


def test_cli_flags_and_environment_set_the_uncertainty_gates(cli, seeded_store):
    result = cli("--base-dir", seeded_store, "--dry-run", "--holdout-share", "0.3", "--confidence-level", "0.8",
                 "--min-effective-sample-size", "5", env={"MEMABRA_REWARD_DELTA_BOUND": "benchmark"})
    assert result.code == 0, result.stderr
    cycle = result.json
    assert cycle["policy"]["reward_delta_bound"] == "benchmark" and cycle["policy"]["confidence_level"] == 0.8
    assert cycle["off_policy"]["held_out_count"] == 600 and cycle["off_policy"]["level"] == 0.8
    assert cycle["benchmark"]["reward_delta_interval"]["level"] == 0.8
    assert {gate["gate"] for gate in cycle["gates"]} >= {"reward_delta_lower_bound", "effective_sample_size"}
    bad = cli("--base-dir", seeded_store, "--holdout-share", "1.5")
    assert bad.code == 2 and len(bad.error_lines) == 1 and "--holdout-share" in bad.error_lines[0]


def test_status_shows_the_active_routers_value_on_recent_traffic(tmp_path, seeded_store):
    assert store_status(tmp_path / "empty")["recent_value"] is None
    recent = store_status(seeded_store)["recent_value"]
    assert recent["estimator"] == "snips" and recent["trajectory_count"] == 1000 and recent["excluded_count"] == 0
    assert recent["low"] <= recent["estimate"] <= recent["high"] and recent["ess"] > 500
    assert 0.5 < recent["estimate"] < 0.65, "the heuristic's true value in the demo world is about 0.58"
    run_online_learning_workflow(base_dir=seeded_store)
    promoted = store_status(seeded_store)["recent_value"]
    assert promoted["estimate"] > recent["estimate"] + 0.1 and promoted["ess"] < recent["ess"]
