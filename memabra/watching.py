"""`--watch`: the console's counterpart for servers. Looks every few seconds (by file sizes and mtimes) whether
trajectories arrived or the active version changed; then runs the guard and, once enough new trajectories exist,
a cycle. Stops between steps when its stop event is set (a running cycle is cancelled and writes nothing)."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any, Callable

from memabra.errors import LockHeldError, MemabraError
from memabra.guarding import run_guard_check
from memabra.learning.scan import ArtifactIndex
from memabra.settings import Settings
from memabra.storage.store import Store
from memabra.workflow import CycleRequest, run_cycle

GUARD_FIELDS = {"verdict", "reason", "action", "promoted_version_id", "prior_version_id", "served_count",
                "used_count", "difference", "rolled_back_to", "guard_report_id"}
"""What a watch prints of each guard check (`--guard-check` prints everything)."""


@dataclass
class WatchSummary:
    """What a watch did before it stopped."""

    looks: int = 0
    guard_checks: int = 0
    cycles: int = 0
    rollbacks: int = 0


def traffic_signature(store: Store) -> tuple:
    """Names, sizes and mtimes of the trajectory files and the current pointer: changes whenever traffic arrives
    or the active version changes, at the cost of one directory listing."""
    entries = []
    try:
        with os.scandir(store.layout.trajectories_dir) as listing:
            for entry in listing:
                stat = entry.stat()
                entries.append((entry.name, stat.st_size, stat.st_mtime_ns))
    except FileNotFoundError:
        pass
    try:
        stat = os.stat(store.layout.current_path)
        current = (stat.st_size, stat.st_mtime_ns)
    except FileNotFoundError:
        current = None
    return tuple(sorted(entries)), current


def unseen_count(store: Store) -> int:
    """Trajectories no cycle has used yet (sealed segments are summarised from the scan's cache)."""
    seen = store.seen().read()
    return len(ArtifactIndex.scan(store, set(seen.trajectory_ids), seen_segments=seen.segments).unseen_ids)


def watch_store(store: Store, settings: Settings, make_request: Callable[[], CycleRequest], *, interval: float,
                stop: threading.Event, emit: Callable[[dict[str, Any]], None]) -> WatchSummary:
    """Look, check and cycle until `stop` is set; `emit` receives one document per guard check, cycle or problem."""
    summary = WatchSummary()
    last_signature = None
    while not stop.is_set():
        signature = traffic_signature(store)
        if signature != last_signature:
            last_signature = signature
            summary.looks += 1
            try:
                _look(store, settings, make_request, stop, emit, summary)
            except LockHeldError as exc:
                last_signature = None  # look again next time: the holder may finish
                emit({"event": "locked", "reason": str(exc)})
            except MemabraError as exc:
                emit({"event": "problem", "reason": str(exc)})
        stop.wait(interval)
    return summary


def _look(store: Store, settings: Settings, make_request: Callable[[], CycleRequest], stop: threading.Event,
          emit: Callable[[dict[str, Any]], None], summary: WatchSummary) -> None:
    if settings.guard.mode != "off":
        check = run_guard_check(store, settings.guard)
        summary.guard_checks += 1
        summary.rollbacks += check.verdict == "rolled_back"
        emit({"event": "guard", **check.model_dump(mode="json", include=GUARD_FIELDS)})
    if stop.is_set():
        return
    new = unseen_count(store)
    if new < settings.min_new_trajectories:
        return
    result = run_cycle(store, settings, make_request(), cancel=stop)
    summary.cycles += result.status != "cancelled"
    emit({"event": "cycle", "new_trajectory_count": new,
          **result.model_dump(mode="json", include={"status", "report_id", "challenger_version_id",
                                                    "reward_delta", "reasons"})})
