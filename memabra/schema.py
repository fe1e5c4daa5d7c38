"""The JSON Schema of one trajectory line, generated from the pydantic model (`python -m memabra.schema --write`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson

from memabra.models import Trajectory

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "docs" / "trajectory.schema.json"
"""Where the checked-in schema lives (a test fails when it drifts from the model)."""


def trajectory_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) that one trajectory document must satisfy."""
    schema = Trajectory.model_json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$comment": "Generated from memabra.models.Trajectory by `python -m memabra.schema --write`; "
                    "do not edit by hand. Beyond it: candidate_id values are unique within a trajectory and "
                    "decision.chosen_candidate_id is one of them, and objects and arrays nest at most 32 levels deep.",
        **schema,
    }


def schema_text() -> bytes:
    """The schema file's exact contents."""
    return orjson.dumps(trajectory_json_schema(), option=orjson.OPT_INDENT_2) + b"\n"


def main(argv: list[str] | None = None) -> int:
    """Print the schema, or with `--write` replace docs/trajectory.schema.json with it."""
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--write"]:
        SCHEMA_PATH.write_bytes(schema_text())
        print(f"wrote {SCHEMA_PATH}", file=sys.stderr)
    elif not argv:
        sys.stdout.buffer.write(schema_text())
    else:
        print("error: usage: python -m memabra.schema [--write]", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
