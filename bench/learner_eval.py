"""Compare the hierarchical learner with the heuristic and Vowpal Wabbit cb_adf (-q sa) on logged worlds.

`python -m bench.learner_eval [sizes] [seeds]` prints one JSON line per (world, size, seed) and a summary table.
Values are true expected rewards of each router's picks on 3,000 fresh tasks, as a share of the oracle.
"""

from __future__ import annotations

import json
import random
import re
import sys
import time

from bench.support_world import SupportWorld
from memabra.demo.world import DemoWorld
from memabra.learning.hierarchical import train
from memabra.learning.learner_stats import LearnerStatsBuilder, decayed_sum
from memabra.learning.pair_features import LearnerConfig
from memabra.models import Decision, Outcome, Trajectory

TOKEN = re.compile(r"[a-z0-9]+")


class DemoAdapter:
    """The shipped demo world in the shape the evaluation needs."""

    def __init__(self, seed: int = 7):
        self.world = DemoWorld(seed)

    def sample(self, rng):
        task = self.world.sample_task(rng)
        candidates = self.world.candidates(task)
        return task, candidates, {c.candidate_id: self.world.expected_reward(task, c) for c in candidates}

    def logs(self, count, rng, epsilon=0.3):
        trajectories = []
        for _ in range(count):
            task, candidates, _ = self.sample(rng)
            best = max(range(len(candidates)), key=lambda index: candidates[index].score)
            pick = best if rng.random() >= epsilon else rng.randrange(len(candidates))
            propensity = epsilon / len(candidates) + (1 - epsilon if pick == best else 0.0)
            outcome = self.world.execute(task, candidates[pick])
            trajectories.append(Trajectory(task=task, candidates=candidates, source="demo", outcome=outcome,
                                           decision=Decision(chosen_candidate_id=candidates[pick].candidate_id,
                                                             propensity=propensity)))
        return trajectories


def _words(text: str) -> str:
    return " ".join(TOKEN.findall(text.lower())) or "empty"


def vw_example(task, candidates, chosen=None, reward=0.0, propensity=1.0) -> list[str]:
    lines = [f"shared |s {_words(task.text)}"]
    for candidate in candidates:
        label = f"0:{-reward:.6f}:{propensity:.6f} " if candidate.candidate_id == chosen else ""
        hint = float((candidate.payload or {}).get("hint_reward", 0.0))
        lines.append(f"{label}|a kind_{candidate.kind.value} id_{_words(candidate.name).replace(' ', '_')} "
                     f"{_words(candidate.name)} score:{candidate.score:.6f} hint:{hint:.6f}")
    return lines


class VWLearner:
    """Vowpal Wabbit cb_explore_adf with task x candidate quadratic features; greedy pick = highest pmf."""

    def __init__(self, trajectories):
        import vowpalwabbit

        self.vw = vowpalwabbit.Workspace("--cb_explore_adf -q sa --quiet")
        examples = [vw_example(t.task, t.candidates, t.decision.chosen_candidate_id, t.outcome.reward,
                               t.decision.propensity) for t in trajectories]
        start = time.perf_counter()
        for lines in examples:
            self.vw.learn(lines)
        self.seconds = time.perf_counter() - start

    def pick(self, task, candidates) -> int:
        pmf = self.vw.predict(vw_example(task, candidates))
        return max(range(len(pmf)), key=pmf.__getitem__)


def value(pick, tests) -> float:
    """Mean expected reward of the picks over the test tasks."""
    return sum(expected[candidates[pick(task, candidates)].candidate_id] for task, candidates, expected in tests) / len(tests)


def router_pick(router):
    def pick(task, candidates):
        scores = router.scores(task, candidates)
        return max(range(len(scores)), key=scores.__getitem__)
    return pick


def heuristic_pick(task, candidates):
    return max(range(len(candidates)), key=lambda index: candidates[index].score)


def evaluate(world, size, seed, configs: dict[str, LearnerConfig], tests, with_vw=True) -> dict:
    logs = world.logs(size, random.Random(seed * 1000 + size))
    oracle = sum(max(expected.values()) for _, _, expected in tests) / len(tests)
    row = {"size": size, "seed": seed, "heuristic": value(heuristic_pick, tests) / oracle}
    for name, config in configs.items():
        stats = LearnerStatsBuilder(config).stats(logs)
        row[name] = value(router_pick(train(stats, config)), tests) / oracle
    if with_vw:
        row["vw"] = value(VWLearner(logs).pick, tests) / oracle
    return row


def drift_eval(size_old, size_new, seed, configs, with_vw=True) -> dict:
    """Old-phase logs then new-phase logs; values on the drifted world, overall and on the drifted families."""
    old = SupportWorld(seed, drifted=False).logs(size_old, random.Random(seed * 7 + 1))
    new_world = SupportWorld(seed, drifted=True)
    new = new_world.logs(size_new, random.Random(seed * 7 + 2))
    tests = [new_world.sample(random.Random(10_000 + index)) for index in range(3000)]
    drifted = [item for item in tests if item[0].metadata["family"] in ("order_status", "billing", "howto")]
    out = {"seed": seed, "old": size_old, "new": size_new}
    for part_name, part in (("all", tests), ("drifted", drifted)):
        oracle = sum(max(expected.values()) for _, _, expected in part) / len(part)
        out[f"heuristic_{part_name}"] = value(heuristic_pick, part) / oracle
    for name, config in configs.items():
        builder = LearnerStatsBuilder(config)
        segments = [builder.stats(old[i:i + 1000]) for i in range(0, len(old), 1000)]
        segments += [builder.stats(new[i:i + 1000]) for i in range(0, len(new), 1000)]
        both = train(decayed_sum(segments, config), config)
        alone = train(builder.stats(new), config)
        for part_name, part in (("all", tests), ("drifted", drifted)):
            oracle = sum(max(expected.values()) for _, _, expected in part) / len(part)
            out[f"{name}_both_{part_name}"] = value(router_pick(both), part) / oracle
            out[f"{name}_new_{part_name}"] = value(router_pick(alone), part) / oracle
    if with_vw:
        learner = VWLearner(old + new)
        for part_name, part in (("all", tests), ("drifted", drifted)):
            oracle = sum(max(expected.values()) for _, _, expected in part) / len(part)
            out[f"vw_both_{part_name}"] = value(learner.pick, part) / oracle
    return out


def main(argv: list[str]) -> None:
    sizes = [int(value) for value in (argv[0].split(",") if argv else ["500", "2000", "10000"])]
    seeds = range(int(argv[1]) if len(argv) > 1 else 2)
    configs = {"hier": LearnerConfig()}
    for world_name, make in (("support", lambda seed: SupportWorld(seed)), ("demo", lambda seed: DemoAdapter(7))):
        for size in sizes:
            for seed in seeds:
                world = make(seed)
                tests = [world.sample(random.Random(50_000 + index)) for index in range(3000)]
                print(json.dumps({"world": world_name, **evaluate(world, size, seed, configs, tests)}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
