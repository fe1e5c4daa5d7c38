"""Trajectory storage: each writer appends to its own journal, sealed into immutable TinyDB segments.

Appending costs one write() whatever the store holds; a reader sees sealed segments plus the complete
lines of open journals, so nothing an append returned from is ever missed or half-read.
"""

from __future__ import annotations

import atexit
import gc
import os
import secrets
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Iterator, Union, get_args, get_origin

from typing_extensions import NotRequired, TypedDict

import orjson
from pydantic import BaseModel, TypeAdapter, ValidationError

from memabra.errors import BadInputError, CorruptDocumentError, StoreWriteError
from memabra.models import Trajectory, choice_problem, utc_now
from memabra.storage.atomic import (_write_error, atomic_write_bytes, process_alive, read_json,
                                    write_all)
from memabra.storage.documents import describe_validation_error, write_table
from memabra.storage.layout import StoreLayout
from memabra.storage.safe_io import read_store_bytes

SEGMENT_TABLE = "trajectories"
JOURNAL_PREFIX = ".journal-"
JOURNAL_SUFFIX = ".jsonl"
MAX_SEGMENT_DOCUMENTS = 5_000
"""A writer seals its journal into a segment after this many trajectories."""

_TRAJECTORY_LIST = TypeAdapter(list[Trajectory])

UNREADABLE_FILE = -1
"""The position an InvalidTrajectory has when its whole file is unreadable (the rest of the store is still read)."""


class _SegmentFile(TypedDict):
    trajectories: dict[str, Trajectory]


_SEGMENT_FILE = TypeAdapter(_SegmentFile)


def plain_document_type(model: type[BaseModel], made: dict | None = None) -> type:
    """A TypedDict with the model's fields, constraints and config, so pydantic validates by the model's rules
    into plain dicts (several times cheaper than building models); model validators are not carried over."""
    made = {} if made is None else made
    if model not in made:
        fields = {}
        for name, info in model.model_fields.items():
            annotation = _plain_annotation(info.annotation, made)
            if info.metadata:
                annotation = Annotated[(annotation, *info.metadata)]
            fields[name] = annotation if info.is_required() else NotRequired[annotation]
        plain = TypedDict(f"{model.__name__}Document", fields)
        plain.__pydantic_config__ = dict(model.model_config)
        made[model] = plain
    return made[model]


def _plain_annotation(annotation: Any, made: dict) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return plain_document_type(annotation, made)
    arguments = get_args(annotation)
    mapped = tuple(_plain_annotation(argument, made) for argument in arguments)
    if mapped == arguments:
        return annotation
    origin = get_origin(annotation)
    return Union[mapped] if origin in (Union, UnionType) else origin[mapped]


_PLAIN_SEGMENT_FILE = TypeAdapter(TypedDict("_PlainSegmentFile", {
    SEGMENT_TABLE: dict[str, plain_document_type(Trajectory)]}))


@contextmanager
def gc_paused():
    """Pause the cyclic garbage collector while a bulk load allocates (it would otherwise double the load's cost)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@dataclass(frozen=True)
class TrajectoryFile:
    """One file of trajectories: a sealed segment or a writer's open journal."""

    key: str
    path: Path
    sealed: bool


@dataclass
class InvalidTrajectory:
    """A stored trajectory that failed validation: where it is and which field is at fault."""

    file: str
    position: int
    error: str
    field: str = "document"

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "position": self.position, "field": self.field, "error": self.error}


@dataclass
class TrajectoryBatch:
    """The valid trajectories of one file, and the ones it refused."""

    file: TrajectoryFile
    trajectories: list[Trajectory] = field(default_factory=list)
    invalid: list[InvalidTrajectory] = field(default_factory=list)


def validate_trajectories(documents: list[Any], file_name: str = "<input>") -> tuple[list[Trajectory], list[InvalidTrajectory]]:
    """Validate documents in one bulk call; refuse the failing ones by position and keep the rest."""
    try:
        return _TRAJECTORY_LIST.validate_python(documents), []
    except ValidationError as exc:
        failing: dict[int, tuple[str, str]] = {}
        for error in exc.errors():
            loc = error["loc"]
            position = loc[0] if loc and isinstance(loc[0], int) else -1
            if position not in failing:
                failing[position] = _field_at_fault(loc[1:], error)
        if -1 in failing:
            raise
    keep = [doc for position, doc in enumerate(documents) if position not in failing]
    invalid = [InvalidTrajectory(file_name, position, f"{field_path}: {message}", field_path)
               for position, (field_path, message) in sorted(failing.items())]
    return _TRAJECTORY_LIST.validate_python(keep), invalid


def _field_at_fault(loc: tuple, error: dict) -> tuple[str, str]:
    """The failing field's dotted path and what is wrong; a whole-document check names its field in its message."""
    field_path = ".".join(str(part) for part in loc)
    if not field_path and error["type"] == "value_error":
        named, _, message = str(error.get("ctx", {}).get("error", "")).partition(": ")
        if message and " " not in named:
            return named, message
    return field_path or "document", error["msg"]


def _dump_trajectory(trajectory: Trajectory) -> bytes:
    return trajectory.__pydantic_serializer__.to_json(trajectory)


class TrajectoryStore:
    """Reads the trajectories under a base dir and seals journals their writers left behind."""

    def __init__(self, base_dir: StoreLayout | Path):
        self.layout = StoreLayout.of(base_dir)
        self.folder = self.layout.trajectories_dir

    def files(self) -> list[TrajectoryFile]:
        """Every segment and every open journal (unless already sealed), oldest first."""
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return []
        segments = {name[: -len(".json")] for name in names if name.endswith(".json") and not name.startswith(".")}
        found = [TrajectoryFile(key, self.folder / f"{key}.json", True) for key in segments]
        for name in names:
            if name.startswith(JOURNAL_PREFIX) and name.endswith(JOURNAL_SUFFIX):
                key = name[len(JOURNAL_PREFIX): -len(JOURNAL_SUFFIX)]
                if key not in segments:
                    found.append(TrajectoryFile(key, self.folder / name, False))
        return sorted(found, key=lambda item: item.key)

    def read_documents(self, item: TrajectoryFile) -> list[Any]:
        """The raw documents of one file; a journal's torn last line (a write cut short) is left out."""
        if item.sealed:
            return _segment_documents(item.path)
        data = read_store_bytes(item.path)
        if data is None:
            # Its writer sealed it between listing and reading.
            return _segment_documents(self.folder / f"{item.key}.json")
        lines = data.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        elif lines:
            lines.pop()  # no newline yet: the write is still in flight or was cut short
        documents: list[Any] = []
        for line in lines:
            try:
                documents.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                documents.append({"unparseable_line": line[:200].decode("utf-8", "replace")})
        return documents

    def read_batch(self, item: TrajectoryFile) -> TrajectoryBatch:
        """Validate one file's documents in bulk; refused ones are reported, never fatal."""
        with gc_paused():
            if item.sealed:
                valid = _valid_segment(item.path)
                if valid is not None:
                    return TrajectoryBatch(item, valid, [])
            file_name = str(item.path.relative_to(self.layout.base_dir))
            try:
                documents = self.read_documents(item)
            except CorruptDocumentError as exc:
                return TrajectoryBatch(item, [], [InvalidTrajectory(
                    file_name, UNREADABLE_FILE, f"document: the whole file is unreadable ({exc.detail})")])
            valid, invalid = validate_trajectories(documents, file_name)
        return TrajectoryBatch(item, valid, invalid)

    def read_plain_documents(self, item: TrajectoryFile) -> list[dict] | None:
        """A sealed segment's documents validated by the Trajectory rules in one call, as plain dicts; None for a
        journal or when any document fails (read_batch then says which and why)."""
        if not item.sealed:
            return None
        with gc_paused():
            try:
                documents = list(_PLAIN_SEGMENT_FILE.validate_json(read_store_bytes(item.path) or b"")[SEGMENT_TABLE].values())
            except (ValidationError, OSError, CorruptDocumentError):
                return None
            for document in documents:
                if "trajectory_id" not in document or choice_problem(
                        [candidate["candidate_id"] for candidate in document["candidates"]],
                        document["decision"]["chosen_candidate_id"]):
                    return None
        return documents

    def iter_batches(self) -> Iterator[TrajectoryBatch]:
        """Every file's batch, oldest first."""
        for item in self.files():
            yield self.read_batch(item)

    def load_all(self) -> tuple[list[Trajectory], list[InvalidTrajectory]]:
        """Every valid trajectory, oldest first, with the refused ones."""
        trajectories: list[Trajectory] = []
        invalid: list[InvalidTrajectory] = []
        for batch in self.iter_batches():
            trajectories.extend(batch.trajectories)
            invalid.extend(batch.invalid)
        return trajectories, invalid

    def journals(self) -> list[TrajectoryFile]:
        """Every journal file, including one whose segment exists already (a writer died while removing it)."""
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return []
        return sorted((TrajectoryFile(name[len(JOURNAL_PREFIX): -len(JOURNAL_SUFFIX)], self.folder / name, False)
                       for name in names if name.startswith(JOURNAL_PREFIX) and name.endswith(JOURNAL_SUFFIX)),
                      key=lambda item: item.key)

    def writer_alive(self, item: TrajectoryFile) -> bool:
        """Whether the process writing this journal may still append to it."""
        return _writer_alive(item.key)

    def abandoned_journals(self) -> list[TrajectoryFile]:
        """Journals whose writer process is gone (including one it died while removing after sealing it)."""
        return [item for item in self.journals() if not _writer_alive(item.key)]

    def journal_matches_segment(self, item: TrajectoryFile) -> bool:
        """Whether the segment of the journal's name holds exactly the journal's complete lines."""
        try:
            return self.read_documents(item) == self.read_documents(
                TrajectoryFile(item.key, self.folder / f"{item.key}.json", True))
        except CorruptDocumentError:
            return False

    def seal(self, item: TrajectoryFile) -> None:
        """Seal one journal of a dead writer into its segment."""
        _seal_journal(self, item)

    def seal_abandoned_journals(self) -> int:
        """Seal the journals of dead writers into segments; return how many were sealed."""
        sealed = 0
        for item in self.abandoned_journals():
            _seal_journal(self, item)
            sealed += 1
        return sealed


def _valid_segment(path: Path) -> list[Trajectory] | None:
    """Parse and validate a whole segment in one call straight from its bytes; None if any part fails."""
    try:
        return list(_SEGMENT_FILE.validate_json(read_store_bytes(path) or b"")["trajectories"].values())
    except (ValidationError, OSError, CorruptDocumentError):
        return None  # the document-by-document path reports what is wrong


def _segment_documents(path: Path) -> list[Any]:
    data = read_json(path)
    if data is None:
        return []
    table = data.get(SEGMENT_TABLE) if isinstance(data, dict) else None
    if not isinstance(table, dict):
        raise CorruptDocumentError(path, f"expected a {SEGMENT_TABLE!r} table")
    return list(table.values())


def _seal_journal(store: TrajectoryStore, item: TrajectoryFile, lines: list[bytes] | None = None) -> None:
    """Write the journal's complete lines as a segment, then remove the journal (left alone if an existing
    segment of its name holds anything else).

    Its own writer passes the lines it wrote (each a whole JSON document), which are copied without parsing.
    """
    segment = store.folder / f"{item.key}.json"
    if segment.exists():
        if not store.journal_matches_segment(item):
            return
    elif lines is None:
        with gc_paused():
            documents = store.read_documents(item)
        if documents:
            # The table TinyDB's insert_multiple would write (doc ids from 1), without its per-document bookkeeping.
            write_table(segment, SEGMENT_TABLE, documents)
    elif lines:
        table = b",".join(b'"%d":%s' % (doc_id, line) for doc_id, line in enumerate(lines, start=1))
        atomic_write_bytes(segment, b'{"%s":{%s}}\n' % (SEGMENT_TABLE.encode(), table))
    item.path.unlink(missing_ok=True)


_LIVE_WRITERS: set[str] = set()


def _writer_alive(key: str) -> bool:
    writer_id = key.rsplit("-", 1)[0]
    if writer_id in _LIVE_WRITERS:
        return True
    try:
        pid = int(writer_id.split("-")[1])
    except (IndexError, ValueError):
        return False
    return pid != os.getpid() and process_alive(pid)


class TrajectoryWriter:
    """Appends trajectories for one process: one write() each to its own journal, never a lock."""

    def __init__(self, base_dir: Path | str, max_documents: int = MAX_SEGMENT_DOCUMENTS, fsync: bool = False):
        self.store = TrajectoryStore(Path(base_dir))
        self.max_documents = max_documents
        self.fsync = fsync
        stamp = utc_now().strftime("%Y%m%d%H%M%S%f")  # microseconds: files sort in the order they were started
        self.writer_id = f"{stamp}-{os.getpid()}-{secrets.token_hex(3)}"
        self._sequence = 0
        self._fd: int | None = None
        self._lines: list[bytes] = []
        self._journal_size = 0
        self._mutex = threading.Lock()

    @property
    def _journal_path(self) -> Path:
        return self.store.folder / f"{JOURNAL_PREFIX}{self.writer_id}-{self._sequence:06d}{JOURNAL_SUFFIX}"

    def append(self, trajectory: Trajectory | dict | None = None, /, **fields: Any) -> Trajectory:
        """Validate and append one trajectory (or its fields as keywords, as `append_trajectory` takes them); once
        this returns, the trajectory survives a crash of the process."""
        if trajectory is None:
            trajectory = fields
        elif fields:
            raise BadInputError("append() takes a trajectory or its fields as keywords, not both")
        if not isinstance(trajectory, Trajectory):
            try:
                trajectory = Trajectory.model_validate(trajectory)
            except ValidationError as exc:
                raise BadInputError(f"trajectory refused: {describe_validation_error(exc)}") from exc
        try:
            document = _dump_trajectory(trajectory)
        except (ValueError, TypeError) as exc:  # e.g. nested past the serialiser's depth in a model built unchecked
            raise BadInputError(f"trajectory refused: it cannot be stored as JSON ({str(exc)[:200]})") from exc
        line = document + b"\n"
        with self._mutex:
            fd = self._open()
            try:
                write_all(fd, line)
                if self.fsync:
                    os.fsync(fd)
            except OSError as exc:
                error = _write_error(self._journal_path, exc)
                self._drop_torn_line()
                raise error from exc
            self._journal_size += len(line)
            self._lines.append(document)
            if len(self._lines) >= self.max_documents:
                self._seal()
        return trajectory

    def append_many(self, trajectories) -> int:
        """Append each trajectory in order; return how many were appended."""
        count = 0
        for trajectory in trajectories:
            self.append(trajectory)
            count += 1
        return count

    def _open(self) -> int:
        if self._fd is None:
            try:
                self.store.folder.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self._journal_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o644)
            except OSError as exc:
                raise _write_error(self._journal_path, exc) from exc
            _LIVE_WRITERS.add(self.writer_id)
        return self._fd

    def _drop_torn_line(self) -> None:
        """Cut a failed append's partial line off the journal, or seal the journal without it if that fails too,
        so the next append never lands glued to it."""
        try:
            os.ftruncate(self._fd, self._journal_size)
        except OSError:
            self._seal()

    def _seal(self) -> None:
        if self._fd is None:
            return
        os.close(self._fd)
        self._fd = None
        self._journal_size = 0
        key = f"{self.writer_id}-{self._sequence:06d}"
        try:
            _seal_journal(self.store, TrajectoryFile(key, self._journal_path, False), self._lines)
        except StoreWriteError:
            pass  # the journal stays and still counts; a later cycle seals it
        self._sequence += 1
        self._lines = []

    def close(self) -> None:
        """Seal the open journal into a segment."""
        with self._mutex:
            self._seal()
            _LIVE_WRITERS.discard(self.writer_id)

    def __enter__(self) -> "TrajectoryWriter":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


_SHARED_WRITERS: dict[Path, TrajectoryWriter] = {}
_SHARED_MUTEX = threading.Lock()


def shared_writer(base_dir: Path | str) -> TrajectoryWriter:
    """This process's writer for a base dir, sealed when the process exits."""
    key = Path(base_dir).resolve()
    with _SHARED_MUTEX:
        writer = _SHARED_WRITERS.get(key)
        if writer is None:
            writer = _SHARED_WRITERS[key] = TrajectoryWriter(key)
        return writer


@atexit.register
def _close_shared_writers() -> None:
    for writer in list(_SHARED_WRITERS.values()):
        try:
            writer.close()
        except Exception:  # noqa: BLE001 - exit must not fail; the journal is sealed later
            pass
