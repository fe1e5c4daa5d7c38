"""What a cycle needs from one trajectory file (ids, refused documents, training statistics), cached per segment.

Sealed segments never change, so their summaries are computed once and kept under `<base-dir>/.cache/segments/`;
a cached summary that is missing, stale (its segment's size, mtime, inode or ctime changed), unreadable or failing
its own digest is simply rebuilt. The segment's content hash is recorded beside them, for `--check` to compare: a
cycle does not read a segment again to trust its summary.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat as stat_kind
import zipfile
from dataclasses import dataclass, field

import numpy as np
import orjson

from memabra.errors import CorruptDocumentError, StoreWriteError
from memabra.learning.dataset import DatasetBuilder, TrainingStats
from memabra.storage.atomic import atomic_write_bytes
from memabra.storage.layout import StoreLayout
from memabra.storage.safe_io import MAX_DOCUMENT_BYTES, open_regular, read_store_bytes
from memabra.storage.trajectories import InvalidTrajectory, TrajectoryBatch, TrajectoryFile, TrajectoryStore, gc_paused

CACHE_FORMAT = 4
"""Bumped whenever what a summary holds changes, so older cache files count as stale."""
STATS_PREFIX = "stats_"
"""Array names of the statistics inside a cache file (the rest are the summary's own)."""


@dataclass
class FileSummary:
    """One file's valid trajectory ids (in order, each once), which of them are benchmark runs, the refused
    documents, and the training statistics of its non-benchmark trajectories (None when only the ids were read:
    a running total holds the statistics)."""

    key: str
    ids: list[str]
    benchmark: np.ndarray
    invalid: list[InvalidTrajectory]
    stats: TrainingStats | None
    sealed: bool = True
    training_ids: list[str] = field(init=False)

    def __post_init__(self):
        self.training_ids = [tid for tid, is_benchmark in zip(self.ids, self.benchmark.tolist()) if not is_benchmark]

    @property
    def benchmark_count(self) -> int:
        return int(self.benchmark.sum())

    @property
    def training_count(self) -> int:
        return len(self.training_ids)

    def without(self, skip_ids: set[str]) -> "FileSummary":
        """The ids-only summary left when `skip_ids` are dropped (statistics are not kept)."""
        kept = [tid not in skip_ids for tid in self.ids]
        return FileSummary(self.key, [tid for tid, keep in zip(self.ids, kept) if keep], self.benchmark[kept],
                           self.invalid, None, self.sealed)

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

    def _meta(self, arrays, item: TrajectoryFile) -> dict | None:
        """The cache file's meta when it still describes the segment as it is on disk (size, times, inode)."""
        meta = orjson.loads(arrays["meta"].tobytes())
        signature = segment_signature(item.path)
        return meta if signature is not None and meta.get("file") == signature else None

    def _open(self, item: TrajectoryFile):
        """The cache file's arrays, read through the store's bounded reader."""
        return np.load(io.BytesIO(read_store_bytes(self._path(item)) or b""), allow_pickle=False)

    def load_ids(self, item: TrajectoryFile) -> list[str] | None:
        """The ids of a sealed segment from its cache whatever learner built it, or None when missing or stale."""
        summary = self.load_ids_summary(item)
        return None if summary is None else summary.ids

    def load_ids_summary(self, item: TrajectoryFile) -> FileSummary | None:
        """A sealed segment's cached ids, benchmark flags and refused documents without its statistics (their
        arrays are not read), or None when missing, stale or failing the ids' own digest."""
        try:
            fd = open_regular(self._path(item))
        except (FileNotFoundError, CorruptDocumentError):
            return None
        try:
            with os.fdopen(fd, "rb") as handle:
                if os.fstat(handle.fileno()).st_size > MAX_DOCUMENT_BYTES:
                    return None
                with np.load(handle, allow_pickle=False) as arrays:
                    meta = self._meta(arrays, item)
                    if meta is None:
                        return None
                    benchmark = arrays["benchmark"]
            if meta.get("ids_digest") != ids_digest(meta, benchmark) or len(benchmark) != len(meta["ids"]):
                return None
            invalid = [InvalidTrajectory(**entry) for entry in meta["invalid"]]
            return FileSummary(item.key, meta["ids"], benchmark.astype(bool), invalid, None)
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, orjson.JSONDecodeError, EOFError,
                CorruptDocumentError):
            return None

    def load(self, item: TrajectoryFile) -> FileSummary | None:
        """The cached summary of a sealed segment, or None when it is missing, stale, built for another learner
        configuration, unreadable or fails its digest (a summary altered after it was written is not trusted)."""
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
        signature, content_hash = signed_content_hash(item.path)
        if signature is None:
            return
        arrays = {"benchmark": summary.benchmark,
                  **{STATS_PREFIX + name: array for name, array in summary.stats.to_arrays().items()}}
        if not all(np.isfinite(array).all() for name, array in arrays.items() if name != STATS_PREFIX + "meta"):
            return
        meta = {"file": signature, "sha256": content_hash, "learner": self.builder.signature(), "ids": summary.ids,
                "invalid": [entry.to_dict() for entry in summary.invalid]}
        meta["ids_digest"] = ids_digest(meta, summary.benchmark)
        meta["digest"] = summary_digest(meta, arrays)
        buffer = io.BytesIO()
        np.savez(buffer, meta=np.frombuffer(orjson.dumps(meta), dtype=np.uint8), **arrays)
        try:
            atomic_write_bytes(self._path(item), buffer.getvalue())
        except StoreWriteError:
            pass


def segment_signature(path) -> dict | None:
    """What a cycle checks to trust a summary of the segment at `path` without reading it: its size, modification
    and change times and inode (None when it is missing or not a regular file). Writing a file in place always
    moves its ctime, which no user can set back."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    if not stat_kind.S_ISREG(info.st_mode):
        return None
    return {"format": CACHE_FORMAT, "size": info.st_size, "mtime_ns": info.st_mtime_ns, "ctime_ns": info.st_ctime_ns,
            "inode": info.st_ino}


def signed_content_hash(path) -> tuple[dict | None, str | None]:
    """A segment's signature and the sha256 of its content, read between two identical signatures (else None)."""
    before = segment_signature(path)
    try:
        content = read_store_bytes(path)
    except (OSError, CorruptDocumentError):
        return None, None
    if before is None or content is None or segment_signature(path) != before:
        return None, None
    return before, hashlib.sha256(content).hexdigest()


def ids_digest(meta: dict, benchmark: np.ndarray) -> str:
    """A hash of what an ids-only read trusts: the segment's signature and hash, ids, refused documents and
    benchmark flags."""
    digest = hashlib.sha256(orjson.dumps([meta.get("file"), meta.get("sha256"), meta.get("ids"), meta.get("invalid")]))
    digest.update(np.ascontiguousarray(benchmark, dtype=bool).tobytes())
    return digest.hexdigest()


def summary_digest(meta: dict, arrays) -> str:
    """A hash of everything a cached summary holds (its meta but the digest, and every array but the meta)."""
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
