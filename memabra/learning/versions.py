"""Routers of saved versions: the learning side turns a stored version document into a live router."""

from __future__ import annotations

from memabra.learning.routers import HeuristicRouter, ScoringRouter, router_from_dict
from memabra.models import RouterVersion
from memabra.storage.versions import RouterVersionStore


def version_router(version: RouterVersion) -> ScoringRouter:
    """The router a version document holds, named by its version id."""
    return router_from_dict(version.router, version_id=version.version_id)


def load_version_router(versions: RouterVersionStore, version_id: str) -> ScoringRouter:
    """The router saved as this version; BadInputError if the id is malformed or unknown."""
    return version_router(versions.get_version(version_id))


def active_router(versions: RouterVersionStore) -> ScoringRouter:
    """The active version's router, or the built-in heuristic while none is active."""
    current = versions.current()
    return load_version_router(versions, current.version_id) if current else HeuristicRouter()
