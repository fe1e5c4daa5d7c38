"""Every shell and Python block of the README runs, in order, against a scratch store: a sample that stops working
fails here. A block that cannot run here (it builds a venv, opens the console, needs your agent) is marked in the
README's source with `<!-- readme-test: skip -->` on the line before it; those stay few."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

README = ROOT / "README.md"
SKIP_MARKER = "<!-- readme-test: skip -->"
BLOCK = re.compile(r"^(?P<before>[^\n]*)\n```(?P<language>bash|python)\n(?P<code>.*?)^```$", re.M | re.S)


def readme_blocks() -> list[tuple[str, str, bool, int]]:
    """(language, code, skipped, line) of every bash and python block, in order."""
    text = README.read_text()
    blocks = []
    for match in BLOCK.finditer(text):
        line = text[:match.start("code")].count("\n") + 1
        blocks.append((match["language"], match["code"], match["before"].strip() == SKIP_MARKER, line))
    return blocks


def trajectory_lines(count: int) -> str:
    lines = []
    for number in range(count):
        lines.append(json.dumps({
            "trajectory_id": f"readme-{number}", "task": {"task_id": f"t{number}", "text": "convert 3 km to miles"},
            "candidates": [{"candidate_id": "skill:units", "kind": "skill", "score": 0.4},
                           {"candidate_id": "direct:answer", "kind": "direct", "score": 0.7}],
            "decision": {"chosen_candidate_id": "skill:units", "propensity": 0.5},
            "outcome": {"reward": 1.0, "latency_ms": 120.0}}))
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A folder to run the README in: `python` is this interpreter, `logs/` holds an agent's .jsonl."""
    folder = tmp_path_factory.mktemp("readme")
    bin_dir = folder / ".bin"
    bin_dir.mkdir()
    (bin_dir / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (bin_dir / "python").chmod(0o755)
    (folder / "logs").mkdir()
    (folder / "logs" / "agent.jsonl").write_text(trajectory_lines(20))
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "PYTHONPATH": str(ROOT)}
    env = {key: value for key, value in env.items() if not key.startswith("MEMABRA_")}
    return folder, env


def test_the_readme_has_runnable_blocks_and_few_skips():
    blocks = readme_blocks()
    skipped = [block for block in blocks if block[2]]
    assert len(blocks) - len(skipped) >= 6
    assert len(skipped) <= 8, [line for *_, line in skipped]


def test_every_readme_block_runs(scratch):
    folder, env = scratch
    for language, code, skipped, line in readme_blocks():
        if skipped:
            continue
        command = ["bash", "-euo", "pipefail", "-c", code] if language == "bash" else [sys.executable, "-c", code]
        completed = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=600,
                                   stdin=subprocess.DEVNULL)
        assert completed.returncode == 0, f"README.md line {line} ({language}) failed:\n{code}\n{completed.stderr}"
    assert json.loads((folder / "cycle.json").read_text())["status"] == "promoted"
    assert json.loads((folder / "ingested.json").read_text())["stored_count"] == 20


def test_make_cycle_prints_only_json(tmp_path):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / ".installed").touch()  # newer than pyproject.toml: make builds no venv here
    completed = subprocess.run(
        ["make", "--no-print-directory", "-f", str(ROOT / "Makefile"), "cycle", f"VENV={venv}", f"PY={sys.executable}",
         f"BASE_DIR={tmp_path / 'store'}", "DEMO_TRAJECTORIES=300"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["status"] == "promoted"
    assert "filled" in completed.stderr
