"""Folders of timestamp-named documents (versions, reports): ids never collide and are checked before use."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable, Generic, TypeVar

from pydantic import BaseModel

from memabra.errors import BadInputError, CorruptDocumentError
from memabra.models import VERSION_ID_PATTERN, utc_now
from memabra.storage.documents import DocumentFile

ModelT = TypeVar("ModelT", bound=BaseModel)
ID_FORMAT = "%Y%m%d-%H%M%S"


def is_timestamp_id(value: object) -> bool:
    """Whether value is exactly an id: ASCII `YYYYMMDD-HHMMSS` naming a real moment (nothing before or after)."""
    if not isinstance(value, str) or not VERSION_ID_PATTERN.match(value):
        return False
    try:
        datetime.strptime(value, ID_FORMAT)
    except ValueError:
        return False
    return True


def validate_timestamp_id(value: object, what: str = "version id") -> str:
    """Return value if it looks like 20260414-123456, else raise BadInputError (before any path is built)."""
    if not is_timestamp_id(value):
        raise BadInputError(f"{what} {value!r} is malformed: expected a timestamp like 20260414-123456")
    return value


class TimestampedFolder(Generic[ModelT]):
    """One document per `<id>.json`, ids allocated from the clock and never reused."""

    def __init__(self, folder: Path, model: type[ModelT], what: str):
        self.folder = Path(folder)
        self.model = model
        self.what = what

    def ids(self) -> list[str]:
        """Every stored id, newest first."""
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return []
        found = [name[:-5] for name in names if name.endswith(".json") and is_timestamp_id(name[:-5])]
        return sorted(found, reverse=True)

    def path(self, document_id: str) -> Path:
        return self.folder / f"{validate_timestamp_id(document_id, self.what)}.json"

    def exists(self, document_id: str) -> bool:
        return self.path(document_id).exists()

    def get(self, document_id: str) -> ModelT:
        """Load one document, or raise BadInputError when no such id is stored."""
        document = DocumentFile(self.path(document_id), self.model).read()
        if document is None:
            known = self.ids()
            hint = f"newest is {known[0]}" if known else "none are stored yet"
            raise BadInputError(f"{self.what} {document_id} does not exist ({hint})")
        return document

    def list(self, skip_corrupt: bool = True) -> list[ModelT]:
        """Every document, newest first; unreadable files are skipped unless asked otherwise."""
        documents = []
        for document_id in self.ids():
            try:
                documents.append(self.get(document_id))
            except (CorruptDocumentError, BadInputError):
                if not skip_corrupt:
                    raise
        return documents

    def newest_readable(self) -> ModelT | None:
        """The newest document that loads (an unreadable newer one is skipped; --check reports it)."""
        for document_id in self.ids():
            try:
                return self.get(document_id)
            except CorruptDocumentError:
                continue
        return None

    def create(self, build: Callable[[str], ModelT], now: datetime | None = None) -> ModelT:
        """Allocate the next free id (after every stored one), build the document and create its file."""
        moment = (now or utc_now()).replace(microsecond=0)
        existing = self.ids()
        if existing:
            newest = datetime.strptime(existing[0], ID_FORMAT).replace(tzinfo=moment.tzinfo)
            moment = max(moment, newest + timedelta(seconds=1))
        while True:
            document_id = moment.strftime(ID_FORMAT)
            document = build(document_id)
            if DocumentFile(self.path(document_id), self.model).create(document):
                return document
            moment += timedelta(seconds=1)
