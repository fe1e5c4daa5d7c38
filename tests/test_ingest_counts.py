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


def test_each_invalid_line_carries_its_error_in_words(tmp_path):
    log = write(tmp_path / "a.jsonl", [b"{bad", {**trajectory_doc(1), "outcome": {"reward": "x", "latency_ms": 1}}])
    result = ingest_trajectories(tmp_path / "store", tmp_path / "a.jsonl")
    assert result["invalid"] == [
        {"file": log, "line": 1, "field": "document",
         "error": "not valid JSON (unexpected character, expected a string key: line 1 column 2 (char 1))"},
        {"file": log, "line": 2, "field": "outcome.reward",
         "error": "Input should be a valid number"},
    ]
    assert result["base_dir"] == str(tmp_path / "store")


def test_progress_counts_the_bytes_of_each_batch_up_to_the_total(tmp_path, monkeypatch):
    monkeypatch.setattr(ingest, "INGEST_BATCH_LINES", 2)
    lines = [orjson.dumps(trajectory_doc(index)) + b"\n" for index in range(5)]
    (tmp_path / "a.jsonl").write_bytes(b"".join(lines))
    sizes = [len(line) for line in lines]
    seen = []
    ingest_trajectories(tmp_path / "store", tmp_path / "a.jsonl", on_progress=lambda done, total: seen.append(
        (done, total)))
    total = sum(sizes)
    assert seen == [(sum(sizes[:2]), total), (sum(sizes[:4]), total), (total, total)]


def test_an_unreadable_file_is_bad_input_naming_it(tmp_path, monkeypatch):
    log = write(tmp_path / "a.jsonl", [trajectory_doc(1)])

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(type(tmp_path), "open", refuse)
    with pytest.raises(ingest.BadInputError) as refused:
        ingest_trajectories(tmp_path / "store", tmp_path / "a.jsonl")
    assert str(refused.value) == f"cannot read --ingest file {log}: Permission denied"


def test_a_missing_path_or_a_folder_without_logs_is_named(tmp_path):
    with pytest.raises(ingest.BadInputError) as missing:
        ingest.jsonl_files(tmp_path / "nope.jsonl")
    assert str(missing.value) == f"--ingest {tmp_path / 'nope.jsonl'} does not exist; give a .jsonl file or a folder of them"
    with pytest.raises(ingest.BadInputError) as empty:
        ingest.jsonl_files(tmp_path)
    assert str(empty.value) == f"--ingest {tmp_path} holds no *.jsonl files; give a .jsonl file or a folder of them"


def test_a_content_id_ignores_key_order_and_tells_documents_apart():
    document = {key: value for key, value in trajectory_doc(7).items() if key != "trajectory_id"}
    reordered = dict(reversed(list(document.items())))
    identifier = ingest.content_trajectory_id(document)
    assert identifier == ingest.content_trajectory_id(reordered)
    assert len(identifier) == len("sha256-") + 32 and identifier.startswith("sha256-")
    assert identifier != ingest.content_trajectory_id({**document, "outcome": {"reward": 0.1, "latency_ms": 1.0}})


def test_stored_ids_come_from_cached_summaries_sealed_segments_and_open_journals(tmp_path):
    from memabra.learning.scan import ArtifactIndex
    from memabra.storage.trajectories import TrajectoryWriter

    for first in (0, 10):
        with TrajectoryWriter(tmp_path) as writer:
            for index in range(first, first + 3):
                writer.append(trajectory_doc(index))
    cold = ingest.stored_trajectory_ids(tmp_path)
    ArtifactIndex.scan(tmp_path, set())  # caches both sealed segments' summaries
    open_writer = TrajectoryWriter(tmp_path)
    open_writer.append(trajectory_doc(20))
    expected = {f"run-{index:05d}" for index in (0, 1, 2, 10, 11, 12)}
    assert cold == expected
    assert ingest.stored_trajectory_ids(tmp_path) == expected | {"run-00020"}
    open_writer.close()


def test_an_error_text_keeps_everything_after_the_field_name(tmp_path):
    write(tmp_path / "a.jsonl", [{**trajectory_doc(3), "decision": {"chosen_candidate_id": "memory: none"}}])
    result = ingest_trajectories(tmp_path / "store", tmp_path / "a.jsonl")
    assert [(bad["field"], bad["error"]) for bad in result["invalid"]] == [
        ("decision.chosen_candidate_id", "'memory: none' is not one of the candidates")]


def test_stored_ids_skip_documents_that_are_not_objects(tmp_path):
    folder = tmp_path / "trajectories"
    folder.mkdir()
    (folder / "seg.json").write_text('{"trajectories": {"1": [1, 2], "2": {"trajectory_id": "kept"}, '
                                     '"3": {"trajectory_id": 7}}}')
    assert ingest.stored_trajectory_ids(tmp_path) == {"kept"}
