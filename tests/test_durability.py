"""What makes a write survive a power cut and two cycles exclusive: the system calls, in their order."""

import contextlib
import fcntl
import os
import stat
from pathlib import Path

import pytest

import memabra.storage.atomic as atomic
from memabra.storage import documents
from memabra.errors import LockHeldError
from memabra.storage.lock import StoreLock, lock_holder
from memabra.storage.seen import SeenTrajectoryStore
from memabra.storage.trajectories import TrajectoryStore, TrajectoryWriter
from tests.helpers import trajectory_doc


@pytest.fixture
def syscalls(monkeypatch):
    """Record fsync (with what the synced file held), rename and link calls, in order, and still make them."""
    calls = []
    real_fsync, real_replace, real_link = os.fsync, os.replace, os.link

    def fsync(fd):
        mode = os.fstat(fd).st_mode
        # The fd may be write-only: read what it holds through its path.
        content = Path(os.readlink(f"/proc/self/fd/{fd}")).read_bytes() if stat.S_ISREG(mode) else None
        calls.append(("fsync", "file" if stat.S_ISREG(mode) else "folder", content))
        return real_fsync(fd)

    def replace(source, target):
        calls.append(("replace", Path(source).name, Path(target).name))
        return real_replace(source, target)

    def link(source, target):
        calls.append(("link", Path(source).name, Path(target).name))
        return real_link(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "link", link)
    return calls


def test_an_atomic_write_syncs_the_whole_file_before_the_rename_and_the_folder_after(tmp_path, syscalls):
    target = tmp_path / "doc.json"
    target.write_bytes(b"old")
    atomic.atomic_write_bytes(target, b'{"new": true}\n')
    assert [call[0] for call in syscalls] == ["fsync", "replace", "fsync"]
    assert syscalls[0] == ("fsync", "file", b'{"new": true}\n'), "the temp file is synced with every byte"
    assert syscalls[1][2] == "doc.json" and syscalls[1][1].startswith(".doc.json.")
    assert syscalls[2][:2] == ("fsync", "folder"), "the rename itself is made durable"
    assert target.read_bytes() == b'{"new": true}\n' and [p.name for p in tmp_path.iterdir()] == ["doc.json"]


def test_an_atomic_create_syncs_before_the_link_and_never_replaces(tmp_path, syscalls):
    target = tmp_path / "version.json"
    assert atomic.atomic_create_bytes(target, b"first") is True
    assert [call[0] for call in syscalls] == ["fsync", "link", "fsync"]
    assert syscalls[0] == ("fsync", "file", b"first") and syscalls[2][:2] == ("fsync", "folder")
    syscalls.clear()
    assert atomic.atomic_create_bytes(target, b"second") is False
    assert target.read_bytes() == b"first" and [p.name for p in tmp_path.iterdir()] == ["version.json"]


def test_a_create_whose_link_fails_says_why_and_leaves_no_temp_file(tmp_path, monkeypatch):
    from memabra.errors import StoreWriteError

    def refused_link(source, target):
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", refused_link)
    target = tmp_path / "version.json"
    with pytest.raises(StoreWriteError) as failed:
        atomic.atomic_create_bytes(target, b"first")
    assert str(failed.value) == (f"cannot write {target}: the folder is not writable; fix its permissions or choose "
                                 "another --base-dir (nothing was changed)")
    assert list(tmp_path.iterdir()) == []


def test_a_write_whose_rename_fails_says_why_and_keeps_the_old_file(tmp_path, monkeypatch):
    from memabra.errors import StoreWriteError

    def full_disk(source, target):
        raise OSError(28, "No space left on device")

    target = tmp_path / "current.json"
    target.write_bytes(b"old")
    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(StoreWriteError) as failed:
        atomic.atomic_write_bytes(target, b"new")
    assert str(failed.value) == (f"cannot write {target}: the disk is full; free some space and try again "
                                 "(nothing was changed)")
    assert [p.name for p in tmp_path.iterdir()] == ["current.json"] and target.read_bytes() == b"old"


@pytest.mark.parametrize("write", [atomic.atomic_create_bytes, atomic.atomic_write_bytes])
def test_a_failure_injected_after_the_rename_cannot_fail_a_write_that_is_done(tmp_path, monkeypatch, write):
    monkeypatch.setattr(atomic, "_INJECTED_FAULT", ("enospc", 3))  # 1-2: the two halves written; 3: the rename
    monkeypatch.setattr(atomic, "_write_steps", 0)
    write(tmp_path / "doc.json", b"whole")
    assert (tmp_path / "doc.json").read_bytes() == b"whole" and atomic._write_steps == 3


def test_a_writer_with_fsync_syncs_each_appended_line_before_returning(tmp_path, syscalls):
    writer = TrajectoryWriter(tmp_path, fsync=True)
    first = writer.append(trajectory_doc())
    assert [call[:2] for call in syscalls] == [("fsync", "file")]
    assert syscalls[0][2].count(b"\n") == 1 and first.trajectory_id.encode() in syscalls[0][2]
    writer.append(trajectory_doc(reward=0.2))
    assert [call[:2] for call in syscalls] == [("fsync", "file")] * 2 and syscalls[1][2].count(b"\n") == 2
    writer.close()
    assert len(TrajectoryStore(tmp_path).load_all()[0]) == 2


def test_a_writer_without_fsync_leaves_syncing_to_the_seal(tmp_path, syscalls):
    with TrajectoryWriter(tmp_path) as writer:
        writer.append(trajectory_doc())
        assert syscalls == []
    assert "replace" in [call[0] for call in syscalls] or "link" in [call[0] for call in syscalls]


def test_a_second_lock_on_the_same_base_dir_is_refused_naming_the_first(tmp_path):
    first = StoreLock(tmp_path, "cycle").acquire()
    try:
        with pytest.raises(LockHeldError, match=f"is locked by process {os.getpid()} \\(cycle"):
            StoreLock(tmp_path, "rollback").acquire()
        assert lock_holder(tmp_path)["pid"] == os.getpid() and lock_holder(tmp_path)["operation"] == "cycle"
        # Nobody else can take even a shared lock on the file while a cycle holds it.
        fd = os.open(tmp_path / ".lock", os.O_RDONLY)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        finally:
            os.close(fd)
    finally:
        first.release()
    assert lock_holder(tmp_path) is None
    with StoreLock(tmp_path, "rollback"):
        assert lock_holder(tmp_path)["operation"] == "rollback"


def test_seen_ids_count_only_new_ones_and_sealed_segments_replace_their_ids(tmp_path):
    store = SeenTrajectoryStore(tmp_path / "seen.json")
    assert store.add(["a", "b"]) == 2
    assert store.add(["b", "c"]) == 1
    assert store.load() == {"a", "b", "c"}
    assert store.add(["d"], sealed_segments={"seg-1": ["a", "b", "d"]}) == 1
    document = store.read()
    assert document.trajectory_ids == ["c"] and document.segments == ["seg-1"] and document.updated_at
    assert store.add([], sealed_segments={"seg-0": ["c"]}) == 0
    assert store.read().segments == ["seg-0", "seg-1"] and store.load() == set()


@contextlib.contextmanager
def held_lock_file(base, content: bytes):
    """Hold the base dir's flock directly, with `content` as the holder's record, until the block ends."""
    base.mkdir(parents=True, exist_ok=True)
    fd = os.open(base / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.ftruncate(fd, 0)
        os.pwrite(fd, content, 0)
        yield
    finally:
        os.close(fd)


def test_the_holder_record_is_read_back_exactly(tmp_path):
    record = b'{"pid": 4242, "started_at": "2026-01-05T09:00:00+00:00", "operation": "rollback"}'
    with held_lock_file(tmp_path, record):
        assert lock_holder(tmp_path) == {"pid": 4242, "started_at": "2026-01-05T09:00:00+00:00",
                                         "operation": "rollback"}
        with pytest.raises(LockHeldError) as refused:
            StoreLock(tmp_path, "cycle").acquire()
        assert str(refused.value) == (f"{tmp_path} is locked by process 4242 (rollback, since "
                                      "2026-01-05T09:00:00+00:00); wait for it to finish and try again")


def test_a_holder_record_without_an_operation_is_named_a_cycle(tmp_path):
    with held_lock_file(tmp_path, b'{"pid": 4242, "started_at": "2026-01-05T09:00:00+00:00"}'):
        assert lock_holder(tmp_path)["operation"] is None
        with pytest.raises(LockHeldError) as refused:
            StoreLock(tmp_path, "cycle").acquire()
        assert str(refused.value) == (f"{tmp_path} is locked by process 4242 (a cycle, since "
                                      "2026-01-05T09:00:00+00:00); wait for it to finish and try again")


@pytest.mark.parametrize("record", [b"", b"{half a reco", b'{"operation": "cycle"}'])
def test_a_holder_without_a_readable_pid_is_another_process(tmp_path, record):
    with held_lock_file(tmp_path, record):
        expected_operation = "cycle" if b"operation" in record else None
        assert lock_holder(tmp_path) == {"pid": None, "started_at": None, "operation": expected_operation}
        with pytest.raises(LockHeldError) as refused:
            StoreLock(tmp_path, "cycle").acquire()
        assert str(refused.value) == (f"{tmp_path} is locked by another process; wait for it to finish and "
                                      "try again")


def test_a_lock_creates_missing_folders_and_releasing_is_idempotent(tmp_path):
    base = tmp_path / "not" / "yet" / "there"
    never_taken = StoreLock(base, "cycle")
    never_taken.release()  # nothing to give back
    lock = StoreLock(base, "cycle").acquire()
    assert (base / ".lock").exists() and lock_holder(base)["operation"] == "cycle"
    lock.release()
    lock.release()
    assert lock_holder(base) is None and (base / ".lock").read_bytes() == b"", "the holder's record is cleared"


def test_seen_ids_build_on_the_document_the_cycle_read_under_its_lock(tmp_path):
    from memabra.storage.seen import SeenTrajectories

    store = SeenTrajectoryStore(tmp_path / "seen.json")
    store.add(["on-disk"])
    as_read = SeenTrajectories(trajectory_ids=["read-earlier"], segments=["seg-0"])
    assert store.add(["new"], current=as_read) == 1
    assert store.read().trajectory_ids == ["new", "read-earlier"] and store.read().segments == ["seg-0"]


@pytest.mark.parametrize("spec, parsed", [
    ("kill@3", ("kill", 3)), ("enospc@12", ("enospc", 12)), ("eacces@1", ("eacces", 1)),
    (None, None), ("", None), ("kill", None), ("kill@", None), ("kill@x", None), ("boom@3", None),
    ("kill@3@4", None), ("@3", None),
])
def test_the_fault_injection_setting_is_parsed_strictly(spec, parsed):
    assert atomic._injected_fault(spec) == parsed


@pytest.mark.parametrize("error, hint", [
    (28, "the disk is full; free some space and try again"),
    (13, "the folder is not writable; fix its permissions or choose another --base-dir"),
    (30, "the folder is not writable; fix its permissions or choose another --base-dir"),
    (5, "Input/output error"),
])
def test_a_failed_write_says_why_and_that_nothing_changed(tmp_path, monkeypatch, error, hint):
    from memabra.errors import StoreWriteError

    target = tmp_path / "doc.json"
    target.write_bytes(b"old")

    def failing_write(fd, data):
        raise OSError(error, os.strerror(error))

    monkeypatch.setattr(os, "write", failing_write)
    with pytest.raises(StoreWriteError) as failed:
        atomic.atomic_write_bytes(target, b"new")
    assert str(failed.value) == f"cannot write {target}: {hint} (nothing was changed)"
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["doc.json"]


def test_a_failed_write_without_an_error_code_quotes_the_error(tmp_path, monkeypatch):
    from memabra.errors import StoreWriteError

    def failing_write(fd, data):
        raise OSError("the device went away")

    monkeypatch.setattr(os, "write", failing_write)
    with pytest.raises(StoreWriteError) as failed:
        atomic.atomic_write_bytes(tmp_path / "doc.json", b"new")
    assert str(failed.value) == f"cannot write {tmp_path / 'doc.json'}: the device went away (nothing was changed)"


def test_temp_file_names_tell_their_writer():
    name = atomic._temp_path(Path("/store/current.json")).name
    assert atomic.temp_file_writer(name) == os.getpid()
    assert atomic.temp_file_writer(".current.json.123.0123abcd.tmp") == 123
    for other in ("current.json", ".current.json.123.xyz.tmp", ".current.json.abc.0123abcd.tmp", ".journal-1.jsonl",
                  "current.json.123.0123abcd.tmp", ".current.json.123.0123abcd.tmpx"):
        assert atomic.temp_file_writer(other) is None, other


def test_the_tinydb_storages_read_and_replace_whole_files(tmp_path):
    from memabra.errors import CorruptDocumentError

    tables = documents.AtomicJSONStorage(tmp_path / "tables.json")
    assert tables.read() is None
    tables.write({"_default": {"1": {"a": 1}}})
    assert tables.read() == {"_default": {"1": {"a": 1}}}
    assert (tmp_path / "tables.json").read_bytes() == b'{\n  "_default": {\n    "1": {\n      "a": 1\n    }\n  }\n}\n'
    (tmp_path / "tables.json").write_bytes(b"[1]")
    with pytest.raises(CorruptDocumentError) as refused:
        tables.read()
    assert (refused.value.path, refused.value.detail) == (tmp_path / "tables.json", "expected a JSON object of tables")
    (tmp_path / "tables.json").write_bytes(b"  ")
    with pytest.raises(CorruptDocumentError, match="it is empty"):
        tables.read()
    single = documents.SingleDocumentStorage(tmp_path / "one.json")
    assert single.read() is None
    (tmp_path / "one.json").write_bytes(b'"text"')
    with pytest.raises(CorruptDocumentError) as refused:
        single.read()
    assert (refused.value.path, refused.value.detail) == (tmp_path / "one.json", "expected a JSON object")
    single.write({"_default": {"1": {"b": 2}}})
    assert single.read() == {"_default": {"1": {"b": 2}}}
    assert (tmp_path / "one.json").read_bytes() == b'{\n  "b": 2\n}\n'
    with pytest.raises(ValueError, match="holds exactly one document, got 2"):
        single.write({"_default": {"1": {}, "2": {}}})
    with pytest.raises(ValueError, match="holds exactly one document, got 0"):
        single.write({})
    assert (tmp_path / "one.json").read_bytes() == b'{\n  "b": 2\n}\n', "a refused write leaves the file as it was"


def test_a_temp_file_writer_is_alive_only_while_its_process_exists(monkeypatch):
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert atomic.process_alive(child.pid) is True
        with pytest.raises(subprocess.TimeoutExpired):
            child.wait(timeout=0.3)  # asking is harmless: the process goes on
    finally:
        child.kill()
        child.wait(timeout=30)
    assert atomic.process_alive(child.pid) is False

    def not_ours(pid, signal):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "kill", not_ours)
    assert atomic.process_alive(1) is True, "a process of another user is alive"


def test_a_held_lock_hands_its_holder_to_the_caller_and_records_it_in_the_file(tmp_path):
    import json

    with StoreLock(tmp_path, "cycle"):
        record = json.loads((tmp_path / ".lock").read_bytes())
        assert sorted(record) == ["operation", "pid", "started_at"] and record["pid"] == os.getpid()
        assert lock_holder(tmp_path) == record
        with pytest.raises(LockHeldError) as refused:
            StoreLock(tmp_path, "rollback").acquire()
        assert refused.value.holder == record
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / ".lock").stat().st_mode) == 0o644 & ~umask


def test_a_lock_that_cannot_be_created_says_what_to_check(tmp_path):
    from memabra.errors import StoreWriteError

    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    with pytest.raises(StoreWriteError) as failed:
        StoreLock(not_a_folder, "cycle").acquire()
    assert str(failed.value).startswith(f"cannot create the lock file {not_a_folder / '.lock'}: ")
    assert str(failed.value).endswith("; check that the base dir is writable")


def test_a_lock_file_that_is_a_link_is_refused_and_its_target_left_alone(tmp_path):
    from memabra.errors import StoreWriteError

    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"someone else's file")
    base = tmp_path / "store"
    base.mkdir()
    (base / ".lock").symlink_to(outside)
    with pytest.raises(StoreWriteError) as refused:
        StoreLock(base, "cycle").acquire()
    assert str(refused.value) == (
        f"the lock file {base / '.lock'} is not a plain file (it is a symbolic link to {outside}; memabra never "
        "follows links in its store); remove it and try again (`--check --repair` moves it to quarantine/)")
    assert outside.read_bytes() == b"someone else's file"
