"""The console driven by keys (Pilot): every key, the confirmation modal, cancel, the lock-held path, refresh."""

import threading

from textual.widgets import DataTable, Input, Static

import memabra.tui.app as console_app
from memabra.demo import FAMILIES
from memabra.storage.lock import StoreLock
from memabra.storage.versions import ReportStore, RouterVersionStore
from memabra.tui.app import MemabraConsole
from memabra.tui.screens.details import ReportScreen, VersionScreen
from memabra.tui.screens.modals import CheckScreen, ErrorScreen, HelpScreen, PolicyScreen, RollbackScreen
from memabra.settings import Settings
from tests.console_helpers import SIZE, make_app, notifications, settle, text_of
from tests.console_store import add_off_policy

async def test_main_screen_shows_status_versions_and_reports(history_store):
    app = make_app(history_store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        status = text_of(app, "#status")
        assert "20260105-120000" in status and "by a cycle" in status and "20260105-100000" in status
        assert "4,000 trajectories · 2,000 new" in status and "free" in status
        versions = app.query_one("#versions", DataTable)
        assert [row.key.value for row in versions.ordered_rows] == ["20260105-120000", "20260105-100000",
                                                                    "20260105-090000"]
        assert str(versions.get_row_at(0)[0]).startswith("● ")
        reports = app.query_one("#reports", DataTable)
        assert reports.row_count == 5
        assert [str(reports.get_row_at(i)[1]) for i in range(5)] == [
            "rejected", "promoted", "dry-run fail", "promoted", "promoted"]
        assert "last cycle: rejected" in text_of(app, "#cycle-outcome")


async def test_fresh_base_dir_explains_what_to_do(tmp_path):
    app = make_app(tmp_path / "fresh")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        status = text_of(app, "#status")
        assert "heuristic (no version yet)" in status and "No trajectories yet" in status
        assert "--demo-trajectories 2000" in status
        await pilot.press("r")
        assert "no version to roll back to yet" in notifications(app)[-1]
        await pilot.press("p")
        await settle(pilot)
        assert "skipped" in text_of(app, "#cycle-outcome")
        assert not (tmp_path / "fresh" / "training-reports").exists()


async def test_d_runs_a_dry_run_that_writes_only_a_report(history_store):
    app = make_app(history_store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("d")
        await settle(pilot)
        assert app.last_result["status"] == "dry_run"
        assert len(ReportStore(history_store).ids()) == 6
        assert len(RouterVersionStore(history_store).versions.ids()) == 3
        assert app.query_one("#reports", DataTable).row_count == 6
        assert "this cycle: dry run" in text_of(app, "#cycle-outcome")
        assert app.query_one("#bar-save").percentage == 1.0


async def test_p_promotes_and_the_view_follows(history_store):
    app = make_app(history_store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("p")
        await settle(pilot)
        result = app.last_result
        # 2,000 new trajectories since the last cycle: the challenger gains and meets the lenient gate of 0.
        assert result["reward_delta"] >= 0.0 and result["policy"]["min_reward_delta"] == 0.0
        assert result["status"] == "promoted", result["reasons"]
        current = RouterVersionStore(history_store).current()
        versions = app.query_one("#versions", DataTable)
        assert current.version_id == result["challenger_version_id"]
        assert versions.row_count == 4
        assert current.version_id in text_of(app, "#status")
        assert str(versions.get_row_at(versions.get_row_index(current.version_id))[0]).startswith("● ")


async def test_t_changes_the_gates_for_the_next_cycle(history_store):
    app = make_app(history_store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("t")
        assert isinstance(app.screen, PolicyScreen)
        field = app.screen.query_one("#min_reward_delta", Input)
        field.value = "not a number"
        await pilot.click("#apply")
        await pilot.pause()
        assert isinstance(app.screen, PolicyScreen)
        assert "min_reward_delta" in str(app.screen.query_one("#policy-error", Static).render())
        field.value = "0.5"
        field.focus()
        await pilot.press("enter")
        await pilot.pause()
        assert not isinstance(app.screen, PolicyScreen)
        assert app.settings.gates.min_reward_delta == 0.5
        assert "Δreward ≥ 0.5" in text_of(app, "#status")
        await pilot.press("p")
        await settle(pilot)
        assert app.last_result["status"] == "rejected"
        assert app.last_result["policy"]["min_reward_delta"] == 0.5
        assert RouterVersionStore(history_store).current().version_id == "20260105-120000"


async def test_r_asks_first_and_only_y_rolls_back(history_store):
    app = make_app(history_store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("r")
        assert "already active" in notifications(app)[-1]
        await pilot.press("down", "down", "r")
        assert isinstance(app.screen, RollbackScreen)
        dialog = " ".join(str(widget.render()) for widget in app.screen.query(Static))
        assert "20260105-120000" in dialog and "20260105-090000" in dialog
        await pilot.press("escape")
        await settle(pilot)
        assert RouterVersionStore(history_store).current().version_id == "20260105-120000"
        await pilot.press("r", "y")
        await settle(pilot)
        current = RouterVersionStore(history_store).current()
        assert current.version_id == "20260105-090000" and current.rollback_from == "20260105-120000"
        assert "rolled back: 20260105-090000 is active" in notifications(app)[-1]
        assert "by a rollback" in text_of(app, "#status")


async def test_c_cancels_a_running_cycle_and_a_second_cycle_cannot_start(history_store, monkeypatch):
    real_workflow = console_app.workflow.run_cycle
    reached_dataset = threading.Event()

    def workflow_that_waits_in_dataset(*args, **kwargs):
        def on_event(event):
            kwargs_on_event(event)
            if event.stage == "dataset" and not reached_dataset.is_set():
                reached_dataset.set()
                kwargs["cancel"].wait(timeout=30)

        kwargs_on_event = kwargs.pop("on_event")
        return real_workflow(*args, on_event=on_event, **kwargs)

    monkeypatch.setattr(console_app.workflow, "run_cycle", workflow_that_waits_in_dataset)
    app = make_app(history_store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("c")
        assert notifications(app)[-1] == "no cycle is running"
        await pilot.press("p")
        assert reached_dataset.wait(timeout=30)
        await pilot.press("d")
        assert "already running" in notifications(app)[-1]
        await pilot.press("c")
        await settle(pilot)
        assert app.last_result["status"] == "cancelled"
        assert "cancelled, nothing was written" in text_of(app, "#cycle-outcome")
        assert len(ReportStore(history_store).ids()) == 5
        assert not app.cycle_running


async def test_a_lock_held_by_another_process_is_shown_not_fatal(history_store):
    app = make_app(history_store)
    lock = StoreLock(history_store, "cycle").acquire()
    try:
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.press("p")
            await settle(pilot)
            assert any("is locked by process" in message for message in notifications(app))
            assert "held by pid" in text_of(app, "#status")
            assert not app.cycle_running and len(ReportStore(history_store).ids()) == 5
            await pilot.press("down", "r", "y")
            await settle(pilot)
            assert RouterVersionStore(history_store).current().version_id == "20260105-120000"
            assert "is locked by process" in notifications(app)[-1]
    finally:
        lock.release()


async def test_the_view_follows_changes_made_by_another_process(history_store):
    app = make_app(history_store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        RouterVersionStore(history_store).rollback("20260105-100000")
        app.poll_store()
        await settle(pilot)
        assert "20260105-100000" in text_of(app, "#status").splitlines()[0]
        versions = app.query_one("#versions", DataTable)
        assert str(versions.get_row_at(1)[0]).startswith("● 20260105-100000")
        fingerprint = app.fingerprint
        app.poll_store()
        assert app.fingerprint == fingerprint


async def test_f5_help_palette_commands_and_q(history_store):
    app = make_app(history_store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        (history_store / "training-reports" / "20260105-090000.json").unlink()
        await pilot.press("f5")
        await settle(pilot)
        assert app.query_one("#reports", DataTable).row_count == 4
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        keys = app.screen.query_one("#help-keys", DataTable)
        listed = [str(keys.get_row_at(i)[0]) for i in range(keys.row_count)]
        assert listed[:11] == ["d", "p", "r", "c", "t", "k", "g", "i", "F5", "?", "q"]
        await pilot.press("escape")
        titles = [command.title for command in app.get_system_commands(app.screen)]
        for title in ("Dry run (d)", "Cycle (p)", "Roll back (r)", "Cancel (c)", "Gates (t)", "Refresh (F5)"):
            assert title in titles
        await pilot.press("q")
    assert app.return_code == 0


async def test_enter_opens_a_version_with_its_diff(history_store):
    app = make_app(history_store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, VersionScreen)
        shown = " ".join(str(widget.render()) for widget in app.screen.query(Static))
        assert "version 20260105-120000" in shown and "active" in shown
        assert "replaced" in shown and "20260105-100000" in shown and "report" in shown
        assert "picks a different candidate than 20260105-100000 for" in shown
        families = app.screen.query_one("#version-families", DataTable)
        assert families.row_count == len(FAMILIES)
        await pilot.press("escape")
        assert not isinstance(app.screen, VersionScreen)


async def test_enter_opens_a_report_with_gates_and_off_policy(history_store):
    add_off_policy(history_store, "20260105-130000")
    app = make_app(history_store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("tab", "enter")
        await settle(pilot)
        assert isinstance(app.screen, ReportScreen)
        shown = " ".join(str(widget.render()) for widget in app.screen.query(Static))
        assert "report 20260105-130000" in shown and "rejected" in shown
        assert "Off-policy estimates (400 held-out trajectories)" in shown
        tables = list(app.screen.query(DataTable))
        gates = tables[1]
        assert [str(gates.get_row_at(i)[3]) for i in range(gates.row_count)] == ["FAIL", "pass", "pass", "pass"]
        off_policy = tables[-1]
        assert off_policy.row_count == 6 and str(off_policy.get_row_at(0)[0]) == "IPS"


async def test_a_report_without_off_policy_shows_no_such_section(history_store):
    app = make_app(history_store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("tab", "enter")
        await settle(pilot)
        shown = " ".join(str(widget.render()) for widget in app.screen.query(Static))
        assert "Off-policy" not in shown and "Gates" in shown


async def test_an_unexpected_error_opens_a_modal(history_store, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(console_app.workflow, "run_cycle", broken)
    app = make_app(history_store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("p")
        await settle(pilot)
        assert isinstance(app.screen, ErrorScreen)
        assert "unexpected RuntimeError: disk on fire" in " ".join(
            str(widget.render()) for widget in app.screen.query(Static))
        assert not app.cycle_running
        await pilot.press("escape")
        await pilot.press("d")
        await settle(pilot)
        assert isinstance(app.screen, ErrorScreen)


async def test_corrupt_current_is_a_problem_line_and_an_engine_error_a_notification(history_store):
    (history_store / "router-versions" / "current.json").write_text("{")
    app = make_app(history_store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "warning:" in text_of(app, "#status") and "current.json" in text_of(app, "#status")
        await pilot.press("p")
        await settle(pilot)
        assert any("current.json is not a valid document" in message for message in notifications(app))
        assert not isinstance(app.screen, ErrorScreen)


async def test_a_cycle_finishing_behind_a_detail_screen_updates_the_main_screen(history_store):
    app = make_app(history_store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("d")
        await settle(pilot)
        assert isinstance(app.screen, VersionScreen)
        assert app.last_result["status"] == "dry_run"
        await pilot.press("escape")
        assert app.query_one("#reports", DataTable).row_count == 6


async def test_r_on_a_version_screen_rolls_back_to_that_version(history_store):
    app = make_app(history_store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("down", "down", "enter")
        await settle(pilot)
        await pilot.press("r")
        assert isinstance(app.screen, RollbackScreen) and app.screen.target_id == "20260105-090000"
        await pilot.press("y")
        await settle(pilot)
        assert RouterVersionStore(history_store).current().version_id == "20260105-090000"


async def test_k_checks_the_store_and_offers_a_repair(history_store):
    app = make_app(history_store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("k")
        await settle(pilot)
        assert "the store is healthy" in notifications(app)[-1]
        broken = history_store / "training-reports" / "20260105-110000.json"
        broken.write_text("{ half a docu")
        await pilot.press("k")
        await settle(pilot)
        assert isinstance(app.screen, CheckScreen)
        problems = [str(problem.render()) for problem in app.screen.query(".check-problem")]
        assert len(problems) == 1 and "20260105-110000.json" in problems[0]
        await pilot.press("R")
        await settle(pilot)
        assert isinstance(app.screen, CheckScreen) and app.screen.result["healthy"]
        assert not broken.exists() and list((history_store / "quarantine").rglob("*.quarantined"))
        await pilot.press("escape")
        assert app.query_one("#reports", DataTable).row_count == 4


async def test_a_rollback_target_deleted_meanwhile_is_a_notification(history_store):
    app = make_app(history_store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("down", "r")
        (history_store / "router-versions" / "versions" / "20260105-100000.json").unlink()
        await pilot.press("y")
        await settle(pilot)
        assert "20260105-100000 does not exist" in notifications(app)[-1]
        assert RouterVersionStore(history_store).current().version_id == "20260105-120000"
        assert not isinstance(app.screen, ErrorScreen)
