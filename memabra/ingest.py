"""Import trajectories an agent wrote as JSON Lines: valid lines are appended, invalid ones reported by line."""

from __future__ import annotations

import hashlib
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import orjson

from memabra.errors import BadInputError
from memabra.storage.safe_io import file_kind
from memabra.models import MAX_NESTING_DEPTH, nesting_depth
from memabra.storage.trajectories import InvalidTrajectory, TrajectoryStore, TrajectoryWriter, gc_paused, validate_trajectories

INGEST_BATCH_LINES = 5_000
"""Lines validated (and appended) together; bounds the memory an import of a huge file needs."""

MAX_REPORTED_INVALID = 1_000
"""Invalid lines listed one by one in the result; the counts always cover all of them."""

CONTENT_ID_PREFIX = "sha256-"
UTF8_BOM = b"\xef\xbb\xbf"


def content_trajectory_id(document: dict[str, Any]) -> str:
    """A stable id for a line without one: the hash of its content, so importing it again stores nothing twice."""
    canonical = orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
    return CONTENT_ID_PREFIX + hashlib.sha256(canonical).hexdigest()[:32]


def jsonl_files(path: Path) -> list[Path]:
    """The file itself, or the `*.jsonl` files directly inside a folder, in name order."""
    if path.is_dir():
        files = sorted(item for item in path.glob("*.jsonl") if item.is_file())
        if not files and skipped_entries(path):
            name, reason = next(iter(skipped_entries(path).items()))
            raise BadInputError(f"--ingest {path} holds no regular *.jsonl file ({name} is {reason}); give a .jsonl "
                                "file or a folder of them")
        if not files:
            raise BadInputError(f"--ingest {path} holds no *.jsonl files; give a .jsonl file or a folder of them")
        return files
    if path.is_file():
        return [path]
    raise BadInputError(f"--ingest {path} does not exist; give a .jsonl file or a folder of them")


def skipped_entries(folder: Path) -> dict[str, str]:
    """The `*.jsonl` entries of a folder that are not regular files (FIFOs, devices, folders, broken links), each
    with what it is; an import skips them and says so."""
    skipped = {}
    for item in sorted(folder.glob("*.jsonl")):
        try:
            mode = item.stat().st_mode
        except OSError:
            skipped[str(item)] = "a broken link"
            continue
        if not stat.S_ISREG(mode):
            skipped[str(item)] = file_kind(mode)
    return skipped


def stored_trajectory_ids(base_dir: Path) -> set[str]:
    """Ids of every trajectory already in the store: from the cycles' cached segment summaries where they are
    fresh, else read from the file without validating its documents."""
    from memabra.learning.dataset import DatasetBuilder
    from memabra.learning.summaries import SummaryCache

    store = TrajectoryStore(base_dir)
    cache = SummaryCache(store.layout, DatasetBuilder())
    ids: set[str] = set()
    for item in store.files():
        cached_ids = cache.load_ids(item) if item.sealed else None
        if cached_ids is not None:
            ids.update(cached_ids)
            continue
        with gc_paused():
            documents = store.read_documents(item)
        for document in documents:
            if isinstance(document, dict) and isinstance(document.get("trajectory_id"), str):
                ids.add(document["trajectory_id"])
    return ids


@dataclass
class FileCounts:
    """What one imported file held."""

    file: str
    line_count: int = 0
    stored_count: int = 0
    duplicate_count: int = 0
    invalid_count: int = 0


@dataclass
class IngestResult:
    """Counts per file and in total, and the invalid lines with the field at fault."""

    files: list[FileCounts] = field(default_factory=list)
    invalid: list[dict[str, Any]] = field(default_factory=list)

    def add_invalid(self, counts: FileCounts, line: int, field_path: str, error: str) -> None:
        counts.invalid_count += 1
        if len(self.invalid) < MAX_REPORTED_INVALID:
            self.invalid.append({"file": counts.file, "line": line, "field": field_path, "error": error})

    def to_dict(self) -> dict[str, Any]:
        total = lambda name: sum(getattr(counts, name) for counts in self.files)  # noqa: E731
        invalid_count = total("invalid_count")
        return {
            "file_count": len(self.files),
            "line_count": total("line_count"),
            "stored_count": total("stored_count"),
            "duplicate_count": total("duplicate_count"),
            "invalid_count": invalid_count,
            "files": [vars(counts) for counts in self.files],
            "invalid": sorted(self.invalid, key=lambda item: (item["file"], item["line"])),
            "invalid_truncated": invalid_count > len(self.invalid),
        }


class _FileImport:
    """Reads one file's lines in batches, validates each batch in bulk and appends the new valid trajectories."""

    def __init__(self, path: Path, counts: FileCounts, result: IngestResult, writer: TrajectoryWriter,
                 known_ids: set[str]):
        self.path = path
        self.counts = counts
        self.result = result
        self.writer = writer
        self.known_ids = known_ids
        self.documents: list[Any] = []
        self.line_numbers: list[int] = []

    def run(self, on_bytes: Callable[[int], None] | None = None) -> None:
        """Import the file; `on_bytes(n)` is told how many bytes each batch read."""
        batch_bytes = 0
        try:
            with self.path.open("rb") as handle:
                for number, raw in enumerate(handle, start=1):
                    batch_bytes += len(raw)
                    self.read_line(number, raw)
                    if len(self.documents) >= INGEST_BATCH_LINES:
                        self.flush()
                        if on_bytes:
                            on_bytes(batch_bytes)
                        batch_bytes = 0
        except OSError as exc:
            raise BadInputError(f"cannot read --ingest file {self.path}: {exc.strerror or exc}") from exc
        self.flush()
        if on_bytes:
            on_bytes(batch_bytes)

    def read_line(self, number: int, raw: bytes) -> None:
        if number == 1 and raw.startswith(UTF8_BOM):
            raw = raw[len(UTF8_BOM):]  # editors on Windows start UTF-8 files with a byte-order mark
        if not raw.strip():
            return
        self.counts.line_count += 1
        try:
            document = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            self.result.add_invalid(self.counts, number, "document", f"not valid JSON ({exc})")
            return
        if isinstance(document, dict):
            if document.get("trajectory_id") is None:
                document.pop("trajectory_id", None)
                if nesting_depth(document, MAX_NESTING_DEPTH) > MAX_NESTING_DEPTH:
                    self.result.add_invalid(self.counts, number, "document",
                                            f"nested deeper than {MAX_NESTING_DEPTH} levels of objects and arrays")
                    return
                document["trajectory_id"] = content_trajectory_id(document)
            if isinstance(document["trajectory_id"], str) and document["trajectory_id"] in self.known_ids:
                self.counts.duplicate_count += 1  # already stored: skipped without validating it again
                return
        self.documents.append(document)
        self.line_numbers.append(number)

    def flush(self) -> None:
        if not self.documents:
            return
        try:
            checked = [validate_trajectories(self.documents, self.counts.file)]
            numbers = [self.line_numbers]
        except Exception:  # noqa: BLE001 - one document the bulk call cannot place: validate line by line
            checked = [_validate_one(document, self.counts.file) for document in self.documents]
            numbers = [[number] for number in self.line_numbers]
        for (valid, invalid), line_numbers in zip(checked, numbers):
            for refused in invalid:
                self.result.add_invalid(self.counts, line_numbers[refused.position], refused.field,
                                        refused.error.partition(": ")[2])
            self.store_valid(valid, line_numbers, invalid)
        self.documents, self.line_numbers = [], []

    def store_valid(self, valid: list, line_numbers: list[int], invalid: list) -> None:
        refused = {entry.position for entry in invalid}
        valid_numbers = [number for position, number in enumerate(line_numbers) if position not in refused]
        for trajectory, number in zip(valid, valid_numbers):
            if trajectory.trajectory_id in self.known_ids:
                self.counts.duplicate_count += 1
                continue
            try:
                self.writer.append(trajectory)
            except BadInputError as exc:
                self.result.add_invalid(self.counts, number, "document", str(exc))
                continue
            self.known_ids.add(trajectory.trajectory_id)
            self.counts.stored_count += 1


def _validate_one(document: Any, file_name: str) -> tuple[list, list[InvalidTrajectory]]:
    """One document validated on its own; any failure refuses it (never the import)."""
    try:
        return validate_trajectories([document], file_name)
    except Exception as exc:  # noqa: BLE001 - a document pydantic cannot even place is refused like any other
        return [], [InvalidTrajectory(file_name, 0, f"document: {str(exc).splitlines()[0][:200]}")]


def ingest_lines(lines: Iterable[bytes], writer: TrajectoryWriter, known_ids: set[str],
                 source: str = "<lines>") -> dict[str, Any]:
    """Import JSON Lines given as bytes through a writer, skipping and then adding to `known_ids`; the counts and
    invalid lines (numbered from 1) in the form `ingest_trajectories` returns."""
    result = IngestResult()
    counts = FileCounts(source)
    result.files.append(counts)
    importer = _FileImport(Path(source), counts, result, writer, known_ids)
    for number, raw in enumerate(lines, start=1):
        importer.read_line(number, raw)
        if len(importer.documents) >= INGEST_BATCH_LINES:
            importer.flush()
    importer.flush()
    return result.to_dict()


def ingest_trajectories(base_dir: Path, path: Path,
                        on_progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Import a .jsonl file (or a folder of them) into the store; return the counts and the invalid lines.

    `on_progress(done, total)` counts bytes read over all files."""
    files = jsonl_files(Path(path))
    total_bytes = sum(file_path.stat().st_size for file_path in files)
    done_bytes = 0

    def advance(read: int) -> None:
        nonlocal done_bytes
        done_bytes = min(done_bytes + read, total_bytes)
        if on_progress:
            on_progress(done_bytes, total_bytes)

    known_ids = stored_trajectory_ids(base_dir)
    result = IngestResult()
    # Batches are freed by reference counting; the cyclic collector would only rescan them (doubling the time).
    with gc_paused(), TrajectoryWriter(base_dir) as writer:
        for file_path in files:
            counts = FileCounts(str(file_path))
            result.files.append(counts)
            _FileImport(file_path, counts, result, writer, known_ids).run(advance)
    summary = result.to_dict()
    summary["skipped_files"] = [{"file": name, "reason": f"it is {reason}, not a regular file; it was not read"}
                                for name, reason in (skipped_entries(Path(path)) if Path(path).is_dir() else {}).items()]
    summary["base_dir"] = str(base_dir)
    return summary
