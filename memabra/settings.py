"""Settings, declared once: flags override `MEMABRA_*` environment variables override the store's `memabra.toml`
override these defaults; every front end derives its flags, dialogs and help from these fields."""

from __future__ import annotations

import os
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from memabra.evaluation.gates import PromotionPolicy
from memabra.evaluation.guard import GuardPolicy
from memabra.models import GatePolicy
from memabra.settings_file import FILE_NAME, REFERENCE_PATH, flat_keys, read_settings_file, settings_reference

DEFAULT_BASE_DIR = Path("artifacts")
ENV_PREFIX = "MEMABRA_"
GATE_FIELDS: tuple[str, ...] = tuple(GatePolicy.model_fields)
"""Names of the promotion gates, each also a setting of its own (`min_reward_delta`, ...)."""
SettingSource = Literal["flag", "environment", "memabra.toml", "default"]
"""Where a setting's effective value came from, highest precedence first."""
_store_file_values: ContextVar[dict[str, Any]] = ContextVar("store_file_values", default={})


def _group(name: str, metavar: str | None = None) -> dict[str, Any]:
    return {"group": name, **({"metavar": metavar} if metavar else {})}


class GuardSettings(GuardPolicy):
    """The guard over the active version's live traffic (`[guard]` in memabra.toml): what it does on a regression,
    and the statistics' settings, defaulting to those bench/guard.py measured (bench/results/guard.json)."""

    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")

    mode: Literal["off", "alert", "rollback"] = "alert"
    """`off`: nothing watches (`--guard-check` still reports); `alert`: a regression is marked in `--status` and the
    console; `rollback`: a regression also rolls back to the prior version, with the reason `guard: ...`."""

    max_importance_weight: float = Field(25.0, gt=1.0)
    """Bound on importance weights the `dr` sequence relies on: 1 / the smallest logged propensity (25 is the
    default epsilon-greedy 0.2 over 5 candidates, the measured case); larger weights are capped and counted."""

    def policy(self) -> GuardPolicy:
        """The statistical policy alone (what memabra.evaluation.guard reads)."""
        return GuardPolicy(**self.model_dump(exclude={"mode"}))


class Settings(BaseSettings):
    """Everything a cycle, the CLI, the console and a running agent can be configured with."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", use_attribute_docstrings=True,
                                      validate_default=True)
    _origins: dict[str, SettingSource] | None = PrivateAttr(None)

    base_dir: Path = Field(DEFAULT_BASE_DIR, json_schema_extra=_group("store", "PATH"))
    """Folder holding the whole store (trajectories, versions, reports, seen ids, case index)."""

    min_new_trajectories: int = Field(50, ge=0, json_schema_extra=_group("cycle", "N"))
    """A cycle with fewer unseen trajectories than this is skipped and writes no report."""

    dry_run: bool = Field(False, json_schema_extra=_group("cycle"))
    """Train and evaluate, write the report, promote nothing and change nothing else (a cycle only)."""

    holdout_share: float = Field(0.2, ge=0.0, lt=1.0, json_schema_extra=_group("cycle", "X"))
    """Share of the newest unseen trajectories a cycle holds out of training to estimate both routers on,
    off-policy (0 turns it off)."""

    evidence: Literal["auto", "benchmark", "offpolicy", "demo"] = Field("auto", json_schema_extra=_group("cycle"))
    """What the gates decide on: benchmark (your suite through your executor), offpolicy (the held-out logged
    traffic, no executor), demo (the demo world), or auto: benchmark with an executor, demo for a store of demo
    trajectories, else offpolicy."""

    gates: PromotionPolicy = Field(default_factory=PromotionPolicy)
    """The promotion gates; each is also a setting of its own name (`min_reward_delta`, ...)."""

    guard: GuardSettings = Field(default_factory=GuardSettings)
    """The guard over the active version's live traffic (`[guard]` in memabra.toml; `--guard-mode` on the
    command line)."""

    benchmark_concurrency: int = Field(4, ge=1, json_schema_extra=_group("benchmark", "N"))
    """Benchmark tasks executed at once (threads); 1 runs them one by one. Results keep the suite's order."""

    benchmark_timeout: float | None = Field(None, gt=0.0, json_schema_extra=_group("benchmark", "SECONDS"))
    """Seconds one benchmark task may take before it counts as an error outcome (none: no limit)."""

    engine: Literal["local", "process", "dask"] = Field("process", json_schema_extra=_group("cycle"))
    """Where a scan summarises stored segments it has no cached summary of: local (in its own process), process (a
    local process pool, when enough segments need it to repay its start-up) or dask (a Dask cluster; needs
    memabra[dask])."""

    dask_address: str | None = Field(None, json_schema_extra=_group("cycle", "tcp://HOST:PORT"))
    """Scheduler of the Dask cluster the dask engine uses; its workers must see the store at the same path
    (none: start a local cluster of two worker processes)."""

    half_life: float | None = Field(1000.0, gt=0.0, json_schema_extra=_group("learning", "N"))
    """Trajectories after which a logged decision counts half in training, so recent traffic wins after a drift
    (none: nothing decays). Measured on the support-desk world: 98% of a new-logs-only fit after a drift, under a
    point lost on stationary logs."""

    metadata_words: list[str] = Field(default_factory=list, json_schema_extra=_group("learning", "KEY,KEY"))
    """task.metadata keys whose values join the task's words as key=value (categories such as a channel)."""

    metadata_features: list[str] = Field(default_factory=list, json_schema_extra=_group("learning", "KEY,KEY"))
    """Numeric task.metadata values the learner uses as features (missing or not a number: 0)."""

    payload_features: list[str] = Field(default_factory=list, json_schema_extra=_group("learning", "KEY,KEY"))
    """Numeric candidate payload values the learner uses as features (missing or not a number: 0)."""

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

    seed: int = Field(7, ge=0, le=2**63 - 1, json_schema_extra=_group("exploration", "N"))
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
        return init_settings, env_settings, _GateEnvironment(settings_cls), _StoreFile(settings_cls)

    def value(self, name: str) -> Any:
        """A setting by its name, gates included (`value("min_reward_delta")`)."""
        return getattr(self.gates, name) if name in GATE_FIELDS else getattr(self, name)

    def origins(self) -> dict[str, SettingSource]:
        """Where each setting's value came from, by name (settings made directly: given ones count as flags)."""
        if self._origins is not None:
            return dict(self._origins)
        given = set(self.model_fields_set) | set(self.gates.model_fields_set)
        return {name: "flag" if name in given else "default" for name in setting_fields()}

    def with_origins(self, origins: dict[str, SettingSource]) -> "Settings":
        """These settings, remembering where each value came from."""
        self._origins = dict(origins)
        return self


class _StoreFile(PydanticBaseSettingsSource):
    """The store's `memabra.toml`, as `load_settings` read it for the base dir being resolved."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return _store_file_values.get()


class _GateEnvironment(PydanticBaseSettingsSource):
    """Reads each gate from `MEMABRA_<GATE>` (e.g. `MEMABRA_MIN_REWARD_DELTA`)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        gates = {name: value for name in GATE_FIELDS
                 if (value := os.environ.get(ENV_PREFIX + name.upper())) not in (None, "")}
        return {"gates": gates} if gates else {}


def setting_fields() -> dict[str, FieldInfo]:
    """Every flat setting a front end offers, by name, the gates by their own names, in declaration order; other
    nested models (the guard) are tables of the settings file, not flags."""
    fields: dict[str, FieldInfo] = {}
    for name, info in Settings.model_fields.items():
        if name == "gates":
            fields.update(GatePolicy.model_fields)
        elif not (isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel)):
            fields[name] = info
    return fields


def setting_group(name: str) -> str:
    """The group a setting is shown in: store, cycle, gates, benchmark or exploration."""
    if name in GATE_FIELDS:
        return "gates"
    extra = Settings.model_fields[name].json_schema_extra
    return extra.get("group", "cycle") if isinstance(extra, dict) else "cycle"


def load_settings(**overrides: Any) -> Settings:
    """Build settings from defaults, then the base dir's `memabra.toml`, then the environment, then the given
    non-None overrides; a bad settings file is a SettingError naming the file and the key."""
    given = {key: value for key, value in overrides.items() if value is not None}
    base_dir = resolve_base_dir(given.get("base_dir"))
    file_values = read_settings_file(base_dir / FILE_NAME, Settings)
    token = _store_file_values.set(file_values)
    try:
        settings = Settings(**given)
    finally:
        _store_file_values.reset(token)
    in_file = flat_keys(file_values, Settings)
    environment = {key.upper() for key, value in os.environ.items() if value != ""}
    origins: dict[str, SettingSource] = {}
    for name in setting_fields():
        if name in given:
            origins[name] = "flag"
        elif ENV_PREFIX + name.upper() in environment:
            origins[name] = "environment"
        elif name in in_file:
            origins[name] = "memabra.toml"
        else:
            origins[name] = "default"
    return settings.with_origins(origins)


def reload_settings(settings: Settings) -> Settings:
    """The same settings read again (after the store's file changed), keeping the values given as flags."""
    flags = {name: settings.value(name) for name, origin in settings.origins().items() if origin == "flag"}
    return load_settings(**flags)


def resolve_base_dir(base_dir: str | os.PathLike | None = None) -> Path:
    """Return the base dir: the argument, else `MEMABRA_BASE_DIR`, else `./artifacts`."""
    if base_dir is not None:
        return Path(base_dir)
    return Path(os.environ.get(ENV_PREFIX + "BASE_DIR") or DEFAULT_BASE_DIR)


def settings_file_reference() -> str:
    """The settings file's reference page (docs/settings.md), generated from the fields."""
    return settings_reference(Settings)


if __name__ == "__main__":
    REFERENCE_PATH.write_text(settings_file_reference())
    print(f"wrote {REFERENCE_PATH}")
