"""Routers of saved versions: the learning side turns a stored version document into a live router."""

from __future__ import annotations

from typing import Any

import numpy as np

from memabra.errors import CorruptDocumentError, MemabraError

from memabra.learning.features import FeatureConfig
from memabra.learning.hierarchical import HierarchicalRouter
from memabra.learning.router_check import validate_router_document
from memabra.learning.routers import HeuristicRouter, ScoringRouter, SimpleLearningRouter
from memabra.models import RouterVersion
from memabra.storage.versions import ReportStore, RouterVersionStore


class CurrentMissingError(MemabraError):
    """current.json is missing while saved versions exist: which one is active is unknown, not the heuristic."""


def router_from_dict(data: dict[str, Any], version_id: str | None = None) -> ScoringRouter:
    """Rebuild a saved router from its serialisation (checked as a whole first: ValueError says what is wrong)."""
    validate_router_document(data)
    kind = data.get("kind")
    if kind == "heuristic":
        router: ScoringRouter = HeuristicRouter()
    elif kind == "simple_learning":
        config = FeatureConfig(**data.get("feature_config", {}))
        router = SimpleLearningRouter(np.asarray(data["weights"], dtype=np.float64), config)
    elif kind == "hierarchical_ridge":
        try:
            router = HierarchicalRouter.from_dict(data)
        except (KeyError, TypeError, AttributeError, IndexError) as exc:
            raise ValueError(f"the hierarchical router document is incomplete or mistyped ({exc!r})") from None
    else:
        raise ValueError(f"unknown router kind {kind!r}")
    router.version_id = version_id
    return router


def version_router(version: RouterVersion) -> ScoringRouter:
    """The router a version document holds, named by its version id."""
    return router_from_dict(version.router, version_id=version.version_id)


def load_version_router(versions: RouterVersionStore, version_id: str) -> ScoringRouter:
    """The router saved as this version; BadInputError if the id is malformed or unknown, CorruptDocumentError
    naming the file if its router does not load."""
    version = versions.get_version(version_id)
    try:
        return version_router(version)
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptDocumentError(versions.versions.path(version_id), f"its router does not load: {exc}") from exc


def once_active_version(versions: RouterVersionStore) -> RouterVersion | None:
    """The newest stored version known to have been active: a later version's parent, or the newest report's
    baseline (a version whose first promotion was cut short before current.json was written is not one)."""
    stored = versions.versions.list()
    known = {version.version_id for version in stored}
    active_once = {version.parent_version_id for version in stored if version.parent_version_id}
    report = ReportStore(versions.layout).newest_readable()
    if report is not None and report.baseline_version_id:
        active_once.add(report.baseline_version_id)
    return next((version for version in stored if version.version_id in active_once & known), None)


def require_current(versions: RouterVersionStore) -> None:
    """Raise CurrentMissingError when no version is active although a stored one was active once."""
    if versions.current() is None:
        newest = once_active_version(versions)
        if newest is not None:
            raise CurrentMissingError(
                f"{versions.current_file.path} is missing while versions are stored; choose the active one with "
                f"`python -m memabra.cli --rollback {newest.version_id}` (the newest) or another")


def active_router(versions: RouterVersionStore) -> ScoringRouter:
    """The active version's router, or the built-in heuristic while no version is stored; CurrentMissingError when
    current.json is gone while versions exist."""
    current = versions.current()
    if current is None:
        require_current(versions)
        return HeuristicRouter()
    return load_version_router(versions, current.version_id)
