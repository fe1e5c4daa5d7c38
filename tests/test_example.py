"""The tiny agent example runs end to end: it logs, a cycle trains on its runs, it serves the promoted router."""

import json

import pytest

from tests.helpers import run_cli, run_python


@pytest.mark.parametrize("mode", [[], ["--ingest"]], ids=["writer", "ingest"])
def test_tiny_agent_learns_and_picks_up_the_promotion_while_running(tmp_path, mode):
    completed = run_python("-m", "examples.tiny_agent", "--base-dir", tmp_path / "store", "--tasks", "200", *mode,
                           timeout=300)
    assert completed.code == 0, completed.stderr
    out = json.loads(completed.stdout)
    assert out["before"]["router_version_id"] is None
    assert out["cycle"]["status"] == "promoted", out["cycle"]["reasons"]
    assert out["picked_up_without_restart"] is True
    assert out["after"]["router_version_id"] == out["cycle"]["challenger_version_id"]
    assert out["after"]["avg_reward"] > out["before"]["avg_reward"] + 0.3
    if mode:
        assert out["ingest"] == {"stored_count": 200, "duplicate_count": 0, "invalid_count": 0}
    status = run_cli("--base-dir", tmp_path / "store", "--status")
    assert status.code == 0, status.stderr
    stored = status.json
    assert stored["training_trajectory_count"] >= 400 + out["tasks_served_during_cycle"]
    assert stored["invalid_trajectory_count"] == 0
