"""How to validate a segment in bulk: `python -m bench.validation STORE` times each way over a store's segments.

Compared: the orjson parse alone, then pydantic into the models (from parsed objects, or straight from the
bytes with validate_json), and into TypedDict mirrors of the models, each with the garbage collector on and off.
"""

from __future__ import annotations

import gc
import os
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from pydantic import ConfigDict, Field, TypeAdapter, with_config
from typing_extensions import NotRequired, TypedDict

from memabra.models import Trajectory

_LAX = ConfigDict(extra="allow", allow_inf_nan=False)


@with_config(_LAX)
class _Task(TypedDict):
    task_id: Annotated[str, Field(min_length=1, max_length=200)]
    text: Annotated[str, Field(min_length=1, max_length=20_000)]
    metadata: NotRequired[dict[str, Any]]


@with_config(_LAX)
class _Candidate(TypedDict):
    candidate_id: Annotated[str, Field(min_length=1, max_length=200)]
    kind: Literal["memory", "skill", "tool", "episodic", "direct", "clarify"]
    name: NotRequired[str]
    score: NotRequired[float]
    payload: NotRequired[dict[str, Any]]


@with_config(_LAX)
class _Decision(TypedDict):
    chosen_candidate_id: str
    scores: NotRequired[dict[str, float]]
    propensity: NotRequired[Annotated[float, Field(gt=0, le=1)] | None]
    router_version_id: NotRequired[str | None]
    policy: NotRequired[str]


@with_config(_LAX)
class _Outcome(TypedDict):
    reward: float
    latency_ms: Annotated[float, Field(ge=0)]
    error: NotRequired[str | None]


@with_config(_LAX)
class _Trajectory(TypedDict):
    trajectory_id: str
    created_at: datetime
    source: NotRequired[Literal["agent", "demo", "benchmark"]]
    task: _Task
    candidates: Annotated[list[_Candidate], Field(min_length=1)]
    decision: _Decision
    outcome: _Outcome


class _ModelSegment(TypedDict):
    trajectories: dict[str, Trajectory]


class _DictSegment(TypedDict):
    trajectories: dict[str, _Trajectory]


WAYS = {
    "orjson parse only (the floor)": lambda data: list(orjson.loads(data)["trajectories"].values()),
    "models, validate_python per segment": lambda data: TypeAdapter(list[Trajectory]).validate_python(
        list(orjson.loads(data)["trajectories"].values())),
    "models, validate_json per segment (used)": lambda data: TypeAdapter(_ModelSegment).validate_json(data),
    "TypedDicts, validate_python per segment": lambda data: TypeAdapter(list[_Trajectory]).validate_python(
        list(orjson.loads(data)["trajectories"].values())),
    "TypedDicts, validate_json per segment": lambda data: TypeAdapter(_DictSegment).validate_json(data),
}


def main(store: str) -> None:
    folder = Path(store) / "trajectories"
    segments = [(folder / name).read_bytes() for name in sorted(os.listdir(folder)) if name.endswith(".json")]
    print(f"| way ({len(segments)} segments) | GC on (s) | GC off (s) |\n|---|---|---|")
    for name, way in WAYS.items():
        timings = []
        for collect in (True, False):
            gc.collect()
            gc.enable() if collect else gc.disable()
            start = time.perf_counter()
            for data in segments:
                way(data)  # each segment's result is dropped before the next, as in a cycle
            timings.append(time.perf_counter() - start)
            gc.enable()
        print(f"| {name} | {timings[0]:.2f} | {timings[1]:.2f} |")


if __name__ == "__main__":
    main(sys.argv[1])
