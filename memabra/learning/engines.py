"""Where a scan summarises the sealed segments its cache does not hold: in the scan's own process (`local`), a
local process pool (`process`) or a Dask cluster (`dask`), all through one `concurrent.futures`-style executor.

Each task reads one segment by path (workers share the store's filesystem with the scan), writes the segment's
summary to the cache, and sends back only the summary: ids, refused documents and statistics, never trajectories.
The scan adds the statistics and resolves duplicate ids itself, whichever engine ran the tasks.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memabra.errors import SettingError
from memabra.learning.dataset import DatasetBuilder
from memabra.learning.pair_features import LearnerConfig
from memabra.learning.summaries import FileSummary, SummaryCache, summarise_file
from memabra.storage.trajectories import TrajectoryFile, TrajectoryStore, gc_paused

ENGINES = ("local", "process", "dask")
PARALLEL_MIN_SEGMENTS = 6
"""The process engine starts a pool only when at least this many segments need summarising: its start-up (a
fork server importing memabra, about 0.3 s) must be repaid."""
START_METHOD = "forkserver"
"""Pool workers are forked from a clean server process, never from the (possibly threaded) scanning process."""
LOCAL_DASK_WORKERS = 2
"""Worker processes of the local Dask cluster `engine = dask` starts when no `dask_address` is given."""
DASK_RETRIES = 2
"""Times a Dask task is retried after its worker died before the scan summarises that segment itself."""


def summarise_segment(base_dir: str, key: str, path: str, config: dict[str, Any]) -> FileSummary:
    """Summarise one sealed segment and cache the summary; the task every engine runs on its workers."""
    builder = DatasetBuilder(LearnerConfig.from_dict(config))
    store = TrajectoryStore(Path(base_dir))
    item = TrajectoryFile(key, Path(path), True)
    with gc_paused():
        summary = summarise_file(store, item, builder)
    SummaryCache(store.layout, builder).save(item, summary)
    return summary


class SegmentJobs:
    """The summaries of one scan's uncached segments being worked out by an executor; with none, the scan does
    every segment itself."""

    def __init__(self, futures: dict[str, Any] | None = None, close=None, steal: bool = False):
        self.futures = futures or {}
        self._close = close
        self.steal = steal

    def __enter__(self) -> "SegmentJobs":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def result(self, item: TrajectoryFile) -> FileSummary | None:
        """The summary a worker made of `item`, or None when the scan should make it itself: no task for it, the
        task had not started (and `steal` lets the scan take it over), or the task failed."""
        future = self.futures.pop(item.key, None)
        if future is None or (self.steal and future.cancel()):
            return None
        try:
            return future.result()
        except Exception:  # a worker that died or failed: the scan summarises the segment itself, as it would alone
            return None

    def close(self) -> None:
        """Drop the tasks no one waits for any more and stop the executor."""
        for future in self.futures.values():
            future.cancel()
        self.futures.clear()
        if self._close is not None:
            self._close()
            self._close = None


@dataclass(frozen=True)
class ScanEngine:
    """Which engine summarises a scan's uncached segments, and where its Dask scheduler is (None: a local one)."""

    name: str = "process"
    dask_address: str | None = None

    def __post_init__(self):
        if self.name not in ENGINES:
            raise SettingError("engine", f"{{setting:engine}} {self.name!r} is not one of {', '.join(ENGINES)}")

    @classmethod
    def of(cls, settings) -> "ScanEngine":
        """The engine the settings name (`engine`, `dask_address`)."""
        return cls(settings.engine, settings.dask_address)

    def start(self, base_dir: Path, builder: DatasetBuilder, uncached: list[TrajectoryFile]) -> SegmentJobs:
        """Submit `uncached` (sealed segments, oldest first) to this engine's executor, the newest first."""
        if self.name == "dask":
            _require_dask()
        if self.name == "local" or not uncached:
            return SegmentJobs()
        if self.name == "process":
            workers = (os.cpu_count() or 1) - 1
            if len(uncached) < PARALLEL_MIN_SEGMENTS or workers < 1:
                return SegmentJobs()
            executor = None
            try:
                executor = ProcessPoolExecutor(workers, mp_context=_pool_context())
                futures = _submit_newest_first(executor.submit, base_dir, builder, uncached)
            except (OSError, ValueError):
                # No pool can start here (a terminal UI replaced stderr, whose fd multiprocessing's resource
                # tracker inherits; a sandbox without fork): the scan summarises every segment itself.
                if executor is not None:
                    executor.shutdown(wait=False, cancel_futures=True)
                return SegmentJobs()
            return SegmentJobs(futures, lambda: executor.shutdown(wait=True, cancel_futures=True), steal=True)
        client, close = _dask_client(self.dask_address)
        try:
            futures = _submit_newest_first(
                lambda *args: client.submit(*args, pure=False, retries=DASK_RETRIES), base_dir, builder, uncached)
        except BaseException:
            close()
            raise
        return SegmentJobs(futures, close)


def _submit_newest_first(submit, base_dir: Path, builder: DatasetBuilder, uncached: list[TrajectoryFile]) -> dict:
    config = builder.config.to_dict()
    return {item.key: submit(summarise_segment, str(base_dir), item.key, str(item.path), config)
            for item in reversed(uncached)}


def _pool_context():
    context = multiprocessing.get_context(START_METHOD)
    context.set_forkserver_preload([__name__])  # the server imports memabra once, and never the caller's main module
    return context


def _require_dask() -> None:
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise SettingError("engine", "{setting:engine} dask needs Dask, which is not installed: "
                                     "pip install 'memabra[dask]'") from None


def _dask_client(address: str | None):
    """A Dask client on the scheduler at `address`, or on a local cluster started for this scan; and how to close
    both."""
    _require_dask()
    from distributed import Client, LocalCluster

    if address:
        try:
            client = Client(address, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise SettingError("dask_address", f"no Dask scheduler answers at {{setting:dask_address}} {address} "
                                               f"({exc}); start one or fix the address") from None
        return client, client.close
    cluster = LocalCluster(n_workers=LOCAL_DASK_WORKERS, threads_per_worker=1, processes=True,
                           dashboard_address=None, silence_logs=logging.ERROR)
    client = Client(cluster)

    def close():
        client.close()
        cluster.close()

    return client, close
