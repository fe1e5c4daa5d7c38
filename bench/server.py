"""Speed of the HTTP door: `python -m bench.server` serves a demo store with `memabra serve` on 127.0.0.1 and
measures throughput and p50/p99 latency of POST /v1/route and POST /v1/trajectories; writes
bench/results/server.json. Every phase is bounded by a request count and a time budget; no test asserts on it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
START_TIMEOUT_S = 60.0


def build_store(base: Path) -> None:
    """2,000 demo trajectories and one cycle, so a learned version is active (routing does real scoring)."""
    from memabra.cli import run_online_learning_workflow
    from memabra.demo.generate import generate_demo_trajectories
    from memabra.demo.world import DemoWorld
    from memabra.learning.routers import HeuristicRouter

    generate_demo_trajectories(base, 2000, HeuristicRouter(), world=DemoWorld(7), seed=11)
    run_online_learning_workflow(base_dir=base, min_new_trajectories=10)


def route_bodies() -> list[bytes]:
    from memabra.demo.world import DemoWorld

    return [orjson.dumps({"task": item.task.model_dump(mode="json"),
                          "candidates": [candidate.model_dump(mode="json") for candidate in item.candidates]})
            for item in DemoWorld(7).benchmark_suite(160).tasks]


def trajectory_lines(count: int, rng: random.Random) -> list[bytes]:
    """Demo-shaped trajectories with fresh ids, one JSON line each."""
    from memabra.demo.world import DemoWorld

    items = DemoWorld(7).benchmark_suite(160).tasks
    lines = []
    for _ in range(count):
        item = rng.choice(items)
        chosen = rng.choice(item.candidates)
        lines.append(orjson.dumps({
            "trajectory_id": uuid.uuid4().hex, "task": item.task.model_dump(mode="json"),
            "candidates": [candidate.model_dump(mode="json") for candidate in item.candidates],
            "decision": {"chosen_candidate_id": chosen.candidate_id, "propensity": 0.5, "policy": "bench"},
            "outcome": {"reward": rng.random(), "latency_ms": rng.uniform(50, 900)},
        }) + b"\n")
    return lines


class ServedStore:
    """`python -m memabra serve` on 127.0.0.1 in its own process, stopped on exit."""

    def __init__(self, base: Path, token: str):
        env = {**os.environ, "PYTHONPATH": str(ROOT), "MEMABRA_API_TOKEN": token}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "memabra", "serve", "--base-dir", str(base), "--host", "127.0.0.1", "--port", "0"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(self.process.stderr.readline()), daemon=True)
        reader.start()
        reader.join(START_TIMEOUT_S)
        if not line or not line[0].startswith("memabra serve: http://127.0.0.1:"):
            self.stop()
            raise RuntimeError(f"memabra serve did not start: {line}")
        self.url = line[0].split()[2]
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                httpx.get(self.url + "/v1/status", timeout=START_TIMEOUT_S).raise_for_status()
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise
                time.sleep(0.05)

    def cpu_seconds(self) -> float | None:
        """User plus system CPU the server process used so far (Linux), else None."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)


def percentile(sorted_values: list[float], share: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(share * len(sorted_values)))]


def run_phase(served: ServedStore, path: str, bodies: list[bytes], clients: int, budget_s: float,
              headers: dict[str, str], lines_per_body: int = 0) -> dict:
    """Post the bodies (split over `clients` threads, each with its own keep-alive connection) until they run out
    or the time budget does; latencies and throughput of what was answered."""
    shares = [bodies[index::clients] for index in range(clients)]
    deadline = time.monotonic() + budget_s
    cpu_before = served.cpu_seconds()

    def post_all(share: list[bytes]) -> list[float]:
        latencies = []
        with httpx.Client(base_url=served.url, timeout=60.0, headers=headers) as http:
            for body in share:
                if time.monotonic() > deadline:
                    break
                start = time.perf_counter()
                response = http.post(path, content=body)
                latencies.append(time.perf_counter() - start)
                if response.status_code != 200:
                    raise RuntimeError(f"POST {path} answered {response.status_code}: {response.text[:300]}")
        return latencies

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = sorted(value for part in pool.map(post_all, shares) for value in part)
    wall = time.perf_counter() - start
    cpu_after = served.cpu_seconds()
    result = {
        "clients": clients, "requests": len(latencies), "seconds": round(wall, 3),
        "requests_per_second": round(len(latencies) / wall, 1),
        "p50_ms": round(percentile(latencies, 0.50) * 1e3, 3), "p99_ms": round(percentile(latencies, 0.99) * 1e3, 3),
    }
    if lines_per_body:
        result["trajectories_per_request"] = lines_per_body
        result["trajectories_per_second"] = round(len(latencies) * lines_per_body / wall)
    if cpu_before is not None and cpu_after is not None:
        result["server_cpu_ms_per_request"] = round((cpu_after - cpu_before) * 1e3 / len(latencies), 3)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.server", description=__doc__)
    parser.add_argument("--requests", type=int, default=3000, help="route requests per phase (default 3000)")
    parser.add_argument("--budget", type=float, default=20.0, help="seconds one phase may take at most (default 20)")
    parser.add_argument("--output", default="server", help="file name stem under bench/results/")
    args = parser.parse_args(argv)
    rng = random.Random(3)
    token = secrets.token_urlsafe(24)
    auth = {"Authorization": f"Bearer {token}"}
    work = Path(tempfile.mkdtemp(prefix="memabra-bench-server-"))
    try:
        print("building a demo store with a learned version ...", file=sys.stderr, flush=True)
        build_store(work / "store")
        routes = route_bodies()
        route_requests = [routes[index % len(routes)] for index in range(args.requests)]
        single = trajectory_lines(args.requests // 3, rng)
        batched = [b"".join(trajectory_lines(1000, rng)) for _ in range(40)]
        served = ServedStore(work / "store", token)
        try:
            results = {
                "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
                "note": "client threads (httpx) and the server share the machine's cores over loopback",
            }
            phases = {
                "route_1_client": lambda: run_phase(served, "/v1/route", route_requests, 1, args.budget, {}),
                "route_8_clients": lambda: run_phase(served, "/v1/route", route_requests, 8, args.budget, {}),
                "trajectories_1_line_1_client": lambda: run_phase(
                    served, "/v1/trajectories", single, 1, args.budget, auth, 1),
                "trajectories_1000_lines_1_client": lambda: run_phase(
                    served, "/v1/trajectories", batched[:20], 1, args.budget, auth, 1000),
                "trajectories_1000_lines_4_clients": lambda: run_phase(
                    served, "/v1/trajectories", batched[20:], 4, args.budget, auth, 1000),
            }
            for name, phase in phases.items():
                print(f"measuring {name} ...", file=sys.stderr, flush=True)
                results[name] = phase()
            results["load_average"] = " / ".join(f"{value:.1f}" for value in os.getloadavg())
        finally:
            served.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.output}.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
