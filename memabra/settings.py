"""Settings: one pydantic model; flags override `MEMABRA_*` environment variables override defaults."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

DEFAULT_BASE_DIR = Path("artifacts")


class Settings(BaseModel):
    """Everything a cycle, the CLI and the console can be configured with."""

    base_dir: Path = DEFAULT_BASE_DIR
    """Folder holding the whole store (trajectories, versions, reports, seen ids, case index)."""

    min_new_trajectories: int = Field(50, ge=0)
    """A cycle with fewer unseen trajectories than this is skipped and writes no report."""

    min_reward_delta: float = 0.0
    """Gate: the challenger's benchmark avg_reward must beat the baseline's by at least this."""

    max_error_rate_increase: float = 0.05
    """Gate: the challenger's error rate may exceed the baseline's by at most this."""

    max_latency_increase_ms: float = 1000.0
    """Gate: the challenger's average latency may exceed the baseline's by at most this (ms)."""

    required_task_count: int = Field(20, ge=0)
    """Gate: the benchmark must have run at least this many tasks."""

    reward_delta_bound: Literal["off", "benchmark", "doubly_robust"] = "off"
    """Gate: when not off, the low end of the reward delta's interval must also reach min_reward_delta."""

    min_effective_sample_size: float = Field(0.0, ge=0.0)
    """Gate: when above 0, held-out traffic must give the challenger's estimate this many effective samples."""

    confidence_level: float = Field(0.95, gt=0.0, lt=1.0)
    """Level of the bootstrap intervals a cycle reports and its reward_delta_bound gate reads."""

    holdout_share: float = Field(0.2, ge=0.0, lt=1.0)
    """Share of the newest unseen trajectories a cycle holds out of training to estimate both routers on."""

    exploration: Literal["epsilon_greedy", "softmax", "greedy"] = "epsilon_greedy"
    """Logging policy of the runner: `epsilon_greedy`, `softmax` or `greedy`."""

    epsilon: float = Field(0.2, ge=0.0, le=1.0)
    """Share of decisions the epsilon-greedy logging policy spends exploring uniformly."""

    temperature: float = Field(0.1, gt=0.0)
    """Temperature of the softmax logging policy (lower is greedier)."""

    seed: int = 7
    """Seed of the demo world and of everything random in a cycle."""

    benchmark_concurrency: int = Field(4, ge=1)
    """Benchmark tasks executed at once (threads); 1 runs them one by one. Results keep the suite's order."""

    benchmark_timeout: float | None = Field(None, gt=0.0)
    """Seconds one benchmark task may take before it counts as an error outcome (None: no limit)."""


_ENV_PREFIX = "MEMABRA_"


def environment_overrides(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Return the settings named by `MEMABRA_<FIELD>` environment variables."""
    environ = os.environ if environ is None else environ
    found: dict[str, Any] = {}
    for name in Settings.model_fields:
        value = environ.get(_ENV_PREFIX + name.upper())
        if value not in (None, ""):
            found[name] = value
    return found


def load_settings(**overrides: Any) -> Settings:
    """Build settings from defaults, then the environment, then the given non-None overrides."""
    values = environment_overrides()
    values.update({key: value for key, value in overrides.items() if value is not None})
    return Settings(**values)


def resolve_base_dir(base_dir: str | os.PathLike | None = None) -> Path:
    """Return the base dir: the argument, else `MEMABRA_BASE_DIR`, else `./artifacts`."""
    if base_dir is not None:
        return Path(base_dir)
    return Path(os.environ.get("MEMABRA_BASE_DIR") or DEFAULT_BASE_DIR)
