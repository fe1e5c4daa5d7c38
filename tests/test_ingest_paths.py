"""Ingest in process: which folder entries it reads or skips, a byte-order mark, nesting at the limit, the line-by-line
fallback when the bulk validation cannot place a document, a writer that refuses one, and lines given as bytes."""

import os

import orjson
import pytest

import memabra.ingest as ingest
from memabra.errors import BadInputError
from memabra.models import MAX_NESTING_DEPTH, nesting_depth
from memabra.storage.trajectories import TrajectoryStore, TrajectoryWriter, validate_trajectories
from tests.helpers import trajectory_doc


def write(path, lines) -> str:
    path.write_bytes(b"".join((item if isinstance(item, bytes) else orjson.dumps(item)) + b"\n" for item in lines))
    return str(path)


def stored_ids(base) -> list[str]:
    return sorted(trajectory.trajectory_id for trajectory in TrajectoryStore(base).load_all()[0])


def odd_entries(folder):
    """A FIFO, a folder and two broken links, all named *.jsonl."""
    os.mkfifo(folder / "pipe.jsonl")
    (folder / "sub.jsonl").mkdir()
    (folder / "gone.jsonl").symlink_to(folder / "missing")
    (folder / "lost.jsonl").symlink_to(folder / "missing-too")


def test_a_folder_reads_its_regular_jsonl_files_and_reports_the_entries_it_skips(tmp_path):
    folder = tmp_path / "logs"
    folder.mkdir()
    odd_entries(folder)
    write(folder / "a.jsonl", [trajectory_doc(1)])
    write(folder / "notes.txt", [trajectory_doc(2)])
    assert ingest.skipped_entries(folder) == {
        str(folder / "gone.jsonl"): "a broken link", str(folder / "lost.jsonl"): "a broken link",
        str(folder / "pipe.jsonl"): "a FIFO (named pipe)", str(folder / "sub.jsonl"): "a folder"}
    assert ingest.jsonl_files(folder) == [folder / "a.jsonl"]
    result = ingest.ingest_trajectories(tmp_path / "store", folder)
    assert result["stored_count"] == 1 and stored_ids(tmp_path / "store") == ["run-00001"]
    assert result["skipped_files"][0] == {"file": str(folder / "gone.jsonl"),
                                          "reason": "it is a broken link, not a regular file; it was not read"}
    assert len(result["skipped_files"]) == 4


def test_a_folder_with_only_odd_entries_names_the_first_one(tmp_path):
    folder = tmp_path / "logs"
    folder.mkdir()
    odd_entries(folder)
    with pytest.raises(BadInputError) as refused:
        ingest.jsonl_files(folder)
    assert str(refused.value) == (f"--ingest {folder} holds no regular *.jsonl file ({folder / 'gone.jsonl'} is a "
                                  "broken link); give a .jsonl file or a folder of them")


def test_a_byte_order_mark_is_read_past_on_the_first_line_only(tmp_path):
    log = tmp_path / "agent.jsonl"
    log.write_bytes(b"\xef\xbb\xbf" + orjson.dumps(trajectory_doc(1)) + b"\n\xef\xbb\xbf"
                    + orjson.dumps(trajectory_doc(2)) + b"\n")
    result = ingest.ingest_trajectories(tmp_path / "store", log)
    assert (result["stored_count"], result["invalid_count"]) == (1, 1)
    assert [(bad["line"], bad["field"]) for bad in result["invalid"]] == [(2, "document")]
    assert stored_ids(tmp_path / "store") == ["run-00001"]


def nested_doc(depth: int) -> dict:
    """A trajectory without an id whose task metadata nests so the whole document is `depth` levels deep."""
    document = trajectory_doc()
    inner: dict = {}
    document["task"]["metadata"] = {"deep": inner}
    while nesting_depth(document, MAX_NESTING_DEPTH + 5) < depth:
        inner["deeper"] = inner = {}
    assert nesting_depth(document, MAX_NESTING_DEPTH + 5) == depth
    return document


def test_a_line_without_an_id_nested_past_the_limit_is_refused_and_one_at_the_limit_is_stored(tmp_path):
    log = tmp_path / "agent.jsonl"
    too_deep = b'{"task": ' + b'{"a": ' * 300 + b"1" + b"}" * 301  # deeper than a content id can be computed for
    write(log, [nested_doc(MAX_NESTING_DEPTH), nested_doc(MAX_NESTING_DEPTH + 1), too_deep])
    result = ingest.ingest_trajectories(tmp_path / "store", log)
    assert result["stored_count"] == 1
    refused = f"nested deeper than {MAX_NESTING_DEPTH} levels of objects and arrays"
    assert result["invalid"] == [{"file": str(log), "line": 2, "field": "document", "error": refused},
                                 {"file": str(log), "line": 3, "field": "document", "error": refused}]


def test_when_the_bulk_validation_cannot_place_a_document_each_line_is_validated_alone(tmp_path, monkeypatch):
    def bulk_fails(documents, file_name="<input>"):
        if len(documents) > 1:
            raise ValueError("cannot place a document")
        if documents[0].get("trajectory_id") == "run-00003":
            raise ValueError("a document pydantic cannot place\nsecond line " + "x" * 300)
        return validate_trajectories(documents, file_name)

    monkeypatch.setattr(ingest, "validate_trajectories", bulk_fails)
    log = tmp_path / "agent.jsonl"
    write(log, [trajectory_doc(1), {**trajectory_doc(2), "outcome": {"reward": "x"}}, trajectory_doc(3),
                trajectory_doc(4)])
    result = ingest.ingest_trajectories(tmp_path / "store", log)
    assert (result["stored_count"], result["invalid_count"]) == (2, 2)
    assert [(bad["file"], bad["line"], bad["field"]) for bad in result["invalid"]] == [
        (str(log), 2, "outcome.reward"), (str(log), 3, "document")]
    assert result["invalid"][1]["error"] == "a document pydantic cannot place"
    assert stored_ids(tmp_path / "store") == ["run-00001", "run-00004"]


def test_a_refused_message_is_cut_at_200_characters(tmp_path, monkeypatch):
    def bulk_fails(documents, file_name="<input>"):
        raise ValueError("y" * 300)

    monkeypatch.setattr(ingest, "validate_trajectories", bulk_fails)
    log = tmp_path / "agent.jsonl"
    write(log, [trajectory_doc(1)])
    result = ingest.ingest_trajectories(tmp_path / "store", log)
    assert result["invalid"] == [{"file": str(log), "line": 1, "field": "document", "error": "y" * 200}]


def test_a_trajectory_the_writer_refuses_is_listed_and_the_rest_are_stored(tmp_path, monkeypatch):
    real_append = TrajectoryWriter.append

    def append(self, trajectory):
        if trajectory.trajectory_id == "run-00002":
            raise BadInputError("trajectory refused: it cannot be stored as JSON")
        return real_append(self, trajectory)

    monkeypatch.setattr(TrajectoryWriter, "append", append)
    log = tmp_path / "agent.jsonl"
    write(log, [trajectory_doc(1), trajectory_doc(2), trajectory_doc(3), trajectory_doc(2)])
    result = ingest.ingest_trajectories(tmp_path / "store", log)
    assert result["files"][0] == {"file": str(log), "line_count": 4, "stored_count": 2, "duplicate_count": 0,
                                  "invalid_count": 2}
    assert result["invalid"] == [
        {"file": str(log), "line": 2, "field": "document", "error": "trajectory refused: it cannot be stored as JSON"},
        {"file": str(log), "line": 4, "field": "document", "error": "trajectory refused: it cannot be stored as JSON"}]
    assert stored_ids(tmp_path / "store") == ["run-00001", "run-00003"]


@pytest.mark.parametrize("batch_lines", [5_000, 2])
def test_lines_given_as_bytes_are_imported_through_the_writer(tmp_path, monkeypatch, batch_lines):
    monkeypatch.setattr(ingest, "INGEST_BATCH_LINES", batch_lines)
    known = {"run-00002"}
    lines = [orjson.dumps(trajectory_doc(index)) for index in (1, 2, 3)] + [b"", b"{bad", orjson.dumps(trajectory_doc(4))]
    with TrajectoryWriter(tmp_path / "store") as writer:
        result = ingest.ingest_lines(lines, writer, known, "request")
        unnamed = ingest.ingest_lines([b"{bad"], writer, set())
    assert {key: result[key] for key in ("file_count", "line_count", "stored_count", "duplicate_count",
                                         "invalid_count")} == {
        "file_count": 1, "line_count": 5, "stored_count": 3, "duplicate_count": 1, "invalid_count": 1}
    assert [(bad["file"], bad["line"], bad["field"]) for bad in result["invalid"]] == [("request", 5, "document")]
    assert known == {"run-00001", "run-00002", "run-00003", "run-00004"}
    assert unnamed["files"][0]["file"] == "<lines>" and unnamed["invalid"][0]["file"] == "<lines>"
    assert stored_ids(tmp_path / "store") == ["run-00001", "run-00003", "run-00004"]
