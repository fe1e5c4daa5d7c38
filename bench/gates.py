"""Do the gates promote noise, and does deciding on logged traffic agree with the truth? `python -m bench.gates`.

Per world (demo, support) and seed: logs by epsilon-greedy (0.3) around the heuristic with exact propensities; a
challenger trained by the project's learner on the oldest (100, 300 or 1,600 in turn, so some are worse than the
heuristic), the newest 400 held out; TRUE values (expected reward, no sampling) on fresh tasks. Then the same figures a cycle reads:
a 160-task benchmark through the world (sampled outcomes; with and without the suite's expected rewards) and the
held-out traffic off-policy (DR with a cross-fitted reward model), decided by the lenient and the production gates.

- no-better cases: the truly better of (heuristic, challenger) is the baseline, the other the challenger;
  how often each profile and evidence promotes it.
- DR coverage: how often DR's 95% interval of the challenger's value covers its true value; DM's bias.
- agreement: heuristic baseline, learned challenger; how often each evidence's decision equals "truly better".

Each seed's logs, challenger, benchmark runs and reward model are made once and shared by every measurement; seeds
run in `--jobs` processes. Writes bench/results/gates.json and prints a summary. No test asserts on these numbers.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from bench.learners import EvaluationSet, log_trajectories, true_value
from memabra.demo.worlds import make_world
from memabra.evaluation.benchmark import BenchmarkSuite, BenchmarkTask
from memabra.evaluation.counterfactual import compare_routers
from memabra.evaluation.evaluator import Evaluator
from memabra.evaluation.evidence import (benchmark_reward_delta, doubly_robust_interval, offpolicy_guardrails,
                                        offpolicy_metrics)
from memabra.evaluation.gates import PromotionPolicy
from memabra.evaluation.reward_model import CrossFittedRewardModel
from memabra.learning.dataset import DatasetBuilder
from memabra.learning.routers import HeuristicRouter
from memabra.learning.train import train_router
from memabra.models import UncertaintyEvidence

RESULTS = Path(__file__).resolve().parent / "results" / "gates.json"
WORLDS = ("demo", "support")
HELD_OUT = 400
"""Logged trajectories held out for the off-policy estimates (the newest, after the training ones)."""
TRAIN_SIZES = (100, 300, 1600)
"""Training trajectories per seed, in turn: small ones give challengers near or below the heuristic."""
SUITE_TASKS = 160
FRESH_TASKS = 1500
LEVEL = 0.95
POLICIES = {
    "lenient": PromotionPolicy(),
    "production": PromotionPolicy(gate_profile="production"),
    "production_cs": PromotionPolicy(gate_profile="production", interval="confidence_sequence"),
}
EVIDENCE = ("benchmark_sampled", "benchmark_expected", "offpolicy")


def make_suites(world, rng: random.Random) -> dict[str, BenchmarkSuite]:
    """One set of fresh tasks run through the world itself (sampled outcomes), as two suites: without and with the
    suite's expected rewards."""
    tasks = []
    for _ in range(SUITE_TASKS):
        task = world.sample_task(rng)
        offer = world.candidates(task)
        tasks.append((task, offer, {c.candidate_id: world.expected_reward(task, c) for c in offer}))
    return {"benchmark_sampled": BenchmarkSuite("bench", [BenchmarkTask(t, o) for t, o, _ in tasks], executor=world),
            "benchmark_expected": BenchmarkSuite("bench", [BenchmarkTask(t, o, k) for t, o, k in tasks],
                                                 executor=world)}


class ScoresKept:
    """A router whose scores of a task are computed once (every comparison on one log re-reads them)."""

    def __init__(self, router):
        self.router, self._scores = router, {}

    def scores(self, task, candidates):
        if task.task_id not in self._scores:
            self._scores[task.task_id] = self.router.scores(task, candidates)
        return self._scores[task.task_id]

    def __getattr__(self, name):
        return getattr(self.router, name)


class Evidence:
    """Both routers' benchmark runs and held-out estimates for one seed, each computed once per interval method."""

    def __init__(self, routers: dict, held_out, suites: dict, seed: int):
        self.routers, self.held_out, self.suites, self.seed = routers, held_out, suites, seed
        expected_runs = {router: Evaluator(suites["benchmark_expected"].executor).evaluate(routers[router],
                                                                                          suites["benchmark_expected"])
                         for router in routers}
        self.runs = {("benchmark_expected", router): run for router, run in expected_runs.items()}
        self.runs.update({("benchmark_sampled", router): dataclasses.replace(run, expected_value=None)
                          for router, run in expected_runs.items()})
        """One run per router: the suites share their tasks and the world's outcomes are keyed on task and pick."""
        self.sections: dict = {}
        self.reward_model = CrossFittedRewardModel(held_out, seed=seed)
        """Fitted on the held-out traffic alone, so one model serves every pair of routers."""

    def section(self, baseline: str, challenger: str, method: str):
        key = (baseline, challenger, method)
        if key not in self.sections:
            self.sections[key] = compare_routers(
                self.held_out, self.routers[baseline], self.routers[challenger],
                self.reward_model, level=LEVEL, seed=self.seed, interval=method)
        return self.sections[key]

    def decide(self, policy: PromotionPolicy, baseline: str, challenger: str) -> dict:
        """Each evidence's decision under the policy, with the reward delta it read."""
        method = policy.effective().interval
        section = self.section(baseline, challenger, method)
        doubly_robust = section.estimators["dr"]
        dr_interval = doubly_robust_interval(section, method)
        found = {}
        for name, suite in self.suites.items():
            base_eval, chall_eval = self.runs[(name, baseline)], self.runs[(name, challenger)]
            figures = benchmark_reward_delta(suite, base_eval, chall_eval, level=LEVEL, seed=self.seed,
                                             method=method)
            evidence = UncertaintyEvidence(**figures, doubly_robust_delta=dr_interval,
                                           effective_sample_size=doubly_robust.challenger.ess, source="benchmark")
            decision = policy.evaluate(base_eval.metrics, chall_eval.metrics, evidence)
            found[name] = {"promoted": decision.accepted, "reward_delta": evidence.reward_delta}
        metrics = offpolicy_metrics(section)
        evidence = UncertaintyEvidence(reward_delta=doubly_robust.delta.estimate, reward_delta_basis="doubly_robust",
                                       doubly_robust_delta=dr_interval,
                                       effective_sample_size=doubly_robust.challenger.ess, source="offpolicy",
                                       **offpolicy_guardrails(section))
        decision = policy.evaluate(metrics[0], metrics[1], evidence)
        found["offpolicy"] = {"promoted": decision.accepted, "reward_delta": evidence.reward_delta}
        return found


def run_seed(world_name: str, seed: int) -> dict:
    world = make_world(world_name, seed)
    size = TRAIN_SIZES[seed % len(TRAIN_SIZES)]
    logs = log_trajectories(world, size + HELD_OUT, random.Random(f"gates-log:{world_name}:{seed}"))
    held_out = logs[size:]
    routers = {"heuristic": HeuristicRouter(), "learned": train_router(DatasetBuilder().stats(logs[:size]))}
    fresh = EvaluationSet.draw(world, FRESH_TASKS, random.Random(f"gates-fresh:{world_name}:{seed}"))
    truth = {name: true_value(router, fresh)["value"] for name, router in routers.items()}
    suites = make_suites(world, random.Random(f"gates-suite:{world_name}:{seed}"))
    evidence = Evidence({name: ScoresKept(router) for name, router in routers.items()}, held_out, suites, seed)
    learned_better = truth["learned"] > truth["heuristic"]
    worse, better = ("heuristic", "learned") if learned_better else ("learned", "heuristic")
    section = evidence.section("heuristic", "learned", "bootstrap")
    dr, dm = section.estimators["dr"].challenger, section.estimators["dm"].challenger
    return {"world": world_name, "seed": seed, "train_size": size, "truth": truth,
            "dr": {"estimate": dr.estimate, "low": dr.low, "high": dr.high,
                   "covers": dr.low <= truth["learned"] <= dr.high},
            "dm_error": dm.estimate - truth["learned"],
            "natural": {name: evidence.decide(policy, "heuristic", "learned") for name, policy in POLICIES.items()},
            "no_better": {name: evidence.decide(policy, better, worse) for name, policy in POLICIES.items()}}


def summarise(runs: list[dict]) -> dict:
    summary: dict = {"cases": len(runs), "promotion_rate_no_better": {}, "agreement_with_truth": {}}
    for policy in POLICIES:
        summary["promotion_rate_no_better"][policy] = {
            evidence: sum(run["no_better"][policy][evidence]["promoted"] for run in runs) / len(runs)
            for evidence in EVIDENCE}
        summary["agreement_with_truth"][policy] = {
            evidence: sum(run["natural"][policy][evidence]["promoted"] == (run["truth"]["learned"] >
                                                                          run["truth"]["heuristic"])
                          for run in runs) / len(runs)
            for evidence in EVIDENCE}
    gaps = [abs(run["truth"]["learned"] - run["truth"]["heuristic"]) for run in runs]
    summary["median_true_gap"] = statistics.median(gaps)
    summary["share_learned_truly_better"] = sum(run["truth"]["learned"] > run["truth"]["heuristic"]
                                                for run in runs) / len(runs)
    summary["dr_coverage"] = sum(run["dr"]["covers"] for run in runs) / len(runs)
    errors = [run["dm_error"] for run in runs]
    summary["dm_bias"] = {"mean": statistics.fmean(errors), "mean_absolute": statistics.fmean(map(abs, errors))}
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=50, help="seeds per world (default 50)")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                        help="seeds run at once in separate processes (default: 2, or 1 on one core)")
    parser.add_argument("--worlds", nargs="+", default=list(WORLDS), choices=WORLDS)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    cases = [(world_name, seed) for world_name in args.worlds for seed in range(args.seeds)]
    runs = []
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for run in pool.map(run_seed, *zip(*cases)):
            runs.append(run)
            print(f"{run['world']} seed {run['seed']}: truth {run['truth']}", file=sys.stderr, flush=True)
    results = {
        "settings": {"held_out": HELD_OUT, "train_sizes": TRAIN_SIZES,
                     "suite_tasks": SUITE_TASKS, "fresh_tasks": FRESH_TASKS, "level": LEVEL,
                     "seeds_per_world": args.seeds, "jobs": args.jobs},
        "overall": summarise(runs),
        "by_world": {name: summarise([run for run in runs if run["world"] == name]) for name in args.worlds},
        "seconds": time.perf_counter() - started,
        "runs": runs,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=1, default=float))
    print(json.dumps({key: results[key] for key in ("overall", "by_world", "seconds")}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
