"""The tiny agent example runs end to end: it logs, a cycle trains on its runs, it serves the promoted router."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.parametrize("mode", [[], ["--ingest"]], ids=["writer", "ingest"])
def test_tiny_agent_learns_and_picks_up_the_promotion_while_running(tmp_path, mode):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("MEMABRA_BASE_DIR", None)
    completed = subprocess.run(
        [sys.executable, "-m", "examples.tiny_agent", "--base-dir", str(tmp_path / "store"), "--tasks", "200", *mode],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert completed.returncode == 0, completed.stderr
    out = json.loads(completed.stdout)
    assert out["before"]["router_version_id"] is None
    assert out["cycle"]["status"] == "promoted", out["cycle"]["reasons"]
    assert out["picked_up_without_restart"] is True
    assert out["after"]["router_version_id"] == out["cycle"]["challenger_version_id"]
    assert out["after"]["avg_reward"] > out["before"]["avg_reward"] + 0.3
    if mode:
        assert out["ingest"] == {"stored_count": 200, "duplicate_count": 0, "invalid_count": 0}
    status = subprocess.run([sys.executable, "-m", "memabra.cli", "--base-dir", str(tmp_path / "store"), "--status"],
                            cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    stored = json.loads(status.stdout)
    assert stored["training_trajectory_count"] >= 400 + out["tasks_served_during_cycle"]
    assert stored["invalid_trajectory_count"] == 0
