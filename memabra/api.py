"""The Python API of the operator guide: one cycle from a script, with the store and settings resolved once.

A front end like the CLI and the console: it picks the benchmark the engine runs (the demo world's, unless a suite
is given), so the engine below never imports the demo world.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from memabra.demo.world import DemoWorld
from memabra.errors import SettingError
from memabra.evaluation.benchmark import BenchmarkSuite, load_benchmark_suite
from memabra.evaluation.evaluator import Executor
from memabra.evaluation.evidence import store_evidence
from memabra.evaluation.plugins import load_executor
from memabra.results import CycleResult
from memabra.settings import Settings, load_settings
from memabra.storage.folders import validate_timestamp_id
from memabra.storage.owned import is_case_index_document, is_seen_document, require_own_document
from memabra.storage.store import Store
from memabra.workflow import CycleRequest, EventCallback, run_cycle


def resolve_settings(settings: Settings | None = None, **overrides: Any) -> Settings:
    """Settings from defaults, environment and the given non-None overrides (over `settings` when given); a value
    a setting cannot take is a SettingError naming it."""
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        if settings is None:
            return load_settings(**given)
        updated = Settings(**{**settings.model_dump(exclude_unset=True), **given})
        return updated.with_origins({**settings.origins(), **{name: "flag" for name in given}})
    except ValidationError as exc:
        raise setting_error(exc) from None


def setting_error(exc: ValidationError) -> SettingError:
    """The first problem of a settings validation error, naming the setting by its own name."""
    first = exc.errors()[0]
    location = [str(part) for part in first["loc"]]
    name = location[-1] if location[:1] == ["gates"] and len(location) > 1 else (location[0] if location else "?")
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return SettingError(name, f"bad setting {{setting:{name}}} {first.get('input')!r}: {first['msg']}{more}")


def run_online_learning_workflow(
    base_dir: str | Path | None = None,
    min_new_trajectories: int | None = None,
    seen_trajectory_store: str | Path | None = None,
    dry_run: bool = False,
    baseline_version: str | None = None,
    case_index: str | Path | None = None,
    min_reward_delta: float | None = None,
    max_error_rate_increase: float | None = None,
    max_latency_increase_ms: float | None = None,
    required_task_count: int | None = None,
    reward_delta_bound: str | None = None,
    min_effective_sample_size: float | None = None,
    confidence_level: float | None = None,
    holdout_share: float | None = None,
    benchmark_concurrency: int | None = None,
    benchmark_timeout: float | None = None,
    evidence: str | None = None,
    interval: str | None = None,
    gate_profile: str | None = None,
    on_event: EventCallback | None = None,
    cancel: threading.Event | None = None,
    suite: BenchmarkSuite | None = None,
    executor: Executor | None = None,
    settings: Settings | None = None,
) -> CycleResult:
    """Run one cycle under the base dir's lock and return its result (status promoted, rejected, dry_run,
    skipped or cancelled); a promoted challenger becomes the current version."""
    settings = resolve_settings(
        settings, base_dir=base_dir, min_new_trajectories=min_new_trajectories, min_reward_delta=min_reward_delta,
        max_error_rate_increase=max_error_rate_increase, max_latency_increase_ms=max_latency_increase_ms,
        required_task_count=required_task_count, reward_delta_bound=reward_delta_bound,
        min_effective_sample_size=min_effective_sample_size, confidence_level=confidence_level,
        holdout_share=holdout_share, benchmark_concurrency=benchmark_concurrency,
        benchmark_timeout=benchmark_timeout, evidence=evidence, interval=interval, gate_profile=gate_profile)
    store = Store(settings.base_dir)
    request = cycle_request(store, settings, suite=suite, executor=executor, dry_run=dry_run or settings.dry_run,
                            baseline_version=baseline_version, seen_trajectory_store=seen_trajectory_store,
                            case_index=case_index)
    return run_cycle(store, settings, request, on_event=on_event, cancel=cancel)


def cycle_request(store: Store, settings: Settings, *, suite: BenchmarkSuite | None = None,
                  executor: Executor | None = None, dry_run: bool = False, baseline_version: str | None = None,
                  seen_trajectory_store: str | Path | None = None, case_index: str | Path | None = None,
                  rebuild_case_index: bool = False, reason: str | None = None) -> CycleRequest:
    """A cycle's request, checked before the cycle starts: ids and paths are usable, and the evidence is resolved
    (`evidence` auto: benchmark with an executor or a given suite, demo for a store of demo trajectories, else
    offpolicy)."""
    evidence = resolve_evidence(store, settings, suite=suite, executor=executor)
    if evidence == "offpolicy":
        suite, executor = None, None
    elif suite is None:
        suite, executor = benchmark_of(settings, executor, evidence=evidence)
    if baseline_version is not None:
        validate_timestamp_id(baseline_version, "baseline version id")
        store.versions.get_version(baseline_version)
    seen_path = Path(seen_trajectory_store) if seen_trajectory_store else None
    case_index_path = Path(case_index) if case_index else None
    require_own_document(seen_path, "--seen-trajectory-store", "seen-ids document", is_seen_document)
    require_own_document(case_index_path, "--case-index", "case index", is_case_index_document)
    return CycleRequest(suite=suite, executor=executor,
                        dry_run=dry_run, baseline_version=baseline_version, seen_path=seen_path,
                        case_index_path=case_index_path, rebuild_case_index=rebuild_case_index, evidence=evidence,
                        reason=reason)


def resolve_evidence(store: Store | None, settings: Settings, *, suite: BenchmarkSuite | None = None,
                     executor: Executor | None = None) -> str:
    """The evidence a cycle decides on: the `evidence` setting, with auto resolved (a store of agent trajectories
    never decides on the demo world silently)."""
    chosen = settings.evidence
    has_executor = executor is not None or settings.executor is not None
    if settings.benchmark_suite is not None and not has_executor and chosen != "offpolicy":
        raise SettingError("benchmark_suite", "{setting:benchmark_suite} needs {setting:executor}: the demo world "
                                              "runs only its own tasks")
    if chosen == "benchmark" and not has_executor and suite is None:
        raise SettingError("evidence", "{setting:evidence} benchmark needs {setting:executor} (your agent runs the "
                                       "suite); without one use offpolicy")
    if chosen != "auto":
        return chosen
    if has_executor or suite is not None:
        return "benchmark"
    return store_evidence(store.trajectories) if store is not None else "demo"


def benchmark_of(settings: Settings, executor: Executor | None = None, *, evidence: str | None = None,
                 store: Store | None = None) -> tuple[BenchmarkSuite | None, Executor | None]:
    """The benchmark the evidence runs: the demo world's suite for demo, the settings' `benchmark_suite` through
    `executor` for benchmark, none (None, None) for offpolicy; `evidence` defaults to the resolved setting."""
    evidence = evidence or resolve_evidence(store, settings, executor=executor)
    if evidence == "offpolicy":
        return None, None
    if evidence == "demo":
        return DemoWorld(settings.seed).benchmark_suite(), None
    if settings.benchmark_suite is not None and settings.executor is None and executor is None:
        raise SettingError("benchmark_suite", "{setting:benchmark_suite} needs {setting:executor}: the demo world "
                                              "runs only its own tasks")
    if settings.executor is not None and executor is None:
        executor = load_executor(settings.executor)
    if settings.benchmark_suite is not None:
        return load_benchmark_suite(settings.benchmark_suite), executor
    return DemoWorld(settings.seed).benchmark_suite(), executor
