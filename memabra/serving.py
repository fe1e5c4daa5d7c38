"""What a running agent calls: the active router, which follows promotions and rollbacks by itself, and logging."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from memabra.errors import BadInputError, MemabraError
from memabra.learning.exploration import ExplorationPolicy
from memabra.learning.routers import HeuristicRouter
from memabra.learning.versions import active_router
from memabra.models import Candidate, Decision, Task, Trajectory
from memabra.runtime.routing import ExploringRouter
from memabra.settings import Settings, load_settings, resolve_base_dir
from memabra.storage.documents import describe_validation_error
from memabra.storage.store import Store
from memabra.storage.trajectories import shared_writer

CURRENT_CHECK_INTERVAL_S = 0.2
"""Seconds between two looks (one stat) at current.json; a promotion or rollback is served within this."""

ModelT = TypeVar("ModelT", bound=BaseModel)


def _as_model(model: type[ModelT], value: Any, what: str) -> ModelT:
    if isinstance(value, model):
        return value
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise BadInputError(f"refused {what}.{describe_validation_error(exc)}") from exc


def _file_signature(path: Path) -> tuple[int, int, int] | None:
    """What changes whenever the file is replaced (atomic writes rename a new inode into place)."""
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


class ActiveRouter:
    """The store's active router for a running agent: routes under an exploration policy and reloads itself
    when current.json changes (checked at most every `check_interval` seconds, one stat per check)."""

    def __init__(self, base_dir: Store | Path | str, exploration: ExplorationPolicy | None = None,
                 seed: int | None = None, check_interval: float = CURRENT_CHECK_INTERVAL_S):
        store = Store.of(base_dir)
        self.base_dir = store.base_dir
        self.check_interval = check_interval
        self.last_error: str | None = None
        """Why the newest current.json could not be loaded (the previous router keeps serving), else None."""
        self._versions = store.versions
        self._current_path = store.layout.current_path
        self._routing = ExploringRouter(HeuristicRouter(),
                                        exploration or ExplorationPolicy.from_settings(load_settings()), seed)
        self._mutex = self._routing.mutex
        self._signature: tuple[int, int, int] | None = None
        self._checked_at = float("-inf")
        self.refresh()

    @property
    def exploration(self) -> ExplorationPolicy:
        return self._routing.exploration

    @property
    def version_id(self) -> str | None:
        """The version being served, or None while the built-in heuristic is."""
        self._maybe_refresh()
        return self._routing.router.version_id

    def refresh(self) -> bool:
        """Look at current.json now and load the version it names if it changed; return whether it changed."""
        with self._mutex:
            return self._refresh_locked()

    def _maybe_refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked_at < self.check_interval:
            return
        with self._mutex:
            if now - self._checked_at >= self.check_interval:
                self._refresh_locked()

    def _refresh_locked(self) -> bool:
        self._checked_at = time.monotonic()
        signature = _file_signature(self._current_path)
        if signature == self._signature:
            return False
        try:
            router = active_router(self._versions)
        except (MemabraError, ValueError, KeyError, TypeError) as exc:  # a version this code cannot load
            self.last_error = str(exc)
            self._signature = None  # look again at the next check, even if the file stays as it is
            return False  # keep serving the previous router; the next check tries again
        self._routing.swap_locked(router)
        self._signature, self.last_error = signature, None
        return True

    def route(self, task: Task | dict, candidates: list[Candidate | dict]) -> Decision:
        """Score the candidates with the active router and pick one under the exploration policy."""
        task = _as_model(Task, task, "task")
        candidates = [_as_model(Candidate, candidate, f"candidates[{index}]")
                      for index, candidate in enumerate(candidates)]
        if not candidates:
            raise BadInputError("route() needs at least one candidate")
        self._maybe_refresh()
        return self._routing.decide(task, candidates)


def load_active_router(base_dir: str | os.PathLike | None = None, exploration: ExplorationPolicy | None = None,
                       seed: int | None = None, settings: Settings | None = None) -> ActiveRouter:
    """The active router of a store (default `$MEMABRA_BASE_DIR`, else `./artifacts`), exploring as the
    settings say (`MEMABRA_EXPLORATION`, `MEMABRA_EPSILON`, `MEMABRA_TEMPERATURE`) unless told otherwise."""
    settings = settings or load_settings(base_dir=base_dir)
    if exploration is None:
        exploration = ExplorationPolicy.from_settings(settings)
    return ActiveRouter(settings.base_dir, exploration, seed=seed)


def append_trajectory(trajectory: Trajectory | dict | None = None, /, *, base_dir: str | os.PathLike | None = None,
                      **fields: Any) -> Trajectory:
    """Log one run of the agent, given as a Trajectory, a dict in the documented schema, or its fields as
    keywords (task=, candidates=, decision=, outcome=, ...); returns the stored trajectory with its id."""
    if trajectory is not None and fields:
        raise BadInputError("append_trajectory() takes a trajectory or its fields as keywords, not both")
    if trajectory is None:
        trajectory = fields
    return shared_writer(resolve_base_dir(base_dir)).append(trajectory)
