"""Atomic file writes: temp file in the same folder, fsync, rename; a reader never sees half a file."""

from __future__ import annotations

import errno
import os
import re
import secrets
import signal
from pathlib import Path
from typing import Any

import orjson

from memabra.errors import CorruptDocumentError, StoreWriteError

JSON_OPTIONS = orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS

FAULT_INJECTION_ENV = "MEMABRA_FAULT_INJECT"
"""Crash and full-disk tests only: `kill@N` makes the process SIGKILL itself at its Nth write step, `enospc@N` or
`eacces@N` makes that step fail; a step is half of a file's bytes written, all of them written, or a rename done.
Unset (always, outside tests) it does nothing."""

_FAULT_ERRNO = {"enospc": errno.ENOSPC, "eacces": errno.EACCES}


def _injected_fault(spec: str | None) -> tuple[str, int] | None:
    mode, _, step = (spec or "").partition("@")
    if mode not in ("kill", *_FAULT_ERRNO) or not step.isdigit():
        return None
    return mode, int(step)


_INJECTED_FAULT = _injected_fault(os.environ.get(FAULT_INJECTION_ENV))
_write_steps = 0


def fault_point(can_fail: bool = True) -> None:
    """Count one write step and, at the step MEMABRA_FAULT_INJECT names, die there (or fail, if it can)."""
    global _write_steps
    if _INJECTED_FAULT is None:
        return
    _write_steps += 1
    mode, step = _INJECTED_FAULT
    if _write_steps != step:
        return
    if mode == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if not can_fail:
        return
    code = _FAULT_ERRNO[mode]
    raise OSError(code, os.strerror(code))


def write_all(fd: int, data: bytes) -> None:
    """Write every byte of data to fd (in one write() unless a fault is injected, then in two halves)."""
    view = memoryview(data)
    if _INJECTED_FAULT is not None:
        half = len(view) // 2
        _write_fully(fd, view[:half])
        fault_point()
        view = view[half:]
    _write_fully(fd, view)
    fault_point()


def _write_fully(fd: int, view: memoryview) -> None:
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _temp_path(path: Path) -> Path:
    # Not-a-document files start with "." and never end in ".json" (the store's naming rule).
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


_TEMP_NAME = re.compile(r"^\..+\.(\d+)\.[0-9a-f]{8}\.tmp$")


def temp_file_writer(name: str) -> int | None:
    """The pid of the process writing a temp file of this name, or None when the name is not a temp file's."""
    match = _TEMP_NAME.match(name)
    return int(match.group(1)) if match else None


def process_alive(pid: int) -> bool:
    """Whether a process with this pid exists (on this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_temp(path: Path, data: bytes) -> Path:
    """Write data to a synced temp file beside path and return the temp file's path."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _write_error(path, exc) from exc
    temp = _temp_path(path)
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise _write_error(path, exc) from exc
    return temp


def _write_error(path: Path, exc: OSError) -> StoreWriteError:
    if exc.errno == errno.ENOSPC:
        hint = "the disk is full; free some space and try again"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = "the folder is not writable; fix its permissions or choose another --base-dir"
    else:
        hint = exc.strerror or str(exc)
    return StoreWriteError(f"cannot write {path}: {hint} (nothing was changed)")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace path with data in one step: temp file in the same folder, fsync, rename."""
    path = Path(path)
    temp = _write_temp(path, data)
    try:
        os.replace(temp, path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise _write_error(path, exc) from exc
    fault_point(can_fail=False)
    _fsync_dir(path.parent)


def atomic_create_bytes(path: Path, data: bytes) -> bool:
    """Create path with data in one step unless it exists; return whether it was created."""
    path = Path(path)
    temp = _write_temp(path, data)
    try:
        os.link(temp, path)
        fault_point(can_fail=False)
    except FileExistsError:
        return False
    except OSError as exc:
        raise _write_error(path, exc) from exc
    finally:
        temp.unlink(missing_ok=True)
    _fsync_dir(path.parent)
    return True


def dump_json(value: Any) -> bytes:
    """Serialise a JSON-ready value the way the store writes it (indented, trailing newline)."""
    return orjson.dumps(value, option=JSON_OPTIONS) + b"\n"


def read_json(path: Path) -> Any | None:
    """Parse a JSON file; None when it does not exist, CorruptDocumentError when it does not parse (or is a link,
    a special file, unreadable or too large)."""
    from memabra.storage.safe_io import read_store_bytes

    data = read_store_bytes(Path(path))
    if data is None:
        return None
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        detail = "it is empty" if not data.strip() else f"not JSON: {exc}"
        raise CorruptDocumentError(path, detail) from exc
