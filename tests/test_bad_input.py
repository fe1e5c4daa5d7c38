"""Bad input gets a clear error and loses nothing: malformed trajectories, a full disk, an unwritable store,
and (property-based) any trajectory document or any command line."""

import contextlib
import json
import math
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import memabra.storage.atomic as atomic
from memabra.errors import BadInputError, StoreWriteError
from memabra.models import MAX_TEXT_CHARS, Trajectory
from memabra.status import store_status
from memabra.storage.trajectories import TrajectoryStore, TrajectoryWriter
from memabra.check import check_store
from tests.helpers import assert_store_intact, run_cli, run_main, trajectory_doc

DOCUMENTED_EXIT_CODES = {0, 1, 2, 4, 75}


def test_duplicate_ids_are_stored_once_as_far_as_a_cycle_counts(tmp_path):
    document = {**trajectory_doc(), "trajectory_id": "same"}
    with TrajectoryWriter(tmp_path) as writer:
        writer.append(document)
        writer.append({**document, "outcome": {"reward": 0.1, "latency_ms": 5}})
    status = store_status(tmp_path)
    assert status["trajectory_count"] == 1 and status["unseen_trajectory_count"] == 1
    assert len(TrajectoryStore(tmp_path).load_all()[0]) == 2, "both documents are kept on disk"


@pytest.mark.parametrize("change, field", [
    (lambda d: d.pop("outcome"), "outcome"),
    (lambda d: d["decision"].update(propensity="high"), "decision.propensity"),
    (lambda d: d["outcome"].update(reward=math.nan), "outcome.reward"),
    (lambda d: d["outcome"].update(reward=-math.inf), "outcome.reward"),
    (lambda d: d["outcome"].update(latency_ms=-0.5), "outcome.latency_ms"),
    (lambda d: d["task"].update(text="x" * (MAX_TEXT_CHARS + 1)), "task.text"),
    (lambda d: d.update(candidates=[]), "candidates"),
])
def test_appending_a_bad_trajectory_names_the_field_and_stores_nothing(tmp_path, change, field):
    document = trajectory_doc()
    change(document)
    with TrajectoryWriter(tmp_path) as writer:
        with pytest.raises(BadInputError, match=field.replace(".", r"\.")):
            writer.append(document)
        writer.append(trajectory_doc())
    assert len(TrajectoryStore(tmp_path).load_all()[0]) == 1


@pytest.fixture
def injected(monkeypatch):
    """Inject a fault at a write step of this process (what MEMABRA_FAULT_INJECT does for a child)."""

    def inject(mode, step):
        monkeypatch.setattr(atomic, "_INJECTED_FAULT", (mode, step))
        monkeypatch.setattr(atomic, "_write_steps", 0)

    return inject


def test_full_disk_in_the_middle_of_an_append_leaves_no_torn_line(tmp_path, injected):
    writer = TrajectoryWriter(tmp_path)
    first = writer.append(trajectory_doc())
    injected("enospc", 1)  # halfway through the next append's line
    with pytest.raises(StoreWriteError, match="disk is full"):
        writer.append(trajectory_doc())
    injected("enospc", 10**9)
    third = writer.append(trajectory_doc())
    ids = [t.trajectory_id for t in TrajectoryStore(tmp_path).load_all()[0]]
    assert ids == [first.trajectory_id, third.trajectory_id], "the append after the failed one is whole"
    writer.close()
    trajectories, invalid = TrajectoryStore(tmp_path).load_all()
    assert [t.trajectory_id for t in trajectories] == ids and invalid == []


@pytest.mark.parametrize("step", [8, 17])  # writing the version, the promotion (after it: tests/test_attacks.py)
def test_full_disk_during_a_cycle_is_one_line_and_changes_nothing_half(small_store, step):
    failed = run_cli("--base-dir", small_store, "--min-new-trajectories", "1", fault=f"enospc@{step}")
    assert failed.returncode == 1
    assert failed.stderr.splitlines()[-1].startswith("error: cannot write") and "disk is full" in failed.stderr
    assert "Traceback" not in failed.stderr and failed.stdout == ""
    assert_store_intact(small_store)
    assert check_store(small_store)["problems"] == [], "a failed write leaves not even a temp file"
    again = run_cli("--base-dir", small_store, "--min-new-trajectories", "0")
    assert again.returncode == 0, again.stderr


def test_full_disk_while_reading_is_no_error(small_store):
    """The summary cache is derived data: failing to write it costs time, not the cycle."""
    cached = run_cli("--base-dir", small_store, "--min-new-trajectories", "1", "--dry-run", fault="enospc@2")
    assert cached.returncode == 0, cached.stderr


def test_unwritable_base_dir_is_one_line(tmp_path, cli):
    if os.geteuid() == 0:
        target = Path("/sys/memabra-store")  # read-only even for root
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        target = locked / "store"
    result = cli("--base-dir", target, "--demo-trajectories", "5")
    assert result.code in (1, 2) and result.error_lines == [result.stderr.strip().splitlines()[-1]]
    assert "not writable" in result.stderr and "Traceback" not in result.stderr
    denied = run_cli("--base-dir", tmp_path / "store", "--demo-trajectories", "5", fault="eacces@1")
    assert denied.returncode == 1 and "not writable" in denied.stderr


# --- property-based ---------------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
    | st.just("x" * (MAX_TEXT_CHARS + 5)),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=6,
)
FIELD_PATHS = [("trajectory_id",), ("source",), ("task",), ("task", "text"), ("task", "task_id"), ("candidates",),
               ("decision",), ("decision", "chosen_candidate_id"), ("decision", "propensity"), ("outcome",),
               ("outcome", "reward"), ("outcome", "latency_ms"), ("outcome", "error"), ("created_at",)]


@st.composite
def mutated_trajectories(draw):
    """A valid trajectory document with a few fields dropped or replaced by arbitrary JSON-ish values."""
    document = trajectory_doc()
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(FIELD_PATHS))
        parent = document
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent.get(key), dict) else None
            if parent is None:
                break
        if parent is None:
            continue
        if draw(st.booleans()):
            parent.pop(path[-1], None)
        else:
            parent[path[-1]] = draw(json_values)
    return document


@given(mutated_trajectories())
def test_any_trajectory_document_is_stored_whole_or_refused_in_one_line(document):
    with tempfile.TemporaryDirectory() as folder:
        with TrajectoryWriter(folder) as writer:
            try:
                stored = writer.append(document)
            except BadInputError as exc:
                assert "\n" not in str(exc) and str(exc).startswith("trajectory refused: ")
                stored = None
        trajectories, invalid = TrajectoryStore(Path(folder)).load_all()
        assert invalid == []
        assert [t.trajectory_id for t in trajectories] == ([stored.trajectory_id] if stored else [])
        if stored:
            assert trajectories[0] == Trajectory.model_validate(stored.model_dump(mode="json"))


FLAGS = ["--status", "--list-versions", "--check", "--repair", "--rollback", "--demo-trajectories", "--ingest",
         "--rebuild-case-index", "--seen-trajectory-store", "--case-index", "--dry-run", "--baseline-version",
         "--min-new-trajectories", "--min-reward-delta", "--max-error-rate-increase", "--max-latency-increase-ms",
         "--required-task-count", "--exploration", "--epsilon", "--temperature", "--seed", "--executor",
         "--benchmark-suite", "--benchmark-concurrency", "--benchmark-timeout"]
VALUES = ["20260414-123456", "../../etc/passwd", "2020-01-01", "", "latest", "0", "2", "-3", "nan", "inf", "1e309",
          "0.5", "softmax", "greedy", "no.such:module", "os:getcwd", "seen.json", "cases.json", "missing.jsonl",
          "folder/", "☃", "20261301-250000"]


free_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00/"), max_size=12)


@given(st.lists(st.sampled_from(FLAGS) | st.sampled_from(VALUES)
                | free_text.filter(lambda text: not text.startswith("-")), max_size=6))
def test_no_command_line_makes_a_traceback_or_an_undocumented_exit_code(args):
    with tempfile.TemporaryDirectory() as folder, contextlib.chdir(folder):
        code, printed, stderr = run_main("--base-dir", "store", *args)
        assert code in DOCUMENTED_EXIT_CODES
        assert "Traceback" not in stderr
        if code in (0, 4):
            json.loads(printed)
        else:
            assert printed == "" and stderr.splitlines()[-1].startswith("error: ")
            assert code != 1 or "cannot write" in stderr, stderr
