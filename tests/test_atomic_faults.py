"""Atomic writes under injected faults, in process: the crash tests' MEMABRA_FAULT_INJECT steps (half the bytes
written, all written, the rename), the error a failed step raises and what it leaves on disk; plus the temp file's
mode, missing folders and the empty-or-not-JSON detail of read_json."""

import errno
import os
import signal

import pytest

import memabra.storage.atomic as atomic
from memabra.errors import CorruptDocumentError, StoreWriteError
from tests.helpers import run_python

DISK_FULL = "the disk is full; free some space and try again"
NOT_WRITABLE = "the folder is not writable; fix its permissions or choose another --base-dir"


@pytest.fixture
def writes(monkeypatch):
    """Record the bytes of every os.write call (and still make it)."""
    calls = []
    real_write = os.write

    def write(fd, data):
        calls.append(bytes(data))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    return calls


def inject(monkeypatch, mode: str, step: int) -> None:
    """Set the fault MEMABRA_FAULT_INJECT=mode@step would set, with the step count at zero."""
    monkeypatch.setattr(atomic, "_INJECTED_FAULT", atomic._injected_fault(f"{mode}@{step}"))
    monkeypatch.setattr(atomic, "_write_steps", 0)


@pytest.mark.parametrize("mode, code, hint", [("enospc", errno.ENOSPC, DISK_FULL), ("eacces", errno.EACCES, NOT_WRITABLE)])
@pytest.mark.parametrize("step, written", [(1, [b"01234"]), (2, [b"01234", b"56789"])])
def test_an_injected_fault_fails_its_step_and_leaves_the_old_file(tmp_path, monkeypatch, writes, mode, code, hint,
                                                                 step, written):
    target = tmp_path / "current.json"
    target.write_bytes(b"old")
    inject(monkeypatch, mode, step)
    with pytest.raises(StoreWriteError) as failed:
        atomic.atomic_write_bytes(target, b"0123456789")
    assert str(failed.value) == f"cannot write {target}: {hint} (nothing was changed)"
    cause = failed.value.__cause__
    assert isinstance(cause, OSError) and (cause.errno, cause.strerror) == (code, os.strerror(code))
    assert writes == written, "step 1 fails after the first half is written, step 2 after the second"
    assert atomic._write_steps == step
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["current.json"]


def test_a_fault_at_a_later_step_lets_the_write_through_in_two_halves(tmp_path, monkeypatch, writes):
    inject(monkeypatch, "enospc", 9)
    atomic.atomic_write_bytes(tmp_path / "doc.json", b"abcdefg")
    assert writes == [b"abc", b"defg"] and atomic._write_steps == 3
    assert (tmp_path / "doc.json").read_bytes() == b"abcdefg"
    assert atomic.atomic_create_bytes(tmp_path / "new.json", b"xy") is True
    assert writes[2:] == [b"x", b"y"] and atomic._write_steps == 6
    assert (tmp_path / "new.json").read_bytes() == b"xy"


def test_without_a_fault_the_bytes_go_in_one_write_and_no_step_is_counted(tmp_path, monkeypatch, writes):
    monkeypatch.setattr(atomic, "_INJECTED_FAULT", None)
    monkeypatch.setattr(atomic, "_write_steps", 0)
    atomic.atomic_write_bytes(tmp_path / "doc.json", b"abcdefg")
    assert writes == [b"abcdefg"] and atomic._write_steps == 0


def test_a_short_write_is_continued_until_every_byte_is_written(tmp_path, monkeypatch):
    real_write, sizes = os.write, []

    def three_bytes_at_most(fd, data):
        sizes.append(len(data))
        return real_write(fd, bytes(data[:3]))

    monkeypatch.setattr(os, "write", three_bytes_at_most)
    atomic.atomic_write_bytes(tmp_path / "doc.json", b"0123456789")
    assert (tmp_path / "doc.json").read_bytes() == b"0123456789" and sizes == [10, 7, 4, 1]


def test_a_step_that_cannot_fail_is_counted_but_does_not_raise(monkeypatch):
    inject(monkeypatch, "enospc", 1)
    atomic.fault_point(can_fail=False)
    assert atomic._write_steps == 1
    with pytest.raises(OSError) as failed:
        inject(monkeypatch, "enospc", 1)
        atomic.fault_point()
    assert failed.value.errno == errno.ENOSPC


KILLED_WRITER = """
import sys
from pathlib import Path
from memabra.storage.atomic import atomic_write_bytes
atomic_write_bytes(Path(sys.argv[1]), b"0123456789")
print("not killed")
"""


@pytest.mark.parametrize("step, temp_holds", [(1, b"01234"), (2, b"0123456789")])
def test_a_kill_fault_kills_the_writer_at_its_step_and_the_old_file_stays(tmp_path, step, temp_holds):
    target = tmp_path / "current.json"
    target.write_bytes(b"old")
    killed = run_python("-c", KILLED_WRITER, target, fault=f"kill@{step}", timeout=60)
    assert (killed.returncode, killed.stdout) == (-signal.SIGKILL, "")
    assert target.read_bytes() == b"old"
    temps = [path for path in tmp_path.iterdir() if path != target]
    assert len(temps) == 1 and atomic.temp_file_writer(temps[0].name) is not None
    assert temps[0].read_bytes() == temp_holds


def test_a_kill_after_the_rename_leaves_the_new_file(tmp_path):
    target = tmp_path / "current.json"
    target.write_bytes(b"old")
    killed = run_python("-c", KILLED_WRITER, target, fault="kill@3", timeout=60)
    assert (killed.returncode, killed.stdout) == (-signal.SIGKILL, "")
    assert [path.name for path in tmp_path.iterdir()] == ["current.json"]
    assert target.read_bytes() == b"0123456789"


def test_missing_folders_are_created_and_the_file_is_readable_by_all(tmp_path):
    previous = os.umask(0o022)
    try:
        atomic.atomic_write_bytes(tmp_path / "a" / "b" / "doc.json", b"deep")
        created = atomic.atomic_create_bytes(tmp_path / "c" / "d" / "new.json", b"new")
    finally:
        os.umask(previous)
    assert (tmp_path / "a" / "b" / "doc.json").read_bytes() == b"deep" and created
    assert (tmp_path / "a" / "b" / "doc.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "c" / "d" / "new.json").stat().st_mode & 0o777 == 0o644


def test_a_folder_that_cannot_be_made_is_a_write_error_naming_the_file(tmp_path):
    (tmp_path / "plain").write_bytes(b"a file, not a folder")
    target = tmp_path / "plain" / "sub" / "doc.json"
    with pytest.raises(StoreWriteError) as failed:
        atomic.atomic_write_bytes(target, b"x")
    assert str(failed.value) == f"cannot write {target}: {os.strerror(errno.ENOTDIR)} (nothing was changed)"
    assert isinstance(failed.value.__cause__, NotADirectoryError)


def test_a_temp_file_that_cannot_be_opened_is_a_write_error_and_nothing_is_left(tmp_path, monkeypatch):
    real_open = os.open

    def refused(path, flags, *args):
        if flags & os.O_EXCL:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", refused)
    target = tmp_path / "doc.json"
    with pytest.raises(StoreWriteError) as failed:
        atomic.atomic_write_bytes(target, b"x")
    assert str(failed.value) == f"cannot write {target}: {NOT_WRITABLE} (nothing was changed)"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("content, detail", [
    (b"", "it is empty"), (b" \n\t", "it is empty"),
    (b"{", "not JSON: "), (b"  nope", "not JSON: "),
])
def test_a_file_that_does_not_parse_says_whether_it_is_empty_or_not_json(tmp_path, content, detail):
    path = tmp_path / "doc.json"
    path.write_bytes(content)
    with pytest.raises(CorruptDocumentError) as refused:
        atomic.read_json(path)
    assert refused.value.path == path
    if detail == "it is empty":
        assert refused.value.detail == detail
    else:
        assert refused.value.detail.startswith(detail) and len(refused.value.detail) > len(detail)
