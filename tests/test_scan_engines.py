"""Scan engines: a process pool or a Dask cluster summarises uncached segments, and a cycle learns and reports
exactly what the scan's own process would have, even when a worker dies mid-scan."""

import os
import shutil
import signal
import sys
import time

import numpy as np
import pytest

from memabra.learning import engines, scan
from memabra.learning.engines import ScanEngine, SegmentJobs
from memabra.learning.id_hashes import SortedIdHashes, id_hashes
from memabra.learning.scan import ArtifactIndex
from memabra.storage.store import Store
from memabra.storage.trajectories import TrajectoryStore, TrajectoryWriter
from tests.helpers import run_main

SEGMENT_SIZE = 100
"""2,000 trajectories in segments of 100: 20 segments, enough for every engine to share the work."""
VOLATILE = ("report_id", "started_at", "finished_at", "challenger_version_id", "latency", "duration", "seconds")


@pytest.fixture
def many_segments(seeded_store, tmp_path):
    """The seeded store's 2,000 trajectories rewritten as 20 sealed segments, with no cached summaries."""
    base = tmp_path / "many-segments"
    with TrajectoryWriter(base, max_documents=SEGMENT_SIZE) as writer:
        writer.append_many(t.model_dump(mode="json") for t in TrajectoryStore(seeded_store).load_all()[0])
    return base


def without_volatile(document):
    if isinstance(document, dict):
        return {key: without_volatile(value) for key, value in document.items()
                if not any(word in key for word in VOLATILE)}
    if isinstance(document, list):
        return [without_volatile(value) for value in document]
    return document


def assert_same_index(ours: ArtifactIndex, theirs: ArtifactIndex) -> None:
    assert ours.files == theirs.files and ours.unseen_ids == theirs.unseen_ids
    assert [s.ids for s in ours.summaries] == [s.ids for s in theirs.summaries]
    assert [s.training_count for s in ours.summaries] == [s.training_count for s in theirs.summaries]
    assert ours.total.watermark == theirs.total.watermark and ours.total.stats.count == theirs.total.stats.count
    assert np.array_equal(ours.total.stats.gram, theirs.total.stats.gram)
    assert np.array_equal(ours.training_stats().gram, theirs.training_stats().gram)


def cached_segments(base) -> int:
    return len(list((base / ".cache" / "segments").glob("*.npz")))


def record_worker_summaries(monkeypatch) -> list[str]:
    """Keys of the segments whose summary came back from a worker rather than the scan's own process."""
    from_workers: list[str] = []
    result = SegmentJobs.result

    def recording(self, item):
        summary = result(self, item)
        if summary is not None:
            from_workers.append(item.key)
        return summary

    monkeypatch.setattr(SegmentJobs, "result", recording)
    return from_workers


def test_a_process_pool_scan_equals_a_local_scan(many_segments, tmp_path, monkeypatch):
    copy = tmp_path / "copy"
    shutil.copytree(many_segments, copy)
    alone = ArtifactIndex.scan(many_segments, set(), engine=ScanEngine("local"))
    summarise = scan.summarise_file

    def slow_summarise(*args, **kwargs):  # only in this process, so the pool gets to do some segments
        time.sleep(0.1)
        return summarise(*args, **kwargs)

    monkeypatch.setattr(scan, "summarise_file", slow_summarise)
    from_workers = record_worker_summaries(monkeypatch)
    pooled = ArtifactIndex.scan(copy, set(), engine=ScanEngine("process"))
    assert len(alone.files) == 20 and from_workers and set(from_workers) < set(alone.files)
    assert_same_index(pooled, alone)
    assert cached_segments(copy) == 20, "workers cache what they summarise"


def test_a_pool_that_cannot_start_leaves_the_scan_to_its_own_process(many_segments, tmp_path, monkeypatch):
    copy = tmp_path / "copy"
    shutil.copytree(many_segments, copy)
    alone = ArtifactIndex.scan(many_segments, set(), engine=ScanEngine("local"))

    def no_pool(*args, **kwargs):  # what a terminal UI's replaced stderr makes multiprocessing raise
        raise ValueError("bad value(s) in fds_to_keep")

    monkeypatch.setattr(engines, "ProcessPoolExecutor", no_pool)
    from_workers = record_worker_summaries(monkeypatch)
    pooled = ArtifactIndex.scan(copy, set(), engine=ScanEngine("process"))
    assert from_workers == [] and cached_segments(copy) == 20
    assert_same_index(pooled, alone)


def test_the_process_engine_stays_in_process_for_a_few_segments(seeded_store, monkeypatch):
    from_workers = record_worker_summaries(monkeypatch)
    ArtifactIndex.scan(seeded_store, set(), engine=ScanEngine("process"))
    assert from_workers == [], "one segment does not repay starting a pool"


def test_a_duplicate_id_counts_once_whichever_engine_reads_it(many_segments, tmp_path, monkeypatch):
    first = sorted((many_segments / "trajectories").glob("*.json"))[0]
    shutil.copy(first, many_segments / "trajectories" / "zz-copy-000000.json")  # the same ids, stored again
    copy = tmp_path / "copy"
    shutil.copytree(many_segments, copy)
    alone = ArtifactIndex.scan(many_segments, set(), engine=ScanEngine("local"))
    pooled = ArtifactIndex.scan(copy, set(), engine=ScanEngine("process"))
    assert alone.training_count == pooled.training_count == 2000
    assert alone.summaries[-1].ids == [] and pooled.summaries[-1].ids == []
    assert_same_index(pooled, alone)


def test_sorted_id_hashes_find_exactly_the_ids_added_before():
    met = SortedIdHashes()
    for start in range(0, 1000, 70):
        met.add(id_hashes([f"id-{n}" for n in range(start, start + 70)]))
    probe = id_hashes([f"id-{n}" for n in range(1050, 1150)] + ["id-5", "id-1049"])
    assert int(met.contains(probe).sum()) == 2 and len(met) == 1050
    assert len(met.runs) <= 5, "runs are merged as they grow"


pytest.importorskip("distributed")


def test_a_first_cycle_on_a_local_dask_cluster_equals_the_local_engine(cli, many_segments, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(many_segments, copy)
    local = cli("--base-dir", many_segments, "--engine", "local", timeout=300)
    dask = cli("--base-dir", copy, "--engine", "dask", timeout=300)
    assert local.code == dask.code == 0, dask.stderr[-2000:]
    assert dask.json["status"] == "promoted" and dask.json["training_trajectory_count"] == 2000 - 400
    assert without_volatile(dask.json) == without_volatile(local.json)
    assert cached_segments(copy) == 20, "the cluster's workers wrote the cache"
    weights = [Store(base).versions.get_version(document.json["challenger_version_id"]).router
               for base, document in ((many_segments, local), (copy, dask))]
    assert without_volatile(weights[0]) == without_volatile(weights[1])


def test_a_dask_scan_finishes_correctly_when_a_worker_dies_mid_scan(many_segments, tmp_path, monkeypatch):
    from distributed import Client, LocalCluster

    copy = tmp_path / "copy"
    shutil.copytree(many_segments, copy)
    alone = ArtifactIndex.scan(many_segments, set(), engine=ScanEngine("local"))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        client.run(_slow_down_summaries)  # each worker takes 0.2 s a segment, so the kill lands mid-scan
        killed = []

        def kill_a_worker(done, total):
            if done == 2 and not killed:
                pids = client.run(os.getpid)
                killed.append(next(iter(pids.values())))
                os.kill(killed[0], signal.SIGKILL)

        dasked = ArtifactIndex.scan(copy, set(), on_file=kill_a_worker,
                                    engine=ScanEngine("dask", cluster.scheduler_address))
    assert killed
    assert_same_index(dasked, alone)
    assert cached_segments(copy) == 20


def _slow_down_summaries():
    from memabra.learning import engines as worker_engines

    summarise = worker_engines.summarise_file

    def slow(*args, **kwargs):
        time.sleep(0.2)
        return summarise(*args, **kwargs)

    worker_engines.summarise_file = slow


def test_without_dask_the_dask_engine_is_one_clear_error(seeded_store, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if Dask were not installed
    code, stdout, stderr = run_main("--base-dir", str(seeded_store), "--engine", "dask")
    assert code == 2 and stdout == ""
    assert stderr.strip().splitlines() == [
        "error: --engine dask needs Dask, which is not installed: pip install 'memabra[dask]'"]
