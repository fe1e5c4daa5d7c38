"""`--check`'s look at what the store's files are, not what they hold: links, special files, files it cannot read,
subfolders leading out of the store, names that are not ids, and the segment cache under `.cache/`."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import orjson

from memabra.storage.folders import is_timestamp_id
from memabra.storage.safe_io import STORE_FOLDERS, file_kind, outside_folder, read_store_bytes


def check_kinds(check, files: list[Path]) -> set[Path]:
    """Report links, special files and unreadable files (repair moves them, never their targets, to quarantine/);
    return them so the other checks skip them."""
    bad = set()
    for path in files:
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(mode):
            problem = f"{file_kind(mode)} to {os.readlink(path)!r}; memabra never follows links in its store"
        elif not stat.S_ISREG(mode):
            problem = f"{file_kind(mode)}, not a regular file; memabra never reads it"
        elif not os.access(path, os.R_OK):
            problem = "it cannot be read (permission denied); every command skips it"
        else:
            continue
        bad.add(path)
        check.set_aside(path, problem, "the link or file itself is moved, nothing it points to is touched "
                                       "(or give memabra read access instead)")
    return bad


def check_folders(check) -> set[Path]:
    """Report subfolders that lead outside the store; repair leaves them (and what they hold) alone."""
    outside = set()
    for name in STORE_FOLDERS:
        folder = check.base_dir / name
        if not os.path.lexists(folder):
            continue
        place = outside_folder(check.base_dir, folder)
        if place is not None:
            outside.add(folder)
            check.report(folder, f"folder leads outside the store (to {place}); no command reads or changes "
                                 "what is there", "replace the link with a real folder inside the store (repair "
                                                  "never touches files outside it)")
    return outside


def check_names(check, folder: Path, what: str) -> None:
    """Report `*.json` files of a versions or reports folder whose name is not an id (ignored by every command)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in sorted(names):
        if name.endswith(".json") and not name.startswith(".") and not is_timestamp_id(name[:-5]):
            check.set_aside(folder / name, f"file name {name!r} is not a {what} id (YYYYMMDD-HHMMSS); every "
                                           "command ignores it", "rename it to a valid id if it is a real document")


def check_cache(check) -> None:
    """Report cached segment summaries (and the running total) that fail their digest, and sealed segments whose
    content no longer matches the hash recorded when they were summarised though their size and modification time
    do (changed in place); repair deletes the cache files (derived data, rebuilt by the next cycle)."""
    from memabra.learning.running_total import TOTAL_FILE, TOTAL_FORMAT
    from memabra.learning.summaries import CACHE_FORMAT, summary_digest

    folder = check.layout.cache_dir / "segments"
    if outside_folder(check.base_dir, folder) is not None:
        return
    total = check.layout.cache_dir / TOTAL_FILE
    if total.exists():
        check.checked["cache_files"] = check.checked.get("cache_files", 0) + 1
        _report_cache(check, total, _cache_problem(total, TOTAL_FORMAT, summary_digest, lambda meta: meta),
                      "running total of segment statistics")
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return
    for name in names:
        if not name.endswith(".npz"):
            continue
        path = folder / name
        check.checked["cache_files"] = check.checked.get("cache_files", 0) + 1
        problem = _cache_problem(path, CACHE_FORMAT, summary_digest, lambda meta: meta.get("file", {}))
        _report_cache(check, path, problem, "cached segment summary")
        if problem is None:
            segment = check.layout.trajectories_dir / f"{name[:-len('.npz')]}.json"
            if _changed_in_place(path, segment):
                fix = ("restore the segment from a backup if the change is not yours; run --check --repair to delete "
                       "its cached summary (the next cycle summarises the segment as it is now)")
                if check.repair:
                    path.unlink(missing_ok=True)
                    fix = "deleted its cached summary (the next cycle summarises the segment as it is now)"
                check.report(segment, "sealed segment changed in place: its content no longer matches the hash "
                                      "recorded when it was summarised, yet its size and modification time do",
                             fix, repaired=check.repair)


def _report_cache(check, path: Path, problem: str | None, what: str) -> None:
    if problem is None:
        return
    if check.repair:
        path.unlink(missing_ok=True)
        check.report(path, f"{what} {problem}", "deleted it (derived data; the next cycle rebuilds it from the "
                                                "segments)", repaired=True)
    else:
        check.report(path, f"{what} {problem}", "run --check --repair to delete it (cycles ignore it and rebuild "
                                                "it from the segments)")


def _cache_problem(path: Path, cache_format: int, summary_digest, format_of) -> str | None:
    """What is wrong with one cache file: unreadable, of an older format, or altered since it was written."""
    import io

    try:
        with np.load(io.BytesIO(read_store_bytes(path) or b""), allow_pickle=False) as arrays:
            meta = orjson.loads(arrays["meta"].tobytes())
            digest = summary_digest(meta, arrays)
    except Exception as exc:  # noqa: BLE001 - whatever fails, the file is not a usable cache
        return f"is unreadable ({type(exc).__name__})"
    if format_of(meta).get("format") != cache_format:
        return "is of an older format"
    if meta.get("digest") != digest:
        return "fails its digest (altered after it was written)"
    return None  # stale (its segment changed or went) is normal: cycles skip it and rebuild it


def _changed_in_place(cache_path: Path, segment: Path) -> bool:
    """Whether a segment still has the size and modification time its cached summary recorded but other content."""
    import hashlib
    import io

    try:
        with np.load(io.BytesIO(read_store_bytes(cache_path) or b""), allow_pickle=False) as arrays:
            meta = orjson.loads(arrays["meta"].tobytes())
        info = os.lstat(segment)
        recorded = meta["file"]
        if not stat.S_ISREG(info.st_mode) or (info.st_size, info.st_mtime_ns) != (recorded["size"],
                                                                                  recorded["mtime_ns"]):
            return False
        content = read_store_bytes(segment)
    except Exception:  # noqa: BLE001 - a segment or summary that cannot be read is reported by the other checks
        return False
    return content is not None and hashlib.sha256(content).hexdigest() != meta.get("sha256")
