"""Demo trajectories: the runner working through demo-world tasks with the active router, exploring."""

from __future__ import annotations

import os
import random
import threading
from pathlib import Path
from typing import Callable

from memabra.demo.world import DemoWorld
from memabra.errors import BadInputError, CycleCancelled, StoreWriteError
from memabra.learning.exploration import ExplorationPolicy
from memabra.learning.routers import ScoringRouter
from memabra.runtime.case_index import CaseIndex
from memabra.runtime.runner import AgentRunner
from memabra.storage.trajectories import TrajectoryWriter

PROGRESS_EVERY = 250
MAX_DEMO_TRAJECTORIES = 1_000_000
"""Most demo trajectories one call appends (about 1.5 GB of segments); more is refused before anything is written."""


def generate_demo_trajectories(
    base_dir: Path,
    count: int,
    router: ScoringRouter,
    exploration: ExplorationPolicy | None = None,
    world: DemoWorld | None = None,
    case_index: CaseIndex | None = None,
    seed: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> dict:
    """Run `count` demo tasks through the runner and store their trajectories; return a summary. A failure part
    way says how many trajectories were kept."""
    if not 0 <= count <= MAX_DEMO_TRAJECTORIES:
        raise BadInputError(f"--demo-trajectories {count} is out of range; give 0 to {MAX_DEMO_TRAJECTORIES:,}")
    world = world or DemoWorld()
    rng = random.Random(seed if seed is not None else int.from_bytes(os.urandom(8), "big"))
    reward_sum = 0.0
    appended = 0
    with TrajectoryWriter(base_dir) as writer:
        app = AgentRunner(base_dir, retriever=world, executor=world, router=router, exploration=exploration,
                         case_index=case_index, writer=writer, seed=rng.getrandbits(64))
        for appended in range(1, count + 1):
            try:
                trajectory = app.run_task(world.sample_task(rng), source="demo")
            except StoreWriteError as exc:
                reason = str(exc).replace(" (nothing was changed)", "")
                raise StoreWriteError(f"demo generation stopped after keeping {appended - 1:,} of {count:,} "
                                      f"trajectories: {reason}") from exc
            reward_sum += trajectory.outcome.reward
            if appended % PROGRESS_EVERY == 0 or appended == count:
                if on_progress:
                    on_progress(appended, count)
                if cancel is not None and cancel.is_set() and appended < count:
                    raise CycleCancelled(f"demo generation cancelled after {appended} trajectories (they are kept)")
    return {
        "appended": appended,
        "router_version_id": router.version_id,
        "exploration": app.exploration.name if count else None,
        "avg_reward": reward_sum / appended if appended else None,
    }
