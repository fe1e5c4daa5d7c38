"""The running total: the decayed sum of the oldest sealed segments' statistics up to a watermark, kept in one cache
file (`<base-dir>/.cache/running-total.npz`), so a cycle reads it and the summaries of newer segments instead of one
summary per segment.

Decay is multiplicative per trajectory: a segment's statistics count 0.5 ** (training trajectories stored after it /
half_life). The total holds segments `start`..watermark each decayed by the trajectories between it and the
watermark, so one factor, 0.5 ** (training trajectories after the watermark / half_life), makes it what the
per-segment sum gives for them. Segments whose factor falls below `NEGLIGIBLE_WEIGHT` leave that sum; when the
oldest segment the total holds does, the total is rebuilt from the summaries of the segments still counted (with a
half-life they are a bounded number, ~30 half-lives of trajectories).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import orjson

from memabra.errors import CorruptDocumentError, StoreWriteError
from memabra.learning.dataset import DatasetBuilder, TrainingStats, decay_factor
from memabra.learning.summaries import STATS_PREFIX, FileSummary, segment_signature, summary_digest
from memabra.storage.atomic import atomic_write_bytes
from memabra.storage.layout import StoreLayout
from memabra.storage.safe_io import read_store_bytes
from memabra.storage.trajectories import UNREADABLE_FILE, TrajectoryFile

TOTAL_FORMAT = 1
TOTAL_FILE = "running-total.npz"
NEGLIGIBLE_WEIGHT = 1e-9
"""A file whose decay factor is below this adds nothing a float can hold next to the newer files: left out."""


@dataclass
class RunningTotal:
    """Statistics of `segments[start:]`, each decayed by the training trajectories in the covered segments after it;
    `segments` lists every covered segment (key, signature, training count), oldest first."""

    segments: list[dict]
    start: int
    stats: TrainingStats

    @property
    def watermark(self) -> int:
        """How many of the oldest files the total covers."""
        return len(self.segments)

    def covers(self, files: Sequence[TrajectoryFile]) -> bool:
        """Whether the store's oldest files are still exactly the covered segments, unchanged (stat only)."""
        if len(self.segments) > len(files):
            return False
        return all(item.sealed and item.key == record["key"] and segment_signature(item.path) == record["file"]
                   for item, record in zip(files, self.segments))

    def counts_match(self, summaries: Sequence[FileSummary]) -> bool:
        return all(summary.training_count == record["training"] for summary, record in zip(summaries, self.segments))


def watermark_of(summaries: Sequence[FileSummary]) -> int:
    """How many of the oldest files a total can cover: the leading run of sealed, readable segments."""
    count = 0
    for summary in summaries:
        if not summary.sealed or any(entry.position == UNREADABLE_FILE for entry in summary.invalid):
            break
        count += 1
    return count


def advance(previous: RunningTotal | None, summaries: Sequence[FileSummary], files: Sequence[TrajectoryFile],
            builder: DatasetBuilder, full_stats: Callable[[int], TrainingStats]) -> RunningTotal | None:
    """The running total up to the scan's new watermark: the previous one scaled once and the newly covered segments
    added when it still starts at the oldest segment that counts, else summed again from `full_stats(i)` (segment
    i's statistics). `summaries` are all files' (oldest first); the previous total's segments are their prefix."""
    watermark = watermark_of(summaries)
    if watermark == 0:
        return None
    half_life = builder.half_life
    newer = [0] * len(summaries)
    after = 0
    for position in range(len(summaries) - 1, -1, -1):
        newer[position] = after
        after += summaries[position].training_count
    end = newer[watermark - 1]
    start = next((i for i in range(watermark) if decay_factor(newer[i], half_life) >= NEGLIGIBLE_WEIGHT), watermark)
    records = [{"key": item.key, "file": segment_signature(item.path), "training": summary.training_count}
               for item, summary in zip(files[:watermark], summaries[:watermark])]
    if previous is not None and previous.start == start and previous.counts_match(summaries):
        if previous.watermark == watermark:
            return previous
        stats = previous.stats.scaled(decay_factor(newer[previous.watermark - 1] - end, half_life))
        first_new = previous.watermark
    else:
        stats, first_new = TrainingStats.zeros(builder.config), start
    for position in range(watermark - 1, first_new - 1, -1):
        factor = decay_factor(newer[position] - end, half_life)
        segment = full_stats(position)
        stats.add(segment if factor == 1.0 else segment.scaled(factor))
    stats.count = sum(summary.training_count for summary in summaries[start:watermark])
    return RunningTotal(records, start, stats)


class RunningTotalCache:
    """The store's one running total, for the learner configuration (and half-life) it was built with."""

    def __init__(self, layout: StoreLayout, builder: DatasetBuilder):
        self.path = layout.cache_dir / TOTAL_FILE
        self.builder = builder

    def load(self) -> RunningTotal | None:
        """The saved total, or None when missing, of another format or learner, unreadable or failing its digest."""
        try:
            with np.load(io.BytesIO(read_store_bytes(self.path) or b""), allow_pickle=False) as arrays:
                meta = orjson.loads(arrays["meta"].tobytes())
                if meta.get("format") != TOTAL_FORMAT or meta.get("learner") != self.builder.signature():
                    return None
                if meta.get("digest") != summary_digest(meta, arrays):
                    return None
                stats = TrainingStats.from_arrays(self.builder.config, {
                    name[len(STATS_PREFIX):]: arrays[name] for name in arrays.files if name.startswith(STATS_PREFIX)})
            segments, start = meta["segments"], meta["start"]
            if not (isinstance(segments, list) and isinstance(start, int) and 0 <= start <= len(segments)):
                return None
            return RunningTotal(segments, start, stats)
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, orjson.JSONDecodeError, EOFError,
                CorruptDocumentError):
            return None

    def save(self, total: RunningTotal) -> None:
        """Keep the total (atomically); a store we may not write just goes without."""
        arrays = {STATS_PREFIX + name: array for name, array in total.stats.to_arrays().items()}
        if any(record["file"] is None for record in total.segments):
            return
        meta = {"format": TOTAL_FORMAT, "learner": self.builder.signature(), "start": total.start,
                "segments": total.segments}
        meta["digest"] = summary_digest(meta, arrays)
        buffer = io.BytesIO()
        np.savez(buffer, meta=np.frombuffer(orjson.dumps(meta), dtype=np.uint8), **arrays)
        try:
            atomic_write_bytes(self.path, buffer.getvalue())
        except StoreWriteError:
            pass

    def discard(self) -> None:
        try:
            self.path.unlink(missing_ok=True)
        except OSError:
            pass
