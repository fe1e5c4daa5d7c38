"""Scan engines side by side (`python -m bench.engines [--size N] [--runs N]`, part of `make bench`): a first cycle
at SIZE stored trajectories with the local engine, the process pool and a local Dask cluster of two workers; a
cycle with 10,000 new at that size and at each of `--also` smaller sizes (how time and memory grow); and what the
ids met by a scan cost in memory. Writes bench/results/engines.md
and engines.json. No test asserts on these numbers."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

from bench.__main__ import RESULTS, ROOT, WORK, demo_store, measure_cycle, reset_store

ENGINES = ("local", "process", "dask")
SAMPLE_SECONDS = 0.1
INCREMENTAL_RUNS = 3
"""Cycles with 10,000 new are quick: always the median of at least three."""


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants (pool workers, a Dask cluster), in MB."""
    import psutil

    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            pass
    return total / 2**20


def first_cycle(base: Path, engine: str) -> dict:
    """One first cycle (cache cleared) in a fresh process with `engine`: wall seconds, peak memory of the whole
    process tree (sampled), and what it learned."""
    reset_store(base)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MEMABRA_ENGINE": engine}
    env.pop("MEMABRA_BASE_DIR", None)
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "bench.probes", "cycle", str(base), "0"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak = [0.0]

    def sample():
        while process.poll() is None:
            peak[0] = max(peak[0], tree_rss_mb(process.pid))
            time.sleep(SAMPLE_SECONDS)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = process.communicate()
    wall = time.perf_counter() - start
    sampler.join()
    if process.returncode != 0:
        raise RuntimeError(f"the {engine} cycle failed:\n{stderr.decode()[-2000:]}")
    result = json.loads(stdout.decode().strip().splitlines()[-1])
    return {"seconds": wall, "peak_tree_mb": peak[0], "training": result["training"], "new": result["new"],
            "scan_seconds": result["stages"]["load"]}


def id_memory(count: int) -> dict:
    """Bytes an id costs a scan: a Python set of id strings (before) against sorted 64-bit hashes (now)."""
    from memabra.learning.id_hashes import SortedIdHashes, id_hashes

    ids = [f"{n:08x}-demo-trajectory-{n:012d}" for n in range(count)]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    as_set = set(ids)
    set_bytes = tracemalloc.get_traced_memory()[0] - before
    del as_set
    hashes = SortedIdHashes()
    for start in range(0, count, 5000):
        hashes.add(id_hashes(ids[start:start + 5000]))
    tracemalloc.stop()
    return {"ids": count, "set_bytes_per_id": set_bytes / count, "hashes_bytes_per_id": hashes.nbytes / count}


def markdown(results: dict) -> str:
    size = results["size"]
    lines = [f"# Scan engines at {size:,} stored ({results['machine']})", "",
             f"Medians of {results['runs']} first cycles per engine, each a fresh process with the cache cleared; "
             "peak memory sums the whole process tree (pool workers, the local Dask cluster), sampled every "
             f"{SAMPLE_SECONDS} s. Load average while measuring: {results['load_average']}.", "",
             "| engine | wall s | scan stage s | peak tree MB | training trajectories |", "|---|---|---|---|---|"]
    for engine in ENGINES:
        measured = results["first_cycle"][engine]
        lines.append(f"| {engine} | {measured['seconds']:.2f} | {measured['scan_seconds']:.2f} | "
                     f"{measured['peak_tree_mb']:.0f} | {measured['training']:,} |")
    ids = results["id_memory"]
    lines += ["", "A cycle with 10,000 new (2 segments) after a cycle that saw the rest (their summaries cached, "
              "their statistics in the running total), local engine, median of "
              f"{max(results['runs'], INCREMENTAL_RUNS)}:", "", "| stored | wall s | CPU s | scan stage s | peak MB |",
              "|---|---|---|---|---|"]
    for stored, incremental in sorted(results["incremental"].items(), key=lambda item: int(item[0])):
        lines.append(f"| {int(stored):,} | {incremental['seconds']:.2f} | {incremental['cpu_seconds']:.2f} | "
                     f"{incremental['stages']['load']:.2f} | {incremental['peak_mb']:.0f} |")
    lines += ["",
              f"Ids met by a scan, {ids['ids']:,} ids: a Python set {ids['set_bytes_per_id']:.0f} bytes an id, "
              f"sorted hashes {ids['hashes_bytes_per_id']:.0f} bytes an id.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.engines", description=__doc__)
    parser.add_argument("--size", type=int, default=1_000_000, help="stored trajectories (default 1,000,000)")
    parser.add_argument("--runs", type=int, default=1, help="first cycles per engine (median kept; default 1)")
    parser.add_argument("--also", type=int, nargs="*", default=[100_000], help="smaller stored sizes to measure a cycle "
                                                                        "with 10,000 new at too (default 100,000)")
    args = parser.parse_args(argv)
    WORK.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    base = demo_store(args.size)
    results: dict = {"size": args.size, "runs": args.runs, "machine": f"{os.cpu_count()} cores", "first_cycle": {}}
    for engine in ENGINES:
        print(f"first cycle at {args.size:,} with the {engine} engine ...", file=sys.stderr, flush=True)
        samples = [first_cycle(base, engine) for _ in range(args.runs)]
        results["first_cycle"][engine] = {key: statistics.median(sample[key] for sample in samples)
                                          for key in samples[0]}
    trained = {measured["training"] for measured in results["first_cycle"].values()}
    if len(trained) != 1:
        raise RuntimeError(f"engines trained on different counts: {results['first_cycle']}")
    runs = max(args.runs, INCREMENTAL_RUNS)
    results["incremental"] = {str(args.size): measure_cycle(base, runs, incremental=True)}
    for size in args.also:
        results["incremental"][str(size)] = measure_cycle(demo_store(size), runs, incremental=True)
    results["id_memory"] = id_memory(1_000_000)
    results["load_average"] = " / ".join(f"{value:.1f}" for value in os.getloadavg())
    reset_store(base, keep_cache=True)
    (RESULTS / "engines.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "engines.md").write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
