"""Ingest's counts, per file and in total: duplicates inside one file or batch, and the cap on listed invalid lines."""

import orjson
import pytest

import memabra.ingest as ingest
from memabra.ingest import ingest_trajectories
from memabra.storage.trajectories import TrajectoryStore
from tests.helpers import trajectory_doc


def write(path, lines) -> str:
    path.write_bytes(b"".join((item if isinstance(item, bytes) else orjson.dumps(item)) + b"\n" for item in lines))
    return str(path)


def stored(base) -> dict[str, list[float]]:
    rewards: dict[str, list[float]] = {}
    for trajectory in TrajectoryStore(base).load_all()[0]:
        rewards.setdefault(trajectory.trajectory_id, []).append(trajectory.outcome.reward)
    return rewards


@pytest.mark.parametrize("batch_lines", [5_000, 2], ids=["one batch", "across batches"])
def test_an_id_repeated_inside_one_file_is_stored_once_the_first_time(tmp_path, monkeypatch, batch_lines):
    monkeypatch.setattr(ingest, "INGEST_BATCH_LINES", batch_lines)
    log = write(tmp_path / "agent.jsonl", [trajectory_doc(1, reward=0.3), trajectory_doc(2), trajectory_doc(1, reward=0.1),
                                           trajectory_doc(3), trajectory_doc(1, reward=0.5)])
    result = ingest_trajectories(tmp_path / "store", tmp_path / "agent.jsonl")
    assert (result["line_count"], result["stored_count"], result["duplicate_count"]) == (5, 3, 2)
    assert result["files"] == [{"file": log, "line_count": 5, "stored_count": 3, "duplicate_count": 2,
                                "invalid_count": 0}]
    assert stored(tmp_path / "store") == {"run-00001": [0.3], "run-00002": [0.9], "run-00003": [0.9]}


def test_counts_are_given_per_file_and_in_total(tmp_path):
    folder = tmp_path / "logs"
    folder.mkdir()
    first = write(folder / "a.jsonl", [trajectory_doc(1), b"{broken", trajectory_doc(2), b"", {**trajectory_doc(3), "outcome": {"reward": "x"}}])
    second = write(folder / "b.jsonl", [trajectory_doc(2), trajectory_doc(4), trajectory_doc(4), trajectory_doc(5)])
    result = ingest_trajectories(tmp_path / "store", folder)
    assert result["files"] == [
        {"file": first, "line_count": 4, "stored_count": 2, "duplicate_count": 0, "invalid_count": 2},
        {"file": second, "line_count": 4, "stored_count": 2, "duplicate_count": 2, "invalid_count": 0},
    ]
    assert {key: result[key] for key in ("file_count", "line_count", "stored_count", "duplicate_count",
                                         "invalid_count", "invalid_truncated")} == {
        "file_count": 2, "line_count": 8, "stored_count": 4, "duplicate_count": 2, "invalid_count": 2,
        "invalid_truncated": False}
    assert [(bad["file"], bad["line"], bad["field"]) for bad in result["invalid"]] == [
        (first, 2, "document"), (first, 5, "outcome.reward")]
    assert sorted(stored(tmp_path / "store")) == ["run-00001", "run-00002", "run-00004", "run-00005"]


def test_invalid_lines_past_the_listing_cap_are_counted_and_flagged_as_truncated(tmp_path, monkeypatch):
    monkeypatch.setattr(ingest, "MAX_REPORTED_INVALID", 3)
    log = tmp_path / "agent.jsonl"
    write(log, [b"{bad"] * 3 + [trajectory_doc(1)])
    exactly = ingest_trajectories(tmp_path / "store", log)
    assert exactly["invalid_count"] == 3 and len(exactly["invalid"]) == 3 and exactly["invalid_truncated"] is False
    write(log, [b"{bad"] * 5 + [trajectory_doc(2)])
    over = ingest_trajectories(tmp_path / "store", log)
    assert over["invalid_count"] == 5 and over["files"][0]["invalid_count"] == 5
    assert [bad["line"] for bad in over["invalid"]] == [1, 2, 3] and over["invalid_truncated"] is True
    assert over["stored_count"] == 1


def test_a_line_without_an_id_gets_its_content_hash_so_a_repeat_is_a_duplicate(tmp_path):
    anonymous = {key: value for key, value in trajectory_doc(7).items() if key != "trajectory_id"}
    result = ingest_trajectories(tmp_path / "store", write(tmp_path / "a.jsonl", [anonymous, anonymous,
                                                                                  {**anonymous, "trajectory_id": None}]))
    assert (result["stored_count"], result["duplicate_count"]) == (1, 2)
    (stored_id,) = stored(tmp_path / "store")
    assert stored_id == ingest.content_trajectory_id(anonymous)
