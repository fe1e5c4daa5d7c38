"""What a cycle needs from one trajectory file (ids, refused documents, training statistics), cached per segment.

Sealed segments never change, so their summaries are computed once and kept under `<base-dir>/.cache/segments/`;
a cached summary that is missing, stale (its segment's size, mtime or content hash changed), unreadable or
failing its own digest is simply rebuilt.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson

from memabra.errors import CorruptDocumentError, StoreWriteError
from memabra.learning.dataset import DatasetBuilder, TrainingStats
from memabra.models import CANDIDATE_KINDS
from memabra.storage.atomic import atomic_write_bytes
from memabra.storage.layout import StoreLayout
from memabra.storage.safe_io import read_store_bytes
from memabra.storage.trajectories import InvalidTrajectory, TrajectoryBatch, TrajectoryFile, TrajectoryStore, gc_paused

CACHE_FORMAT = 3
"""Bumped whenever what a summary holds changes, so older cache files count as stale."""


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
        stats = builder.stats([t for t in kept if not t.is_benchmark])
        return cls(batch.file.key, [t.trajectory_id for t in kept], benchmark, list(batch.invalid), stats,
                   batch.file.sealed)

    @classmethod
    def of_documents(cls, item: TrajectoryFile, documents: list[dict], builder: DatasetBuilder,
                     skip_ids: set[str] | None = None) -> "FileSummary":
        """Summarise a segment whose documents all passed validation as plain dicts (the same as of_batch)."""
        kept = _first_runs(documents, lambda d: d["trajectory_id"], skip_ids)
        benchmark = np.fromiter((d.get("source") == "benchmark" for d in kept), dtype=bool, count=len(kept))
        stats = builder.stats_of_documents([d for d, is_benchmark in zip(kept, benchmark.tolist()) if not is_benchmark])
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
    """Summaries of sealed segments for one feature configuration, one `.npz` file per segment."""

    def __init__(self, layout: StoreLayout, builder: DatasetBuilder):
        self.folder = layout.cache_dir / "segments"
        self.builder = builder

    def _path(self, item: TrajectoryFile):
        return self.folder / f"{item.key}.npz"

    def _signature(self, item: TrajectoryFile) -> dict | None:
        try:
            stat = item.path.stat()
            content = read_store_bytes(item.path)
        except (OSError, CorruptDocumentError):
            return None
        if content is None:
            return None
        return {"format": CACHE_FORMAT, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                "sha256": hashlib.sha256(content).hexdigest(),
                "features": self.builder.config.to_dict(), "max_importance_weight": self.builder.max_importance_weight}

    def load(self, item: TrajectoryFile) -> FileSummary | None:
        """The cached summary of a sealed segment, or None when it is missing, stale, unreadable or fails its
        digest (the segment's content hash and the summary's own hash must both match)."""
        signature = self._signature(item)
        if signature is None:
            return None
        try:
            with np.load(io.BytesIO(read_store_bytes(self._path(item)) or b""), allow_pickle=False) as arrays:
                meta = orjson.loads(arrays["meta"].tobytes())
                if meta.get("signature") != signature:
                    return None
                stats = TrainingStats(arrays["gram"], arrays["moment"], arrays["kind_counts"],
                                      meta["reward_sum"], meta["weight_sum"], meta["count"])
                benchmark = arrays["benchmark"]
            if meta.get("digest") != summary_digest(meta, stats, benchmark):
                return None
            kinds, size = len(CANDIDATE_KINDS), self.builder.config.block_size
            if (stats.gram.shape != (kinds, size, size) or stats.moment.shape != (kinds, size)
                    or len(benchmark) != len(meta["ids"]) or not stats_finite(stats)):
                return None
            invalid = [InvalidTrajectory(**entry) for entry in meta["invalid"]]
            return FileSummary(item.key, meta["ids"], benchmark.astype(bool), invalid, stats)
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, orjson.JSONDecodeError, EOFError,
                CorruptDocumentError):
            return None

    def save(self, item: TrajectoryFile, summary: FileSummary) -> None:
        """Keep a sealed segment's summary (atomically); a store we may not write just goes without."""
        signature = self._signature(item)
        if signature is None:
            return
        stats = summary.stats
        if not stats_finite(stats):
            return
        meta = {"signature": signature, "ids": summary.ids, "invalid": [entry.to_dict() for entry in summary.invalid],
                "reward_sum": stats.reward_sum, "weight_sum": stats.weight_sum, "count": stats.count}
        meta["digest"] = summary_digest(meta, stats, summary.benchmark)
        buffer = io.BytesIO()
        np.savez(buffer, meta=np.frombuffer(orjson.dumps(meta), dtype=np.uint8), gram=stats.gram,
                 moment=stats.moment, kind_counts=stats.kind_counts, benchmark=summary.benchmark)
        try:
            atomic_write_bytes(self._path(item), buffer.getvalue())
        except StoreWriteError:
            pass


def summary_digest(meta: dict, stats: TrainingStats, benchmark: np.ndarray) -> str:
    """A hash of everything a cached summary holds, bound to its segment's content hash."""
    digest = hashlib.sha256()
    body = {key: value for key, value in meta.items() if key != "digest"}
    digest.update(orjson.dumps(body, option=orjson.OPT_SORT_KEYS))
    for array in (stats.gram, stats.moment, stats.kind_counts, benchmark):
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def stats_finite(stats: TrainingStats) -> bool:
    """Whether every statistic is a finite number (a cache holding anything else is not used)."""
    return (all(math.isfinite(float(value)) for value in (stats.reward_sum, stats.weight_sum, stats.count))
            and bool(np.isfinite(stats.gram).all() and np.isfinite(stats.moment).all()))


def claim_segment(claims: Path, key: str) -> bool:
    """Claim a segment for one of the two processes of a scan: True for the first to ask, False after."""
    try:
        os.close(os.open(claims / key, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        return False
    return True


def summarise_file(store: TrajectoryStore, item, builder: DatasetBuilder, skip_ids: set[str] | None = None):
    """A file's summary: from plain documents when the whole segment is valid, else from models."""
    documents = store.read_plain_documents(item)
    if documents is not None:
        with gc_paused():
            return FileSummary.of_documents(item, documents, builder, skip_ids)
    return FileSummary.of_batch(store.read_batch(item), builder, skip_ids)
