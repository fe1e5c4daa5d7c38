"""What a new operator tripped over on the command line (issue 14, items 1-9): each failure as the operator sees it,
an exit code, the JSON on stdout, one line on stderr, the files on disk."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from memabra import __version__
from memabra.cli_progress import progress_display
from memabra.suggestions import command_to_run
from memabra.storage.lock import StoreLock
from tests.helpers import ROOT, run_cli, run_main, trajectory_line


def tree(folder: Path) -> dict[str, float]:
    """Every file under a folder with its mtime, to show a command changed nothing (the derived `.cache/`, which a
    store that may not be written just goes without, aside)."""
    return {str(path.relative_to(folder)): path.stat().st_mtime_ns for path in folder.rglob("*")
            if not str(path.relative_to(folder)).startswith(".cache")} if folder.exists() else {}


def current_id(store: Path) -> str | None:
    current = store / "router-versions" / "current.json"
    return json.loads(current.read_text())["version_id"] if current.exists() else None


def error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, stderr
    return lines[0]


# 1. --dry-run outside a cycle, MEMABRA_DRY_RUN ------------------------------------------------------------------

@pytest.mark.parametrize("action", [["--rollback", "20260105-090000"], ["--ingest", "logs.jsonl"],
                                    ["--demo-trajectories", "10"], ["--status"]])
def test_dry_run_with_an_action_that_is_not_a_cycle_is_refused_and_changes_nothing(history_store, action):
    before = tree(history_store)
    code, printed, stderr = run_main("--base-dir", history_store, *action, "--dry-run")
    assert code == 2 and printed == ""
    assert "--dry-run does not apply to " + action[0] in error_line(stderr)
    assert tree(history_store) == before


def test_flags_for_other_actions_are_named(history_store):
    code, _, stderr = run_main("--base-dir", history_store, "--list-versions", "--min-reward-delta", "0.1", "--strict")
    assert code == 2
    assert "--strict, --min-reward-delta do not apply to --list-versions" in error_line(stderr)
    code, _, stderr = run_main("--base-dir", history_store, "--list-versions", "--repair")
    assert code == 2 and "--repair does not apply to --list-versions" in stderr


def test_memabra_dry_run_makes_a_cycle_a_dry_run_and_is_refused_elsewhere(seeded_store, monkeypatch):
    monkeypatch.setenv("MEMABRA_DRY_RUN", "1")
    code, printed, stderr = run_main("--base-dir", seeded_store, "--quiet")
    assert code == 0, stderr
    assert json.loads(printed)["status"] == "dry_run" and current_id(seeded_store) is None
    code, printed, stderr = run_main("--base-dir", seeded_store, "--demo-trajectories", "5")
    assert code == 2 and printed == "" and "MEMABRA_DRY_RUN is set" in error_line(stderr)


# 2. suggested commands carry the store -------------------------------------------------------------------------

def test_check_fix_and_corrupt_error_name_the_store_they_ran_on(history_store, tmp_path):
    (history_store / "router-versions" / "current.json").write_text("{not json")
    code, printed, stderr = run_main("--base-dir", history_store, "--check")
    assert code == 4
    fix = json.loads(printed)["problems"][0]["fix"]
    assert f"python -m memabra.cli --base-dir {history_store} --rollback 20260105-120000" in fix
    code, printed, stderr = run_main("--base-dir", history_store, "--status")
    assert code == 0 and f"python -m memabra.cli --base-dir {history_store} --check" in json.loads(printed)["warnings"][0]


def test_repair_fixes_name_the_store(history_store):
    (history_store / "training-reports" / "20260105-130000.json").write_text("{torn")
    _, printed, _ = run_main("--base-dir", history_store, "--check")
    fixes = [problem["fix"] for problem in json.loads(printed)["problems"]]
    assert any(f"--base-dir {history_store} --check --repair" in fix for fix in fixes), fixes


def test_command_to_run_quotes_paths():
    suggested = command_to_run(Path("/srv/my store"), "--check")
    assert suggested == "python -m memabra.cli --base-dir '/srv/my store' --check"


# 3. read-only and missing stores -------------------------------------------------------------------------------

@pytest.mark.parametrize("action", [["--status"], ["--list-versions"], ["--check"], ["--rollback", "previous"],
                                    ["--rollback", "20260105-090000"], []])
def test_a_missing_store_is_exit_2_and_nothing_is_created(tmp_path, action):
    missing = tmp_path / "mistyped"
    code, printed, stderr = run_main("--base-dir", missing, *action)
    assert code == 2 and printed == ""
    assert f"--base-dir {missing} does not exist" in error_line(stderr)
    assert not missing.exists()


@pytest.mark.parametrize("action", [["--status"], ["--list-versions"], ["--check"]])
def test_read_only_commands_work_on_a_store_that_may_not_be_written(history_store, monkeypatch, action):
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: not (mode & os.W_OK) and real_access(path, mode))
    before = tree(history_store)
    code, printed, stderr = run_main("--base-dir", history_store, *action)
    assert code == 0, stderr
    assert json.loads(printed)
    assert tree(history_store) == before


def test_an_unreadable_store_says_unreadable(history_store, monkeypatch):
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: False)
    code, _, stderr = run_main("--base-dir", history_store, "--status")
    assert code == 2 and "is not readable" in error_line(stderr) and "writable" not in stderr


# 4. paths the operator gave -------------------------------------------------------------------------------------

def test_mistaken_paths_name_their_flag_not_store_corruption(history_store, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("remember the milk")
    for args, expected in [
        (["--seen-trajectory-store", tmp_path], f"--seen-trajectory-store {tmp_path} is a folder"),
        (["--status", "--seen-trajectory-store", tmp_path], f"--seen-trajectory-store {tmp_path} is a folder"),
        (["--case-index", notes], f"--case-index {notes} is not a case index"),
        (["--demo-trajectories", "5", "--case-index", tmp_path / "none.json"],
         "does not exist; give a case index file or add "
                                                   "--rebuild-case-index"),
        (["--status", "--seen-trajectory-store", notes], "is not a seen-ids file"),
    ]:
        code, printed, stderr = run_main("--base-dir", history_store, *args)
        assert code == 2 and printed == "", (args, stderr)
        assert expected in error_line(stderr) and "--check" not in stderr


# 5. Ctrl-C and SIGTERM ------------------------------------------------------------------------------------------

def test_sigterm_is_one_line_and_exit_143(seeded_store):
    process = subprocess.Popen(
        [sys.executable, "-m", "memabra.cli", "--base-dir", str(seeded_store), "--demo-trajectories", "200000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    journals = seeded_store / "trajectories"
    before = set(journals.iterdir())
    deadline = time.monotonic() + 60
    while set(journals.iterdir()) == before and time.monotonic() < deadline:  # appending has begun
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert stdout == "" and error_line(stderr) == stderr.strip().splitlines()[-1]
    assert "terminated" in stderr and "Traceback" not in stderr
    assert run_main("--base-dir", seeded_store, "--check")[0] in (0, 4)


def test_sigterm_swallowed_by_the_serialiser_is_still_exit_143(seeded_store, monkeypatch):
    from memabra.storage import trajectories

    def swallowing(trajectory):  # what pydantic's serialiser does with an exception raised inside it
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
        except KeyboardInterrupt as exc:
            raise ValueError(f"Error serializing to JSON: {type(exc).__name__}: ") from None
        raise AssertionError("SIGTERM was not handled")

    monkeypatch.setattr(trajectories, "_dump_trajectory", swallowing)
    code, printed, stderr = run_main("--base-dir", seeded_store, "--demo-trajectories", "5")
    assert code == 143 and printed == "" and error_line(stderr).startswith("error: terminated (SIGTERM)")


def test_every_exit_code_is_in_help():
    from memabra.cli import build_parser

    printed = build_parser().format_help()
    for exit_code in ("0", "1", "2", "4", "75", "130", "143"):
        assert f"\n  {exit_code} " in printed


# 6. rollback, --wait, --version, entry points -------------------------------------------------------------------

def test_rollback_previous_then_to_the_active_version(history_store):
    code, printed, _ = run_main("--base-dir", history_store, "--rollback", "previous")
    assert code == 0 and json.loads(printed)["version_id"] == "20260105-100000"
    assert current_id(history_store) == "20260105-100000"
    before = tree(history_store)
    code, printed, stderr = run_main("--base-dir", history_store, "--rollback", "20260105-100000")
    assert code == 0 and json.loads(printed)["version_id"] == "20260105-100000"
    assert "20260105-100000 is already active; nothing changed" in stderr
    assert tree(history_store) == before


def test_rollback_previous_without_one_is_bad_input(seeded_store):
    code, _, stderr = run_main("--base-dir", seeded_store, "--rollback", "previous")
    assert code == 2 and "no previous version" in error_line(stderr)


def test_wait_takes_the_lock_once_it_is_free(history_store):
    lock = StoreLock(history_store, "cycle").acquire()
    threading.Timer(1.0, lock.release).start()
    code, printed, stderr = run_main("--base-dir", history_store, "--rollback", "previous", "--wait", "20")
    assert code == 0, stderr
    assert "waiting up to 20 s" in stderr and current_id(history_store) == "20260105-100000"
    lock = StoreLock(history_store, "cycle").acquire()
    try:
        code, _, stderr = run_main("--base-dir", history_store, "--rollback", "previous", "--wait", "0.5")
        assert code == 75 and "(waited 0.5 s)" in error_line(stderr)
    finally:
        lock.release()


def test_version_and_python_dash_m_memabra():
    for module in ("memabra.cli", "memabra"):  # the headless CLI and the console command print the same version
        version = run_cli("--version", module=module)
        assert (version.code, version.stdout) == (0, f"memabra {__version__}\n")
    headless = run_cli("--headless", "--help", module="memabra")
    assert headless.code == 0 and headless.stdout.startswith("usage: memabra --headless")


def test_quiet_prints_no_progress_or_notes(seeded_store, tmp_path):
    logs = tmp_path / "bad.jsonl"
    logs.write_text('{"nope": 1}\n')
    code, printed, stderr = run_main("--base-dir", seeded_store, "--ingest", logs, "--quiet")
    assert code == 4 and json.loads(printed)["invalid_count"] == 1
    assert stderr == ""


# 7. ingest ------------------------------------------------------------------------------------------------------

def test_ingest_takes_a_bom_refuses_string_rewards_and_strict_fails_the_pipeline(tmp_path):
    store = tmp_path / "store"
    logs = tmp_path / "logs.jsonl"
    logs.write_bytes(b"\xef\xbb\xbf" + (trajectory_line("a", 1.0) + "\n" + trajectory_line("b", "1.0") + "\n")
                     .encode())
    code, printed, stderr = run_main("--base-dir", store, "--ingest", logs)
    result = json.loads(printed)
    assert code == 0 and result["stored_count"] == 1 and result["invalid_count"] == 1
    assert result["invalid"][0]["line"] == 2 and result["invalid"][0]["field"] == "outcome.reward"
    code, printed, _ = run_main("--base-dir", store, "--ingest", logs, "--strict")
    assert code == 4 and json.loads(printed)["invalid_count"] == 1


def test_ingest_where_every_line_is_refused_is_not_success(tmp_path):
    logs = tmp_path / "logs.jsonl"
    logs.write_text(trajectory_line("a", "high") + "\n")
    code, printed, stderr = run_main("--base-dir", tmp_path / "store", "--ingest", logs)
    assert code == 4 and json.loads(printed)["stored_count"] == 0 and "1 invalid lines" in stderr


# 8. impossible gates, errors name what the operator set ---------------------------------------------------------

def test_impossible_gate_is_refused(history_store):
    code, _, stderr = run_main("--base-dir", history_store, "--max-error-rate-increase", "-1")
    assert code == 2 and "--max-error-rate-increase" in error_line(stderr)


def test_an_error_from_the_environment_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMABRA_BASE_DIR", str(tmp_path / "nowhere"))
    code, _, stderr = run_main("--status")
    assert code == 2 and error_line(stderr).startswith(f"error: MEMABRA_BASE_DIR {tmp_path / 'nowhere'} does not")
    monkeypatch.setenv("MEMABRA_HOLDOUT_SHARE", "2")
    code, _, stderr = run_main("--base-dir", tmp_path)
    assert code == 2 and "MEMABRA_HOLDOUT_SHARE" in error_line(stderr)


# 9. one time format, tables, the progress bar -------------------------------------------------------------------

def test_status_never_mixes_time_formats(history_store):
    lock = StoreLock(history_store, "cycle").acquire()
    try:
        code, printed, _ = run_main("--base-dir", history_store, "--status")
    finally:
        lock.release()
    assert code == 0 and json.loads(printed)["lock"]["started_at"].endswith("Z")
    assert "+00:00" not in printed


def test_tables_fit_80_columns(history_store):
    code, printed, _ = run_main("--base-dir", history_store, "--status", "--format", "table")
    assert code == 0 and "active      20260105-120000" in printed
    assert max(len(line) for line in printed.splitlines()) <= 80
    code, printed, _ = run_main("--base-dir", history_store, "--list-versions", "--format", "table")
    lines = printed.splitlines()
    assert code == 0 and len(lines) == 4 and lines[1].startswith("* 20260105-120000")
    assert max(len(line) for line in lines) <= 80


def test_progress_bar_keeps_its_numbers_at_80_columns():
    stream = io.StringIO()
    progress = progress_display(stream, width=80)
    with progress:
        task = progress.add_task("320,000,000 of 320,000,000 bytes read from a long file name", total=320,
                                 stage="evaluate")
        progress.update(task, completed=160)
    lines = [line for line in stream.getvalue().splitlines() if line.strip()]
    assert lines and all(len(line) <= 80 for line in lines)
    assert "evaluate" in lines[-1] and "50%" in lines[-1] and "0:00:0" in lines[-1]


def test_the_python_api_words_a_bad_setting_like_everything_else(tmp_path):
    from memabra import run_online_learning_workflow
    from memabra.errors import BadInputError

    with pytest.raises(BadInputError, match="min_new_trajectories -1"):
        run_online_learning_workflow(base_dir=tmp_path, min_new_trajectories=-1)
