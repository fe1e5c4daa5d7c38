"""A rollback from an unreadable current.json killed at every write step: the old or the new state, never the
heuristic; --check says which and how to finish."""

import json
import signal

from memabra.check import check_store
from memabra.learning.routers import HeuristicRouter
from memabra.serving import ActiveRouter
from memabra.storage.versions import RouterVersionStore
from tests.helpers import run_cli


def test_rollback_from_a_quarantined_current_killed_at_every_step(tmp_path):
    base = tmp_path / "store"
    versions = RouterVersionStore(base)
    for _ in range(2):
        versions.promote(versions.save(HeuristicRouter()))
    newest, older = [v["version_id"] for v in versions.list_versions()][:2]
    live = ActiveRouter(base, check_interval=0)
    assert live.version_id == newest
    current = base / "router-versions" / "current.json"
    for step in range(1, 8):
        current.write_text("{ torn")
        rolled = run_cli("--base-dir", base, "--rollback", older, fault=f"kill@{step}")
        if rolled.returncode == 0:
            break
        assert rolled.returncode == -signal.SIGKILL
        text = current.read_text()
        assert text == "{ torn" or json.loads(text)["version_id"] == older, step
        assert live.version_id in (newest, older) and live.version_id is not None
        if text == "{ torn":
            assert live.last_error and "current.json" in live.last_error
            problems = {p["path"]: p for p in check_store(base)["problems"]}
            assert "--rollback" in problems["router-versions/current.json"]["fix"]
            temp = [p for path, p in problems.items() if path.startswith("router-versions/.current.json")]
            assert all("never took effect" in p["fix"] and "--rollback" in p["fix"] for p in temp)
        else:
            assert live.version_id == older and live.last_error is None
    assert json.loads(current.read_text())["version_id"] == older
    assert check_store(base, repair=True)["healthy"]
