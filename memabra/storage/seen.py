"""The ids of trajectories a cycle has already used, so a repeat cycle only counts what is new."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pydantic import Field

from memabra.models import Document, utc_now
from memabra.storage.documents import DocumentFile


class SeenTrajectories(Document):
    """The seen-ids document."""

    trajectory_ids: list[str] = Field(default_factory=list)
    updated_at: str | None = None


class SeenTrajectoryStore:
    """A persistent set of trajectory ids (default `<base-dir>/seen-trajectories.json`)."""

    def __init__(self, path: Path):
        self.file = DocumentFile(Path(path), SeenTrajectories)

    @property
    def path(self) -> Path:
        return self.file.path

    def load(self) -> set[str]:
        """The ids seen so far (empty when the file does not exist yet)."""
        document = self.file.read()
        return set(document.trajectory_ids) if document else set()

    def add(self, trajectory_ids: Iterable[str], already_seen: set[str] | None = None) -> int:
        """Mark ids as seen, atomically; return how many were new."""
        seen = self.load() if already_seen is None else set(already_seen)
        before = len(seen)
        seen.update(trajectory_ids)
        self.file.write(SeenTrajectories(trajectory_ids=sorted(seen), updated_at=utc_now().isoformat()))
        return len(seen) - before
