"""Moving unreadable files aside to `<base-dir>/quarantine/` instead of deleting them."""

from __future__ import annotations

import os
from pathlib import Path

from memabra.storage.atomic import _fsync_dir, _write_error, atomic_create_bytes
from memabra.storage.layout import StoreLayout
from memabra.storage.safe_io import ensure_inside, read_store_bytes

QUARANTINE_SUFFIX = ".quarantined"


def _free_quarantine_path(layout: StoreLayout, path: Path) -> Path:
    """`quarantine/<relative path>.quarantined`, numbered when an earlier copy of that file is there already."""
    target = layout.quarantine_dir / Path(path).relative_to(layout.base_dir)
    candidate = target.with_name(target.name + QUARANTINE_SUFFIX)
    number = 2
    while candidate.exists():
        candidate = target.with_name(f"{target.name}.{number}{QUARANTINE_SUFFIX}")
        number += 1
    return candidate


def quarantine_file(base_dir: StoreLayout | Path, path: Path, keep_original: bool = False) -> Path:
    """Move (or, with keep_original, copy) a file of the store into quarantine and return where it went."""
    layout, path = StoreLayout.of(base_dir), Path(path)
    ensure_inside(layout.base_dir, path)
    ensure_inside(layout.base_dir, layout.quarantine_dir / "x")
    target = _free_quarantine_path(layout, path)
    if keep_original:
        data = read_store_bytes(path)
        while not atomic_create_bytes(target, data or b""):
            target = _free_quarantine_path(layout, path)
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(path, target)
    except OSError as exc:
        raise _write_error(target, exc) from exc
    _fsync_dir(target.parent)
    _fsync_dir(path.parent)
    return target

