"""Paths the user names for memabra's documents: a file already there that is not memabra's is refused, never
overwritten."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from memabra.errors import BadInputError, CorruptDocumentError
from memabra.storage.atomic import read_json

SEEN_FIELDS = {"trajectory_ids", "segments", "updated_at"}
CASE_TABLE = "cases"


def is_seen_document(document: Any) -> bool:
    """Whether a parsed JSON value is a seen-ids document as memabra writes it."""
    return (isinstance(document, dict) and "trajectory_ids" in document and set(document) <= SEEN_FIELDS
            and isinstance(document["trajectory_ids"], list))


def is_case_index_document(document: Any) -> bool:
    """Whether a parsed JSON value is a case index as memabra writes it (one table of cases, or nothing yet)."""
    return (isinstance(document, dict) and set(document) <= {CASE_TABLE}
            and all(isinstance(rows, dict) and all(isinstance(row, dict) and "key" in row for row in rows.values())
                    for rows in document.values()))


def require_own_document(path: Path | None, flag: str, what: str, recognise) -> None:
    """Refuse (BadInputError) a user-named path that holds anything but memabra's document of this kind."""
    if path is None or not Path(path).exists() and not Path(path).is_symlink():
        return
    if Path(path).is_dir():
        raise BadInputError(f"{flag} {path} is a folder; give the path of a .json file")
    try:
        document = read_json(Path(path))
    except CorruptDocumentError as exc:
        raise BadInputError(f"{flag} {path} holds something that is not memabra's {what} ({exc.detail}); memabra "
                            "never overwrites it: give a new path or move that file away") from exc
    if not recognise(document):
        raise BadInputError(f"{flag} {path} holds a file that is not memabra's {what}; memabra never overwrites "
                            "it: give a new path or move that file away")
