"""From stored trajectories to training data: ArtifactIndex finds them, DatasetBuilder turns them into statistics."""

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

import numpy as np
from threadpoolctl import ThreadpoolController

from memabra.learning.features import KIND_INDEX, FeatureConfig, Featurizer, hint_reward, hint_value
from memabra.learning.routers import SimpleLearningRouter
from memabra.models import CANDIDATE_KINDS, Trajectory
from memabra.storage.trajectories import UNREADABLE_FILE, InvalidTrajectory, TrajectoryStore, gc_paused

_THREADPOOLS: ThreadpoolController | None = None


def single_threaded_blas():
    """Limit BLAS to one thread while in effect: these matrices are small, and extra threads only spin on a busy
    machine (measured here: 3x the CPU and wall time of one thread while other processes run)."""
    global _THREADPOOLS
    if _THREADPOOLS is None:
        _THREADPOOLS = ThreadpoolController()
    return _THREADPOOLS.limit(limits=1, user_api="blas")


MAX_IMPORTANCE_WEIGHT = 50.0
"""Importance weights 1/propensity are clipped here so one unlikely pick cannot dominate training."""


@dataclass
class ArtifactIndex:
    """What the store holds for training: one summary per trajectory file, refused documents, and what is unseen.

    Sealed segments are summarised once and cached, so a scan costs what is new, not what is stored.
    """

    base_dir: Path
    config: FeatureConfig
    summaries: list = field(default_factory=list)
    """One `FileSummary` per file, oldest first; an id stored twice counts in its first file only."""
    unseen_ids: list[str] = field(default_factory=list)
    seen_segments: frozenset[str] = frozenset()

    @classmethod
    def scan(cls, base_dir: Path, seen_ids: set[str], on_file=None, seen_segments=frozenset(),
             builder: "DatasetBuilder | None" = None) -> "ArtifactIndex":
        """Summarise every trajectory file (from the cache where it can); `on_file(done, total)` reports progress.

        `seen_segments` are segments whose every training trajectory was already used by a cycle.
        """
        from memabra.learning.summaries import SummaryCache

        builder = builder or DatasetBuilder()
        store = TrajectoryStore(base_dir)
        cache = SummaryCache(store.layout, builder)
        files = store.files()
        cached = {item.key: cache.load(item) for item in files if item.sealed}
        uncached = [item for item in files if item.sealed and cached[item.key] is None]
        worker = _SegmentWorker.start(base_dir, builder, uncached)
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
                        summary = _summarise(store, item, builder)
                    if item.sealed:
                        cache.save(item, summary)
                with gc_paused():
                    if not known.isdisjoint(summary.ids):
                        summary = _summarise(store, item, builder, skip_ids=known)
                    known.update(summary.ids)
                    summaries.append(summary)
                    if item.key not in seen_segments:
                        unseen.extend(tid for tid in summary.training_ids if tid not in seen_ids)
                if on_file:
                    on_file(done, len(files))
        finally:
            worker.stop()
        return cls(Path(base_dir), builder.config, summaries, unseen, seen_segments)

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
        """Statistics of every stored training trajectory: the sum of the files' statistics."""
        stats = TrainingStats.zeros(self.config)
        for done, summary in enumerate(self.summaries, start=1):
            stats.add(summary.stats)
            if on_file:
                on_file(done, len(self.summaries))
        return stats

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
        store = TrajectoryStore(self.base_dir)
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
                   "max_importance_weight": builder.max_importance_weight,
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


def claim_segment(claims: Path, key: str) -> bool:
    """Claim a segment for one of the two processes of a scan: True for the first to ask, False after."""
    try:
        os.close(os.open(claims / key, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        return False
    return True


def _summarise(store: TrajectoryStore, item, builder: "DatasetBuilder", skip_ids: set[str] | None = None):
    """A file's summary: from plain documents when the whole segment is valid, else from models."""
    from memabra.learning.summaries import FileSummary

    documents = store.read_plain_documents(item)
    if documents is not None:
        with gc_paused():
            return FileSummary.of_documents(item, documents, builder, skip_ids)
    return FileSummary.of_batch(store.read_batch(item), builder, skip_ids)


@dataclass
class TrainingStats:
    """Sufficient statistics of an importance-weighted ridge regression per candidate kind.

    Adding the statistics of two batches equals computing them on their union, so training can extend them.
    """

    gram: np.ndarray
    moment: np.ndarray
    kind_counts: np.ndarray
    reward_sum: float = 0.0
    weight_sum: float = 0.0
    count: int = 0

    @classmethod
    def zeros(cls, config: FeatureConfig) -> "TrainingStats":
        kinds, size = len(CANDIDATE_KINDS), config.block_size
        return cls(np.zeros((kinds, size, size)), np.zeros((kinds, size)), np.zeros(kinds, dtype=np.int64))

    def add(self, other: "TrainingStats") -> None:
        """Fold another batch's statistics into these."""
        self.gram += other.gram
        self.moment += other.moment
        self.kind_counts += other.kind_counts
        self.reward_sum += other.reward_sum
        self.weight_sum += other.weight_sum
        self.count += other.count

    def subtract(self, other: "TrainingStats") -> None:
        """Take a subset's statistics back out (the inverse of `add`)."""
        self.gram -= other.gram
        self.moment -= other.moment
        self.kind_counts -= other.kind_counts
        self.reward_sum -= other.reward_sum
        self.weight_sum -= other.weight_sum
        self.count -= other.count

    def solve(self, l2: float = 1.0) -> np.ndarray:
        """Ridge weights per kind, shrunk towards predicting the overall mean reward."""
        mean_reward = self.reward_sum / self.weight_sum if self.weight_sum > 0 else 0.0
        kinds, size = self.moment.shape
        prior = np.zeros(size)
        bias_column = size - 3
        prior[bias_column] = mean_reward
        weights = np.empty((kinds, size))
        identity = np.eye(size)
        with single_threaded_blas():
            for kind in range(kinds):
                weights[kind] = np.linalg.solve(self.gram[kind] + l2 * identity, self.moment[kind] + l2 * prior)
        return weights


def _chosen_document(document: dict) -> dict:
    chosen_id = document["decision"]["chosen_candidate_id"]
    for candidate in document["candidates"]:
        if candidate["candidate_id"] == chosen_id:
            return candidate
    raise LookupError(chosen_id)  # unreachable after validation


class DatasetBuilder:
    """Turns trajectories into training statistics: one importance-weighted row per logged decision."""

    def __init__(self, config: FeatureConfig | None = None, max_importance_weight: float = MAX_IMPORTANCE_WEIGHT):
        self.config = config or FeatureConfig()
        self.featurizer = Featurizer(self.config)
        self.max_importance_weight = max_importance_weight

    def stats(self, trajectories: list[Trajectory]) -> TrainingStats:
        """Sufficient statistics of the given trajectories."""
        chosen = [trajectory.chosen for trajectory in trajectories]
        return self._stats(
            texts=[trajectory.task.text for trajectory in trajectories],
            names=[candidate.name for candidate in chosen],
            kinds=[candidate.kind for candidate in chosen],
            scores=[candidate.score for candidate in chosen],
            hints=[hint_value(candidate) if candidate.payload else 0.0 for candidate in chosen],
            rewards=[trajectory.outcome.reward for trajectory in trajectories],
            propensities=[trajectory.decision.propensity for trajectory in trajectories],
        )

    def stats_of_documents(self, documents: list[dict]) -> TrainingStats:
        """Sufficient statistics of trajectories given as validated plain documents (missing fields take the
        model's defaults); equal to stats() of the same trajectories."""
        chosen = [_chosen_document(document) for document in documents]
        return self._stats(
            texts=[document["task"]["text"] for document in documents],
            names=[candidate.get("name", "") for candidate in chosen],
            kinds=[candidate["kind"] for candidate in chosen],
            scores=[candidate.get("score", 0.0) for candidate in chosen],
            hints=[hint_reward(payload) if (payload := candidate.get("payload")) else 0.0 for candidate in chosen],
            rewards=[document["outcome"]["reward"] for document in documents],
            propensities=[document["decision"].get("propensity") for document in documents],
        )

    def _stats(self, texts, names, kinds, scores, hints, rewards, propensities) -> TrainingStats:
        stats = TrainingStats.zeros(self.config)
        if not texts:
            return stats
        # Importance weight: 1/propensity of the logged pick, clipped; 1 when no propensity was recorded.
        propensity = np.array([value or 0.0 for value in propensities], dtype=np.float64)
        inverse = np.divide(1.0, propensity, out=np.ones_like(propensity), where=propensity > 0)
        weight_of_row = np.where(propensity > 0, np.minimum(inverse, self.max_importance_weight), 1.0)
        kinds = [KIND_INDEX[kind] for kind in kinds]
        text_of_row, text_matrix = self.featurizer.distinct_task_rows(texts)
        candidate_rows = self.featurizer.candidate_rows(names, scores, hints)
        kind_of_row = np.array(kinds, dtype=np.int64)
        reward_of_row = np.array(rewards, dtype=np.float64)
        task_size = self.config.task_buckets
        with single_threaded_blas():
            for kind in range(len(CANDIDATE_KINDS)):
                mask = kind_of_row == kind
                if not mask.any():
                    continue
                weight, text, candidate = weight_of_row[mask], text_of_row[mask], candidate_rows[mask]
                weighted_reward = weight * reward_of_row[mask]
                # Task features repeat per distinct text: sum the weights per text before multiplying.
                text_weight = np.bincount(text, weights=weight, minlength=len(text_matrix))
                task_rows = text_matrix[text]
                gram, moment = stats.gram[kind], stats.moment[kind]
                gram[:task_size, :task_size] += text_matrix.T @ (text_weight[:, None] * text_matrix)
                cross = (task_rows * weight[:, None]).T @ candidate
                gram[:task_size, task_size:] += cross
                gram[task_size:, :task_size] += cross.T
                gram[task_size:, task_size:] += (candidate * weight[:, None]).T @ candidate
                moment[:task_size] += text_matrix.T @ np.bincount(text, weights=weighted_reward,
                                                                  minlength=len(text_matrix))
                moment[task_size:] += candidate.T @ weighted_reward
                stats.kind_counts[kind] += int(mask.sum())
        stats.reward_sum = float(weight_of_row @ reward_of_row)
        stats.weight_sum = float(weight_of_row.sum())
        stats.count = len(texts)
        return stats

    def train(self, stats: TrainingStats, l2: float = 1.0) -> SimpleLearningRouter:
        """Fit a SimpleLearningRouter from statistics."""
        return SimpleLearningRouter(stats.solve(l2), self.config)
