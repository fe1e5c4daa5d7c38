"""Reading the store's files without following links out of it: no symlinks, no special files, bounded sizes.

Every file memabra reads from its store is opened with O_NOFOLLOW and O_NONBLOCK, must be a regular file, and
must not exceed MAX_DOCUMENT_BYTES (checked with fstat before a byte is read), so a planted link to `/dev/zero`,
a FIFO or a huge file is refused in one line instead of exhausting memory or blocking forever.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from memabra.errors import BadInputError, CorruptDocumentError, StoreWriteError

MAX_DOCUMENT_BYTES = 512 * 1024 * 1024
"""Largest file memabra reads from its store (a segment of 5,000 trajectories is usually a few megabytes)."""

_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)

STORE_FOLDERS = ("trajectories", "router-versions", "router-versions/versions", "training-reports", "quarantine",
                 ".cache", ".cache/segments")
"""The store's subfolders, each of which must resolve inside the base dir."""


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words."""
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a regular file" if stat.S_ISREG(mode) else "a special file"


def _target(path: Path) -> str:
    try:
        return f" to {os.readlink(path)}"
    except OSError:
        return ""


def open_regular(path: Path, flags: int = _READ_FLAGS, mode: int = 0o644) -> int:
    """Open a store file without following a link at its name; refuse anything but a regular file."""
    try:
        fd = os.open(path, flags, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise CorruptDocumentError(path, f"it is a symbolic link{_target(path)}; memabra never follows "
                                             "links in its store") from exc
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise CorruptDocumentError(path, "it cannot be read (permission denied); give the user running "
                                             "memabra read access, or move it away") from exc
        if exc.errno == errno.EISDIR:
            raise CorruptDocumentError(path, "it is a folder") from exc
        raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise CorruptDocumentError(path, f"it is {file_kind(info.st_mode)}, not a regular file")
    return fd


def read_store_bytes(path: Path, limit: int | None = None) -> bytes | None:
    """A store file's bytes; None when it does not exist; CorruptDocumentError when it is a link, a special file,
    unreadable or larger than the limit (checked before reading)."""
    limit = MAX_DOCUMENT_BYTES if limit is None else limit
    try:
        fd = open_regular(Path(path))
    except FileNotFoundError:
        return None
    try:
        size = os.fstat(fd).st_size
        if size > limit:
            raise CorruptDocumentError(path, f"it is {size:,} bytes, over the limit of {limit:,} bytes a store "
                                             "file may have")
        chunks, remaining = [], limit + 1
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 1 << 24))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        if remaining <= 0:
            raise CorruptDocumentError(path, f"it grew over the limit of {limit:,} bytes while being read")
        return b"".join(chunks)
    finally:
        os.close(fd)


def outside_folder(base_dir: Path, folder: Path) -> str | None:
    """Where a store subfolder really is when it resolves outside the base dir (a link out), else None."""
    try:
        real = Path(os.path.realpath(folder))
        base = Path(os.path.realpath(base_dir))
    except OSError:
        return None
    if real == base or base in real.parents:
        return None
    return str(real)


def folders_outside(base_dir: Path) -> dict[str, str]:
    """The store's subfolders (relative path to real place) that resolve outside the base dir."""
    found = {}
    for name in STORE_FOLDERS:
        folder = Path(base_dir) / name
        if os.path.lexists(folder):
            place = outside_folder(base_dir, folder)
            if place is not None:
                found[name] = place
    return found


def require_inside(base_dir: Path, what: str = "this command") -> None:
    """Refuse to work on a store whose subfolders lead out of it (BadInputError naming the first)."""
    outside = folders_outside(base_dir)
    if outside:
        name, place = next(iter(outside.items()))
        raise BadInputError(f"{Path(base_dir) / name} leads outside the store (to {place}); {what} never follows "
                            "links out of the store: replace the link with a real folder")


def ensure_inside(base_dir: Path, path: Path) -> None:
    """Refuse to change a file whose folder resolves outside the base dir (StoreWriteError)."""
    if outside_folder(base_dir, Path(path).parent) is not None:
        raise StoreWriteError(f"{path} lies in a folder that leads outside the store; nothing was changed there")
