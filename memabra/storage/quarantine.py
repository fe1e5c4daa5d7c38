"""Moving unreadable files aside to `<base-dir>/quarantine/` instead of deleting them."""

from __future__ import annotations

import os
from pathlib import Path

from memabra.storage.atomic import _fsync_dir, _write_error, atomic_create_bytes
from memabra.storage.layout import StoreLayout

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
    target = _free_quarantine_path(layout, path)
    if keep_original:
        while not atomic_create_bytes(target, path.read_bytes()):
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

