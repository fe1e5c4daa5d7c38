"""The console's numbers, computed without any UI: listings, trend, version diffs, gate and off-policy rows."""

import orjson
import pytest

from memabra.demo.world import DemoWorld
from memabra.errors import BadInputError
from memabra.overview import (
    gate_rows, load_overview, metric_rows, off_policy_rows, report_rows, store_fingerprint, version_diff, version_rows,
)
from memabra.storage.versions import ReportStore, RouterVersionStore
from tests.console_store import OFF_POLICY, add_off_policy

SUITE = DemoWorld(7).benchmark_suite()


def test_history_lists_versions_and_reports_newest_first(history_store):
    overview = load_overview(history_store)
    assert [row.version_id for row in overview.versions] == ["20260105-120000", "20260105-100000", "20260105-090000"]
    assert [row.active for row in overview.versions] == [True, False, False]
    assert [row.status for row in overview.reports] == ["rejected", "promoted", "dry_run", "promoted", "promoted"]
    assert overview.reports[0].first_reason.startswith("reward_delta ") and "< 0.5" in overview.reports[0].first_reason
    assert overview.reports[1].first_reason == ""
    assert overview.versions[0].training_trajectory_count == 1000
    assert overview.status["current"]["version_id"] == "20260105-120000"
    assert overview.problems == []


def test_reward_trend_runs_oldest_to_newest(history_store):
    overview = load_overview(history_store)
    rewards = {row.version_id: row.avg_reward for row in overview.versions}
    assert overview.reward_trend == [rewards["20260105-090000"], rewards["20260105-100000"], rewards["20260105-120000"]]


def test_fresh_store_overview_is_empty_not_an_error(tmp_path):
    overview = load_overview(tmp_path / "nothing-here")
    assert overview.versions == [] and overview.reports == [] and overview.problems == []
    assert overview.status["current"] is None and overview.status["training_trajectory_count"] == 0


def test_a_corrupt_file_becomes_a_problem_line(history_store):
    (history_store / "training-reports" / "20260105-110000.json").write_text("{ not json")
    (history_store / "router-versions" / "current.json").write_text("")
    overview = load_overview(history_store)
    assert overview.status is not None and overview.status.current is None  # the status still shows, warning
    assert any("current.json" in warning for warning in overview.status.warnings)
    assert any("20260105-110000.json" in problem for problem in overview.problems)
    assert len(overview.reports) == 4 and len(overview.versions) == 3


def test_fingerprint_changes_on_rollback_and_new_report(history_store):
    before = store_fingerprint(history_store)
    assert store_fingerprint(history_store) == before
    RouterVersionStore(history_store).rollback("20260105-090000")
    after_rollback = store_fingerprint(history_store)
    assert after_rollback != before
    ReportStore(history_store).create(lambda report_id: ReportStore(history_store).get("20260105-130000")
                                      .model_copy(update={"report_id": report_id}))
    assert store_fingerprint(history_store) != after_rollback


def test_version_diff_matches_the_report_that_promoted_it(history_store):
    for version_id in ("20260105-090000", "20260105-100000", "20260105-120000"):
        version = RouterVersionStore(history_store).get_version(version_id)
        report = ReportStore(history_store).get(version.report_id)
        diff = version_diff(history_store, version_id, SUITE)
        assert diff["compared_with"] == version.parent_version_id == report.baseline_version_id
        assert diff["decision_change_share"] == pytest.approx(report.benchmark.decision_change_share)
        assert diff["avg_reward_after"] == pytest.approx(report.challenger.avg_reward)
        assert diff["avg_reward_before"] == pytest.approx(report.baseline.avg_reward)
        by_family = {row["family"]: row for row in diff["families"]}
        assert set(by_family) == set(report.benchmark.challenger_family_rewards)
        for family, reward in report.benchmark.challenger_family_rewards.items():
            assert by_family[family]["after"] == pytest.approx(reward)
            assert by_family[family]["change"] == pytest.approx(reward - report.benchmark.baseline_family_rewards[family])
    assert version_diff(history_store, "20260105-090000", SUITE)["compared_with"] is None


def test_version_diff_of_unknown_version_is_bad_input(history_store):
    with pytest.raises(BadInputError):
        version_diff(history_store, "20990101-000000", SUITE)


def test_gate_and_metric_rows(history_store):
    report = ReportStore(history_store).get("20260105-130000")
    gates = gate_rows(report.gates)
    assert [row["gate"] for row in gates] == ["reward_delta", "error_rate_delta", "latency_delta_ms", "task_count"]
    assert gates[0]["passed"] is False and gates[0]["rule"] == ">= 0.5"
    assert gates[3] == {"gate": "task_count", "value": 160, "rule": ">= 20", "threshold_name": "required_task_count",
                        "passed": True}
    rows = metric_rows(report.baseline.model_dump(), report.challenger.model_dump())
    assert report.reward_delta_basis == "expected", "the demo suite knows every expected reward"
    assert rows[0][0] == "avg_reward" and rows[0][3] == pytest.approx(report.reward_delta_sampled)


def test_off_policy_rows_when_present_and_absent(history_store):
    raw = orjson.loads((history_store / "training-reports" / "20260105-130000.json").read_bytes())
    assert not raw["off_policy"]["estimators"] and off_policy_rows(None) == []
    add_off_policy(history_store, "20260105-130000")
    report = ReportStore(history_store).get("20260105-130000")
    rows = off_policy_rows(report.off_policy)
    assert [(row["estimator"], row["side"]) for row in rows] == [
        ("ips", "baseline"), ("ips", "challenger"), ("ips", "delta"),
        ("dr", "baseline"), ("dr", "challenger"), ("dr", "delta")]
    assert rows[5]["estimate"] == OFF_POLICY["estimators"]["dr"]["delta"]["estimate"]
    assert rows[1]["ess"] == 61.5


def test_version_rows_skip_and_name_unreadable_files(history_store):
    (history_store / "router-versions" / "versions" / "20260105-100000.json").write_text("[]")
    problems = []
    rows = version_rows(history_store, None, problems)
    assert [row.version_id for row in rows] == ["20260105-120000", "20260105-090000"]
    assert "20260105-100000.json" in problems[0]
    assert len(report_rows(history_store)) == 5
