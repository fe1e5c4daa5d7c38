"""The scan stage: find every stored trajectory file, summarise it (from the cache where it can) and say what is new."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from memabra.learning.dataset import DatasetBuilder, TrainingStats, decay_factor
from memabra.learning.pair_features import LearnerConfig
from memabra.learning.engines import ScanEngine
from memabra.learning.id_hashes import SortedIdHashes, earlier_duplicates, id_hashes
from memabra.learning.running_total import NEGLIGIBLE_WEIGHT, RunningTotal, RunningTotalCache, advance
from memabra.learning.summaries import SummaryCache, summarise_file
from memabra.models import Trajectory
from memabra.storage.store import Store
from memabra.storage.trajectories import UNREADABLE_FILE, InvalidTrajectory, gc_paused


@dataclass
class ArtifactIndex:
    """What the store holds for training: one summary per trajectory file, refused documents, and what is unseen.

    Sealed segments are summarised once and cached, so a scan costs what is new, not what is stored; the oldest
    segments' statistics come from one running total, so their summaries' statistics are not even read.
    """

    store: Store
    config: LearnerConfig
    summaries: list = field(default_factory=list)
    """One `FileSummary` per file, oldest first; an id stored twice counts in its first file only. The files the
    running total covers have ids only (their `stats` is None)."""
    unseen_ids: list[str] = field(default_factory=list)
    seen_segments: frozenset[str] = frozenset()
    total: RunningTotal | None = None
    """The running total of the oldest `total.watermark` files' statistics, when there is one."""

    @classmethod
    def scan(cls, store: Store | Path, seen_ids: set[str], on_file=None, seen_segments=frozenset(),
             builder: "DatasetBuilder | None" = None, engine: ScanEngine | None = None) -> "ArtifactIndex":
        """Summarise every trajectory file (from the cache where it can, else through `engine`'s workers, else
        itself); `on_file(done, total)` reports progress.

        `seen_segments` are segments whose every training trajectory was already used by a cycle.
        """
        builder = builder or DatasetBuilder()
        engine = engine or ScanEngine()
        store = Store.of(store)
        trajectories = store.trajectories
        cache = SummaryCache(store.layout, builder)
        totals = RunningTotalCache(store.layout, builder)
        files = trajectories.files()
        previous, covered = _covering_total(totals.load(), files, cache)
        cached = {item.key: cache.load(item) for item in files[len(covered):] if item.sealed}
        uncached = [item for item in files[len(covered):] if item.sealed and cached[item.key] is None]
        summaries = []
        skipped: dict[int, set[str]] = {}
        met = SortedIdHashes()
        unseen: list[str] = []
        seen_segments = frozenset(seen_segments)
        held, held_newer = 0, 0  # the oldest file whose statistics may still count; training trajectories after it
        with engine.start(store.base_dir, builder, uncached) as jobs:
            for done, item in enumerate(files, start=1):
                summary = covered[done - 1] if done <= len(covered) else cached.pop(item.key, None)
                if summary is None and item.sealed:
                    summary = jobs.result(item)
                if summary is None:
                    with gc_paused():
                        summary = summarise_file(trajectories, item, builder)
                    if item.sealed:
                        cache.save(item, summary)
                with gc_paused():
                    hashes = id_hashes(summary.ids)
                    duplicates = earlier_duplicates(summary.ids, hashes, met, (s.ids for s in summaries))
                    if duplicates:
                        skipped[done - 1] = duplicates
                        summary = (summary.without(duplicates) if summary.stats is None
                                   else summarise_file(trajectories, item, builder, skip_ids=duplicates))
                        hashes = id_hashes(summary.ids)
                    met.add(hashes)
                    summaries.append(summary)
                    if held < len(summaries) - 1:
                        held_newer += summary.training_count
                    while held < len(summaries) - 1 and (decay_factor(held_newer, builder.half_life)
                                                         < NEGLIGIBLE_WEIGHT):
                        summaries[held].stats = None  # too old to count now, so at the end too: freed
                        held += 1
                        held_newer -= summaries[held].training_count
                    if item.key not in seen_segments:
                        unseen.extend(tid for tid in summary.training_ids if tid not in seen_ids)
                if on_file:
                    on_file(done, len(files))

        def full_stats(position: int):
            if summaries[position].stats is not None:
                return summaries[position].stats
            item = files[position]
            if position in skipped:
                return summarise_file(trajectories, item, builder, skip_ids=skipped[position]).stats
            summary = cache.load(item)
            if summary is None:
                summary = summarise_file(trajectories, item, builder)
                cache.save(item, summary)
            return summary.stats

        total = advance(previous, summaries, files, builder, full_stats)
        if total is not previous:
            totals.save(total) if total is not None else totals.discard()
        for summary in summaries[:total.watermark if total is not None else 0]:
            summary.stats = None  # the total holds them now
        return cls(store, builder.config, summaries, unseen, seen_segments, total)

    @property
    def files(self) -> list[str]:
        return [summary.key for summary in self.summaries]

    @property
    def invalid(self) -> list[InvalidTrajectory]:
        return [entry for summary in self.summaries for entry in summary.invalid]

    @property
    def training_count(self) -> int:
        return sum(summary.training_count for summary in self.summaries)

    @property
    def benchmark_count(self) -> int:
        return sum(summary.benchmark_count for summary in self.summaries)

    @property
    def seen_training_count(self) -> int:
        """Training trajectories in segments recorded as wholly seen (their ids are not listed one by one)."""
        return sum(summary.training_count for summary in self.summaries if summary.key in self.seen_segments)

    def training_stats(self, on_file=None) -> TrainingStats:
        """Statistics of every stored training trajectory: the files' statistics, each decayed by the training
        trajectories in newer files (a file too old to count any more is left out), the running total's files
        through the total scaled once."""
        stats = TrainingStats.zeros(self.config)
        watermark = self.total.watermark if self.total is not None else 0
        newer_files = self.summaries[watermark:]
        newer = 0
        for done, summary in enumerate(reversed(newer_files), start=1):
            factor = decay_factor(newer, self.config.half_life)
            if factor >= NEGLIGIBLE_WEIGHT:
                stats.add(summary.stats if factor == 1.0 else summary.stats.scaled(factor))
            newer += summary.training_count
            if on_file:
                on_file(done, len(newer_files) + 1)
        if self.total is not None and self.total.start < watermark:  # else every file it covers is too old to count
            factor = decay_factor(newer, self.config.half_life)
            stats.add(self.total.stats if factor == 1.0 else self.total.stats.scaled(factor))
        if on_file:
            on_file(len(newer_files) + 1, len(newer_files) + 1)
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


def _covering_total(total: RunningTotal | None, files, cache: SummaryCache) -> tuple[RunningTotal | None, list]:
    """The saved running total when the store's oldest files are still the segments it covers, with their ids-only
    summaries; else no total and no summaries."""
    if total is None or not total.covers(files):
        return None, []
    covered = [cache.load_ids_summary(item) for item in files[:total.watermark]]
    if any(summary is None for summary in covered):
        return None, []
    return total, covered
