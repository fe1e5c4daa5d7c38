"""The learner on rewards in other units: `python -m bench.reward_units` writes bench/results/reward-units.md.

The support world as shipped, and with the same outcomes logged as 0/1 successes, as +-1, times 10 and plus 5; per
log size, memabra (default settings and the settings `bench.learners` uses) and VW `cb_adf -q sa --cb_type mtr`
train on the same logs and are valued by their true expected reward on fresh tasks, as a share of the oracle. The
ranking of the candidates is the same in every variant, so a learner that minds only what the rewards say should
score alike in all of them. No test asserts on these numbers.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from pathlib import Path
from typing import Callable

from bench.learners import HIERARCHICAL_CONFIG, EvaluationSet, log_trajectories, train_memabra, train_vw, true_value
from memabra.demo.support import SupportDeskWorld, _keyed_rng
from memabra.learning.pair_features import LearnerConfig
from memabra.learning.routers import HeuristicRouter
from memabra.models import Candidate, Outcome, Task

RESULTS = Path(__file__).resolve().parent / "results" / "reward-units.md"
SIZES = (500, 2000, 10_000)


class RewardUnits(SupportDeskWorld):
    """The support world with each outcome's reward logged through `unit` (the expected rewards the truth uses are
    the world's own); `success` first draws a 0/1 success with the outcome's expected reward as its chance."""

    def __init__(self, seed: int, unit: Callable[[float], float], success: bool = False):
        super().__init__(seed, 1)
        self.unit, self.success = unit, success

    def execute(self, task: Task, candidate: Candidate) -> Outcome:
        outcome = super().execute(task, candidate)
        reward = outcome.reward
        if self.success:
            chance = self.expected_reward(task, candidate)
            reward = float(_keyed_rng(self.seed, "success", task.task_id, candidate.candidate_id).random() < chance)
        return outcome.model_copy(update={"reward": self.unit(reward)})


VARIANTS: dict[str, tuple[Callable[[float], float], bool]] = {
    "as shipped (0..1)": (lambda reward: reward, False),
    "0/1 success": (lambda reward: reward, True),
    "success as +1 / -1": (lambda reward: 2 * reward - 1, True),
    "times 10": (lambda reward: 10 * reward, False),
    "plus 5": (lambda reward: reward + 5, False),
}
LEARNERS = {
    "memabra, default settings": lambda logs: train_memabra(logs, LearnerConfig()),
    "memabra, bench.learners' settings": lambda logs: train_memabra(logs, HIERARCHICAL_CONFIG),
    "VW cb_adf mtr": lambda logs: train_vw(logs, "mtr"),
}


def measure(seeds: list[int], eval_tasks: int) -> dict[str, dict[tuple[str, int], float]]:
    """Per variant, each (learner, log size)'s mean share of the oracle over the seeds (the heuristic's at every size)."""
    shares: dict[str, dict[tuple[str, int], float]] = {}
    for variant, (unit, success) in VARIANTS.items():
        runs: dict[tuple[str, int], list[float]] = {}
        for seed in seeds:
            world = RewardUnits(seed, unit, success)
            logs = log_trajectories(world, max(SIZES), random.Random(f"log:{variant}:{seed}"))
            evaluation = EvaluationSet.draw(world, eval_tasks, random.Random(f"evaluate:{variant}:{seed}"))
            heuristic = true_value(HeuristicRouter(), evaluation)["share"]
            for size in SIZES:
                runs.setdefault(("heuristic", size), []).append(heuristic)
                for name, fit in LEARNERS.items():
                    router = fit(logs[:size])
                    runs.setdefault((name, size), []).append(true_value(router, evaluation)["share"])
                    if hasattr(router, "close"):
                        router.close()
        shares[variant] = {key: statistics.mean(values) for key, values in runs.items()}
        print(f"{variant}: done", file=sys.stderr, flush=True)
    return shares


def markdown(shares: dict[str, dict[tuple[str, int], float]], seeds: list[int], eval_tasks: int) -> str:
    lines = ["# Rewards in other units", "",
             f"Support world, seeds {seeds}, epsilon-greedy 0.3 logs, true value on {eval_tasks:,} fresh tasks per seed "
             "as a share of the oracle (mean over seeds); the heuristic is the same in every variant.", "",
             "| rewards | learner | " + " | ".join(f"{size:,}" for size in SIZES) + " |",
             "|---|---|" + "---|" * len(SIZES)]
    for variant, share in shares.items():
        for name in ("heuristic", *LEARNERS):
            lines.append(f"| {variant} | {name} | " + " | ".join(f"{share[name, size]:.1%}" for size in SIZES) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reward_units", description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2], help="world seeds (default 1 2)")
    parser.add_argument("--eval-tasks", type=int, default=2000, help="fresh tasks valued per seed (2000)")
    args = parser.parse_args(argv)
    table = markdown(measure(args.seeds, args.eval_tasks), args.seeds, args.eval_tasks)
    RESULTS.write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
