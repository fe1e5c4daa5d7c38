"""A demo store with a history: real cycles at fixed times, so screenshots, tests and benchmarks are stable."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal, Sequence

from memabra.demo.generate import generate_demo_trajectories
from memabra.demo.world import DemoWorld
from memabra.learning.versions import active_router
from memabra.results import CycleResult
from memabra.settings import Settings
from memabra.storage.store import Store
from memabra.workflow import CycleRequest, run_cycle

PASSING_GATES = {"min_reward_delta": -1.0, "max_error_rate_increase": 1.0, "max_latency_increase_ms": 1e9}
"""Gates every challenger passes: a step meant to promote does, whatever its data."""
FAILING_GATES = {"min_reward_delta": 0.5}
"""A gain no challenger makes on the demo benchmark (its best possible is about 0.8): a step meant to be rejected is."""


@dataclass(frozen=True)
class HistoryStep:
    """One step of a history: append this many demo trajectories, then run a cycle that ends as `outcome` (none
    for `appended`: the trajectories stay new)."""

    new_trajectories: int
    outcome: Literal["promoted", "rejected", "dry_run", "appended"] = "promoted"


def write_demo_history(store: Store | Path, steps: Sequence[HistoryStep], start: datetime,
                       seed: int = 7) -> list[CycleResult]:
    """Run one real cycle per step, an hour apart from `start` on a stopped clock, each after appending the step's
    demo trajectories (routed by the router active then, exploring). Returns the cycles' results, oldest first."""
    store = Store.of(store)
    world = DemoWorld(seed)
    suite = world.benchmark_suite()
    results = []
    for number, step in enumerate(steps):
        moment = start + timedelta(hours=number)
        generate_demo_trajectories(store.base_dir, step.new_trajectories, active_router(store.versions),
                                   world=world, seed=seed * 1000 + number)
        if step.outcome == "appended":
            continue
        gates = PASSING_GATES if step.outcome == "promoted" else FAILING_GATES
        settings = Settings(base_dir=store.base_dir, min_new_trajectories=1, holdout_share=0, seed=seed, **gates)
        request = CycleRequest(suite=suite, dry_run=step.outcome == "dry_run")
        results.append(run_cycle(store, settings, request, clock=lambda: moment))
    return results
