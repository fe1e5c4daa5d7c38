"""The ids of trajectories a cycle has already used, so a repeat cycle only counts what is new."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from pydantic import Field

from memabra.models import Document, utc_now
from memabra.storage.documents import DocumentFile


class SeenTrajectories(Document):
    """The seen-ids document: ids listed one by one, plus sealed segments whose every trajectory was seen."""

    trajectory_ids: list[str] = Field(default_factory=list)
    segments: list[str] = Field(default_factory=list)
    """Sealed segments (immutable) wholly seen; their ids are not repeated in trajectory_ids, so the file stays small."""
    updated_at: str | None = None


class SeenTrajectoryStore:
    """A persistent set of trajectory ids (default `<base-dir>/seen-trajectories.json`)."""

    def __init__(self, path: Path):
        self.file = DocumentFile(Path(path), SeenTrajectories)

    @property
    def path(self) -> Path:
        return self.file.path

    def read(self) -> SeenTrajectories:
        """The document (empty when the file does not exist yet)."""
        return self.file.read() or SeenTrajectories()

    def load(self) -> set[str]:
        """The ids listed one by one (a wholly seen segment's ids are not among them)."""
        return set(self.read().trajectory_ids)

    def add(self, trajectory_ids: Iterable[str], sealed_segments: Mapping[str, Iterable[str]] | None = None,
            current: SeenTrajectories | None = None) -> int:
        """Mark ids as seen, atomically; return how many were new.

        Once every id is marked, each of `sealed_segments` (key to its ids) is wholly seen: it is recorded by key
        and its ids leave the list. `current` is the document as already read (under the cycle's lock).
        """
        document = self.read() if current is None else current
        seen = set(document.trajectory_ids)
        before = len(seen)
        seen.update(trajectory_ids)
        added = len(seen) - before
        segments = set(document.segments)
        for key, ids in (sealed_segments or {}).items():
            seen.difference_update(ids)
            segments.add(key)
        self.file.write(SeenTrajectories(trajectory_ids=sorted(seen), segments=sorted(segments),
                                         updated_at=utc_now().isoformat()))
        return added
