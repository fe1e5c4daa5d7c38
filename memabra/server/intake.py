"""Trajectories posted over HTTP: validated as `--ingest` validates lines, appended through the process's shared
writer, and an id the store already holds is skipped, so a retried post stores nothing twice."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import orjson

from memabra.ingest import ingest_lines
from memabra.storage.trajectories import TrajectoryFile, TrajectoryStore, gc_paused, shared_writer

REQUEST_SOURCE = "request"


class StoredIds:
    """The ids of every trajectory in the store, kept current by reading only what changed since the last look:
    segments not read yet and the new complete lines of other writers' journals."""

    def __init__(self, base_dir: Path, own_writer_id: str):
        self.store = TrajectoryStore(base_dir)
        self.ids: set[str] = set()
        self._own_prefix = own_writer_id + "-"
        self._sealed_read: set[str] = set()
        self._journal_offsets: dict[str, int] = {}
        self._cache = None

    def refresh(self) -> None:
        """Take in trajectories other processes stored since the last call (this writer's own are added as appended)."""
        for item in self.store.files():
            if item.sealed:
                if item.key not in self._sealed_read:
                    if not item.key.startswith(self._own_prefix):
                        self._read_segment(item)
                    self._sealed_read.add(item.key)
                    self._journal_offsets.pop(item.key, None)
            elif not item.key.startswith(self._own_prefix):
                self._read_journal_tail(item)

    def _read_segment(self, item: TrajectoryFile) -> None:
        cached_ids = self._summary_cache().load_ids(item)
        if cached_ids is not None:
            self.ids.update(cached_ids)
            return
        with gc_paused():
            documents = self.store.read_documents(item)
        self._add_documents(documents)

    def _summary_cache(self):
        if self._cache is None:
            from memabra.learning.dataset import DatasetBuilder
            from memabra.learning.summaries import SummaryCache

            self._cache = SummaryCache(self.store.layout, DatasetBuilder())
        return self._cache

    def _read_journal_tail(self, item: TrajectoryFile) -> None:
        offset = self._journal_offsets.get(item.key, 0)
        try:
            with item.path.open("rb") as handle:
                handle.seek(offset)
                data = handle.read()
        except FileNotFoundError:
            return  # sealed meanwhile: the next look reads its segment
        complete = data.rfind(b"\n") + 1  # a line still being written is read next time
        documents = []
        for line in data[:complete].split(b"\n"):
            if not line:
                continue
            try:
                documents.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                continue  # the store's readers report it; it holds no id to skip
        self._add_documents(documents)
        self._journal_offsets[item.key] = offset + complete

    def _add_documents(self, documents: list[Any]) -> None:
        for document in documents:
            if isinstance(document, dict) and isinstance(document.get("trajectory_id"), str):
                self.ids.add(document["trajectory_id"])


class TrajectoryIntake:
    """Imports posted JSON Lines one request at a time, so two posts of the same id never both store it."""

    def __init__(self, base_dir: Path):
        self.writer = shared_writer(base_dir)
        self.stored = StoredIds(Path(base_dir), self.writer.writer_id)
        self._mutex = threading.Lock()

    def load(self) -> None:
        """Read the ids already stored (done before serving, so the first post is not the slow one)."""
        with self._mutex:
            self.stored.refresh()

    def ingest(self, body: bytes) -> dict[str, Any]:
        """Store the body's valid new trajectories; return the counts and the refused lines as `--ingest` does."""
        with self._mutex:
            self.stored.refresh()
            with gc_paused():
                result = ingest_lines(body.split(b"\n"), self.writer, self.stored.ids, REQUEST_SOURCE)
        return {
            "line_count": result["line_count"],
            "stored_count": result["stored_count"],
            "duplicate_count": result["duplicate_count"],
            "invalid_count": result["invalid_count"],
            "invalid": [{key: value for key, value in entry.items() if key != "file"} for entry in result["invalid"]],
            "invalid_truncated": result["invalid_truncated"],
        }

    def close(self) -> None:
        """Seal the writer's open journal into a segment (a later post opens a new journal)."""
        self.writer.close()
