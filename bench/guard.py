"""The guard's acceptance figures (`python -m bench.guard [--quick]`): false rollbacks, detection, coverage.

Streams come from the demo world's families and kinds (memabra.demo.world), served epsilon-greedy around the promoted
version's pick with exact propensities, vectorised with numpy; part (d) goes through real trajectories and routers.
Writes bench/results/guard.json and prints a table. No test asserts on these numbers.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import statistics
import time
from pathlib import Path

import numpy as np

from memabra.demo.world import BASE_LATENCY_MS, ERROR_RATE, FAMILIES, OFFERED_KINDS, REWARD_NOISE, DemoWorld
from memabra.evaluation import offpolicy
from memabra.evaluation.confidence import ips_sequence, mean_sequence
from memabra.evaluation.guard import CandidateKeys, GuardBatch, GuardMonitor, GuardPolicy, batch_from_trajectories
from memabra.learning.exploration import ExplorationPolicy
from memabra.learning.routers import ScoringRouter
from memabra.models import Decision, Outcome, Trajectory

RESULTS = Path(__file__).resolve().parent / "results" / "guard.json"
EPSILON = 0.2
KINDS = len(OFFERED_KINDS)
CHECK_EVERY = 50
POLICY = GuardPolicy(margin=0.01, min_traffic=200, max_watch=5000, level=0.9, estimator="dr",
                     max_importance_weight=KINDS / EPSILON)
"""The bound on importance weights is the logging policy's own: epsilon-greedy 0.2 over 5 candidates."""
QUALITY = np.array([[family.quality[kind] for kind in OFFERED_KINDS] for family in FAMILIES])
ERRORS = np.array([ERROR_RATE[kind] for kind in OFFERED_KINDS])
LATENCY = np.array([BASE_LATENCY_MS[kind] for kind in OFFERED_KINDS])
EXPECTED = (1.0 - ERRORS) * QUALITY
HEURISTIC = np.array([int(np.argmax([family.retrieval[kind] for kind in OFFERED_KINDS])) for family in FAMILIES])


def value(picks: np.ndarray) -> float:
    """True expected reward of a per-family pick table (families are equally likely)."""
    return float(EXPECTED[np.arange(len(FAMILIES)), picks].mean())


def changed_picks(target_delta: float, changes: int) -> tuple[np.ndarray, float]:
    """The heuristic's picks changed on `changes` families (each by at least 0.1), value closest to target_delta."""
    best, best_gap = None, np.inf
    for families in itertools.combinations(range(len(FAMILIES)), changes):
        for kinds in itertools.product(range(KINDS), repeat=changes):
            picks = HEURISTIC.copy()
            picks[list(families)] = kinds
            moves = [abs(EXPECTED[f, k] - EXPECTED[f, HEURISTIC[f]]) for f, k in zip(families, kinds)]
            if min(moves) < 0.1:
                continue
            gap = abs(value(picks) - value(HEURISTIC) - target_delta)
            if gap < best_gap:
                best, best_gap = picks, gap
    return best, value(best) - value(HEURISTIC)


def stream(rng: np.random.Generator, size: int, promoted: np.ndarray, prior: np.ndarray,
           failing_promoted: bool = False) -> dict[str, np.ndarray]:
    """Served decisions: demo-world families, epsilon-greedy around the promoted pick, rewards as world.execute."""
    families = rng.integers(0, len(FAMILIES), size)
    greedy = promoted[families]
    explore = rng.random(size) < EPSILON
    logged = np.where(explore, rng.integers(0, KINDS, size), greedy)
    propensity = np.where(logged == greedy, 1.0 - EPSILON + EPSILON / KINDS, EPSILON / KINDS)
    quality = QUALITY[families, logged]
    spread = np.minimum(REWARD_NOISE, np.minimum(quality, 1.0 - quality))
    error = rng.random(size) < ERRORS[logged]
    reward = np.where(error, 0.0, quality + spread * rng.uniform(-1.0, 1.0, size))
    if failing_promoted:
        error = logged == greedy
        reward = np.where(error, 0.0, 1.0)
    latency = LATENCY[logged] * np.exp(0.25 * rng.standard_normal(size) - 0.25 ** 2 / 2)
    keys = families * KINDS
    return dict(rewards=reward, propensities=propensity, latencies_ms=latency, errors=error,
                logged_keys=keys + logged, promoted_keys=keys + greedy, prior_keys=keys + prior[families])


def watch(seed: int, promoted: np.ndarray, prior: np.ndarray, policy: GuardPolicy, size: int,
          failing_promoted: bool = False) -> tuple[int | None, dict]:
    """Check after every CHECK_EVERY decisions; the traffic count at the first `regressed`, and the last report."""
    arrays = stream(np.random.default_rng(seed), size, promoted, prior, failing_promoted)
    monitor = GuardMonitor(policy)
    for start in range(0, size, CHECK_EVERY):
        monitor.update(GuardBatch(**{name: array[start:start + CHECK_EVERY] for name, array in arrays.items()}))
        report = monitor.report()
        if report.verdict == "regressed":
            return monitor.served_count, report.model_dump()
    return None, report.model_dump()


def part_false_alarms(seeds: int, policy: GuardPolicy) -> dict:
    promoted, true_delta = changed_picks(0.0, 2)
    regressed, covered = 0, 0
    for seed in range(seeds):
        at, report = watch(seed, promoted, HEURISTIC, policy, policy.max_watch)
        regressed += at is not None
        covered += report["difference"]["low"] <= true_delta <= report["difference"]["high"]
    bound = (1.0 - policy.level) / 2.0
    return {"streams": seeds, "true_delta": true_delta, "regressed_rate": regressed / seeds, "bound": bound,
            "final_interval_coverage": covered / seeds, "checks_per_stream": policy.max_watch // CHECK_EVERY}


def part_detection(seeds: int, policy: GuardPolicy) -> dict:
    promoted, true_delta = changed_picks(-0.05, 2)
    times = []
    for seed in range(1000, 1000 + seeds):
        at, _ = watch(seed, promoted, HEURISTIC, policy, policy.max_watch)
        times.append(at)
    detected = [at for at in times if at is not None]
    return {"streams": seeds, "true_delta": true_delta, "detection_rate": len(detected) / seeds,
            "median_trajectories_to_regressed": statistics.median(detected) if detected else None,
            "p90_trajectories_to_regressed": float(np.percentile(detected, 90)) if detected else None}


def part_heavy_tails(logs: int, decisions: int = 2000, candidates: int = 80) -> dict:
    """Uniform logging over 80 candidates (weights 80), rare successes; coverage of the target policy's value."""
    rng = np.random.default_rng(99)
    success = rng.uniform(0.0, 0.05, size=(len(FAMILIES), candidates))
    target = rng.integers(0, candidates, len(FAMILIES))
    success[np.arange(len(FAMILIES)), target] = rng.uniform(0.02, 0.12, len(FAMILIES))
    truth = float(success[np.arange(len(FAMILIES)), target].mean())
    hits = {"betting_ips": 0, "bootstrap_ips": 0, "bootstrap_snips": 0, "empirical_bernstein_ips": 0}
    widths = {name: [] for name in hits}
    for log in range(logs):
        log_rng = np.random.default_rng(log)
        families = log_rng.integers(0, len(FAMILIES), decisions)
        logged = log_rng.integers(0, candidates, decisions)
        rewards = (log_rng.random(decisions) < success[families, logged]).astype(float)
        propensities = np.full(decisions, 1.0 / candidates)
        targets = (logged == target[families]).astype(float)
        intervals = {
            "betting_ips": ips_sequence(rewards, propensities, targets),
            "bootstrap_ips": offpolicy.ips(rewards, propensities, targets, seed=log, max_weight=candidates),
            "bootstrap_snips": offpolicy.snips(rewards, propensities, targets, seed=log, max_weight=candidates),
            "empirical_bernstein_ips": mean_sequence(targets * rewards / propensities, 0.0, float(candidates),
                                                     method="empirical_bernstein"),
        }
        for name, interval in intervals.items():
            hits[name] += interval.low <= truth <= interval.high
            widths[name].append(interval.high - interval.low)
    return {"logs": logs, "decisions": decisions, "max_importance_weight": candidates, "true_value": truth,
            "coverage": {name: count / logs for name, count in hits.items()},
            "median_width": {name: float(np.median(values)) for name, values in widths.items()}}


class TableRouter(ScoringRouter):
    """Scores 1 on the candidate of the kind its table names for the task's demo family."""

    def __init__(self, picks: np.ndarray, version_id: str):
        self.kinds = {family.name: OFFERED_KINDS[pick] for family, pick in zip(FAMILIES, picks)}
        self.version_id = version_id

    def scores(self, task, candidates):
        wanted = self.kinds[task.metadata["family"]]
        return [1.0 if candidate.kind.value == wanted else 0.0 for candidate in candidates]


def part_store_traffic(seeds: int, size: int = 2000) -> dict:
    """Real trajectories: a promoted version whose picks always fail, and honest traffic; checks every 50."""
    world = DemoWorld()
    policy = POLICY.model_copy(update={"max_watch": size})
    promoted_picks, _ = changed_picks(0.0, 2)
    exploration = ExplorationPolicy("epsilon_greedy", epsilon=EPSILON)
    results = {}
    for case in ("always_failing", "honest"):
        detected_at = []
        for seed in range(seeds):
            rng = random.Random(seed)
            promoted = TableRouter(promoted_picks, "20260101-000001")
            prior = TableRouter(HEURISTIC, "20260101-000000")
            monitor = GuardMonitor(policy, promoted_version_id=promoted.version_id, prior_version_id=prior.version_id)
            keys, pending, found = CandidateKeys(), [], None
            for _ in range(size):
                task = world.sample_task(rng)
                candidates = world.candidates(task)
                scores = promoted.scores(task, candidates)
                decision: Decision = exploration.decide(candidates, scores, rng, promoted.version_id)
                chosen = next(c for c in candidates if c.candidate_id == decision.chosen_candidate_id)
                if case == "honest":
                    outcome = world.execute(task, chosen)
                elif scores[candidates.index(chosen)] == 1.0:
                    outcome = Outcome(reward=0.0, latency_ms=100.0, error="the promoted pick failed")
                else:
                    outcome = Outcome(reward=1.0, latency_ms=100.0)
                pending.append(Trajectory(task=task, candidates=candidates, decision=decision, outcome=outcome))
                if len(pending) == CHECK_EVERY:
                    monitor.update(batch_from_trajectories(pending, promoted, prior, keys))
                    pending = []
                    if monitor.report().verdict == "regressed":
                        found = monitor.served_count
                        break
            detected_at.append(found)
        detected = [at for at in detected_at if at is not None]
        results[case] = {"streams": seeds, "regressed_rate": len(detected) / seeds,
                         "max_trajectories_to_regressed": max(detected) if detected else None}
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.guard", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the streams (a smoke run)")
    args = parser.parse_args(argv)
    scale = 0.1 if args.quick else 1.0
    started = time.perf_counter()
    results: dict = {"policy": POLICY.model_dump(), "epsilon": EPSILON, "check_every": CHECK_EVERY}
    timings = {}
    for name, run in (("a_no_regression", lambda: part_false_alarms(int(200 * scale), POLICY)),
                      ("b_planted_regression", lambda: part_detection(max(5, int(50 * scale)), POLICY)),
                      ("b_planted_regression_margin_0", lambda: part_detection(
                          max(5, int(50 * scale)), POLICY.model_copy(update={"margin": 0.0}))),
                      ("c_heavy_tails", lambda: part_heavy_tails(int(200 * scale))),
                      ("d_store_traffic", lambda: part_store_traffic(max(2, int(20 * scale))))):
        start = time.perf_counter()
        results[name] = run()
        timings[name] = round(time.perf_counter() - start, 1)
        print(f"{name}: {json.dumps(results[name])}  ({timings[name]} s)", flush=True)
    results["seconds"] = timings
    results["total_seconds"] = round(time.perf_counter() - started, 1)
    if not args.quick:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)


def print_table(results: dict) -> None:
    a, b, c, d = (results[key] for key in ("a_no_regression", "b_planted_regression", "c_heavy_tails",
                                            "d_store_traffic"))
    rows = [
        ("(a) false rollbacks, as-good streams", f"{a['regressed_rate']:.1%} of {a['streams']} (bound "
                                                 f"{a['bound']:.1%}, target <= 5%)"),
        ("(b) planted regression detected", f"{b['detection_rate']:.0%} of {b['streams']}, median "
                                            f"{b['median_trajectories_to_regressed']} trajectories (true delta "
                                            f"{b['true_delta']:+.4f})"),
        ("(c) coverage, betting IPS sequence", f"{c['coverage']['betting_ips']:.1%} of {c['logs']} logs"),
        ("(c) coverage, bootstrap IPS / SNIPS", f"{c['coverage']['bootstrap_ips']:.1%} / "
                                                f"{c['coverage']['bootstrap_snips']:.1%}"),
        ("(d) always-failing version regressed", f"{d['always_failing']['regressed_rate']:.0%}, by "
                                                 f"{d['always_failing']['max_trajectories_to_regressed']} at most"),
        ("(d) honest traffic regressed", f"{d['honest']['regressed_rate']:.0%} of {d['honest']['streams']}"),
    ]
    width = max(len(label) for label, _ in rows)
    for label, figure in rows:
        print(f"{label:<{width}}  {figure}")
    print(f"total {results['total_seconds']} s")


if __name__ == "__main__":
    main()
