"""Ingest of JSON Lines trajectories, and the checked-in trajectory schema."""

import json
import re
from pathlib import Path

import orjson

from memabra.models import Trajectory
from memabra.schema import SCHEMA_PATH, schema_text, trajectory_json_schema
from memabra.storage.lock import StoreLock
from memabra.storage.trajectories import TrajectoryStore
from tests.helpers import ROOT, trajectory_doc


def write_jsonl(path: Path, lines: list) -> Path:
    with path.open("wb") as handle:
        for line in lines:
            handle.write((line if isinstance(line, bytes) else orjson.dumps(line)) + b"\n")
    return path


def stored_ids(base_dir: Path) -> list[str]:
    trajectories, _ = TrajectoryStore(base_dir).load_all()
    return [trajectory.trajectory_id for trajectory in trajectories]


def test_ingest_stores_valid_lines_and_reports_each_invalid_one(cli, tmp_path):
    log = write_jsonl(tmp_path / "agent.jsonl", [
        trajectory_doc(1),
        b"{this is not json",
        {**trajectory_doc(2), "outcome": {"reward": "high", "latency_ms": 3}},
        b"",
        {**trajectory_doc(3), "decision": {"chosen_candidate_id": "memory:none"}},
        [1, 2, 3],
        trajectory_doc(4),
    ])
    result = cli("--base-dir", tmp_path / "store", "--ingest", log)
    assert result.code == 0, result.stderr
    out = result.json
    assert (out["line_count"], out["stored_count"], out["duplicate_count"], out["invalid_count"]) == (6, 2, 0, 4)
    assert [(bad["line"], bad["field"]) for bad in out["invalid"]] == [
        (2, "document"), (3, "outcome.reward"), (5, "decision.chosen_candidate_id"), (6, "document")]
    assert all(bad["file"] == str(log) for bad in out["invalid"])
    assert "not valid JSON" in out["invalid"][0]["error"]
    assert "not one of the candidates" in out["invalid"][2]["error"]
    assert "4 invalid lines" in result.stderr
    assert sorted(stored_ids(tmp_path / "store")) == ["run-00001", "run-00004"]


def test_importing_the_same_folder_twice_stores_nothing_twice(cli, tmp_path):
    folder = tmp_path / "logs"
    folder.mkdir()
    without_id = trajectory_doc(9)
    del without_id["trajectory_id"]
    write_jsonl(folder / "a.jsonl", [trajectory_doc(i) for i in range(5)] + [without_id])
    write_jsonl(folder / "b.jsonl", [trajectory_doc(3), trajectory_doc(7)])
    (folder / "notes.txt").write_text("not a log")
    first = cli("--base-dir", tmp_path / "store", "--ingest", folder).json
    assert first["file_count"] == 2
    assert (first["stored_count"], first["duplicate_count"]) == (7, 1), "run-00003 appears in both files"
    second = cli("--base-dir", tmp_path / "store", "--ingest", folder).json
    assert (second["stored_count"], second["duplicate_count"], second["invalid_count"]) == (0, 8, 0)
    ids = stored_ids(tmp_path / "store")
    assert len(ids) == len(set(ids)) == 7
    content_ids = [trajectory_id for trajectory_id in ids if not trajectory_id.startswith("run-")]
    assert len(content_ids) == 1 and re.fullmatch(r"sha256-[0-9a-f]{32}", content_ids[0])


def test_ingested_trajectories_count_as_new_for_a_cycle(cli, tmp_path):
    log = write_jsonl(tmp_path / "agent.jsonl", [trajectory_doc(i) for i in range(30)])
    cli("--base-dir", tmp_path / "store", "--ingest", log)
    status = cli("--base-dir", tmp_path / "store", "--status").json
    assert status["unseen_trajectory_count"] == 30 and status["invalid_trajectory_count"] == 0


def test_ingest_refuses_a_missing_path_or_an_empty_folder(cli, tmp_path):
    missing = cli("--base-dir", tmp_path / "store", "--ingest", tmp_path / "nope.jsonl")
    assert missing.code == 2 and missing.stdout == ""
    assert len(missing.error_lines) == 1 and "does not exist" in missing.error_lines[0]
    (tmp_path / "empty").mkdir()
    empty = cli("--base-dir", tmp_path / "store", "--ingest", tmp_path / "empty")
    assert empty.code == 2 and "no *.jsonl files" in empty.error_lines[0]


def test_checked_in_schema_matches_the_model():
    assert SCHEMA_PATH.read_bytes() == schema_text(), (
        "docs/trajectory.schema.json is out of date: run `.venv/bin/python -m memabra.schema --write`")


def test_schema_doc_names_every_field_and_its_example_is_valid():
    schema = trajectory_json_schema()
    doc = (ROOT / "docs" / "trajectory-schema.md").read_text()
    fields = set(schema["properties"])
    for name in ("Task", "Candidate", "Decision", "Outcome"):
        fields.update(schema["$defs"][name]["properties"])
    missing = sorted(name for name in fields if f"`{name}`" not in doc and f".{name}`" not in doc)
    assert missing == [], f"docs/trajectory-schema.md does not describe {missing}"
    example = re.search(r"## Example line\n\n```json\n(.*?)```", doc, re.S).group(1)
    Trajectory.model_validate(json.loads(example))


def test_ingest_runs_while_a_cycle_holds_the_lock(cli, tmp_path):
    log = write_jsonl(tmp_path / "agent.jsonl", [trajectory_doc(i) for i in range(3)])
    with StoreLock(tmp_path / "store", "cycle"):
        result = cli("--base-dir", tmp_path / "store", "--ingest", log)
    assert result.code == 0 and result.json["stored_count"] == 3


def test_reimport_after_a_cycle_still_stores_nothing_twice(cli, tmp_path):
    log = write_jsonl(tmp_path / "agent.jsonl", [trajectory_doc(i) for i in range(60)])
    assert cli("--base-dir", tmp_path / "store", "--ingest", log).json["stored_count"] == 60
    cycle = cli("--base-dir", tmp_path / "store", "--dry-run", "--required-task-count", "0")
    assert cycle.json["status"] == "dry_run"
    assert list((tmp_path / "store" / ".cache" / "segments").iterdir()), "the cycle cached its segment summaries"
    again = cli("--base-dir", tmp_path / "store", "--ingest", log).json
    assert (again["stored_count"], again["duplicate_count"]) == (0, 60)
