"""The running total of segment statistics: a cycle reads one total plus the newer segments' summaries, learns
exactly what summing every segment's summary gives, and notices a covered segment that changed or went."""

import json
import os

import numpy as np
import pytest

from memabra.learning.dataset import DatasetBuilder, TrainingStats, decay_factor
from memabra.learning.pair_features import LearnerConfig
from memabra.learning.running_total import NEGLIGIBLE_WEIGHT, TOTAL_FILE
from memabra.learning.scan import ArtifactIndex
from memabra.learning.summaries import SummaryCache, summarise_file
from memabra.learning.train import train_router
from memabra.storage.trajectories import TrajectoryStore, TrajectoryWriter
from tests.helpers import run_main

SEGMENT_SIZE = 100


@pytest.fixture(scope="module")
def stored(_seeded_store_template):
    return [t.model_dump(mode="json") for t in TrajectoryStore(_seeded_store_template).load_all()[0]]


def append(base, documents):
    with TrajectoryWriter(base, max_documents=SEGMENT_SIZE) as writer:
        writer.append_many(documents)


def per_segment_stats(base, builder: DatasetBuilder) -> TrainingStats:
    """The statistics of the store summed one freshly summarised file at a time, newest first, each decayed by the
    training trajectories in newer files (the scan without a running total)."""
    store = TrajectoryStore(base)
    summaries = [summarise_file(store, item, builder) for item in store.files()]
    stats, newer = TrainingStats.zeros(builder.config), 0
    for summary in reversed(summaries):
        factor = decay_factor(newer, builder.half_life)
        if factor >= NEGLIGIBLE_WEIGHT:
            stats.add(summary.stats.scaled(factor))
        newer += summary.training_count
    stats.count = newer
    return stats


def change_a_reward_keeping_size_and_mtime(segment) -> None:
    """Change one digit of the first reward in a segment and set its modification time back."""
    info = os.stat(segment)
    content = segment.read_bytes()
    at = content.index(b'"reward":') + len(b'"reward":')
    while not content[at:at + 1].isdigit():
        at += 1
    digit = b"1" if content[at:at + 1] != b"1" else b"0"
    segment.write_bytes(content[:at] + digit + content[at + 1:])
    os.utime(segment, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert os.stat(segment).st_size == info.st_size


def assert_same_stats(ours: TrainingStats, reference: TrainingStats) -> None:
    assert ours.count == reference.count
    np.testing.assert_array_equal(ours.keys, reference.keys)
    np.testing.assert_array_equal(ours.rows, reference.rows)
    for name in ("gram", "moment", "weight", "square"):
        np.testing.assert_allclose(getattr(ours, name), getattr(reference, name), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(train_router(ours).weights, train_router(reference).weights, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("half_life", [None, 1000.0, 40.0], ids=["no-decay", "decay", "old-segments-expire"])
def test_cycles_over_a_running_total_learn_what_the_per_segment_sum_learns(tmp_path, stored, half_life):
    builder = DatasetBuilder(LearnerConfig(half_life=half_life))
    base = tmp_path / "store"
    append(base, stored[:1200])
    first = ArtifactIndex.scan(base, set(), builder=builder)
    assert (base / ".cache" / TOTAL_FILE).exists() and first.total.watermark == 12
    assert_same_stats(first.training_stats(), per_segment_stats(base, builder))
    for start in (1200, 1450, 1700):  # each round seals new segments and leaves a journal open
        append(base, stored[start:start + 250])
        loads = []
        original_load = SummaryCache.load
        SummaryCache.load = lambda self, item: loads.append(item.key) or original_load(self, item)
        try:
            index = ArtifactIndex.scan(base, set(), builder=builder)
        finally:
            SummaryCache.load = original_load
        covered = index.total.watermark
        assert all(summary.stats is None for summary in index.summaries[:covered - 3])
        if half_life is None:  # no decay: only the files after the previous watermark are read in full
            assert len(loads) <= 4
        assert_same_stats(index.training_stats(), per_segment_stats(base, builder))


def test_a_warm_cycle_equals_a_cold_one_on_the_same_store(seeded_store, tmp_path):
    cold = tmp_path / "cold"
    append(cold, [t.model_dump(mode="json") for t in TrajectoryStore(seeded_store).load_all()[0]])
    ArtifactIndex.scan(cold, set())
    warm = ArtifactIndex.scan(cold, set())
    assert warm.total is not None and warm.summaries[0].stats is None
    assert_same_stats(warm.training_stats(), per_segment_stats(cold, DatasetBuilder()))


@pytest.mark.parametrize("change", ["rewritten", "removed", "same-size-and-mtime"])
def test_a_covered_segment_that_changed_or_went_is_noticed(tmp_path, stored, change):
    builder = DatasetBuilder(LearnerConfig(half_life=None))
    base = tmp_path / "store"
    append(base, stored[:1000])
    before = ArtifactIndex.scan(base, set(), builder=builder)
    segment = sorted((base / "trajectories").glob("*.json"))[3]
    if change == "removed":
        segment.unlink()
    elif change == "rewritten":
        data = json.loads(segment.read_text())
        data["trajectories"].pop(next(iter(data["trajectories"])))
        segment.write_text(json.dumps(data))
    else:
        change_a_reward_keeping_size_and_mtime(segment)
    after = ArtifactIndex.scan(base, set(), builder=builder)
    assert_same_stats(after.training_stats(), per_segment_stats(base, builder))
    expected = {"removed": 900, "rewritten": 999, "same-size-and-mtime": 1000}[change]
    assert before.training_count == 1000 and after.training_count == expected
    if change == "same-size-and-mtime":
        assert not np.allclose(after.training_stats().moment, before.training_stats().moment)


def test_check_reports_a_segment_changed_in_place_and_a_forged_total(tmp_path, stored):
    base = tmp_path / "store"
    append(base, stored[:600])
    ArtifactIndex.scan(base, set())
    segment = sorted((base / "trajectories").glob("*.json"))[2]
    change_a_reward_keeping_size_and_mtime(segment)
    total = base / ".cache" / TOTAL_FILE
    with np.load(total) as arrays:
        content = {name: arrays[name] for name in arrays.files}
    content["stats_moment"] = content["stats_moment"] + 1.0
    with open(total, "wb") as handle:
        np.savez(handle, **content)
    code, printed, _ = run_main("--base-dir", base, "--check")
    problems = {p["path"]: p["problem"] for p in json.loads(printed)["problems"]}
    assert code == 4
    assert "changed in place" in problems[f"trajectories/{segment.name}"]
    assert "fails its digest" in problems[f".cache/{TOTAL_FILE}"]
    assert run_main("--base-dir", base, "--check", "--repair")[0] == 0
    assert not (base / ".cache" / "segments" / f"{segment.stem}.npz").exists()
