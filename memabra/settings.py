"""Settings, declared once: flags override `MEMABRA_*` environment variables override the store's `memabra.toml`
override these defaults; every front end derives its flags, dialogs and help from these fields."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from memabra.evaluation.gates import PromotionPolicy
from memabra.models import GatePolicy

DEFAULT_BASE_DIR = Path("artifacts")
ENV_PREFIX = "MEMABRA_"
GATE_FIELDS: tuple[str, ...] = tuple(GatePolicy.model_fields)
"""Names of the promotion gates, each also a setting of its own (`min_reward_delta`, ...)."""


def _group(name: str, metavar: str | None = None) -> dict[str, Any]:
    return {"group": name, **({"metavar": metavar} if metavar else {})}


class Settings(BaseSettings):
    """Everything a cycle, the CLI, the console and a running agent can be configured with."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", use_attribute_docstrings=True,
                                      validate_default=True)

    base_dir: Path = Field(DEFAULT_BASE_DIR, json_schema_extra=_group("store", "PATH"))
    """Folder holding the whole store (trajectories, versions, reports, seen ids, case index)."""

    min_new_trajectories: int = Field(50, ge=0, json_schema_extra=_group("cycle", "N"))
    """A cycle with fewer unseen trajectories than this is skipped and writes no report."""

    dry_run: bool = Field(False, json_schema_extra=_group("cycle"))
    """Train and evaluate, write the report, promote nothing and change nothing else (a cycle only)."""

    holdout_share: float = Field(0.2, ge=0.0, lt=1.0, json_schema_extra=_group("cycle", "X"))
    """Share of the newest unseen trajectories a cycle holds out of training to estimate both routers on,
    off-policy (0 turns it off)."""

    gates: PromotionPolicy = Field(default_factory=PromotionPolicy)
    """The promotion gates; each is also a setting of its own name (`min_reward_delta`, ...)."""

    benchmark_concurrency: int = Field(4, ge=1, json_schema_extra=_group("benchmark", "N"))
    """Benchmark tasks executed at once (threads); 1 runs them one by one. Results keep the suite's order."""

    benchmark_timeout: float | None = Field(None, gt=0.0, json_schema_extra=_group("benchmark", "SECONDS"))
    """Seconds one benchmark task may take before it counts as an error outcome (none: no limit)."""

    executor: str | None = Field(None, json_schema_extra=_group("benchmark", "MODULE:FACTORY"))
    """Run benchmark tasks through your agent: package.module:factory returns an object with
    execute(task, candidate) -> Outcome."""

    benchmark_suite: Path | None = Field(None, json_schema_extra=_group("benchmark", "FILE"))
    """Your benchmark tasks as JSON (needs executor; default: the demo world's suite)."""

    exploration: Literal["epsilon_greedy", "softmax", "greedy"] = Field(
        "epsilon_greedy", json_schema_extra=_group("exploration"))
    """Logging policy of a running agent and of demo traffic: epsilon_greedy, softmax or greedy."""

    epsilon: float = Field(0.2, ge=0.0, le=1.0, json_schema_extra=_group("exploration", "X"))
    """Share of decisions the epsilon-greedy logging policy spends exploring uniformly."""

    temperature: float = Field(0.1, gt=0.0, json_schema_extra=_group("exploration", "T"))
    """Temperature of the softmax logging policy (lower is greedier)."""

    seed: int = Field(7, json_schema_extra=_group("exploration", "N"))
    """Seed of the demo world and of everything random in a cycle."""

    @model_validator(mode="before")
    @classmethod
    def _gates_by_their_own_names(cls, data: Any) -> Any:
        """Accept `min_reward_delta=...` beside `gates={...}`: each gate is a setting of its own name too."""
        if isinstance(data, dict) and any(name in data for name in GATE_FIELDS):
            data = dict(data)
            gates = dict(data.get("gates") or {}) if not isinstance(data.get("gates"), GatePolicy) \
                else data["gates"].model_dump()
            for name in GATE_FIELDS:
                if name in data:
                    gates[name] = data.pop(name)
            data["gates"] = gates
        return data

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _GateEnvironment(settings_cls)

    def value(self, name: str) -> Any:
        """A setting by its name, gates included (`value("min_reward_delta")`)."""
        return getattr(self.gates, name) if name in GATE_FIELDS else getattr(self, name)


class _GateEnvironment(PydanticBaseSettingsSource):
    """Reads each gate from `MEMABRA_<GATE>` (e.g. `MEMABRA_MIN_REWARD_DELTA`)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        gates = {name: value for name in GATE_FIELDS
                 if (value := os.environ.get(ENV_PREFIX + name.upper())) not in (None, "")}
        return {"gates": gates} if gates else {}


def setting_fields() -> dict[str, FieldInfo]:
    """Every setting a front end offers, by name, the gates by their own names, in declaration order."""
    fields: dict[str, FieldInfo] = {}
    for name, info in Settings.model_fields.items():
        if name == "gates":
            fields.update(GatePolicy.model_fields)
        else:
            fields[name] = info
    return fields


def setting_group(name: str) -> str:
    """The group a setting is shown in: store, cycle, gates, benchmark or exploration."""
    if name in GATE_FIELDS:
        return "gates"
    extra = Settings.model_fields[name].json_schema_extra
    return extra.get("group", "cycle") if isinstance(extra, dict) else "cycle"


def load_settings(**overrides: Any) -> Settings:
    """Build settings from defaults, then the environment, then the given non-None overrides."""
    return Settings(**{key: value for key, value in overrides.items() if value is not None})


def resolve_base_dir(base_dir: str | os.PathLike | None = None) -> Path:
    """Return the base dir: the argument, else `MEMABRA_BASE_DIR`, else `./artifacts`."""
    if base_dir is not None:
        return Path(base_dir)
    return Path(os.environ.get(ENV_PREFIX + "BASE_DIR") or DEFAULT_BASE_DIR)
