"""Fast paths give exactly what the plain ones give: exploration picks, sealed segments, trajectory ids."""

import json
import os
import random
import uuid

import numpy as np
import pytest

from memabra.learning.exploration import ExplorationPolicy
from memabra.models import Trajectory, new_trajectory_id
from memabra.storage.trajectories import TrajectoryStore, TrajectoryWriter
from tests.helpers import trajectory_doc


@pytest.mark.parametrize("policy", [ExplorationPolicy("epsilon_greedy", 0.2), ExplorationPolicy("epsilon_greedy", 0.9),
                                    ExplorationPolicy("greedy"), ExplorationPolicy("softmax", temperature=0.1)])
def test_choose_matches_numpy_sampling_from_its_probabilities(policy):
    scores_rng, draws, reference_draws = random.Random(4), random.Random(9), random.Random(9)
    for _ in range(2000):
        scores = [round(scores_rng.random(), 2) for _ in range(scores_rng.randint(1, 7))]
        index, propensity = policy.choose(scores, draws)
        probabilities = policy.probabilities(scores)
        if policy.kind == "greedy":
            expected = int(np.argmax(probabilities))
        else:
            cumulative = np.cumsum(probabilities)
            expected = min(int(np.searchsorted(cumulative, reference_draws.random(), side="right")), len(scores) - 1)
        assert (index, propensity) == (expected, float(probabilities[expected]))


def test_a_writer_seals_exactly_the_documents_it_appended(tmp_path):
    appended = []
    with TrajectoryWriter(tmp_path, max_documents=3) as writer:
        for reward in (0.1, 0.2, 0.3, 0.4):
            appended.append(writer.append(trajectory_doc(reward=reward, error="naïve ✓")).model_dump(mode="json"))
    segments = sorted((tmp_path / "trajectories").glob("*.json"))
    tables = [json.loads(path.read_text())["trajectories"] for path in segments]
    assert [list(table) for table in tables] == [["1", "2", "3"], ["1"]]
    assert [doc for table in tables for doc in table.values()] == appended
    trajectories, invalid = TrajectoryStore(tmp_path).load_all()
    assert invalid == [] and [t.model_dump(mode="json") for t in trajectories] == appended


def test_trajectory_ids_are_random_uuid4_hex():
    ids = {new_trajectory_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(uuid.UUID(hex=value).version == 4 and uuid.UUID(hex=value).hex == value for value in ids)
    assert Trajectory.model_validate(trajectory_doc()).trajectory_id != Trajectory.model_validate(trajectory_doc()).trajectory_id


def test_a_forked_child_never_hands_out_its_parents_trajectory_ids():
    new_trajectory_id()  # the parent has drawn random bytes for more ids than it used
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(reader)
        os.write(writer, " ".join(new_trajectory_id() for _ in range(300)).encode())
        os._exit(0)
    os.close(writer)
    with os.fdopen(reader) as handle:
        child_ids = set(handle.read().split())
    os.waitpid(pid, 0)
    parent_ids = {new_trajectory_id() for _ in range(300)}
    assert len(child_ids) == 300 and not child_ids & parent_ids
