"""The TinyDB adapter, the only module that imports TinyDB: documents and tables in files written atomically.

TinyDB serves what it is good at here, small files of documents (one version, one report, current.json, the seen
ids, the case index's table), through storages that parse with orjson and replace the file atomically on every
write. Trajectory segments keep TinyDB's file format (one table, doc ids from 1) but are written in one go by
`storage/trajectories.py`, since TinyDB rewrites a whole file per insert.
"""

from __future__ import annotations

from pathlib import Path
from typing import Generic, TypeVar

import os
from typing import Any

from pydantic import BaseModel, ValidationError
from tinydb import TinyDB
from tinydb.storages import Storage
from tinydb.table import Document as TinyDocument

from memabra.errors import CorruptDocumentError
from memabra.storage.atomic import atomic_create_bytes, atomic_write_bytes, dump_json, read_json

ModelT = TypeVar("ModelT", bound=BaseModel)


def describe_validation_error(error: ValidationError) -> str:
    """Name the first failing field and what is wrong with it, in one line."""
    first = error.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "document"
    more = f" (+{error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"{field}: {first['msg']}{more}"


class AtomicJSONStorage(Storage):
    """A TinyDB storage that parses with orjson and replaces its file atomically on every write."""

    def __init__(self, path: str | os.PathLike, **_: Any):
        self.path = Path(path)

    def read(self) -> dict[str, dict[str, Any]] | None:
        data = read_json(self.path)
        if data is not None and not isinstance(data, dict):
            raise CorruptDocumentError(self.path, "expected a JSON object of tables")
        return data

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        atomic_write_bytes(self.path, dump_json(data))


class SingleDocumentStorage(AtomicJSONStorage):
    """A TinyDB storage whose file holds one plain document, seen by TinyDB as doc 1 of the default table."""

    TABLE = "_default"

    def read(self) -> dict[str, dict[str, Any]] | None:
        document = read_json(self.path)
        if document is None:
            return None
        if not isinstance(document, dict):
            raise CorruptDocumentError(self.path, "expected a JSON object")
        return {self.TABLE: {"1": document}}

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        documents = list(data.get(self.TABLE, {}).values())
        if len(documents) != 1:
            raise ValueError(f"{self.path} holds exactly one document, got {len(documents)}")
        atomic_write_bytes(self.path, dump_json(documents[0]))


class DocumentFile(Generic[ModelT]):
    """A file holding exactly one document of a pydantic model."""

    def __init__(self, path: Path, model: type[ModelT]):
        self.path = Path(path)
        self.model = model

    def exists(self) -> bool:
        """Whether the file is there."""
        return self.path.exists()

    def read(self) -> ModelT | None:
        """Load and validate the document; None when the file does not exist."""
        with TinyDB(self.path, storage=SingleDocumentStorage) as db:
            raw = db.table(SingleDocumentStorage.TABLE).get(doc_id=1)
        if raw is None:
            return None
        try:
            return self.model.model_validate(dict(raw))
        except ValidationError as exc:
            raise CorruptDocumentError(self.path, describe_validation_error(exc)) from exc

    def write(self, document: ModelT) -> None:
        """Replace the file with the document, atomically."""
        payload = document.model_dump(mode="json")
        with TinyDB(self.path, storage=_WriteOnlyDocumentStorage) as db:
            db.table(SingleDocumentStorage.TABLE, cache_size=0).insert(TinyDocument(payload, doc_id=1))

    def create(self, document: ModelT) -> bool:
        """Write the document only if the file does not exist yet; return whether it was written."""
        return atomic_create_bytes(self.path, dump_json(document.model_dump(mode="json")))


class _WriteOnlyDocumentStorage(SingleDocumentStorage):
    """Replaces a single-document file without reading it first (so a corrupt file can be overwritten)."""

    def read(self):
        return None


def read_table(path: Path, table: str) -> list[dict[str, Any]]:
    """Every row of one table of a TinyDB file, in order; [] when the file does not exist."""
    with TinyDB(Path(path), storage=AtomicJSONStorage) as db:
        return [dict(row) for row in db.table(table).all()]


def write_table(path: Path, table: str, rows: list[dict[str, Any]]) -> None:
    """Replace a TinyDB file with one table of rows (doc ids from 1), atomically."""
    AtomicJSONStorage(path).write({table: {str(number): row for number, row in enumerate(rows, start=1)}})
