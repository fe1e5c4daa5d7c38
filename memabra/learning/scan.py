"""The scan stage: find every stored trajectory file, summarise it (from the cache where it can) and say what is new."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from memabra.learning.dataset import DatasetBuilder, TrainingStats, decay_factor
from memabra.learning.pair_features import LearnerConfig
from memabra.learning.summaries import SummaryCache, claim_segment, summarise_file
from memabra.models import Trajectory
from memabra.storage.store import Store
from memabra.storage.trajectories import UNREADABLE_FILE, InvalidTrajectory, gc_paused


@dataclass
class ArtifactIndex:
    """What the store holds for training: one summary per trajectory file, refused documents, and what is unseen.

    Sealed segments are summarised once and cached, so a scan costs what is new, not what is stored.
    """

    store: Store
    config: LearnerConfig
    summaries: list = field(default_factory=list)
    """One `FileSummary` per file, oldest first; an id stored twice counts in its first file only."""
    unseen_ids: list[str] = field(default_factory=list)
    seen_segments: frozenset[str] = frozenset()

    @classmethod
    def scan(cls, store: Store | Path, seen_ids: set[str], on_file=None, seen_segments=frozenset(),
             builder: "DatasetBuilder | None" = None) -> "ArtifactIndex":
        """Summarise every trajectory file (from the cache where it can); `on_file(done, total)` reports progress.

        `seen_segments` are segments whose every training trajectory was already used by a cycle.
        """
        builder = builder or DatasetBuilder()
        store = Store.of(store)
        trajectories = store.trajectories
        cache = SummaryCache(store.layout, builder)
        files = trajectories.files()
        cached = {item.key: cache.load(item) for item in files if item.sealed}
        uncached = [item for item in files if item.sealed and cached[item.key] is None]
        worker = _SegmentWorker.start(store.base_dir, builder, uncached)
        summaries = []
        known: set[str] = set()
        unseen: list[str] = []
        seen_segments = frozenset(seen_segments)
        try:
            for done, item in enumerate(files, start=1):
                summary = cached.get(item.key)
                if summary is None and not worker.claim(item) and worker.wait_for(item):
                    summary = cache.load(item)
                if summary is None:
                    with gc_paused():
                        summary = summarise_file(trajectories, item, builder)
                    if item.sealed:
                        cache.save(item, summary)
                with gc_paused():
                    if not known.isdisjoint(summary.ids):
                        summary = summarise_file(trajectories, item, builder, skip_ids=known)
                    known.update(summary.ids)
                    summaries.append(summary)
                    if item.key not in seen_segments:
                        unseen.extend(tid for tid in summary.training_ids if tid not in seen_ids)
                if on_file:
                    on_file(done, len(files))
        finally:
            worker.stop()
        return cls(store, builder.config, summaries, unseen, seen_segments)

    @property
    def files(self) -> list[str]:
        return [summary.key for summary in self.summaries]

    @property
    def invalid(self) -> list[InvalidTrajectory]:
        return [entry for summary in self.summaries for entry in summary.invalid]

    @property
    def training_count(self) -> int:
        return sum(summary.stats.count for summary in self.summaries)

    @property
    def benchmark_count(self) -> int:
        return sum(summary.benchmark_count for summary in self.summaries)

    @property
    def seen_training_count(self) -> int:
        """Training trajectories in segments recorded as wholly seen (their ids are not listed one by one)."""
        return sum(summary.stats.count for summary in self.summaries if summary.key in self.seen_segments)

    def training_stats(self, on_file=None) -> TrainingStats:
        """Statistics of every stored training trajectory: the files' statistics, each decayed by the training
        trajectories in newer files (a file too old to count any more is left out)."""
        stats = TrainingStats.zeros(self.config)
        newer = 0
        for done, summary in enumerate(reversed(self.summaries), start=1):
            factor = decay_factor(newer, self.config.half_life)
            if factor >= NEGLIGIBLE_WEIGHT:
                stats.add(summary.stats if factor == 1.0 else summary.stats.scaled(factor))
            newer += summary.stats.count
            if on_file:
                on_file(done, len(self.summaries))
        stats.count = self.training_count
        return stats

    def ages(self, trajectory_ids: set[str]) -> dict[str, int]:
        """Each given training trajectory's age: how many training trajectories were stored after it."""
        found: dict[str, int] = {}
        newer = 0
        for summary in reversed(self.summaries):
            last = len(summary.training_ids) - 1
            for position, trajectory_id in enumerate(summary.training_ids):
                if trajectory_id in trajectory_ids:
                    found[trajectory_id] = newer + last - position
            newer += len(summary.training_ids)
            if len(found) == len(trajectory_ids):
                break
        return found

    def sealed_training_ids(self) -> dict[str, list[str]]:
        """The training ids of each sealed segment not yet recorded as wholly seen."""
        return {summary.key: summary.training_ids for summary in self.summaries
                if summary.sealed and summary.key not in self.seen_segments
                and all(entry.position != UNREADABLE_FILE for entry in summary.invalid)}

    def iter_training(self) -> Iterator[Trajectory]:
        """Every training trajectory, oldest first, read again from the store (each id once)."""
        for trajectories in self.training_by_file():
            yield from trajectories

    def training_by_file(self, only: set[str] | None = None, newest_first: bool = False) -> Iterator[list[Trajectory]]:
        """Each file's training trajectories (those with ids in `only`, if given) read again from the store;
        files holding none of them are not read."""
        store = self.store.trajectories
        by_key = {item.key: item for item in store.files()}
        for summary in reversed(self.summaries) if newest_first else self.summaries:
            item = by_key.get(summary.key)
            wanted = set(summary.training_ids) if only is None else only.intersection(summary.training_ids)
            if item is None or not wanted:
                continue
            found = []
            for trajectory in store.read_batch(item).trajectories:
                if trajectory.trajectory_id in wanted:
                    wanted.discard(trajectory.trajectory_id)
                    found.append(trajectory)
            yield found

    def newest_training(self, count: int, only: set[str] | None = None) -> list[Trajectory]:
        """The `count` newest training trajectories (among `only`) by creation time, oldest first; reads files
        from the newest back until it has enough."""
        found: list[Trajectory] = []
        for trajectories in self.training_by_file(only, newest_first=True):
            if len(found) >= count:
                break
            found.extend(trajectories)
        found.sort(key=lambda trajectory: trajectory.created_at)
        return found[len(found) - count:] if count > 0 else []


NEGLIGIBLE_WEIGHT = 1e-9
"""A file whose decay factor is below this adds nothing a float can hold next to the newer files: skipped."""
PARALLEL_MIN_SEGMENTS = 6
"""A scan summarises uncached segments in a second process too only when at least this many need it: the worker's
start-up (a fresh interpreter importing memabra, about 0.3 s) must be repaid."""


class _SegmentWorker:
    """A second process (`python -m memabra.learning.segment_worker`) summarising and caching uncached segments from
    the newest back while the scan works from the oldest forward; each side claims a segment before working on it.

    A subprocess rather than multiprocessing: it never re-runs the caller's main module, and is safe to start from a
    threaded program such as the console.
    """

    def __init__(self, process: subprocess.Popen | None = None, claims: Path | None = None, keys: list[str] = ()):
        self.process = process
        self.claims = claims
        self.keys = list(keys)
        self.finished: set[str] = set()

    @classmethod
    def start(cls, base_dir: Path, builder: "DatasetBuilder", uncached: list) -> "_SegmentWorker":
        if len(uncached) < PARALLEL_MIN_SEGMENTS or (os.cpu_count() or 1) < 2:
            return cls()
        claims = Path(tempfile.mkdtemp(prefix="memabra-claims-"))
        offered = list(reversed(uncached[len(uncached) // 3:]))
        request = {"base_dir": str(base_dir), "claims": str(claims), "config": builder.config.to_dict(),
                   "segments": [[item.key, str(item.path)] for item in offered]}
        package_root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
        try:
            process = subprocess.Popen([sys.executable, "-m", "memabra.learning.segment_worker", json.dumps(request)],
                                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                                       env=env)
        except OSError:
            shutil.rmtree(claims, ignore_errors=True)
            return cls()
        return cls(process, claims, [item.key for item in offered])

    def claim(self, item) -> bool:
        """Whether the scan may summarise `item` itself (the worker has not claimed it)."""
        return self.claims is None or claim_segment(self.claims, item.key)

    def wait_for(self, item) -> bool:
        """Wait until the worker has cached `item`; False if it stopped first."""
        while item.key not in self.finished:
            line = self.process.stdout.readline()
            if not line:
                return False
            self.finished.add(line.decode().strip())
        return True

    def stop(self) -> None:
        """Let the worker finish the segment it is on and nothing more, then clean up."""
        if self.process is not None:
            for key in self.keys:
                claim_segment(self.claims, key)
            self.process.communicate()  # reads what it still prints, so it never blocks on a full pipe
            shutil.rmtree(self.claims, ignore_errors=True)
