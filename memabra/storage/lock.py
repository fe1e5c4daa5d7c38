"""One cycle or rollback at a time per base dir: an flock on `<base-dir>/.lock` naming its holder."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import orjson

from memabra.errors import CorruptDocumentError, LockHeldError, StoreWriteError
from memabra.models import utc_now
from memabra.storage.layout import StoreLayout
from memabra.storage.safe_io import open_regular


class StoreLock:
    """The base dir's exclusive lock; the kernel releases it when its holder dies, so no lock goes stale."""

    def __init__(self, base_dir: StoreLayout | Path, operation: str):
        self.layout = StoreLayout.of(base_dir)
        self.operation = operation
        self._fd: int | None = None

    def acquire(self) -> "StoreLock":
        """Take the lock at once or raise LockHeldError naming the holder."""
        path = self.layout.lock_path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = open_regular(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
        except CorruptDocumentError as exc:
            raise StoreWriteError(f"the lock file {path} is not a plain file ({exc.detail}); remove it and try "
                                  "again (`--check --repair` moves it to quarantine/)") from exc
        except OSError as exc:
            raise StoreWriteError(
                f"cannot create the lock file {path}: {exc.strerror}; check that the base dir is writable"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = lock_holder(self.layout.base_dir)
            raise LockHeldError(_held_message(self.layout.base_dir, holder), holder) from None
        holder = {"pid": os.getpid(), "started_at": utc_now().isoformat(), "operation": self.operation}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, orjson.dumps(holder), 0)
        except OSError:
            pass  # the lock is held all the same; only the holder's name is missing (a full disk)
        self._fd = fd
        return self

    def release(self) -> None:
        """Give the lock back (idempotent)."""
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
        except OSError:
            pass
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "StoreLock":
        return self.acquire()

    def __exit__(self, *exc_info) -> None:
        self.release()


def _held_message(base_dir: Path, holder: dict | None) -> str:
    if holder and holder.get("pid"):
        who = f"process {holder['pid']} ({holder.get('operation') or 'a cycle'}, since {holder.get('started_at')})"
    else:
        who = "another process"
    return f"{base_dir} is locked by {who}; wait for it to finish and try again"


def lock_holder(base_dir: StoreLayout | Path) -> dict | None:
    """Return the holder of the base dir's lock ({pid, started_at, operation}) or None when it is free."""
    path = StoreLayout.of(base_dir).lock_path
    try:
        fd = open_regular(path)
    except (OSError, CorruptDocumentError):
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pass
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        raw = os.pread(fd, 4096, 0)
    finally:
        os.close(fd)
    try:
        holder = orjson.loads(raw)
    except orjson.JSONDecodeError:
        holder = {}
    return {
        "pid": holder.get("pid"),
        "started_at": holder.get("started_at"),
        "operation": holder.get("operation"),
    }

