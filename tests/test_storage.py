"""The store's building blocks: atomic documents, trajectory journals and segments, the lock."""

import json
import multiprocessing
import os
import time

import pytest

from memabra.errors import CorruptDocumentError, LockHeldError
from memabra.models import Trajectory
from memabra.storage.atomic import atomic_write_bytes
from memabra.storage.documents import DocumentFile
from memabra.storage.lock import StoreLock, lock_holder
from memabra.storage.seen import SeenTrajectories
from memabra.storage.trajectories import TrajectoryStore, TrajectoryWriter
from tests.helpers import trajectory_doc


def test_atomic_write_leaves_only_the_document(tmp_path):
    target = tmp_path / "doc.json"
    atomic_write_bytes(target, b'{"a": 1}')
    atomic_write_bytes(target, b'{"a": 2}')
    assert json.loads(target.read_text()) == {"a": 2}
    assert os.listdir(tmp_path) == ["doc.json"]


def test_document_file_round_trip_is_a_plain_document(tmp_path):
    file = DocumentFile(tmp_path / "seen.json", SeenTrajectories)
    assert file.read() is None
    file.write(SeenTrajectories(trajectory_ids=["a", "b"]))
    assert json.loads((tmp_path / "seen.json").read_text())["trajectory_ids"] == ["a", "b"]
    assert file.read().trajectory_ids == ["a", "b"]


@pytest.mark.parametrize("content", ["", "{trunc", "[1, 2]"])
def test_corrupt_document_error_names_the_file(tmp_path, content):
    path = tmp_path / "seen.json"
    path.write_text(content)
    with pytest.raises(CorruptDocumentError, match="seen.json"):
        DocumentFile(path, SeenTrajectories).read()


def test_writer_appends_to_a_journal_and_seals_a_segment(tmp_path):
    store = TrajectoryStore(tmp_path)
    with TrajectoryWriter(tmp_path, max_documents=3) as writer:
        for _ in range(4):
            writer.append(trajectory_doc())
        names = sorted(os.listdir(tmp_path / "trajectories"))
        assert len(names) == 2 and names[0].startswith(".journal-") and names[1].endswith("-000000.json")
        assert len(store.load_all()[0]) == 4, "readers see the open journal too"
    names = sorted(os.listdir(tmp_path / "trajectories"))
    assert all(name.endswith(".json") and not name.startswith(".") for name in names)
    segment = json.loads((tmp_path / "trajectories" / names[0]).read_text())
    assert list(segment) == ["trajectories"] and len(segment["trajectories"]) == 3


def test_torn_last_line_of_a_journal_is_ignored(tmp_path):
    writer = TrajectoryWriter(tmp_path)
    writer.append(trajectory_doc())
    journal = next((tmp_path / "trajectories").glob(".journal-*"))
    with open(journal, "ab") as handle:
        handle.write(b'{"trajectory_id": "half')
    trajectories, invalid = TrajectoryStore(tmp_path).load_all()
    assert len(trajectories) == 1 and invalid == []
    writer.close()


def test_invalid_documents_in_a_segment_are_counted_not_fatal(tmp_path):
    good = Trajectory.model_validate(trajectory_doc()).model_dump(mode="json")
    bad = dict(good, trajectory_id="bad", outcome={"reward": "high", "latency_ms": 1})
    folder = tmp_path / "trajectories"
    folder.mkdir()
    (folder / "seg.json").write_text(json.dumps({"trajectories": {"1": good, "2": bad}}))
    trajectories, invalid = TrajectoryStore(tmp_path).load_all()
    assert len(trajectories) == 1
    assert invalid[0].position == 1 and invalid[0].error.startswith("outcome.reward")


def _append_many(base_dir, count):
    with TrajectoryWriter(base_dir, max_documents=40) as writer:
        for _ in range(count):
            writer.append(trajectory_doc())


def test_four_processes_appending_at_once_lose_nothing(tmp_path):
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append_many, args=(tmp_path, 150)) for _ in range(4)]
    for worker in workers:
        worker.start()
    store, counts = TrajectoryStore(tmp_path), []
    deadline = time.monotonic() + 120
    while any(worker.is_alive() for worker in workers):
        assert time.monotonic() < deadline, "the appending processes were still running after 120 s"
        # Meanwhile a reader sees only whole trajectories, and sealing dead writers' journals spares live ones.
        store.seal_abandoned_journals()
        trajectories, invalid = store.load_all()
        assert invalid == []
        counts.append(len({t.trajectory_id for t in trajectories}))
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    assert counts == sorted(counts), "what a reader saw never disappeared"
    trajectories, invalid = store.load_all()
    assert len({t.trajectory_id for t in trajectories}) == 600 and invalid == []


def test_lock_is_exclusive_and_names_its_holder(tmp_path):
    with StoreLock(tmp_path, "cycle"):
        holder = lock_holder(tmp_path)
        assert holder["pid"] == os.getpid() and holder["operation"] == "cycle"
        with pytest.raises(LockHeldError, match=f"process {os.getpid()}"):
            StoreLock(tmp_path, "rollback").acquire()
    assert lock_holder(tmp_path) is None
    assert (tmp_path / ".lock").exists()
