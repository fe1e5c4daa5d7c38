"""Speed of the agent's doors: `python -m bench.agent_doors [--lines N]` prints one JSON document.

Measures --ingest throughput (and a re-import that stores nothing), route() latency of the served router with
its current.json checks, and the benchmark's wall time under --benchmark-concurrency with a slow executor.
No test asserts on these numbers.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import orjson

from memabra import load_active_router
from memabra import run_online_learning_workflow
from memabra.demo.world import DemoWorld
from memabra.evaluation import Evaluator
from memabra.ingest import ingest_trajectories
from memabra.learning.exploration import ExplorationPolicy
from memabra.learning.routers import HeuristicRouter
from memabra.runtime.runner import AgentRunner


def write_log(path: Path, lines: int, world: DemoWorld) -> None:
    app = AgentRunner(path.parent / "unused", world, world, seed=1)
    rng = random.Random(5)
    with path.open("wb") as handle:
        for _ in range(lines):
            handle.write(orjson.dumps(app.run_task(world.sample_task(rng), save=False).model_dump(mode="json")) + b"\n")


def timed(action) -> tuple[object, float]:
    start = time.perf_counter()
    result = action()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.agent_doors")
    parser.add_argument("--lines", type=int, default=50_000)
    args = parser.parse_args()
    world = DemoWorld(7)
    work = Path(tempfile.mkdtemp(prefix="memabra-bench-"))
    try:
        log = work / "agent.jsonl"
        write_log(log, args.lines, world)
        first, first_s = timed(lambda: ingest_trajectories(work / "store", log))
        again, again_s = timed(lambda: ingest_trajectories(work / "store", log))

        run_online_learning_workflow(base_dir=work / "store", min_new_trajectories=1)
        router = load_active_router(work / "store", ExplorationPolicy("epsilon_greedy", 0.2), seed=1)
        suite = world.benchmark_suite(160)
        latencies = []
        for _ in range(20):
            for item in suite.tasks:
                start = time.perf_counter()
                router.route(item.task, item.candidates)
                latencies.append((time.perf_counter() - start) * 1e6)
        latencies.sort()

        class SlowExecutor:
            def execute(self, task, candidate):
                time.sleep(0.02)
                return world.execute(task, candidate)

        concurrency = {}
        for workers in (1, 4, 16):
            _, seconds = timed(lambda: Evaluator(SlowExecutor(), concurrency=workers).evaluate(HeuristicRouter(), suite))
            concurrency[str(workers)] = round(seconds, 3)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({
        "ingest": {"lines": args.lines, "seconds": round(first_s, 3), "lines_per_second": round(args.lines / first_s),
                   "stored": first["stored_count"], "reimport_seconds": round(again_s, 3),
                   "reimport_stored": again["stored_count"]},
        "route_us": {"calls": len(latencies), "p50": round(statistics.median(latencies), 1),
                     "p99": round(latencies[int(len(latencies) * 0.99)], 1)},
        "benchmark_160_tasks_20ms_executor_seconds_by_concurrency": concurrency,
    }, indent=2))


if __name__ == "__main__":
    main()
