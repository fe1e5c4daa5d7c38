"""What a new operator tripped over in the console (issue 14, items 10-13), asserted on the screen's text."""

from __future__ import annotations

import orjson
from textual.widgets import Input, Static

from memabra.errors import LockHeldError
from memabra.storage.trajectories import TrajectoryStore
from memabra.tui.screens.details import ReportScreen
from memabra.tui.screens.modals import CheckScreen, RollbackScreen
from memabra.tui.traffic import AskScreen
from tests.console_helpers import make_app, settle, text_of
from tests.helpers import trajectory_line


def trajectory_count(store) -> int:
    return len(TrajectoryStore(store).load_all()[0])


async def test_g_appends_demo_traffic_and_says_so_where_it_stays(history_store):
    before = trajectory_count(history_store)
    app = make_app(history_store)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("g")
        assert isinstance(app.screen, AskScreen)
        app.screen.query_one(Input).value = "40"
        await pilot.press("enter")
        await settle(pilot)
        assert "appended 40 demo trajectories" in text_of(app, "#notice")
        assert "2,040 new" in text_of(app, "#status")
    assert trajectory_count(history_store) == before + 40


async def test_i_imports_a_jsonl_file_and_a_missing_path_is_a_message_that_stays(history_store, tmp_path):
    logs = tmp_path / "agent.jsonl"
    logs.write_text(trajectory_line("console-1", 1.0) + "\n" + trajectory_line("console-2", "1.0") + "\n")
    app = make_app(history_store)
    async with app.run_test(size=(120, 35)) as pilot:
        await settle(pilot)
        await pilot.press("i")
        app.screen.query_one(Input).value = str(logs)
        await pilot.press("enter")
        await settle(pilot)
        notice = text_of(app, "#notice")
        assert "1 stored" in notice and "1 invalid" in notice and "outcome.reward" in notice
        await pilot.press("i")
        app.screen.query_one(Input).value = str(tmp_path / "nope.jsonl")
        await pilot.press("enter")
        await settle(pilot)
        await pilot.pause(1.0)
        assert "nope.jsonl does not exist" in text_of(app, "#notice")


async def test_palette_offers_demo_traffic_and_import_once_each_and_no_duplicates(history_store):
    app = make_app(history_store)
    async with app.run_test(size=(120, 35)) as pilot:
        await settle(pilot)
        titles = [command.title for command in app.get_system_commands(app.screen)]
    assert len(titles) == len(set(titles)), titles
    assert "Demo traffic (g)" in titles and "Import (i)" in titles
    assert sum(title.startswith("Keys") for title in titles) == 1


async def test_live_panel_follows_a_cycle_another_process_ran(history_store):
    app = make_app(history_store)
    async with app.run_test(size=(120, 35)) as pilot:
        await settle(pilot)
        assert "20260105-130000" in text_of(app, "#cycle-outcome")
        newest = orjson.loads((history_store / "training-reports" / "20260105-130000.json").read_bytes())
        newest.update(report_id="20260105-140000", finished_at="2026-01-05T14:00:00Z")
        (history_store / "training-reports" / "20260105-140000.json").write_bytes(orjson.dumps(newest))
        app.reload()
        await settle(pilot)
        assert "report 20260105-140000" in text_of(app, "#cycle-outcome")


async def test_a_held_lock_is_a_message_that_stays(history_store):
    app = make_app(history_store)
    async with app.run_test(size=(120, 35)) as pilot:
        await settle(pilot)
        app.show_error(LockHeldError("store is locked by process 42 (cycle); wait for it to finish"))
        await pilot.pause(12)
        assert "store locked: store is locked by process 42" in text_of(app, "#notice")


async def test_check_dialog_wraps_problem_and_fix_with_the_store_path(history_store):
    (history_store / "training-reports" / "20260105-130000.json").write_text("{torn")
    app = make_app(history_store)
    async with app.run_test(size=(120, 35)) as pilot:
        await settle(pilot)
        await pilot.press("k")
        await settle(pilot)
        assert isinstance(app.screen, CheckScreen)
        shown = " ".join(str(widget.render()) for widget in app.screen.query(".check-problem"))
        assert f"--base-dir {history_store} --check --repair" in " ".join(shown.split())
        region = app.screen.query_one("#check").region
        assert region.right <= 120


async def test_rollback_dialog_with_an_unreadable_current_says_agents_keep_what_they_loaded(history_store):
    (history_store / "router-versions" / "current.json").write_text("{torn")
    app = make_app(history_store)
    async with app.run_test(size=(120, 35)) as pilot:
        await settle(pilot)
        await pilot.press("r")
        await settle(pilot)
        assert isinstance(app.screen, RollbackScreen)
        dialog = " ".join(str(widget.render()) for widget in app.screen.query(Static))
        assert "current.json is unreadable" in dialog and "keep serving what they loaded" in dialog


async def test_report_screen_says_why_the_challenger_was_not_saved(history_store):
    app = make_app(history_store)
    async with app.run_test(size=(120, 35)) as pilot:
        await settle(pilot)
        app.push_screen(ReportScreen(app.store, "20260105-130000"))
        await settle(pilot)
        body = " ".join(str(widget.render()) for widget in app.screen.query(Static))
        assert "challenger not saved (rejected by the gates)" in " ".join(body.split())
        assert "nothing (not promoted)" not in body


async def test_at_200_columns_the_live_log_gets_the_width(history_store):
    app = make_app(history_store)
    async with app.run_test(size=(200, 50)) as pilot:
        await settle(pilot)
        assert app.screen.query_one("#cycle-panel").region.width >= 80
