"""The shipped simulated worlds by name, so a flag or a benchmark can pick one."""

from __future__ import annotations

from memabra.demo.support import SupportDeskWorld
from memabra.demo.world import DemoWorld
from memabra.errors import BadInputError

WORLDS = {"demo": DemoWorld, "support": SupportDeskWorld}


def make_world(name: str, seed: int = 7, phase: int = 1) -> DemoWorld | SupportDeskWorld:
    """The world called `name`, seeded; `phase` 2 (drift) exists only where the world has one."""
    world_class = WORLDS.get(name)
    if world_class is None:
        raise BadInputError(f"unknown world {name!r}: use one of {', '.join(sorted(WORLDS))}")
    if world_class is SupportDeskWorld:
        if phase not in (1, 2):
            raise BadInputError(f"world phase {phase!r} does not exist: use 1 or 2")
        return SupportDeskWorld(seed, phase)
    if phase != 1:
        raise BadInputError(f"world {name!r} has one phase: use phase 1, or the support world for a drift")
    return world_class(seed)
