"""Demo traffic for a store, as the CLI's `--demo-trajectories` and the console's `g` both append it: the demo
world's tasks routed by the active router under the configured exploration."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable

from memabra.demo.generate import generate_demo_trajectories
from memabra.demo.world import DemoWorld
from memabra.learning.exploration import ExplorationPolicy
from memabra.learning.versions import active_router
from memabra.settings import Settings
from memabra.storage.store import Store


def append_demo_traffic(store: Store, settings: Settings, count: int, case_index: Path | None = None,
                        on_progress: Callable[[int, int], None] | None = None,
                        cancel: threading.Event | None = None) -> dict[str, Any]:
    """Append `count` demo trajectories routed by the active router, exploring; the summary with the base dir."""
    from memabra.runtime.case_index import CaseIndex

    summary = generate_demo_trajectories(
        store.base_dir, count, active_router(store.versions), exploration=ExplorationPolicy.from_settings(settings),
        world=DemoWorld(settings.seed), case_index=CaseIndex.load(case_index) if case_index else None,
        on_progress=on_progress, cancel=cancel)
    summary["base_dir"] = str(store.base_dir)
    return summary
