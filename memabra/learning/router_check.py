"""A saved router document checked as a whole before a router is built from it: kind, feature configuration and
weights must all be usable, so a version that loads is a version that can route."""

from __future__ import annotations

import math
from typing import Any

from memabra.models import CANDIDATE_KINDS

MAX_BUCKETS = 1 << 20
"""Most hash buckets a feature configuration may ask for (per space)."""

FEATURE_CONFIG_KEYS = ("task_buckets", "name_buckets")


def feature_config_problem(config: Any) -> str | None:
    """What is wrong with a feature configuration document, or None."""
    if not isinstance(config, dict):
        return "feature_config must be an object"
    unknown = sorted(set(config) - set(FEATURE_CONFIG_KEYS))
    if unknown:
        return f"feature_config has unknown keys {unknown}; expected {list(FEATURE_CONFIG_KEYS)}"
    for key, value in config.items():
        if type(value) is not int or not 1 <= value <= MAX_BUCKETS:
            return f"feature_config.{key} must be a whole number from 1 to {MAX_BUCKETS}, got {value!r}"
    return None


def router_document_problem(data: Any) -> str | None:
    """What makes a router document unusable (shape, types, non-finite weights, bad configuration), or None."""
    if not isinstance(data, dict):
        return "the router must be an object"
    kind = data.get("kind")
    if kind in ("heuristic", "hierarchical_ridge"):
        return None  # the hierarchical router checks its whole document itself when it is rebuilt
    if kind != "simple_learning":
        return f"unknown router kind {kind!r}"
    config = data.get("feature_config", {})
    problem = feature_config_problem(config)
    if problem:
        return problem
    block = config.get("task_buckets", 128) + config.get("name_buckets", 16) + 3
    weights = data.get("weights")
    if not isinstance(weights, list) or len(weights) != len(CANDIDATE_KINDS):
        return f"weights must be {len(CANDIDATE_KINDS)} rows of {block} numbers"
    for number, row in enumerate(weights):
        if not isinstance(row, list) or len(row) != block:
            return f"weights row {number} must hold {block} numbers"
        for value in row:
            if type(value) not in (int, float) or not math.isfinite(value):
                return f"weights row {number} holds {value!r}; every weight must be a finite number"
    return None


def validate_router_document(data: Any) -> None:
    """Raise ValueError naming what is wrong when a router document is not usable."""
    problem = router_document_problem(data)
    if problem:
        raise ValueError(problem)
