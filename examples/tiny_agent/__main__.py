"""End to end: the tiny agent serves and logs, a cycle trains on its runs, the running agent picks up the promotion.

    python -m examples.tiny_agent --base-dir /tmp/tiny-store            # logs through memabra's writer
    python -m examples.tiny_agent --base-dir /tmp/tiny-store --ingest   # writes a .jsonl log, then --ingest

Prints one JSON document: the agent's reward before and after, the cycle's verdict, and how long after the
promotion the running agent first served the new version.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

from examples.tiny_agent.agent import TinyAgent, benchmark_suite, make_task
from memabra.router_versioning import RouterVersionStore

ROOT = Path(__file__).resolve().parents[2]
PICKUP_WAIT_S = 30.0
"""How long the agent keeps serving while it waits for the promoted version (it normally takes ~0.2 s)."""


def memabra_cli(*args: str) -> dict:
    """Run `python -m memabra.cli ARGS` as an operator would, in its own process; return its JSON."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    completed = subprocess.run([sys.executable, "-m", "memabra.cli", *args], cwd=ROOT, env=env,
                               capture_output=True, text=True)
    if completed.returncode != 0:
        sys.exit(f"error: memabra.cli {' '.join(args)} failed: {completed.stderr.strip()}")
    return json.loads(completed.stdout)


def serve(agent: TinyAgent, count: int, rng: random.Random, prefix: str) -> float:
    """Handle `count` tasks; return the average reward."""
    rewards = [agent.handle(make_task(rng, f"{prefix}-{index:05d}")).outcome.reward for index in range(count)]
    return sum(rewards) / len(rewards) if rewards else 0.0


class ServingLoop(threading.Thread):
    """The agent at work while the cycle runs: a task every few milliseconds, noting which version served it."""

    def __init__(self, agent: TinyAgent, seed: int):
        super().__init__(name="tiny-agent", daemon=True)
        self.agent = agent
        self.rng = random.Random(seed)
        self.served: list[tuple[float, str | None]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            run = self.agent.handle(make_task(self.rng, f"live-{len(self.served):05d}"))
            self.served.append((time.time(), run.decision.router_version_id))
            self.stop.wait(0.005)

    def first_served_by(self, version_id: str) -> float | None:
        return next((at for at, served in list(self.served) if served == version_id), None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.tiny_agent", description=__doc__.split("\n")[0])
    parser.add_argument("--base-dir", type=Path, required=True, help="memabra store for the example")
    parser.add_argument("--tasks", type=int, default=400, help="tasks the agent handles before and after")
    parser.add_argument("--ingest", action="store_true", help="log to a .jsonl file and import it with --ingest")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    base_dir = args.base_dir.resolve()
    base_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)

    agent = TinyAgent(base_dir, seed=args.seed)
    served_before = agent.router.version_id
    ingested = None
    if args.ingest:
        log_path = base_dir.parent / f"{base_dir.name}-agent-log.jsonl"
        with log_path.open("w") as agent.jsonl_log:
            reward_before = serve(agent, args.tasks, rng, "before")
        agent.jsonl_log = None
        ingested = memabra_cli("--base-dir", str(base_dir), "--ingest", str(log_path))
    else:
        reward_before = serve(agent, args.tasks, rng, "before")

    suite_path = base_dir.parent / f"{base_dir.name}-suite.json"
    suite_path.write_text(json.dumps(benchmark_suite()))
    live = ServingLoop(agent, args.seed + 1)
    live.start()
    cycle = memabra_cli("--base-dir", str(base_dir), "--executor", "examples.tiny_agent.agent:make_executor",
                        "--benchmark-suite", str(suite_path), "--min-new-trajectories", "50")
    promoted = cycle.get("challenger_version_id") if cycle["status"] == "promoted" else None
    deadline = time.monotonic() + PICKUP_WAIT_S
    while promoted and live.first_served_by(promoted) is None and time.monotonic() < deadline:
        time.sleep(0.01)
    live.stop.set()
    live.join()

    picked_up_after_s = None
    if promoted and live.first_served_by(promoted) is not None:
        promoted_at = datetime.fromisoformat(RouterVersionStore(base_dir).get_current()["promoted_at"])
        picked_up_after_s = round(live.first_served_by(promoted) - promoted_at.timestamp(), 3)

    reward_after = serve(agent, args.tasks, rng, "after")
    print(json.dumps({
        "before": {"router_version_id": served_before, "avg_reward": round(reward_before, 4)},
        "ingest": ingested and {key: ingested[key] for key in ("stored_count", "duplicate_count", "invalid_count")},
        "cycle": {key: cycle.get(key) for key in ("status", "challenger_version_id", "reward_delta", "reasons")},
        "after": {"router_version_id": agent.router.version_id, "avg_reward": round(reward_after, 4)},
        "tasks_served_during_cycle": len(live.served),
        "picked_up_without_restart": picked_up_after_s is not None,
        "picked_up_after_s": picked_up_after_s,
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
