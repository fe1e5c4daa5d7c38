"""How to validate a segment in bulk: `python -m bench.validation STORE` times each way over a store's segments.

Compared: the orjson parse alone, then pydantic into the models (from parsed objects, or straight from the
bytes with validate_json), and into plain dicts by the models' rules (`plain_document_type`, a TypedDict built
from the models), each with the garbage collector on and off.
"""

from __future__ import annotations

import gc
import os
import sys
import time
from pathlib import Path

import orjson
from pydantic import TypeAdapter
from typing_extensions import TypedDict

from memabra.models import Trajectory
from memabra.storage.trajectories import plain_document_type

_Trajectory = plain_document_type(Trajectory)


class _ModelSegment(TypedDict):
    trajectories: dict[str, Trajectory]


class _DictSegment(TypedDict):
    trajectories: dict[str, _Trajectory]


WAYS = {
    "orjson parse only (the floor)": lambda data: list(orjson.loads(data)["trajectories"].values()),
    "models, validate_python per segment": lambda data: TypeAdapter(list[Trajectory]).validate_python(
        list(orjson.loads(data)["trajectories"].values())),
    "models, validate_json per segment (read_batch)": lambda data: TypeAdapter(_ModelSegment).validate_json(data),
    "plain dicts, validate_python per segment": lambda data: TypeAdapter(list[_Trajectory]).validate_python(
        list(orjson.loads(data)["trajectories"].values())),
    "plain dicts, validate_json per segment (the cycle)": lambda data: TypeAdapter(_DictSegment).validate_json(data),
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
