"""The store under a base dir: atomic TinyDB documents, trajectory segments, versions, reports, the lock."""

from memabra.storage.layout import StoreLayout
from memabra.storage.lock import StoreLock, lock_holder
from memabra.storage.seen import SeenTrajectoryStore
from memabra.storage.trajectories import TrajectoryStore, TrajectoryWriter, shared_writer

__all__ = [
    "StoreLayout",
    "StoreLock",
    "lock_holder",
    "SeenTrajectoryStore",
    "TrajectoryStore",
    "TrajectoryWriter",
    "shared_writer",
]
