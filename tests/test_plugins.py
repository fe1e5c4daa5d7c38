"""The user's executor and benchmark suite on the command line, and concurrent benchmark runs."""

import json

import pytest

from memabra.demo.world import DemoWorld
from memabra.evaluation import Evaluator
from memabra.learning.routers import HeuristicRouter
from memabra.storage.trajectories import TrajectoryStore

KINDS = ("tool", "memory", "direct", "clarify")


def suite_document(task_count: int = 24) -> dict:
    tasks = []
    for index in range(task_count):
        best = KINDS[index % len(KINDS)]
        text = {5: "explode the build", 6: "hang on the network"}.get(index, f"task number {index} wants {best}")
        candidates = [{"candidate_id": f"{kind}:{index}", "kind": kind, "score": 0.9 if kind == "direct" else 0.5}
                      for kind in KINDS]
        tasks.append({"task": {"task_id": f"t{index}", "text": text, "metadata": {"best_kind": best}},
                      "candidates": candidates,
                      "expected_rewards": {c["candidate_id"]: 1.0 if c["kind"] == best else 0.2 for c in candidates}})
    return {"name": "my-agent", "tasks": tasks}


def write_suite(path, document) -> str:
    path.write_text(json.dumps(document))
    return str(path)


def test_cycle_runs_the_users_suite_through_the_users_executor(cli, seeded_store, tmp_path):
    suite = write_suite(tmp_path / "suite.json", suite_document())
    result = cli("--base-dir", seeded_store, "--executor", "tests.executor_plugins:make_executor",
                 "--benchmark-suite", suite, "--benchmark-concurrency", "3", "--benchmark-timeout", "0.5")
    assert result.code == 0, result.stderr
    out = result.json
    assert out["benchmark"]["suite"] == "my-agent" and out["benchmark"]["task_count"] == 24
    assert out["baseline"]["task_count"] == out["challenger"]["task_count"] == 24
    assert out["baseline"]["error_rate"] == out["challenger"]["error_rate"] == pytest.approx(2 / 24)
    assert out["benchmark"]["oracle_value"] == pytest.approx(1.0)
    # The heuristic trusts the retrieval score (direct): 1.0 on the 6 tasks wanting direct but t6, which hangs;
    # 0.2 on the other 18 but t5, which raises.
    assert out["baseline"]["avg_reward"] == pytest.approx((5 * 1.0 + 17 * 0.2) / 24)
    errors = {t.task.task_id: t.outcome.error for t in TrajectoryStore(seeded_store).load_all()[0]
              if t.is_benchmark and t.outcome.error}
    assert errors == {"t5": "executor raised RuntimeError: the tool crashed",
                      "t6": "executor timed out after 0.5 s"}


def test_an_executor_that_prints_leaves_stdout_one_json_document(cli, seeded_store, tmp_path):
    suite = write_suite(tmp_path / "suite.json", suite_document())
    result = cli("--base-dir", seeded_store, "--executor", "tests.executor_plugins:make_chatty_executor",
                 "--benchmark-suite", suite, "--benchmark-timeout", "0.2", "--dry-run")
    assert result.code == 0, result.stderr
    assert result.json["status"] == "dry_run"
    assert "chatty executor ready" in result.stderr and "running direct:0 on t0" in result.stderr


def test_concurrent_benchmark_gives_the_same_results_in_task_order():
    world = DemoWorld(7)
    suite = world.benchmark_suite(64)
    one = Evaluator(concurrency=1).evaluate(HeuristicRouter(), suite)
    many = Evaluator(concurrency=8).evaluate(HeuristicRouter(), suite)
    assert many.metrics == one.metrics and many.family_rewards == one.family_rewards
    assert list(many.decisions) == [item.task.task_id for item in suite.tasks] == list(one.decisions)
    assert [t.outcome for t in many.trajectories] == [t.outcome for t in one.trajectories]


@pytest.mark.parametrize("spec, message", [
    ("tests.executor_plugins", "is not package.module:factory"),
    ("no_such_agent_module:make", "no module named 'no_such_agent_module'"),
    ("tests.executor_plugins:missing", "has no 'missing'"),
    ("tests.executor_plugins:NEVER", "is not callable"),
    ("tests.executor_plugins:broken_factory", "broken_factory() raised RuntimeError: cannot reach the agent"),
    ("tests.executor_plugins:not_an_executor", "no execute(task, candidate) method"),
])
def test_a_bad_executor_spec_is_one_line_and_exit_2(cli, tmp_path, spec, message):
    (tmp_path / "store").mkdir()  # a missing store is its own exit 2; this is about the spec
    result = cli("--base-dir", tmp_path / "store", "--executor", spec)
    assert result.code == 2 and result.stdout == ""
    assert len(result.error_lines) == 1 and message in result.error_lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_suite_file_is_one_line_and_exit_2(cli, tmp_path):
    (tmp_path / "store").mkdir()
    executor = ("--executor", "tests.executor_plugins:make_executor")
    broken = suite_document()
    broken["tasks"][3]["expected_rewards"]["memory:99"] = 0.5
    cases = [
        ((*executor, "--benchmark-suite", tmp_path / "missing.json"), "does not exist"),
        ((*executor, "--benchmark-suite", tmp_path / "bad.json"), "is not valid JSON"),
        ((*executor, "--benchmark-suite", write_suite(tmp_path / "broken.json", broken)),
         "['memory:99'] are not candidate ids of task t3"),
        ((*executor, "--benchmark-suite", write_suite(tmp_path / "empty.json", {"tasks": []})), "tasks"),
        (("--benchmark-suite", write_suite(tmp_path / "ok.json", suite_document())), "needs --executor"),
    ]
    (tmp_path / "bad.json").write_text("{nope")
    for args, message in cases:
        result = cli("--base-dir", tmp_path / "store", *args)
        assert result.code == 2 and result.stdout == "", (args, result.stderr)
        assert len(result.error_lines) == 1 and message in result.error_lines[0], (args, result.stderr)
