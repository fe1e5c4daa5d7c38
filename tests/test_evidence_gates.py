"""The evidence a cycle decides on, exact reward deltas, the production gate profile, the cross-fitted reward model
and anytime-valid intervals for the gates."""

import json
import random

from bench.learners import log_trajectories

import orjson
import pytest

from memabra import run_online_learning_workflow
from memabra.demo.world import DemoWorld
from memabra.evaluation import reward_model as reward_model_module
from memabra.evaluation.benchmark import BenchmarkSuite, BenchmarkTask
from memabra.evaluation.counterfactual import compare_routers
from memabra.evaluation.gates import PromotionPolicy
from memabra.ingest import ingest_trajectories
from memabra.learning.dataset import DatasetBuilder
from memabra.learning.exploration import ExplorationPolicy
from memabra.learning.routers import HeuristicRouter, ScoringRouter
from memabra.learning.train import train_router
from memabra.models import BenchmarkMetrics, DeltaInterval, Outcome, Trajectory, UncertaintyEvidence
from tests.helpers import run_main


def agent_log(count: int, seed: int = 5) -> list[Trajectory]:
    """Trajectories as an agent logs them: epsilon-greedy around the retrieval score, exact propensities."""
    logged = log_trajectories(DemoWorld(seed), count, random.Random(seed))
    return [trajectory.model_copy(update={"source": "agent"}) for trajectory in logged]


@pytest.fixture
def agent_store(tmp_path):
    """A store holding 1,000 ingested agent trajectories and no executor configured."""
    path = tmp_path / "agent.jsonl"
    path.write_bytes(b"".join(orjson.dumps(t.model_dump(mode="json")) + b"\n" for t in agent_log(1000)))
    base = tmp_path / "store"
    assert ingest_trajectories(base, path)["stored_count"] == 1000
    return base


def test_agent_traffic_without_an_executor_is_decided_offpolicy_with_no_demo_benchmark(agent_store):
    code, stdout, stderr = run_main("--base-dir", str(agent_store))
    assert code == 0, stderr
    cycle = json.loads(stdout)
    assert cycle["evidence"] == "offpolicy" and cycle["benchmark"] is None
    off_policy = cycle["off_policy"]
    assert cycle["challenger"]["task_count"] == off_policy["used_count"] == 200, "task_count = held-out decisions"
    dr = off_policy["estimators"]["dr"]
    assert cycle["reward_delta"] == pytest.approx(dr["delta"]["estimate"])
    assert cycle["challenger"]["avg_reward"] == pytest.approx(dr["challenger"]["estimate"])
    assert cycle["error_rate_delta"] == pytest.approx(off_policy["error_rate"]["delta"]["estimate"])
    assert cycle["latency_delta_ms"] == pytest.approx(off_policy["latency_ms"]["delta"]["estimate"])
    assert {gate["gate"] for gate in cycle["gates"]} == {"reward_delta", "error_rate_delta", "latency_delta_ms",
                                                         "task_count"}
    report = json.loads((agent_store / "training-reports" / f"{cycle['report_id']}.json").read_text())
    assert report["evidence"] == "offpolicy" and report["benchmark"] is None
    stored = [json.loads(line)["source"] for path in (agent_store / "trajectories").iterdir()
              for line in path.read_text().splitlines() if path.suffix == ".jsonl"]
    assert "benchmark" not in stored, "no demo benchmark was run, so none was stored"


def test_demo_evidence_must_be_asked_for_on_agent_traffic(agent_store):
    code, stdout, stderr = run_main("--base-dir", str(agent_store), "--evidence", "demo", "--dry-run")
    assert code == 0, stderr
    cycle = json.loads(stdout)
    assert cycle["evidence"] == "demo" and cycle["benchmark"]["suite"].startswith("demo")
    code, _, stderr = run_main("--base-dir", str(agent_store), "--evidence", "benchmark")
    assert code == 2 and "--evidence benchmark needs --executor" in stderr


def test_reward_delta_is_exact_from_expected_values_with_the_sampled_one_beside_it(seeded_store):
    result = run_online_learning_workflow(base_dir=seeded_store, dry_run=True)
    benchmark = result["benchmark"]
    exact = benchmark["challenger_expected_value"] - benchmark["baseline_expected_value"]
    sampled = result["challenger"]["avg_reward"] - result["baseline"]["avg_reward"]
    assert result["evidence"] == "demo" and result["reward_delta_basis"] == "expected"
    assert result["reward_delta"] == pytest.approx(exact) and result["reward_delta_sampled"] == pytest.approx(sampled)
    assert result["reward_delta"] != pytest.approx(sampled, abs=1e-6), "outcomes are sampled, expected values not"
    assert benchmark["expected_reward_delta"] == pytest.approx(exact)
    assert next(g for g in result["gates"] if g["gate"] == "reward_delta")["value"] == pytest.approx(exact)
    interval = benchmark["reward_delta_interval"]
    assert "expected rewards" in interval["source"] and interval["low"] <= exact <= interval["high"]


class CoinFlipWorld:
    """Every candidate is worth 0.5: no router can be better than another."""

    def __init__(self):
        self.rng = random.Random(3)

    def execute(self, task, candidate) -> Outcome:
        return Outcome(reward=float(self.rng.random() < 0.5), latency_ms=10.0)


def coin_flip_suite(expected: bool) -> BenchmarkSuite:
    tasks = [BenchmarkTask(item.task, item.candidates,
                           {c.candidate_id: 0.5 for c in item.candidates} if expected else None)
             for item in DemoWorld(7).benchmark_suite().tasks]
    return BenchmarkSuite("coin-flip", tasks, executor=CoinFlipWorld())


def test_the_production_profile_refuses_a_challenger_that_is_no_better(seeded_store):
    lenient = run_online_learning_workflow(base_dir=seeded_store, dry_run=True, suite=coin_flip_suite(True))
    assert lenient["evidence"] == "benchmark" and lenient["reward_delta"] == 0.0
    assert lenient["accepted"] is True, "the lenient default promotes a tie"
    production = run_online_learning_workflow(base_dir=seeded_store, dry_run=True, suite=coin_flip_suite(True),
                                              gate_profile="production")
    assert production["accepted"] is False
    assert production["policy"]["gate_profile"] == "production"
    assert production["policy"]["reward_delta_bound"] == "evidence"
    assert production["policy"]["min_effective_sample_size"] == 30.0
    bound = next(g for g in production["gates"] if g["gate"] == "reward_delta_lower_bound")
    assert bound["passed"] is False and bound["value"] <= 0.0
    overridden = run_online_learning_workflow(base_dir=seeded_store, dry_run=True, suite=coin_flip_suite(True),
                                              gate_profile="production", reward_delta_bound="off",
                                              min_reward_delta=-0.5)
    assert overridden["policy"]["reward_delta_bound"] == "off", "a gate set explicitly overrides the profile"
    assert overridden["policy"]["required_task_count"] == 100


def test_the_production_profile_decides_on_the_lower_bound_not_the_point():
    evidence = UncertaintyEvidence(
        reward_delta=0.02, benchmark_delta=DeltaInterval(estimate=0.02, low=-0.01, high=0.05, level=0.95,
                                                        source="paired bootstrap over 160 benchmark tasks"),
        effective_sample_size=500.0)
    metrics = BenchmarkMetrics(avg_reward=0.5, error_rate=0.0, avg_latency_ms=10.0, task_count=160)
    assert PromotionPolicy().evaluate(metrics, metrics, evidence).accepted is True
    decision = PromotionPolicy(gate_profile="production").evaluate(metrics, metrics, evidence)
    assert decision.accepted is False
    assert decision.reasons == ["the challenger's reward gain is not clearly above min_reward_delta 0.001: it is "
                                "+0.0200, but its 95% interval (paired bootstrap over 160 benchmark tasks) reaches "
                                "down to -0.0100"]


def test_cli_selects_the_production_profile_with_one_flag(agent_store):
    code, stdout, stderr = run_main("--base-dir", str(agent_store), "--gates", "production", "--dry-run")
    assert code == 0, stderr
    cycle = json.loads(stdout)
    assert cycle["policy"]["gate_profile"] == "production" and cycle["policy"]["required_task_count"] == 100
    task_count = next(g for g in cycle["gates"] if g["gate"] == "task_count")
    assert (task_count["value"], task_count["threshold"], task_count["passed"]) == (200, 100, True)
    assert {g["gate"] for g in cycle["gates"]} >= {"reward_delta_lower_bound", "effective_sample_size"}
    code, _, stderr = run_main("--base-dir", str(agent_store), "--gates", "strict")
    assert code == 2 and "--gates" in stderr


class SelfFlatteringRouter(ScoringRouter):
    """A router that scores every candidate far above any reward it could get, in the same order as `inner`."""

    def __init__(self, inner):
        self.inner = inner

    def scores(self, task, candidates):
        return [1000.0 + 100.0 * score for score in self.inner.scores(task, candidates)]


def test_dm_and_dr_never_read_a_routers_own_scores(monkeypatch):
    log = agent_log(600, seed=9)
    held_out = log[400:]
    challenger = train_router(DatasetBuilder().stats(log[:400]))
    fitted_on: list[set[str]] = []
    real_fit = reward_model_module.fit_reward_model

    def spy(trajectories):
        fitted_on.append({t.trajectory_id for t in trajectories})
        return real_fit(trajectories)

    monkeypatch.setattr(reward_model_module, "fit_reward_model", spy)
    model = reward_model_module.CrossFittedRewardModel(held_out, seed=1)
    honest = compare_routers(held_out, HeuristicRouter(), challenger, model, resamples=100)
    flattering = compare_routers(held_out, HeuristicRouter(), SelfFlatteringRouter(challenger), model,
                                 resamples=100)
    held_ids = {t.trajectory_id for t in held_out}
    assert len(fitted_on) == model.folds == 5
    assert all(ids < held_ids and len(ids) == 160 for ids in fitted_on), "each fold's model skips that fold"
    for estimator in ("dm", "dr"):
        assert flattering.estimators[estimator].challenger == honest.estimators[estimator].challenger
    assert flattering.estimators["dm"].challenger.estimate < 1.0, "the router's scores of 1000+ were never read"
    assert honest.reward_model.startswith("cross-fitted") and "dm" in honest.interval_limits


def test_a_cycle_fits_its_reward_model_on_held_out_traffic_only(seeded_store, monkeypatch):
    fitted_sizes: list[int] = []
    real_fit = reward_model_module.fit_reward_model
    monkeypatch.setattr(reward_model_module, "fit_reward_model",
                        lambda trajectories: fitted_sizes.append(len(trajectories)) or real_fit(trajectories))
    result = run_online_learning_workflow(base_dir=seeded_store, dry_run=True)
    assert fitted_sizes == [320] * 5, "five folds of the 400 held-out trajectories, each fitted on the other four"
    assert result["off_policy"]["reward_model"].startswith("cross-fitted")
    assert "reward model's bias" in result["off_policy"]["interval_limits"]["dm"]


def test_confidence_sequence_intervals_for_the_gates(seeded_store):
    bootstrap = run_online_learning_workflow(base_dir=seeded_store, dry_run=True, reward_delta_bound="benchmark")
    sequence = run_online_learning_workflow(base_dir=seeded_store, dry_run=True, reward_delta_bound="benchmark",
                                            interval="confidence_sequence")
    assert sequence["policy"]["interval"] == "confidence_sequence"
    wide, narrow = sequence["benchmark"]["reward_delta_interval"], bootstrap["benchmark"]["reward_delta_interval"]
    assert wide["source"].startswith("confidence sequence (betting) over 160 benchmark tasks")
    assert wide["low"] < narrow["low"] and wide["high"] > narrow["high"], "anytime-valid is wider"
    gate = next(g for g in sequence["gates"] if g["gate"] == "reward_delta_lower_bound")
    assert gate["value"] == pytest.approx(wide["low"])
    offpolicy = run_online_learning_workflow(base_dir=seeded_store, dry_run=True, evidence="offpolicy",
                                             reward_delta_bound="doubly_robust", interval="confidence_sequence")
    dr = offpolicy["off_policy"]["dr_delta_sequence"]
    assert offpolicy["evidence"] == "offpolicy" and dr["low"] <= dr["estimate"] <= dr["high"]
    gate = next(g for g in offpolicy["gates"] if g["gate"] == "reward_delta_lower_bound")
    assert gate["value"] == pytest.approx(dr["low"])
