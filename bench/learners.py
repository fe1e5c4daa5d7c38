"""How well each learner routes, as a share of the best possible: `python -m bench.learners [--seeds 1 2 3]`.

For each shipped world and log size, trajectories are logged by epsilon-greedy (0.3) around the heuristic with exact
propensities; every learner trains on the same logs; its TRUE value (expected reward, no sampling) on fresh tasks is
reported as a share of the oracle (best offered candidate). A drift case on the support world, and training speed,
follow. Writes bench/results/learners.json (and .md) and prints markdown tables. No test asserts on these numbers.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

from memabra.demo.support import DRIFTED_FAMILIES
from memabra.demo.worlds import make_world
from memabra.learning.dataset import DatasetBuilder
from memabra.learning.exploration import ExplorationPolicy
from memabra.learning.pair_features import LearnerConfig
from memabra.learning.routers import HeuristicRouter, Router, ScoringRouter
from memabra.learning.train import train_router
from memabra.models import Candidate, Outcome, Task, Trajectory

RESULTS = Path(__file__).resolve().parent / "results" / "learners.json"
WORLDS = ("demo", "support")
SIZES = (500, 2000, 10_000)
EPSILON = 0.3
EVAL_TASKS = 5000
DRIFT_OLD = 10_000
DRIFT_NEW = (2000, 5000)
TIMING_RUNS = 3
_TOKEN = re.compile(r"[a-z0-9]+")


# -- logs and ground truth --------------------------------------------------------------------------------------------

def log_trajectories(world, count: int, rng: random.Random) -> list[Trajectory]:
    """`count` trajectories logged by epsilon-greedy around the heuristic (highest retrieval score), with propensities."""
    policy = ExplorationPolicy("epsilon_greedy", EPSILON)
    trajectories = []
    for _ in range(count):
        task = world.sample_task(rng)
        candidates = world.candidates(task)
        decision = policy.decide(candidates, [candidate.score for candidate in candidates], rng)
        chosen = next(c for c in candidates if c.candidate_id == decision.chosen_candidate_id)
        outcome: Outcome = world.execute(task, chosen)
        trajectories.append(Trajectory(source="demo", task=task, candidates=candidates, decision=decision,
                                       outcome=outcome))
    return trajectories


@dataclass
class EvaluationSet:
    """Fresh tasks with their offered candidates and every candidate's true expected reward."""

    tasks: list[Task]
    candidates: list[list[Candidate]]
    expected: list[dict[str, float]]

    @classmethod
    def draw(cls, world, count: int, rng: random.Random) -> "EvaluationSet":
        tasks = [world.sample_task(rng) for _ in range(count)]
        candidates = [world.candidates(task) for task in tasks]
        expected = [{c.candidate_id: world.expected_reward(task, c) for c in offer}
                    for task, offer in zip(tasks, candidates)]
        return cls(tasks, candidates, expected)


def true_value(router: Router, evaluation: EvaluationSet, families: tuple[str, ...] | None = None) -> dict:
    """The router's mean expected reward, the oracle's, their ratio, and how often the right kind got the wrong pick."""
    value = oracle = 0.0
    count = right_kind = wrong_within_kind = 0
    for task, offer, expected in zip(evaluation.tasks, evaluation.candidates, evaluation.expected):
        if families is not None and task.metadata.get("family") not in families:
            continue
        chosen_id = router.route(task, offer).chosen_candidate_id
        best = max(offer, key=lambda candidate: expected[candidate.candidate_id])
        chosen_kind = next(c.kind for c in offer if c.candidate_id == chosen_id)
        value += expected[chosen_id]
        oracle += expected[best.candidate_id]
        count += 1
        if chosen_kind == best.kind:
            right_kind += 1
            wrong_within_kind += expected[chosen_id] < expected[best.candidate_id]
    return {"value": value / count, "oracle": oracle / count, "share": value / oracle, "tasks": count,
            "wrong_within_right_kind": wrong_within_kind / right_kind if right_kind else 0.0}


# -- learners ---------------------------------------------------------------------------------------------------------

HIERARCHICAL_CONFIG = LearnerConfig(metadata_words=("channel", "tier"), payload_features=("cost",))
"""memabra's learner as a deployment would set it up: the worlds' categorical metadata and candidate cost named in
the settings (`metadata_words`, `payload_features`)."""


def train_memabra(trajectories: list[Trajectory], config: LearnerConfig = HIERARCHICAL_CONFIG) -> ScoringRouter:
    """memabra's challenger as a cycle trains it: the dataset stage (each row decayed by its age, newest last), then
    the train stage."""
    builder = DatasetBuilder(config)
    ages = list(range(len(trajectories) - 1, -1, -1))
    return train_router(builder.stats(trajectories, ages=ages), config)


def _words(text: str) -> str:
    return " ".join(_TOKEN.findall(text.lower())) or "empty"


def vw_example(task: Task, candidates: list[Candidate], chosen: int | None = None, cost: float = 0.0,
               propensity: float = 1.0) -> list[str]:
    """One cb_adf example: task words shared, one line per candidate (id, kind, name words, score), pick labelled."""
    lines = [f"shared |s {_words(task.text)}"]
    for index, candidate in enumerate(candidates):
        label = f"0:{cost:.6f}:{propensity:.6f} " if index == chosen else ""
        identity = re.sub(r"[^A-Za-z0-9_]", "_", candidate.candidate_id)
        lines.append(f"{label}|a id_{identity} kind_{candidate.kind.value} {_words(candidate.name)} "
                     f"score:{candidate.score:.6f}")
    return lines


def vw_training_examples(trajectories: list[Trajectory]) -> list[list[str]]:
    examples = []
    for trajectory in trajectories:
        chosen_id = trajectory.decision.chosen_candidate_id
        chosen = next(i for i, c in enumerate(trajectory.candidates) if c.candidate_id == chosen_id)
        examples.append(vw_example(trajectory.task, trajectory.candidates, chosen, -trajectory.outcome.reward,
                                   trajectory.decision.propensity or 1.0))
    return examples


class VowpalWabbitRouter(ScoringRouter):
    """A Vowpal Wabbit cb_adf model used as a router: the candidate with the lowest predicted cost wins."""

    def __init__(self, workspace):
        self.workspace = workspace

    def scores(self, task: Task, candidates: list[Candidate]) -> list[float]:
        return [-cost for cost in self.workspace.predict(vw_example(task, candidates))]

    def close(self) -> None:
        self.workspace.finish()


def vw_workspace(cb_type: str):
    import vowpalwabbit

    return vowpalwabbit.Workspace(f"--cb_adf -q sa --cb_type {cb_type} --quiet")


def train_vw(trajectories: list[Trajectory], cb_type: str) -> VowpalWabbitRouter:
    """Vowpal Wabbit cb_adf, quadratic task x candidate namespaces, one online pass over the logs."""
    workspace = vw_workspace(cb_type)
    for example in vw_training_examples(trajectories):
        workspace.learn(example)
    return VowpalWabbitRouter(workspace)


LEARNERS: dict[str, Callable[[list[Trajectory]], Router]] = {
    "heuristic": lambda trajectories: HeuristicRouter(),
    "memabra": train_memabra,
    "vw_mtr": partial(train_vw, cb_type="mtr"),
    "vw_dr": partial(train_vw, cb_type="dr"),
}
"""Every learner the harness compares: a name and a function from logged trajectories to a router."""
VW_LEARNERS = ("vw_mtr", "vw_dr")


def measure(learner: str, trajectories: list[Trajectory], evaluation: EvaluationSet,
            families: tuple[str, ...] | None = None) -> dict:
    router = LEARNERS[learner](trajectories)
    try:
        result = true_value(router, evaluation)
        if families is not None:
            result["drifted"] = true_value(router, evaluation, families)
        return result
    finally:
        if hasattr(router, "close"):
            router.close()


# -- runs -------------------------------------------------------------------------------------------------------------

def run_sizes(world_name: str, seeds: list[int], sizes: tuple[int, ...], eval_tasks: int) -> dict:
    """Per size and learner, each seed's true value on fresh tasks after training on that many logs."""
    results: dict = {str(size): {learner: [] for learner in LEARNERS} for size in sizes}
    for seed in seeds:
        world = make_world(world_name, seed)
        logs = log_trajectories(world, max(sizes), random.Random(f"log:{world_name}:{seed}"))
        evaluation = EvaluationSet.draw(world, eval_tasks, random.Random(f"evaluate:{world_name}:{seed}"))
        for size in sizes:
            for learner in LEARNERS:
                results[str(size)][learner].append(measure(learner, logs[:size], evaluation))
            print(f"{world_name} seed {seed} size {size:,}: " + ", ".join(
                f"{learner} {results[str(size)][learner][-1]['share']:.3f}" for learner in LEARNERS),
                file=sys.stderr, flush=True)
    return results


def run_drift(seeds: list[int], old_count: int, new_counts: tuple[int, ...], eval_tasks: int) -> dict:
    """Support world: phase-1 logs plus phase-2 logs; each learner on old + new and on new only, valued on phase 2."""
    results: dict = {str(new): {"old+new": {learner: [] for learner in LEARNERS},
                                "new only": {learner: [] for learner in LEARNERS}} for new in new_counts}
    for seed in seeds:
        before, after = make_world("support", seed, phase=1), make_world("support", seed, phase=2)
        old = log_trajectories(before, old_count, random.Random(f"log:support:{seed}"))
        new = log_trajectories(after, max(new_counts), random.Random(f"log-phase2:support:{seed}"))
        evaluation = EvaluationSet.draw(after, eval_tasks, random.Random(f"evaluate-phase2:support:{seed}"))
        for count in new_counts:
            for data, logs in (("old+new", old + new[:count]), ("new only", new[:count])):
                for learner in LEARNERS:
                    results[str(count)][data][learner].append(measure(learner, logs, evaluation, DRIFTED_FAMILIES))
            print(f"drift seed {seed} new {count:,} done", file=sys.stderr, flush=True)
    return results


def time_training(count: int, runs: int = TIMING_RUNS) -> dict:
    """Trajectories per second of training, median of `runs`: memabra from trajectories to router; VW learn() on
    examples already formatted (its text parsing included, our formatting not)."""
    logs = log_trajectories(make_world("support", 1), count, random.Random("timing"))
    examples = vw_training_examples(logs)
    timings: dict[str, list[float]] = {"memabra": [], **{learner: [] for learner in VW_LEARNERS}}
    for _ in range(runs):
        for name, learner in (("memabra", train_memabra),):
            start = time.perf_counter()
            learner(logs)
            timings[name].append(time.perf_counter() - start)
        for learner in VW_LEARNERS:
            workspace = vw_workspace(learner.removeprefix("vw_"))
            start = time.perf_counter()
            for example in examples:
                workspace.learn(example)
            timings[learner].append(time.perf_counter() - start)
            workspace.finish()
    return {name: {"seconds": statistics.median(values), "per_second": count / statistics.median(values)}
            for name, values in timings.items()} | {"trajectories": count, "runs": runs}


# -- summary ----------------------------------------------------------------------------------------------------------

def _mean(runs: list[dict], key: str = "share") -> float:
    return statistics.fmean(run[key] for run in runs)


def best_vw(by_learner: dict) -> str:
    """The VW variant with the higher mean true value in this cell (chosen with the truth, so VW's figure is generous)."""
    return max(VW_LEARNERS, key=lambda learner: _mean(by_learner[learner]))


def markdown(results: dict) -> str:
    lines = [f"Seeds {results['seeds']}; epsilon-greedy {EPSILON} logs; true value on {results['eval_tasks']:,} fresh "
             "tasks as a share of the oracle (best offered candidate). `vw` is the better of `--cb_type mtr`/`dr` "
             "per cell. In brackets: wrong candidate within the right kind.", ""]
    for world_name, by_size in results["worlds"].items():
        sizes = list(by_size)
        lines += [f"**{world_name} world**", "", "| learner | " + " | ".join(f"{int(s):,}" for s in sizes) + " |",
                  "|---|" + "---|" * len(sizes)]
        rows = ["heuristic", "memabra", "vw", *VW_LEARNERS]
        for row in rows:
            cells = []
            for size in sizes:
                learner = best_vw(by_size[size]) if row == "vw" else row
                runs = by_size[size][learner]
                cells.append(f"{_mean(runs):.1%} ({_mean(runs, 'wrong_within_right_kind'):.0%})"
                             + (f" {learner.removeprefix('vw_')}" if row == "vw" else ""))
            lines.append(f"| {row} | " + " | ".join(cells) + " |")
        lines.append("")
    if results.get("drift"):
        lines += [f"**drift (support world, {results['drift_old']:,} phase-1 logs + N phase-2 logs; value on phase-2 "
                  f"tasks, overall / drifted families {', '.join(DRIFTED_FAMILIES)})**", "",
                  "| learner | data | " + " | ".join(f"N = {int(n):,}" for n in results["drift"]) + " |",
                  "|---|---|" + "---|" * len(results["drift"])]
        for learner in ("heuristic", "memabra", *VW_LEARNERS):
            for data in ("old+new", "new only"):
                cells = []
                for by_data in results["drift"].values():
                    runs = by_data[data][learner]
                    drifted = statistics.fmean(run["drifted"]["share"] for run in runs)
                    cells.append(f"{_mean(runs):.1%} / {drifted:.1%}")
                lines.append(f"| {learner} | {data} | " + " | ".join(cells) + " |")
        lines.append("")
    if results.get("timing"):
        timing = results["timing"]
        lines += [f"**training speed ({timing['trajectories']:,} support trajectories, median of {timing['runs']})**",
                  "", "| learner | trajectories / s |", "|---|---|"]
        lines += [f"| {name} | {timing[name]['per_second']:,.0f} |" for name in ("memabra", *VW_LEARNERS)]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.learners", description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2], help="world seeds (default 1 2)")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="log sizes (default 500 2000 10000)")
    parser.add_argument("--worlds", nargs="+", default=list(WORLDS), choices=WORLDS)
    parser.add_argument("--eval-tasks", type=int, default=EVAL_TASKS, help="fresh tasks valued per case (5000)")
    parser.add_argument("--no-drift", action="store_true", help="skip the drift case")
    parser.add_argument("--no-timing", action="store_true", help="skip the training-speed case")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"results file (default {RESULTS})")
    args = parser.parse_args(argv)
    try:
        import vowpalwabbit  # noqa: F401
    except ImportError:
        print("vowpalwabbit is not installed: pip install -e '.[bench]' (pins vowpalwabbit 9.11.9)", file=sys.stderr)
        return 2
    started = time.perf_counter()
    results: dict = {"seeds": args.seeds, "eval_tasks": args.eval_tasks, "epsilon": EPSILON,
                     "worlds": {name: run_sizes(name, args.seeds, tuple(args.sizes), args.eval_tasks)
                                for name in args.worlds}}
    if not args.no_drift:
        results["drift_old"] = DRIFT_OLD
        results["drift"] = run_drift(args.seeds, DRIFT_OLD, DRIFT_NEW, args.eval_tasks)
    if not args.no_timing:
        results["timing"] = time_training(10_000)
    results["seconds"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    table = markdown(results)
    args.out.with_suffix(".md").write_text(table + "\n")
    print(table)
    print(f"({results['seconds']:.0f} s; written to {args.out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
