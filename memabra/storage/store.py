"""The store under one base dir, made once at each entry (CLI, console, API) and passed down to the engine."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path

from memabra.errors import SettingError
from memabra.storage.layout import StoreLayout
from memabra.storage.lock import StoreLock, lock_holder
from memabra.storage.seen import SeenTrajectoryStore
from memabra.storage.trajectories import TrajectoryStore
from memabra.storage.history import HistoryLog
from memabra.storage.versions import ChallengerStore, ReportStore, RouterVersionStore


class Store:
    """Paths and document folders of one store; reads and writes documents, never builds routers."""

    def __init__(self, base_dir: Path | str):
        self.layout = StoreLayout(Path(base_dir))

    @classmethod
    def of(cls, place: "Store | Path | str") -> "Store":
        """The store itself, or the store of a base dir given as a path."""
        return place if isinstance(place, Store) else cls(place)

    @property
    def base_dir(self) -> Path:
        return self.layout.base_dir

    @cached_property
    def trajectories(self) -> TrajectoryStore:
        return TrajectoryStore(self.layout)

    @cached_property
    def versions(self) -> RouterVersionStore:
        return RouterVersionStore(self.layout)

    @cached_property
    def reports(self) -> ReportStore:
        return ReportStore(self.layout)

    @cached_property
    def challengers(self) -> ChallengerStore:
        return ChallengerStore(self.layout)

    @property
    def history(self) -> HistoryLog:
        return self.versions.history

    def seen(self, path: Path | None = None) -> SeenTrajectoryStore:
        """The seen-ids document (`<base-dir>/seen-trajectories.json` unless another path is given)."""
        return SeenTrajectoryStore(path or self.layout.seen_path)

    def lock(self, operation: str) -> StoreLock:
        """The store's exclusive lock, to hold while `operation` changes it."""
        return StoreLock(self.layout, operation)

    def lock_holder(self) -> dict | None:
        """Who holds the lock ({pid, started_at, operation}), or None when it is free."""
        return lock_holder(self.layout)

    def __repr__(self) -> str:
        return f"Store({str(self.base_dir)!r})"


def check_base_dir(base_dir: Path, must_exist: bool = False, writable: bool = True) -> None:
    """Refuse a base dir that cannot hold a store: a file, a missing or unreadable folder when one must exist, or
    a folder we may not write (only when it must be written)."""
    if base_dir.exists() and not base_dir.is_dir():
        raise SettingError("base_dir",
                           f"{{setting:base_dir}} {base_dir} is a file; give a folder (it is created if missing)")
    if must_exist:
        if not base_dir.is_dir():
            raise SettingError("base_dir", f"{{setting:base_dir}} {base_dir} does not exist; check the path")
        if not os.access(base_dir, os.R_OK | os.X_OK):
            raise SettingError("base_dir", f"{{setting:base_dir}} {base_dir} is not readable; fix its permissions "
                                           "or choose another folder")
        if not writable:
            return
    probe = base_dir
    while not probe.exists():
        probe = probe.parent
    if not os.access(probe, os.W_OK | os.X_OK):
        raise SettingError("base_dir", f"{{setting:base_dir}} {base_dir} is not writable; fix its permissions or "
                                       "choose another folder")
