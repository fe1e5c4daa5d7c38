"""Cached per-segment summaries: a cycle reads only what is new, and learns exactly what a full retrain learns."""

import json

import numpy as np
import pytest

from memabra.learning.dataset import DatasetBuilder
from memabra.learning.scan import ArtifactIndex
from memabra.learning.train import train_router
from memabra.models import Trajectory
from memabra.status import store_status
from memabra.storage.trajectories import TrajectoryStore, TrajectoryWriter
from memabra import run_online_learning_workflow
from tests.helpers import build_store, trajectory_doc, wait_until


def full_retrain_weights(base_dir):
    """Weights fitted from scratch on every stored non-benchmark trajectory (first run of each id)."""
    trajectories, _ = TrajectoryStore(base_dir).load_all()
    seen: set[str] = set()
    first_runs = [t for t in trajectories if not (t.trajectory_id in seen or seen.add(t.trajectory_id))]
    training = [t for t in first_runs if not t.is_benchmark]
    ages = list(range(len(training) - 1, -1, -1))  # each decays by the training runs stored after it
    return train_router(DatasetBuilder().stats(training, ages=ages)).weights


def indexed_weights(base_dir):
    index = ArtifactIndex.scan(base_dir, set())
    return train_router(index.training_stats()).weights, index


def cache_files(base_dir):
    return sorted((base_dir / ".cache" / "segments").glob("*.npz"))


def test_incremental_training_equals_a_full_retrain(seeded_store):
    first, _ = indexed_weights(seeded_store)
    assert len(cache_files(seeded_store)) == 1, "the sealed segment's summary is cached"
    build_store(seeded_store, 700, seed=12)
    cached, index = indexed_weights(seeded_store)
    assert index.training_count == 2700 and len(cache_files(seeded_store)) == 2
    np.testing.assert_allclose(cached, full_retrain_weights(seeded_store), rtol=1e-9, atol=1e-12)
    assert not np.allclose(first, cached), "the new trajectories changed the fit"


def test_cycle_result_is_the_same_with_a_cold_or_warm_cache(seeded_store, tmp_path):
    import shutil

    cold_dir = tmp_path / "cold"
    shutil.copytree(seeded_store, cold_dir)
    ArtifactIndex.scan(seeded_store, set())  # warm the cache
    warm = run_online_learning_workflow(base_dir=seeded_store, dry_run=True)
    cold = run_online_learning_workflow(base_dir=cold_dir, dry_run=True)
    for key in ("training_trajectory_count", "new_trajectory_count", "challenger", "reward_delta"):
        assert warm[key] == cold[key]


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "stale"])
def test_a_corrupt_or_stale_cache_is_rebuilt_with_the_same_result(seeded_store, damage):
    build_store(seeded_store, 300, seed=13)
    expected, expected_index = indexed_weights(seeded_store)
    first, second = cache_files(seeded_store)
    if damage == "garbage":
        first.write_bytes(b"not a cache at all")
    elif damage == "truncated":
        first.write_bytes(first.read_bytes()[:-200])
    elif damage == "empty":
        first.write_bytes(b"")
    else:
        first.write_bytes(second.read_bytes())  # a summary of another segment
    weights, index = indexed_weights(seeded_store)
    np.testing.assert_array_equal(weights, expected)
    assert index.training_count == expected_index.training_count and index.files == expected_index.files
    repaired = ArtifactIndex.scan(seeded_store, set())
    assert repaired.training_count == 2300
    assert len(cache_files(seeded_store)) == 2


def test_a_segment_replaced_in_place_is_summarised_again(seeded_store):
    indexed_weights(seeded_store)
    segment = next((seeded_store / "trajectories").glob("*.json"))
    data = json.loads(segment.read_text())
    dropped = data["trajectories"].pop(next(iter(data["trajectories"])))
    segment.write_text(json.dumps(data))
    weights, index = indexed_weights(seeded_store)
    assert index.training_count == 1999 and dropped["trajectory_id"] not in index.summaries[0].ids
    np.testing.assert_allclose(weights, full_retrain_weights(seeded_store), rtol=1e-9, atol=1e-12)


def test_an_id_stored_twice_counts_once(tmp_path):
    trajectory = Trajectory.model_validate(trajectory_doc())
    for _ in range(2):
        with TrajectoryWriter(tmp_path) as writer:
            writer.append(trajectory)
            writer.append(trajectory_doc(reward=0.1))
    for _ in range(2):  # cold, then warm cache
        weights, index = indexed_weights(tmp_path)
        assert index.training_count == 3 and len(index.files) == 2
        np.testing.assert_allclose(weights, full_retrain_weights(tmp_path), rtol=1e-9, atol=1e-12)


def test_invalid_documents_are_reported_from_the_cache_too(tmp_path):
    _segment(tmp_path, [_good_document(), _with("outcome.reward", "high")])
    for _ in range(2):
        index = ArtifactIndex.scan(tmp_path, set())
        assert index.training_count == 1
        assert [(entry.file, entry.position) for entry in index.invalid] == [("trajectories/seg.json", 1)]


def test_seen_file_lists_segments_not_ids_and_counts_stay_right(seeded_store):
    assert run_online_learning_workflow(base_dir=seeded_store)["status"] == "promoted"
    writer = TrajectoryWriter(seeded_store)
    for _ in range(60):
        writer.append(trajectory_doc())
    status = store_status(seeded_store)
    assert status["unseen_trajectory_count"] == 60 and status["seen_trajectory_count"] == 2000
    result = run_online_learning_workflow(base_dir=seeded_store)
    assert result["new_trajectory_count"] == 60 and result["off_policy"]["held_out_count"] == 12
    assert result["training_trajectory_count"] == 2060 - 12, "the newest 20% of the new ones are held out"
    seen = json.loads((seeded_store / "seen-trajectories.json").read_text())
    assert len(seen["trajectory_ids"]) == 60, "ids of a still-open journal are listed one by one"
    writer.close()
    status = store_status(seeded_store)
    assert status["unseen_trajectory_count"] == 0 and status["seen_trajectory_count"] == 2060
    build_store(seeded_store, 80, seed=14)
    result = run_online_learning_workflow(base_dir=seeded_store)
    assert result["new_trajectory_count"] == 80
    seen = json.loads((seeded_store / "seen-trajectories.json").read_text())
    assert seen["trajectory_ids"] == [], "once sealed, the journal's ids collapse into its segment's key"
    assert store_status(seeded_store)["seen_trajectory_count"] == 2140


def _segment(tmp_path, documents):
    folder = tmp_path / "trajectories"
    folder.mkdir(exist_ok=True)
    (folder / "seg.json").write_text(json.dumps({"trajectories": {str(i): d for i, d in enumerate(documents, 1)}}))
    return TrajectoryStore(tmp_path), next(item for item in TrajectoryStore(tmp_path).files())


def _good_document(**changes):
    return dict(Trajectory.model_validate(trajectory_doc()).model_dump(mode="json"), **changes)


def _with(path, value):
    document = _good_document()
    *parents, last = path.split(".")
    target = document
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    target[last] = value
    return document


@pytest.mark.parametrize("bad", [
    _with("outcome.reward", "high"), _with("outcome.latency_ms", -1),
    _with("decision.propensity", 0), _with("decision.propensity", 1.5), _with("decision.chosen_candidate_id", "x"),
    _with("candidates", []), _with("candidates.1.candidate_id", "tool:weather"), _with("candidates.0.kind", "oracle"),
    _with("task.text", ""), _with("task.text", "x" * 20_001), _with("source", "robot"), _with("created_at", "soon"),
    _with("trajectory_id", ""), {k: v for k, v in _good_document().items() if k != "task"},
])
def test_the_bulk_path_refuses_what_the_model_refuses(tmp_path, bad):
    with pytest.raises(ValueError):
        Trajectory.model_validate(bad)
    store, item = _segment(tmp_path, [_good_document(trajectory_id="a"), bad])
    assert store.read_plain_documents(item) is None, "the whole segment falls back to the model path"
    index = ArtifactIndex.scan(tmp_path, set())
    assert index.training_count == 1 and [entry.position for entry in index.invalid] == [1]


def test_plain_documents_give_the_same_statistics_as_models(seeded_store):
    build_store(seeded_store, 300, seed=15)
    sparse = {k: v for k, v in _good_document(trajectory_id="sparse", extra_field=1).items() if k != "created_at"}
    sparse["candidates"] = [{"candidate_id": c["candidate_id"], "kind": c["kind"]} for c in sparse["candidates"]]
    sparse["candidates"][0]["payload"] = {"hint_reward": 0.7}
    sparse["decision"] = {"chosen_candidate_id": sparse["candidates"][0]["candidate_id"]}
    with TrajectoryWriter(seeded_store) as writer:
        writer.append(sparse)
    store = TrajectoryStore(seeded_store)
    builder = DatasetBuilder()
    for item in store.files():
        documents = store.read_plain_documents(item)
        assert documents is not None
        models = [t for t in store.read_batch(item).trajectories if not t.is_benchmark]
        plain = builder.file_stats_of_documents([d for d in documents if d.get("source") != "benchmark"])
        expected = builder.file_stats(models)
        for name, array in expected.to_arrays().items():
            np.testing.assert_array_equal(plain.to_arrays()[name], array, err_msg=name)
        assert plain.count == expected.count == len(models)


def test_a_cycle_holds_out_at_most_max_held_out_trajectories(seeded_store, monkeypatch):
    from memabra import workflow

    monkeypatch.setattr(workflow, "MAX_HELD_OUT", 50)
    result = run_online_learning_workflow(base_dir=seeded_store, dry_run=True)
    assert result["off_policy"]["held_out_count"] == 50, "20% of 2,000 new would be 400"
    assert result["training_trajectory_count"] == 2000 - 50
