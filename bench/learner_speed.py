"""Speed of the hierarchical learner: `python -m bench.learner_speed` prints one JSON object and writes it to
bench/results/learner-speed.json.

Statistics built per trajectory second from models and from plain documents (segments of 5,000), training from
statistics, Vowpal Wabbit cb_adf's learn() on the same logs, and route latency with 7 candidates (medians). Timed
with the garbage collector paused, as the store's scan pauses it while it summarises segments. The speed-up over VW
is given in wall time and in CPU seconds (the steadier figure when the machine is shared).
"""

from __future__ import annotations

import gc
import json
import random
import statistics
import sys
import time
from pathlib import Path

import orjson

from bench.learners import HIERARCHICAL_CONFIG, log_trajectories, vw_training_examples, vw_workspace
from memabra.demo.worlds import make_world
from memabra.learning.hierarchical import train
from memabra.learning.learner_stats import LearnerStatsBuilder, decayed_sum

SEGMENT = 5000
RESULTS = Path(__file__).resolve().parent / "results" / "learner-speed.json"


CPU_SECONDS: dict[str, float] = {}
"""Each timed action's median CPU seconds, by name (steadier than wall time on a shared machine)."""


def _median_seconds(action, runs: int = 3, name: str | None = None) -> float:
    timings, cpu = [], []
    for _ in range(runs):
        gc.disable()
        try:
            start, start_cpu = time.perf_counter(), time.process_time()
            action()
            timings.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        finally:
            gc.enable()
    if name:
        CPU_SECONDS[name] = statistics.median(cpu)
    return statistics.median(timings)


def main(count: int = 20_000) -> dict:
    world = make_world("support", 1)
    logs = log_trajectories(world, count, random.Random("speed"))
    documents = [orjson.loads(trajectory.model_dump_json()) for trajectory in logs]
    builder = LearnerStatsBuilder(HIERARCHICAL_CONFIG)
    segments = [slice(start, start + SEGMENT) for start in range(0, count, SEGMENT)]
    models = _median_seconds(lambda: [builder.stats(logs[part]) for part in segments])
    plain = _median_seconds(lambda: [builder.stats_of_documents(documents[part]) for part in segments],
                            name="documents")
    stats = decayed_sum([builder.stats(logs[part]) for part in segments], HIERARCHICAL_CONFIG)
    solve = _median_seconds(lambda: train(stats), name="train")
    examples = vw_training_examples(logs)

    def learn_vw():
        workspace = vw_workspace("mtr")
        for example in examples:
            workspace.learn(example)
        workspace.finish()

    vw = _median_seconds(learn_vw, runs=2, name="vw")
    router = train(stats)
    rng = random.Random("route")
    offers = []
    while len(offers) < 200:
        task = world.sample_task(rng)
        candidates = world.candidates(task)
        if len(candidates) == 7:
            offers.append((task, candidates))
    samples = []
    for _ in range(10):
        for task, candidates in offers:
            start = time.perf_counter()
            router.route(task, candidates)
            samples.append(time.perf_counter() - start)
    samples.sort()
    return {"trajectories": count, "stats_models_per_s": count / models, "stats_documents_per_s": count / plain,
            "train_seconds": solve, "models_plus_train_per_s": count / (models + solve),
            "documents_plus_train_per_s": count / (plain + solve), "vw_mtr_learn_per_s": count / vw,
            "route_p50_us": samples[len(samples) // 2] * 1e6, "route_p99_us": samples[int(len(samples) * 0.99)] * 1e6,
            "documents_plus_train_vs_vw": (count / (plain + solve)) / (count / vw),
            "documents_plus_train_vs_vw_cpu": CPU_SECONDS["vw"] / (CPU_SECONDS["documents"] + CPU_SECONDS["train"]),
            "candidates": 7, "statistics_kib": stats.gram.nbytes / 1024}


if __name__ == "__main__":
    measured = json.dumps(main(*(int(value) for value in sys.argv[1:])), indent=1)
    RESULTS.write_text(measured + "\n")
    print(measured)
