"""Routers of saved versions: the learning side turns a stored version document into a live router."""

from __future__ import annotations

from typing import Any

import numpy as np

from memabra.learning.features import FeatureConfig
from memabra.learning.hierarchical import HierarchicalRouter
from memabra.learning.routers import HeuristicRouter, ScoringRouter, SimpleLearningRouter
from memabra.models import RouterVersion
from memabra.storage.versions import RouterVersionStore


def router_from_dict(data: dict[str, Any], version_id: str | None = None) -> ScoringRouter:
    """Rebuild a saved router from its serialisation."""
    kind = data.get("kind")
    if kind == "heuristic":
        router: ScoringRouter = HeuristicRouter()
    elif kind == "simple_learning":
        config = FeatureConfig(**data.get("feature_config", {}))
        router = SimpleLearningRouter(np.asarray(data["weights"], dtype=np.float64), config)
    elif kind == "hierarchical_ridge":
        router = HierarchicalRouter.from_dict(data)
    else:
        raise ValueError(f"unknown router kind {kind!r}")
    router.version_id = version_id
    return router


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
