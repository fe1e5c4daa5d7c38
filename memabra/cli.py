"""The headless command line: `python -m memabra.cli [flags]` prints one JSON document on stdout.

Progress goes to stderr (a rich progress bar on a terminal); errors are one line starting with `error:`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
import traceback
from pathlib import Path
from typing import Any, Sequence

import orjson
from pydantic import ValidationError

from memabra.errors import (
    EXIT_BAD_INPUT,
    EXIT_CHECK_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_UNEXPECTED,
    BadInputError,
    MemabraError,
)
from memabra.settings import Settings, load_settings
from memabra.storage.documents import describe_validation_error
from memabra.workflow import ProgressEvent, run_online_learning_workflow

__all__ = ["main", "run_online_learning_workflow", "build_parser"]

DEMO_TRAJECTORIES_FOR_EMPTY_STORE = 2_000


class _Parser(argparse.ArgumentParser):
    """argparse with errors in memabra's one-line form and exit code 2."""

    def error(self, message: str):  # noqa: D401 - argparse's hook
        raise BadInputError(f"{message} (see --help)")


def _version_id(value: str) -> str:
    from memabra.storage.folders import validate_timestamp_id

    try:
        return validate_timestamp_id(value)
    except BadInputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _non_negative_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative; give 0 or more")
    return number


def _positive_int(value: str) -> int:
    number = _non_negative_int(value)
    if number == 0:
        raise argparse.ArgumentTypeError("0 is not allowed; give 1 or more")
    return number


def _positive_float(value: str) -> float:
    number = _finite_float(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"{value} is not positive")
    return number


def _finite_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"{value} is not a finite number")
    return number


def build_parser() -> argparse.ArgumentParser:
    """The CLI's flags, as the operator guide names them."""
    parser = _Parser(
        prog="python -m memabra.cli",
        description="Run one online-learning cycle of memabra's router (or inspect, roll back, fill the store). "
                    "Prints one JSON document on stdout.",
        epilog="Exit codes: 0 done, 1 unexpected error, 2 bad input, 4 check found problems, 75 base dir locked.",
    )
    actions = parser.add_argument_group("actions (default: run one cycle)")
    action = actions.add_mutually_exclusive_group()
    action.add_argument("--status", action="store_true", help="print the store's state without running a cycle")
    action.add_argument("--list-versions", action="store_true", help="list saved router versions, newest first")
    action.add_argument("--rollback", metavar="VERSION_ID", type=_version_id,
                        help="make an earlier version current again (e.g. 20260414-123456)")
    action.add_argument("--demo-trajectories", metavar="N", type=_non_negative_int,
                        help="append N demo-world trajectories routed by the active router, exploring")
    action.add_argument("--ingest", metavar="PATH", type=Path,
                        help="import trajectories from a .jsonl file or a folder of *.jsonl files "
                             "(see docs/trajectory-schema.md); never takes the cycle lock")
    action.add_argument("--check", action="store_true",
                        help="verify every file of the store and say how to repair what is wrong "
                             "(exit 4 when problems are found)")
    parser.add_argument("--repair", action="store_true",
                        help="with --check: fix what can be fixed without losing data (unreadable files move to "
                             "<base-dir>/quarantine/)")
    parser.add_argument("--rebuild-case-index", action="store_true",
                        help="rebuild the episodic case index from all trajectories, then do what the other flags "
                             "ask (a cycle if nothing else)")

    store = parser.add_argument_group("store")
    store.add_argument("--base-dir", metavar="PATH", type=Path,
                       help="the store's folder (default: $MEMABRA_BASE_DIR, else ./artifacts)")
    store.add_argument("--seen-trajectory-store", metavar="PATH", type=Path,
                       help="file of trajectory ids already used (default: <base-dir>/seen-trajectories.json)")
    store.add_argument("--case-index", metavar="PATH", type=Path,
                       help="episodic case index to load (and rebuild after a cycle's evaluation)")

    cycle = parser.add_argument_group("cycle")
    cycle.add_argument("--dry-run", action="store_true",
                       help="train and evaluate, write the report, promote nothing and change nothing else")
    cycle.add_argument("--baseline-version", metavar="VERSION_ID", type=_version_id,
                       help="compare against this saved version instead of the active router")
    cycle.add_argument("--min-new-trajectories", metavar="N", type=_non_negative_int,
                       help="skip the cycle when fewer unseen trajectories are stored (default 50)")
    cycle.add_argument("--holdout-share", metavar="X", type=_finite_float,
                       help="share of the newest unseen trajectories kept out of training to estimate both routers "
                            "on, off-policy (default 0.2; 0 turns it off)")

    gates = parser.add_argument_group("promotion gates")
    gates.add_argument("--min-reward-delta", metavar="X", type=_finite_float,
                       help="challenger avg_reward must beat the baseline's by at least X (default 0.0)")
    gates.add_argument("--max-error-rate-increase", metavar="X", type=_finite_float,
                       help="challenger error rate may rise by at most X (default 0.05)")
    gates.add_argument("--max-latency-increase-ms", metavar="MS", type=_finite_float,
                       help="challenger avg latency may rise by at most MS (default 1000)")
    gates.add_argument("--required-task-count", metavar="N", type=_non_negative_int,
                       help="the benchmark must run at least N tasks (default 20)")
    gates.add_argument("--reward-delta-bound", choices=("off", "benchmark", "doubly_robust"),
                       help="also require the low end of the reward delta's interval to reach --min-reward-delta: "
                            "from a paired bootstrap over benchmark tasks, or the doubly-robust estimate on "
                            "held-out traffic (default off)")
    gates.add_argument("--min-effective-sample-size", metavar="N", type=_finite_float,
                       help="held-out traffic must give the challenger's estimate at least N effective samples "
                            "(default 0: off)")
    gates.add_argument("--confidence-level", metavar="X", type=_finite_float,
                       help="level of the reported intervals and of --reward-delta-bound (default 0.95)")

    bench = parser.add_argument_group("benchmark (your agent)")
    bench.add_argument("--executor", metavar="MODULE:FACTORY",
                       help="run benchmark tasks through your agent: package.module:factory returns an object with "
                            "execute(task, candidate) -> Outcome")
    bench.add_argument("--benchmark-suite", metavar="FILE", type=Path,
                       help="your benchmark tasks as JSON (needs --executor; default: the demo world's suite)")
    bench.add_argument("--benchmark-concurrency", metavar="N", type=_positive_int,
                       help="benchmark tasks executed at once (default 4)")
    bench.add_argument("--benchmark-timeout", metavar="SECONDS", type=_positive_float,
                       help="a task running longer counts as an error outcome (default: no limit)")

    demo = parser.add_argument_group("demo trajectories")
    demo.add_argument("--exploration", choices=("epsilon_greedy", "softmax", "greedy"),
                      help="logging policy (default epsilon_greedy)")
    demo.add_argument("--epsilon", metavar="X", type=_finite_float, help="exploration share (default 0.2)")
    demo.add_argument("--temperature", metavar="T", type=_finite_float, help="softmax temperature (default 0.1)")
    demo.add_argument("--seed", metavar="N", type=int,
                      help="seed of the demo world (default 7); demo task draws are random unless given")

    parser.add_argument("--debug", action="store_true", help="print a traceback with errors")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(
        base_dir=args.base_dir, min_new_trajectories=args.min_new_trajectories,
        min_reward_delta=args.min_reward_delta, max_error_rate_increase=args.max_error_rate_increase,
        max_latency_increase_ms=args.max_latency_increase_ms, required_task_count=args.required_task_count,
        reward_delta_bound=args.reward_delta_bound, min_effective_sample_size=args.min_effective_sample_size,
        confidence_level=args.confidence_level, holdout_share=args.holdout_share,
        exploration=args.exploration, epsilon=args.epsilon, temperature=args.temperature, seed=args.seed,
        benchmark_concurrency=args.benchmark_concurrency, benchmark_timeout=args.benchmark_timeout,
    )


def check_base_dir(base_dir: Path) -> None:
    """Refuse a base dir that cannot hold a store (a file, or a folder we may not write)."""
    if base_dir.exists() and not base_dir.is_dir():
        raise BadInputError(f"--base-dir {base_dir} is a file; give a folder (it is created if missing)")
    probe = base_dir
    while not probe.exists():
        probe = probe.parent
    if not os.access(probe, os.W_OK | os.X_OK):
        raise BadInputError(f"--base-dir {base_dir} is not writable; fix its permissions or choose another folder")


class StderrProgress:
    """Renders progress events on stderr: a rich bar per stage on a terminal, one line per stage otherwise."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty()
        self._progress = None
        self._tasks: dict[str, Any] = {}
        self._last_message: dict[str, str] = {}

    def __enter__(self) -> "StderrProgress":
        if self.interactive:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("{task.fields[stage]:<9}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.description}"), TimeElapsedColumn(),
                console=Console(file=self.stream), transient=False,
            )
            self._progress.start()
        return self

    def __call__(self, event: ProgressEvent) -> None:
        if self._progress is not None:
            task = self._tasks.get(event.stage)
            if task is None:
                task = self._tasks[event.stage] = self._progress.add_task(
                    event.message, total=max(event.total, 1), stage=event.stage)
            self._progress.update(task, completed=event.done, total=max(event.total, 1), description=event.message)
        elif event.done >= event.total and event.message != self._last_message.get(event.stage):
            self._last_message[event.stage] = event.message
            print(f"{event.stage}: {event.message}", file=self.stream, flush=True)

    def __exit__(self, *exc_info) -> None:
        if self._progress is not None:
            self._progress.stop()


def _emit(document: Any) -> None:
    sys.stdout.buffer.write(orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS) + b"\n")
    sys.stdout.flush()


def _run(args: argparse.Namespace, cancel: threading.Event | None = None) -> dict[str, Any]:
    if args.repair and not args.check:
        raise BadInputError("--repair works only with --check (python -m memabra.cli --check --repair)")
    settings = _settings(args)
    base_dir = settings.base_dir
    check_base_dir(base_dir)
    case_index_summary = None
    if args.rebuild_case_index:
        from memabra.runtime.case_index import rebuild_case_index
        from memabra.storage.layout import StoreLayout
        from memabra.storage.lock import StoreLock

        args.case_index = args.case_index or StoreLayout(base_dir).case_index_path
        with StoreLock(base_dir, "case index rebuild"):
            index = rebuild_case_index(base_dir, args.case_index)
        case_index_summary = {"path": str(args.case_index), "case_count": len(index), "rebuilt": True}

    result: dict[str, Any]
    if args.check:
        from memabra.check import check_store

        result = check_store(base_dir, repair=args.repair)
        for problem in result["problems"]:
            state = "repaired" if problem["repaired"] else "problem"
            print(f"check: {state}: {problem['path']}: {problem['problem']}; {problem['fix']}",
                  file=sys.stderr, flush=True)
    elif args.status:
        from memabra.status import store_status

        result = store_status(base_dir, args.seen_trajectory_store)
    elif args.list_versions:
        from memabra.storage.versions import RouterVersionStore

        result = {"versions": RouterVersionStore(base_dir).list_versions()}
    elif args.rollback:
        from memabra.storage.versions import RouterVersionStore

        result = RouterVersionStore(base_dir).rollback(args.rollback)
    elif args.demo_trajectories is not None:
        result = _demo_trajectories(args, settings, cancel)
    elif args.ingest is not None:
        result = _ingest(args.ingest, base_dir)
    else:
        # The user's executor may print; stdout must stay one JSON document.
        with contextlib.redirect_stdout(sys.stderr), StderrProgress() as progress:
            suite, executor = _benchmark_plugins(args)
            result = run_online_learning_workflow(
                seen_trajectory_store=args.seen_trajectory_store, dry_run=args.dry_run,
                baseline_version=args.baseline_version, case_index=args.case_index,
                on_event=progress, cancel=cancel, settings=settings, suite=suite, executor=executor,
            )
        if case_index_summary and result.get("case_index"):
            result["case_index"]["rebuilt"] = True
        return result
    if case_index_summary:
        result["case_index"] = case_index_summary
    return result


def _demo_trajectories(args: argparse.Namespace, settings: Settings, cancel) -> dict[str, Any]:
    from memabra.demo.generate import generate_demo_trajectories
    from memabra.demo.world import DemoWorld
    from memabra.learning.exploration import ExplorationPolicy
    from memabra.runtime.case_index import CaseIndex
    from memabra.storage.versions import RouterVersionStore

    router = RouterVersionStore(settings.base_dir).active_router()
    exploration = ExplorationPolicy.from_settings(settings)
    case_index = CaseIndex.load(args.case_index) if args.case_index else None
    with StderrProgress() as progress:
        summary = generate_demo_trajectories(
            settings.base_dir, args.demo_trajectories, router, exploration=exploration,
            world=DemoWorld(settings.seed), case_index=case_index,
            on_progress=lambda done, total: progress(ProgressEvent("demo", done, total, "running demo tasks")),
            cancel=cancel,
        )
    summary["base_dir"] = str(settings.base_dir)
    return summary


def _benchmark_plugins(args: argparse.Namespace):
    """The suite and executor the flags name (None for the demo world's), checked before the cycle starts."""
    if args.benchmark_suite is not None and args.executor is None:
        raise BadInputError("--benchmark-suite needs --executor: the demo world runs only its own tasks")
    suite = executor = None
    if args.benchmark_suite is not None:
        from memabra.evaluation.benchmark import load_benchmark_suite

        suite = load_benchmark_suite(args.benchmark_suite)
    if args.executor is not None:
        from memabra.evaluation.plugins import load_executor

        executor = load_executor(args.executor)
    return suite, executor


def _ingest(path: Path, base_dir: Path) -> dict[str, Any]:
    from memabra.ingest import ingest_trajectories

    with StderrProgress() as progress:
        result = ingest_trajectories(
            base_dir, path,
            on_progress=lambda done, total: progress(ProgressEvent("ingest", done, total, f"{done:,} of {total:,} bytes read")))
    if result["invalid_count"]:
        first = result["invalid"][0]
        print(f"ingest: {result['invalid_count']} invalid lines were skipped (first: {first['file']} line "
              f"{first['line']}, {first['field']}: {first['error']})", file=sys.stderr, flush=True)
    return result


def main(argv: Sequence[str] | None = None, cancel: threading.Event | None = None) -> int:
    """Parse flags, run what they ask, print the JSON result; return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
        result = _run(args, cancel)
        _emit(result)
        return EXIT_CHECK_FAILED if args.check and not result["healthy"] else EXIT_OK
    except MemabraError as exc:
        return _fail(str(exc), exc.exit_code, debug)
    except KeyboardInterrupt:
        return _fail("interrupted; nothing half-written was left behind", EXIT_INTERRUPTED, debug)
    except ValidationError as exc:
        return _fail(f"bad setting {describe_validation_error(exc)} (check the flag or its MEMABRA_* variable)",
                     EXIT_BAD_INPUT, debug)
    except (ValueError, OSError) as exc:
        code = EXIT_BAD_INPUT if isinstance(exc, ValueError) else EXIT_UNEXPECTED
        return _fail(f"{type(exc).__name__}: {exc}", code, debug)
    except Exception as exc:  # noqa: BLE001 - the last line of defence prints one line, not a traceback
        return _fail(f"unexpected {type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
                     EXIT_UNEXPECTED, debug)


def _fail(message: str, code: int, debug: bool) -> int:
    if debug:
        traceback.print_exc(file=sys.stderr)
    first_line = " ".join(message.split())
    print(f"error: {first_line}", file=sys.stderr, flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
