"""The `memabra` command: the console by default, exactly `python -m memabra.cli` with --headless."""

import json
import os
import sys

import memabra.tui.app as console_app
from memabra.cli import command as main
from tests.helpers import run_cli


def run(module: str, *args: str):
    return run_cli(*args, module=module)


def test_headless_is_exactly_the_cli(history_store):
    for args in (["--status"], ["--list-versions"], ["--rollback", "20990101-000000"], ["--no-such-flag"]):
        console = run("memabra", "--headless", "--base-dir", str(history_store), *args)
        cli = run("memabra.cli", "--base-dir", str(history_store), *args)
        assert console.returncode == cli.returncode
        assert console.stderr == cli.stderr
        if cli.returncode == 0:
            assert json.loads(console.stdout) == json.loads(cli.stdout)
        else:
            assert console.stdout == cli.stdout == "" and console.stderr.startswith("error:")


def test_console_base_dir_from_flag_then_environment_then_default(monkeypatch, tmp_path):
    opened = []
    monkeypatch.setattr(console_app.MemabraConsole, "run", lambda self: opened.append(self.base_dir) or 0)
    monkeypatch.setenv("MEMABRA_BASE_DIR", str(tmp_path / "from-env"))
    assert main(["--base-dir", str(tmp_path / "from-flag")]) == 0
    assert main([]) == 0
    monkeypatch.delenv("MEMABRA_BASE_DIR")
    assert main([]) == 0
    assert [str(path) for path in opened] == [str(tmp_path / "from-flag"), str(tmp_path / "from-env"), "artifacts"]


def test_console_refuses_a_file_as_base_dir(tmp_path, capsys):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    assert main(["--base-dir", str(not_a_folder)]) == 2
    assert capsys.readouterr().err.startswith("error: --base-dir")


def test_console_bad_flag_is_one_error_line(capsys):
    assert main(["--no-such-flag"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unrecognized arguments: --no-such-flag") and err.count("\n") == 1
