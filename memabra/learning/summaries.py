"""What a cycle needs from one trajectory file (ids, refused documents, training statistics), cached per segment.

Sealed segments never change, so their summaries are computed once and kept under `<base-dir>/.cache/segments/`;
a cached summary that is missing, stale (its segment's size, mtime or content hash changed), unreadable or
failing its own digest is simply rebuilt.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass, field

import numpy as np
import orjson

from memabra.errors import CorruptDocumentError, StoreWriteError
from memabra.learning.dataset import DatasetBuilder, TrainingStats
from memabra.storage.atomic import atomic_write_bytes
from memabra.storage.layout import StoreLayout
from memabra.storage.safe_io import read_store_bytes
from memabra.storage.trajectories import InvalidTrajectory, TrajectoryBatch, TrajectoryFile, TrajectoryStore, gc_paused

CACHE_FORMAT = 3
"""Bumped whenever what a summary holds changes, so older cache files count as stale."""
STATS_PREFIX = "stats_"
"""Array names of the statistics inside a cache file (the rest are the summary's own)."""


@dataclass
class FileSummary:
    """One file's valid trajectory ids (in order, each once), which of them are benchmark runs, the refused
    documents, and the training statistics of its non-benchmark trajectories."""

    key: str
    ids: list[str]
    benchmark: np.ndarray
    invalid: list[InvalidTrajectory]
    stats: TrainingStats
    sealed: bool = True
    training_ids: list[str] = field(init=False)

    def __post_init__(self):
        self.training_ids = [tid for tid, is_benchmark in zip(self.ids, self.benchmark.tolist()) if not is_benchmark]

    @property
    def benchmark_count(self) -> int:
        return int(self.benchmark.sum())

    @classmethod
    def of_batch(cls, batch: TrajectoryBatch, builder: DatasetBuilder, skip_ids: set[str] | None = None) -> "FileSummary":
        """Summarise a validated file, keeping each id's first run and leaving out the ids in skip_ids."""
        kept = _first_runs(batch.trajectories, lambda t: t.trajectory_id, skip_ids)
        benchmark = np.fromiter((t.is_benchmark for t in kept), dtype=bool, count=len(kept))
        stats = builder.file_stats([t for t in kept if not t.is_benchmark])
        return cls(batch.file.key, [t.trajectory_id for t in kept], benchmark, list(batch.invalid), stats,
                   batch.file.sealed)

    @classmethod
    def of_documents(cls, item: TrajectoryFile, documents: list[dict], builder: DatasetBuilder,
                     skip_ids: set[str] | None = None) -> "FileSummary":
        """Summarise a segment whose documents all passed validation as plain dicts (the same as of_batch)."""
        kept = _first_runs(documents, lambda d: d["trajectory_id"], skip_ids)
        benchmark = np.fromiter((d.get("source") == "benchmark" for d in kept), dtype=bool, count=len(kept))
        stats = builder.file_stats_of_documents([d for d, is_benchmark in zip(kept, benchmark.tolist())
                                                 if not is_benchmark])
        return cls(item.key, [d["trajectory_id"] for d in kept], benchmark, [], stats, item.sealed)


def _first_runs(items: list, id_of, skip_ids: set[str] | None) -> list:
    """The items whose id is not in skip_ids, each id's first occurrence only."""
    seen = set(skip_ids or ())
    kept = []
    for item in items:
        item_id = id_of(item)
        if item_id not in seen:
            seen.add(item_id)
            kept.append(item)
    return kept


class SummaryCache:
    """Summaries of sealed segments, one `.npz` file per segment: ids for any configuration, statistics for the
    learner configuration (and half-life) they were built with."""

    def __init__(self, layout: StoreLayout, builder: DatasetBuilder):
        self.folder = layout.cache_dir / "segments"
        self.builder = builder

    def _path(self, item: TrajectoryFile):
        return self.folder / f"{item.key}.npz"

    def _file_signature(self, item: TrajectoryFile) -> dict | None:
        try:
            stat = item.path.stat()
            content = read_store_bytes(item.path)
        except (OSError, CorruptDocumentError):
            return None
        if content is None:
            return None
        return {"format": CACHE_FORMAT, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                "sha256": hashlib.sha256(content).hexdigest()}

    def _meta(self, arrays, item: TrajectoryFile) -> dict | None:
        """The cache file's meta when it still describes the segment as it is on disk (size, time and content)."""
        signature = self._file_signature(item)
        meta = orjson.loads(arrays["meta"].tobytes())
        return meta if signature is not None and meta.get("file") == signature else None

    def _open(self, item: TrajectoryFile):
        """The cache file's arrays, read through the store's bounded reader."""
        return np.load(io.BytesIO(read_store_bytes(self._path(item)) or b""), allow_pickle=False)

    def load_ids(self, item: TrajectoryFile) -> list[str] | None:
        """The ids of a sealed segment from its cache whatever learner built it, or None when missing or stale."""
        try:
            with self._open(item) as arrays:
                meta = self._meta(arrays, item)
                if meta is None or meta.get("digest") != summary_digest(meta, arrays):
                    return None
                return list(meta["ids"])
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, orjson.JSONDecodeError, EOFError,
                CorruptDocumentError):
            return None

    def load(self, item: TrajectoryFile) -> FileSummary | None:
        """The cached summary of a sealed segment, or None when it is missing, stale, built for another learner
        configuration, unreadable or fails its digest (the segment's content hash and the summary's own hash must
        both match, so a forged cache is not trusted)."""
        try:
            with self._open(item) as arrays:
                meta = self._meta(arrays, item)
                if meta is None or meta.get("learner") != self.builder.signature():
                    return None
                if meta.get("digest") != summary_digest(meta, arrays):
                    return None
                stats = TrainingStats.from_arrays(self.builder.config, {
                    name[len(STATS_PREFIX):]: arrays[name] for name in arrays.files if name.startswith(STATS_PREFIX)})
                benchmark = arrays["benchmark"]
            if len(benchmark) != len(meta["ids"]):
                return None
            invalid = [InvalidTrajectory(**entry) for entry in meta["invalid"]]
            return FileSummary(item.key, meta["ids"], benchmark.astype(bool), invalid, stats)
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, orjson.JSONDecodeError, EOFError,
                CorruptDocumentError):
            return None

    def save(self, item: TrajectoryFile, summary: FileSummary) -> None:
        """Keep a sealed segment's summary (atomically); a store we may not write just goes without."""
        signature = self._file_signature(item)
        if signature is None:
            return
        arrays = {"benchmark": summary.benchmark,
                  **{STATS_PREFIX + name: array for name, array in summary.stats.to_arrays().items()}}
        if not all(np.isfinite(array).all() for name, array in arrays.items() if name != STATS_PREFIX + "meta"):
            return
        meta = {"file": signature, "learner": self.builder.signature(), "ids": summary.ids,
                "invalid": [entry.to_dict() for entry in summary.invalid]}
        meta["digest"] = summary_digest(meta, arrays)
        buffer = io.BytesIO()
        np.savez(buffer, meta=np.frombuffer(orjson.dumps(meta), dtype=np.uint8), **arrays)
        try:
            atomic_write_bytes(self._path(item), buffer.getvalue())
        except StoreWriteError:
            pass


def summary_digest(meta: dict, arrays) -> str:
    """A hash of everything a cached summary holds (its meta but the digest, and every array but the meta), bound
    to its segment's content hash through the meta."""
    digest = hashlib.sha256()
    body = {key: value for key, value in meta.items() if key != "digest"}
    digest.update(orjson.dumps(body, option=orjson.OPT_SORT_KEYS))
    names = arrays.files if hasattr(arrays, "files") else list(arrays)
    for name in sorted(name for name in names if name != "meta"):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def summarise_file(store: TrajectoryStore, item, builder: DatasetBuilder, skip_ids: set[str] | None = None):
    """A file's summary: from plain documents when the whole segment is valid, else from models."""
    documents = store.read_plain_documents(item)
    if documents is not None:
        with gc_paused():
            return FileSummary.of_documents(item, documents, builder, skip_ids)
    return FileSummary.of_batch(store.read_batch(item), builder, skip_ids)
