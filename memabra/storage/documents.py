"""One pydantic document per file, read and written through TinyDB with atomic storage."""

from __future__ import annotations

from pathlib import Path
from typing import Generic, TypeVar

from pydantic import BaseModel, ValidationError
from tinydb import TinyDB
from tinydb.table import Document as TinyDocument

from memabra.errors import CorruptDocumentError
from memabra.storage.atomic import SingleDocumentStorage, atomic_create_bytes, dump_json

ModelT = TypeVar("ModelT", bound=BaseModel)


def describe_validation_error(error: ValidationError) -> str:
    """Name the first failing field and what is wrong with it, in one line."""
    first = error.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "document"
    more = f" (+{error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"{field}: {first['msg']}{more}"


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
