"""Reviewed promotion of a dry run's kept challenger, the audit log of every change of the active version, and the
`--history` and `--active-at` queries."""

import json
import os
from datetime import datetime, timezone

from textual.widgets import DataTable

from memabra.demo.history import PASSING_GATES
from memabra.demo.world import DemoWorld
from memabra.settings import Settings
from memabra.storage.lock import lock_holder
from memabra.storage.store import Store
from memabra.tui.screens.details import ReportScreen, VersionScreen
from memabra.tui.screens.modals import PromoteScreen
from memabra.workflow import CycleRequest, run_cycle
from tests.helpers import run_main
from tests.helpers import start_cli, wait_until
from tests.console_helpers import SIZE, make_app, settle


def ok(*args):
    code, out, err = run_main(*args)
    assert code == 0, err
    return json.loads(out)


def refused(*args) -> str:
    code, out, err = run_main(*args)
    assert code == 2 and out == "", (code, out, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    return lines[0]


def test_dry_run_then_promote_then_history_and_active_at(seeded_store):
    base = str(seeded_store)
    dry = ok("--base-dir", base, "--dry-run")
    report_id = dry["report_id"]
    assert dry["status"] == "dry_run" and dry["accepted"] and dry["challenger_version_id"] is None
    assert not (seeded_store / "router-versions").exists(), "a dry run saves no router version"
    kept = json.loads((seeded_store / "training-reports" / "challengers" / f"{report_id}.json").read_text())
    assert kept["report_id"] == report_id and kept["router"]["kind"]
    before = datetime.now(timezone.utc)

    current = ok("--base-dir", base, "--promote", report_id, "--reason", "reviewed by ana")
    version_id = current["version_id"]
    assert current["report_id"] == report_id and current["promotion_source"] == "promote"
    assert current["reason"] == "reviewed by ana"
    version = json.loads((seeded_store / "router-versions" / "versions" / f"{version_id}.json").read_text())
    assert version["report_id"] == report_id and version["router"] == kept["router"]

    history = ok("--base-dir", base, "--history")["history"]
    assert [(e["version_id"], e["previous_version_id"], e["source"], e["reason"], e["report_id"])
            for e in history] == [(version_id, None, "promote", "reviewed by ana", report_id)]
    assert "--promote" in history[0]["command"] and history[0]["changed_at"]

    then = ok("--base-dir", base, "--active-at", before.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z")
    assert then["version_id"] is None and then["active_router"] == "heuristic"
    now = ok("--base-dir", base, "--active-at", datetime.now(timezone.utc).isoformat())
    assert now["version_id"] == version_id and now["reason"] == "reviewed by ana"
    assert "2026-04-14T12:34:56Z" in refused("--base-dir", base, "--active-at", "last tuesday")

    assert "already promoted as version " + version_id in refused("--base-dir", base, "--promote", report_id)
    assert "does not exist" in refused("--base-dir", base, "--promote", "20200101-000000")
    assert ok("--base-dir", base, "--check")["healthy"]


def test_a_stale_or_failed_review_needs_force_and_a_reason_and_rollbacks_are_logged(seeded_store):
    base = str(seeded_store)
    report_id = ok("--base-dir", base, "--dry-run")["report_id"]
    cycle = ok("--base-dir", base, "--reason", "nightly")
    assert cycle["status"] == "promoted"
    cycle_version = cycle["challenger_version_id"]
    assert "not a dry run" in refused("--base-dir", base, "--promote", cycle["report_id"])
    stale = refused("--base-dir", base, "--promote", report_id)
    assert "baseline the built-in heuristic is no longer active" in stale and "--force --reason" in stale
    assert "needs a reason" in refused("--base-dir", base, "--promote", report_id, "--force")
    assert "--force does not apply to --status (it works with --promote)" in refused("--base-dir", base, "--force",
                                                                                      "--status")
    assert "--reason does not apply to --status" in refused("--base-dir", base, "--status", "--reason", "x")

    forced = ok("--base-dir", base, "--promote", report_id, "--force", "--reason", "the older one serves better")
    back = ok("--base-dir", base, "--rollback", cycle_version, "--reason", "incident 42")
    assert back["version_id"] == cycle_version and back["reason"] == "incident 42"
    history = ok("--base-dir", base, "--history")["history"]
    assert [(e["source"], e["version_id"], e["previous_version_id"], e["reason"]) for e in history] == [
        ("rollback", cycle_version, forced["version_id"], "incident 42"),
        ("promote", forced["version_id"], cycle_version, "the older one serves better"),
        ("cycle", cycle_version, None, "nightly"),
    ]
    assert ok("--base-dir", base, "--active-at", history[1]["changed_at"])["version_id"] == forced["version_id"]
    assert ok("--base-dir", base, "--check")["healthy"]


def test_promote_while_a_cycle_holds_the_lock_exits_75_and_nothing_is_lost(seeded_store, tmp_path):
    base = str(seeded_store)
    report_id = ok("--base-dir", base, "--dry-run")["report_id"]
    gate = tmp_path / "gate"  # the cycle's executor holds the lock until the test creates this file
    cycle = start_cli("--base-dir", seeded_store, "--executor", "tests.executor_plugins:make_gated_demo_executor",
                      "--evidence", "demo", env={"MEMABRA_TEST_GATE": str(gate)})
    wait_until(lambda: cycle.poll() is None and lock_holder(seeded_store), 60, "the cycle never took the lock")
    code, out, err = run_main("--base-dir", base, "--promote", report_id)
    assert (code, out) == (75, "") and "is locked by process" in err
    gate.touch()
    assert cycle.wait(120) == 0
    cycle_result = json.loads(cycle.communicate()[0])
    assert cycle_result["status"] == "promoted"
    promoted = ok("--base-dir", base, "--promote", report_id, "--force", "--reason", "reviewed before the cycle")
    history = ok("--base-dir", base, "--history")["history"]
    assert [e["version_id"] for e in history] == [promoted["version_id"], cycle_result["challenger_version_id"]]
    assert len(list((seeded_store / "router-versions" / "versions").glob("*.json"))) == 2


async def test_p_on_an_open_dry_run_report_promotes_it_after_a_confirmation(history_store):
    store = Store(history_store)
    settings = Settings(base_dir=history_store, min_new_trajectories=1, holdout_share=0, **PASSING_GATES)
    dry = run_cycle(store, settings, CycleRequest(suite=DemoWorld(7).benchmark_suite(), dry_run=True))
    active = store.versions.current().version_id
    app = make_app(history_store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("tab", "enter")
        await settle(pilot)
        assert isinstance(app.screen, ReportScreen) and app.screen.document_id == dry.report_id
        await pilot.press("p")
        assert isinstance(app.screen, PromoteScreen)
        shown = " ".join(str(widget.render()) for widget in app.screen.query("Static"))
        assert f"the challenger of dry run {dry.report_id}" in shown and active in shown
        await pilot.press("y")
        await settle(pilot)
        current = store.versions.current()
        assert current.report_id == dry.report_id and current.prior_version_id == active
        assert any("promoted the challenger" in message for message in app.shown_notifications)
        await pilot.press("escape")
        await settle(pilot)
        app.query_one("#versions", DataTable).focus()
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, VersionScreen)
        history = app.screen.query_one("#version-history", DataTable)
        assert str(history.get_row_at(0)[1]) == current.version_id and str(history.get_row_at(0)[3]) == "promote"
