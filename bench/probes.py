"""One measurement per fresh process: `python -m bench.probes NAME ARGS...` prints one JSON object on stdout."""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import gc  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"p50_us": statistics.median(ordered) * 1e6,
            "p99_us": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e6,
            "max_us": ordered[-1] * 1e6, "n": len(ordered)}


def floor(base_dir: str, collect: str = "gc") -> dict:
    """Read and parse every trajectory file with orjson, nothing else (the parse floor)."""
    import orjson

    if collect == "nogc":
        gc.disable()
    folder = Path(base_dir) / "trajectories"
    count = 0
    for name in sorted(os.listdir(folder)):
        data = (folder / name).read_bytes()
        if name.endswith(".jsonl"):
            count += sum(1 for line in data.splitlines() if line and orjson.loads(line))
        else:
            count += len(orjson.loads(data)["trajectories"])
    return {"documents": count, "seconds": time.perf_counter() - STARTED}


def cycle(base_dir: str, min_new: str = "0") -> dict:
    """One full cycle through the Python API, timed by stage (featurising is timed wherever it happens)."""
    from memabra.learning import dataset
    from memabra.api import run_online_learning_workflow

    imported = time.perf_counter()
    featurise = [0.0]
    original_stats = dataset.DatasetBuilder.stats

    def timed_stats(self, trajectories, *args, **kwargs):
        start = time.perf_counter()
        try:
            return original_stats(self, trajectories, *args, **kwargs)
        finally:
            featurise[0] += time.perf_counter() - start

    dataset.DatasetBuilder.stats = timed_stats
    first_seen: dict[str, float] = {}

    def on_event(event):
        first_seen.setdefault(event.stage, time.perf_counter())

    result = run_online_learning_workflow(base_dir=base_dir, min_new_trajectories=int(min_new), on_event=on_event)
    finished = time.perf_counter()
    order = ["scan", "dataset", "train", "evaluate", "gate", "save"]
    marks = [first_seen.get(stage) for stage in order] + [finished]
    spans = {}
    for index, stage in enumerate(order):
        if marks[index] is None:
            continue
        following = next(mark for mark in marks[index + 1:] if mark is not None)
        spans[stage] = following - marks[index]
    stages = {
        "startup": imported - STARTED,
        "load": spans.get("scan", 0.0) - featurise[0],
        "dataset": spans.get("dataset", 0.0) + featurise[0],
        "train": spans.get("train", 0.0),
        "evaluate": spans.get("evaluate", 0.0) + spans.get("gate", 0.0),
        "save": spans.get("save", 0.0),
    }
    return {"status": result["status"], "training": result.get("training_trajectory_count"),
            "new": result.get("new_trajectory_count"), "stages": stages, "seconds": finished - STARTED}


def append(base_dir: str, count: str = "2000") -> dict:
    """Append trajectories one by one to a store, as an agent does; time each append."""
    from memabra.demo.world import DemoWorld
    from memabra.models import Trajectory
    from memabra.runtime.runner import AgentRunner
    from memabra.storage.trajectories import TrajectoryWriter

    world = DemoWorld(7)
    import random

    rng = random.Random(5)
    app = AgentRunner(base_dir, retriever=world, executor=world, seed=3, writer=TrajectoryWriter("/nonexistent"))
    documents = [app.run_task(world.sample_task(rng), save=False).model_dump(mode="json") for _ in range(int(count))]
    models = [Trajectory.model_validate(document) for document in documents]
    timings: dict[str, list[float]] = {"dict": [], "model": []}
    writer = TrajectoryWriter(base_dir)
    try:
        for kind, items in (("model", models), ("dict", documents)):
            for item in items:
                if kind == "model":
                    item = item.model_copy(update={"trajectory_id": os.urandom(16).hex()})
                else:
                    item = dict(item, trajectory_id=os.urandom(16).hex())
                start = time.perf_counter()
                writer.append(item)
                timings[kind].append(time.perf_counter() - start)
    finally:
        os.close(writer._fd) if writer._fd is not None else None
        for journal in (Path(base_dir) / "trajectories").glob(f".journal-{writer.writer_id}-*"):
            journal.unlink()
    return {"model": _percentiles(timings["model"]), "dict": _percentiles(timings["dict"])}


def route(base_dir: str, count: str = "5000") -> dict:
    """Route demo tasks with 6 candidates (5 retrieved and an episodic hint) through the loaded active router."""
    import random

    from memabra.demo.world import DemoWorld
    from memabra.models import Candidate, CandidateKind
    from memabra.serving import load_active_router
    from memabra.learning.versions import active_router
    from memabra.storage.versions import RouterVersionStore

    world = DemoWorld(7)
    rng = random.Random(9)
    tasks = []
    for index in range(int(count)):
        task = world.sample_task(rng)
        candidates = world.candidates(task) + [Candidate(
            candidate_id=f"episodic:{index}", kind=CandidateKind.episodic, name="replay tool", score=0.7,
            payload={"hint_kind": "tool", "hint_reward": 0.8})]
        tasks.append((task, candidates))
    router = active_router(RouterVersionStore(base_dir))
    served = load_active_router(base_dir, seed=1)
    timings: dict[str, list[float]] = {"router": [], "served": []}
    for name, target in (("router", router), ("served", served)):
        for task, candidates in tasks:
            start = time.perf_counter()
            target.route(task, candidates)
            timings[name].append(time.perf_counter() - start)
    return {"router_version_id": router.version_id, "router": _percentiles(timings["router"]),
            "served_with_exploration": _percentiles(timings["served"])}


def train(base_dir: str, export: str = "") -> dict:
    """Training throughput (featurise, accumulate, solve) on a store's validated logs, as a first cycle trains,
    and the learned policy's value on the demo benchmark (optionally exporting the logs for VW)."""
    from memabra.demo.world import DemoWorld
    from memabra.evaluation import Evaluator
    from memabra.learning.dataset import DatasetBuilder
    from memabra.learning.train import train_router
    from memabra.learning.features import hint_value
    from memabra.storage.trajectories import TrajectoryStore

    store = TrajectoryStore(Path(base_dir))
    documents = [d for item in store.files() for d in store.read_plain_documents(item) or []
                 if d.get("source") != "benchmark"]
    trajectories = [t for t in store.load_all()[0] if not t.is_benchmark]
    builder = DatasetBuilder()
    runs, cpu_runs = [], []
    for _ in range(5):
        start, cpu_start = time.perf_counter(), time.process_time()
        router = train_router(builder.stats_of_documents(documents))
        runs.append(time.perf_counter() - start)
        cpu_runs.append(time.process_time() - cpu_start)
    seconds, cpu_seconds = statistics.median(runs), statistics.median(cpu_runs)
    suite = DemoWorld(7).benchmark_suite()
    evaluation = Evaluator().evaluate(router, suite)
    if export:
        def candidate_row(candidate):
            return {"kind": candidate.kind.value, "name": candidate.name, "score": candidate.score,
                    "hint": hint_value(candidate)}

        with open(export, "w") as handle:
            for t in trajectories:
                ids = [c.candidate_id for c in t.candidates]
                handle.write(json.dumps({
                    "text": t.task.text, "candidates": [candidate_row(c) for c in t.candidates],
                    "chosen": ids.index(t.decision.chosen_candidate_id), "reward": t.outcome.reward,
                    "propensity": t.decision.propensity or 1.0}) + "\n")
            for item in suite.tasks:
                handle.write(json.dumps({
                    "text": item.task.text, "candidates": [candidate_row(c) for c in item.candidates],
                    "expected": [item.expected_rewards[c.candidate_id] for c in item.candidates]}) + "\n")
    return {"trajectories": len(documents), "seconds": seconds, "per_second": len(documents) / seconds,
            "per_cpu_second": len(documents) / cpu_seconds,
            "policy_value": evaluation.expected_value, "oracle_value": suite.oracle_value()}


def scan(base_dir: str) -> dict:
    """One scan as a cycle's (the store's settings, the local engine): caches every sealed segment's summary and,
    where the code has one, the running total."""
    from memabra.api import resolve_settings
    from memabra.learning.dataset import dataset_builder
    from memabra.learning.engines import ScanEngine
    from memabra.learning.scan import ArtifactIndex

    index = ArtifactIndex.scan(Path(base_dir), set(), builder=dataset_builder(resolve_settings(base_dir=base_dir)),
                               engine=ScanEngine("local"))
    return {"training": index.training_count, "seconds": time.perf_counter() - STARTED}


def demo(base_dir: str, count: str) -> dict:
    """Generate demo trajectories into a fresh store through the CLI's own code path."""
    from memabra.cli import main

    with open(os.devnull, "w") as sink:
        stdout, sys.stdout = sys.stdout, sink
        try:
            code = main(["--base-dir", base_dir, "--demo-trajectories", count, "--seed", "7"])
        finally:
            sys.stdout = stdout
    return {"code": code, "count": int(count), "seconds": time.perf_counter() - STARTED}


if __name__ == "__main__":
    name, *arguments = sys.argv[1:]
    import resource

    measured = globals()[name](*arguments)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # a first cycle's segment worker, when it has one
    measured["peak_mb"] = (usage.ru_maxrss + children.ru_maxrss) / 1024  # as if both peaked at once
    measured["cpu_seconds"] = usage.ru_utime + usage.ru_stime + children.ru_utime + children.ru_stime
    print(json.dumps(measured))
