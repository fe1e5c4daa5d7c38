"""The command line. `python -m memabra.cli [flags]` prints one JSON document on stdout; `memabra` (and
`python -m memabra`) opens the console, or with `--headless` is exactly `python -m memabra.cli`.

Progress goes to stderr (a rich progress bar on a terminal); errors are one line starting with `error:`. The
settings' flags are derived from the settings' fields, so each is also a `MEMABRA_*` variable of the same name.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
import traceback
import types
import typing
from pathlib import Path
from typing import Any, Sequence

import orjson
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from memabra import __version__, cli_rules
from memabra.api import cycle_request, resolve_settings, run_online_learning_workflow, setting_error
from memabra.cli_progress import StderrProgress, note, set_quiet
from memabra.cli_rules import flag_of
from memabra.errors import (
    EXIT_BAD_INPUT,
    EXIT_CHECK_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REGRESSED,
    EXIT_TERMINATED,
    EXIT_UNEXPECTED,
    BadInputError,
    CorruptDocumentError,
    MemabraError,
    SettingError,
)
from memabra.commands import changes
from memabra.promotion import PREVIOUS, roll_back
from memabra.results import CaseIndexSummary
from memabra.settings import ENV_PREFIX, Settings, setting_fields, setting_group
from memabra.signals import RECEIVED, Terminated, sigterm_as_interrupt
from memabra.storage.folders import validate_timestamp_id
from memabra.storage.store import Store, check_base_dir
from memabra.workflow import ProgressEvent, run_cycle

__all__ = ["main", "command", "run_online_learning_workflow", "build_parser", "flag_of"]

DEMO_TRAJECTORIES_FOR_EMPTY_STORE = 2_000
DEFAULT_WATCH_SECONDS = 5.0
"""Seconds between a --watch's looks at the store unless --watch-interval says otherwise."""
SETTING_GROUPS = {
    "store": "store",
    "cycle": "cycle",
    "learning": "learning",
    "gates": "promotion gates",
    "benchmark": "benchmark (your agent)",
    "exploration": "exploration and demo trajectories",
}


class CommandLineParser(argparse.ArgumentParser):
    """argparse with errors in memabra's one-line form and exit code 2."""

    def error(self, message: str):  # noqa: D401 - argparse's hook
        raise BadInputError(f"{message} (see --help)")


EXIT_CODES = """exit codes:
  0    done (a rollback to the version already active changes nothing and is 0 too)
  1    unexpected error (a corrupt file, a full disk); the error line says what to do
  2    bad input: bad flag or value, a flag the action does not use, a missing store or path
  3    --guard-check found a regression (or rolled it back)
  4    --check found problems; --ingest refused lines (with --strict, or when every line was refused)
  75   the store is locked by another cycle, rollback or repair (--wait SECONDS waits for it)
  130  interrupted (Ctrl-C): nothing half-written is left behind
  143  terminated (SIGTERM), as Ctrl-C (a --watch stops cleanly)
"""


def _rollback_target(value: str) -> str:
    return value if value == PREVIOUS else _version_id(value)


def _version_id(value: str) -> str:
    try:
        return validate_timestamp_id(value)
    except BadInputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _whole_number(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None


def _non_negative_int(value: str) -> int:
    number = _whole_number(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative; give 0 or more")
    return number


def _positive_seconds(value: str) -> float:
    number = _finite_float(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"{value} is not above 0; give a number of seconds such as 5")
    return number


def _finite_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"{value} is not a finite number")
    return number


def _comma_separated(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _flag_options(name: str, info: FieldInfo) -> dict[str, Any]:
    """argparse options for one setting: its type or choices, metavar and help, from the field itself."""
    annotation = info.annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        annotation = next(arg for arg in typing.get_args(annotation) if arg is not type(None))
    options: dict[str, Any] = {}
    if annotation is bool:
        options.update(action="store_const", const=True)
    elif typing.get_origin(annotation) is typing.Literal:
        options["choices"] = typing.get_args(annotation)
    elif typing.get_origin(annotation) is list:
        options["type"] = _comma_separated
    else:
        options["type"] = {int: _whole_number, float: _finite_float, Path: Path}.get(annotation, str)
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    if "metavar" in extra:
        options["metavar"] = extra["metavar"]
    default = info.get_default(call_default_factory=True)
    shown = "none" if default in (None, []) else default
    what = " ".join((info.description or "").split()).replace("%", "%%")  # argparse formats help with %
    options["help"] = f"{what} (default {shown}; also {ENV_PREFIX}{name.upper()})"
    return options


def build_parser(prog: str = "python -m memabra.cli") -> argparse.ArgumentParser:
    """The CLI's flags: the operator guide's actions, then one flag per setting."""
    parser = CommandLineParser(
        prog=prog,
        description="Run one online-learning cycle of memabra's router (or inspect, roll back, fill the store). "
                    "Prints one JSON document on stdout.",
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"memabra {__version__}")
    actions = parser.add_argument_group("actions (default: run one cycle)")
    action = actions.add_mutually_exclusive_group()
    action.add_argument("--status", action="store_true", help="print the store's state without running a cycle")
    action.add_argument("--list-versions", action="store_true", help="list saved router versions, newest first")
    action.add_argument("--rollback", metavar="VERSION_ID", type=_rollback_target,
                        help="make an earlier version current again (e.g. 20260414-123456, or `previous`: the one "
                             "the active version replaced); the version already active is no change, exit 0")
    action.add_argument("--demo-trajectories", metavar="N", type=_non_negative_int,
                        help="append N demo-world trajectories routed by the active router, exploring "
                             "(N at most 1,000,000)")
    action.add_argument("--ingest", metavar="PATH", type=Path,
                        help="import trajectories from a .jsonl file or a folder of *.jsonl files "
                             "(see docs/trajectory-schema.md); never takes the cycle lock")
    action.add_argument("--check", action="store_true",
                        help="verify every file of the store and say how to repair what is wrong "
                             "(exit 4 when problems are found)")
    changes.add_flags(action, parser)
    action.add_argument("--guard-check", action="store_true",
                        help="check once whether the active version regressed against its prior version on the "
                             "traffic it served; prints {\"verdict\": ...} (exit 3 on regressed or rolled_back)")
    action.add_argument("--watch", action="store_true",
                        help="keep running: on new trajectories run the guard and, once enough are new, a cycle; "
                             "one JSON line per event; stop with SIGTERM or Ctrl-C")
    parser.add_argument("--watch-interval", metavar="SECONDS", type=_positive_seconds,
                        help="with --watch: seconds between looks at the store (default 5)")
    parser.add_argument("--guard-mode", choices=("off", "alert", "rollback"),
                        help="the guard's mode ([guard] mode in memabra.toml; default alert): rollback makes a "
                             "regression roll back to the prior version")
    parser.add_argument("--repair", action="store_true",
                        help="with --check: fix what can be fixed without losing data (unreadable files move to "
                             "<base-dir>/quarantine/)")
    parser.add_argument("--rebuild-case-index", action="store_true",
                        help="rebuild the episodic case index from all trajectories, then do what the other flags "
                             "ask (a cycle if nothing else)")
    parser.add_argument("--strict", action="store_true", help="with --ingest: exit 4 when any line is refused")
    parser.add_argument("--format", choices=("json", "table"),
                        help="with --status, --list-versions or --history: json (default) or a table for people")
    parser.add_argument("--wait", metavar="SECONDS", type=_finite_float,
                        help="when another process holds the store's lock, wait up to SECONDS for it (default: exit "
                             "75 at once)")
    parser.add_argument("--quiet", action="store_true", help="no progress or notes on stderr; errors still print")
    parser.add_argument("--baseline-version", metavar="VERSION_ID", type=_version_id,
                        help="compare against this saved version instead of the active router")
    parser.add_argument("--seen-trajectory-store", metavar="PATH", type=Path,
                        help="file of trajectory ids already used (default: <base-dir>/seen-trajectories.json)")
    parser.add_argument("--case-index", metavar="PATH", type=Path,
                        help="episodic case index to load (and rebuild after a cycle's evaluation)")
    groups: dict[str, argparse._ArgumentGroup] = {}
    for name, info in setting_fields().items():
        group = setting_group(name)
        if group not in groups:
            groups[group] = parser.add_argument_group(SETTING_GROUPS[group])
        groups[group].add_argument(flag_of(name), dest=name, **_flag_options(name, info))
    parser.add_argument("--debug", action="store_true", help="print a traceback with errors")
    return parser


def settings_of(args: argparse.Namespace) -> Settings:
    """The settings the flags name, over the environment and the defaults."""
    guard = {"guard": {"mode": args.guard_mode}} if getattr(args, "guard_mode", None) else {}
    return resolve_settings(**{name: getattr(args, name) for name in setting_fields()}, **guard)


def _emit(document: Any) -> None:
    if isinstance(document, str):
        sys.stdout.write(document + "\n")
        sys.stdout.flush()
        return
    if isinstance(document, BaseModel):
        document = document.model_dump(mode="json")
    sys.stdout.buffer.write(orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS) + b"\n")
    sys.stdout.flush()


def _run(args: argparse.Namespace, cancel: threading.Event | None = None) -> tuple[Any, int]:
    """Run what the flags ask; the result to print and the exit code."""
    settings = args.settings = settings_of(args)
    action = cli_rules.chosen_action(args)
    cli_rules.refuse_flags_that_do_not_apply(args, settings)
    cli_rules.check_store_for(action, args, settings.base_dir)
    cli_rules.check_given_paths(args)
    store = Store(settings.base_dir)
    result, code = cli_rules.waiting_for_lock(lambda: _act(action, args, settings, store, cancel), args.wait, note)
    if args.format == "table":
        from memabra.cli_format import table_of

        return table_of(action, result), code
    return result, code


def _act(action: str, args: argparse.Namespace, settings: Settings, store: Store, cancel) -> tuple[Any, int]:
    rebuilt: CaseIndexSummary | None = None
    if args.rebuild_case_index:
        from memabra.runtime.case_index import CaseIndex

        from memabra.storage.owned import is_case_index_document, require_own_document

        args.case_index = args.case_index or store.layout.case_index_path
        require_own_document(args.case_index, "--case-index", "case index", is_case_index_document)
        with store.lock("case index rebuild"):
            index = CaseIndex.rebuild(store.trajectories, args.case_index)
        rebuilt = CaseIndexSummary(path=str(args.case_index), case_count=len(index), rebuilt=True)
    code = EXIT_OK
    if action == "check":
        from memabra.check import check_store

        result = check_store(store, repair=args.repair)
        for problem in result.problems:
            note(f"check: {'repaired' if problem.repaired else 'problem'}: {problem.path}: {problem.problem}; "
                 f"{problem.fix}")
        code = EXIT_OK if result.healthy else EXIT_CHECK_FAILED
    elif action == "status":
        from memabra.status import store_status

        result = store_status(store, args.seen_trajectory_store, settings, guard=settings.guard)
    elif action == "guard_check":
        from memabra.guarding import run_guard_check

        result = run_guard_check(store, settings.guard)
        code = EXIT_REGRESSED if result.verdict in ("regressed", "rolled_back") else EXIT_OK
    elif action == "list_versions":
        result = {"versions": store.versions.list_versions()}
    elif action == "rollback":
        result, unchanged = roll_back(store, args.rollback, reason=args.reason, command=args.command_line)
        if unchanged:
            note(f"rollback: {unchanged}")
    elif action in ("promote", "history", "active_at"):
        result = changes.run(args, store)
    elif action == "demo_trajectories":
        result = _demo_trajectories(args, settings, store, cancel)
    elif action == "ingest":
        result = _ingest(args.ingest, store)
        refused = result["invalid_count"] and (args.strict or not result["stored_count"] + result["duplicate_count"])
        code = EXIT_CHECK_FAILED if refused else EXIT_OK
    else:
        # The user's executor may print; stdout must stay one JSON document.
        with contextlib.redirect_stdout(sys.stderr), StderrProgress() as progress:
            request = cycle_request(store, settings, dry_run=settings.dry_run, baseline_version=args.baseline_version,
                                    seen_trajectory_store=args.seen_trajectory_store, case_index=args.case_index,
                                    rebuild_case_index=rebuilt is not None, reason=args.reason)
            result = run_cycle(store, settings, request, on_event=progress, cancel=cancel)
    if rebuilt is not None:
        if isinstance(result, BaseModel):
            result = result.model_dump(mode="json")
        result["case_index"] = rebuilt.document()
    return result, code


def _demo_trajectories(args: argparse.Namespace, settings: Settings, store: Store, cancel) -> dict[str, Any]:
    from memabra.demo.traffic import append_demo_traffic

    with StderrProgress() as progress:
        return append_demo_traffic(
            store, settings, args.demo_trajectories, case_index=args.case_index, cancel=cancel,
            on_progress=lambda done, total: progress(ProgressEvent("demo", done, total, "running demo tasks")))


def _ingest(path: Path, store: Store) -> dict[str, Any]:
    from memabra.ingest import ingest_trajectories

    with StderrProgress() as progress:
        result = ingest_trajectories(
            store.base_dir, path,
            on_progress=lambda done, total: progress(ProgressEvent("ingest", done, total,
                                                                   f"{done:,} of {total:,} bytes read")))
    if result["invalid_count"]:
        first = result["invalid"][0]
        note(f"ingest: {result['invalid_count']} invalid lines were skipped (first: {first['file']} line "
             f"{first['line']}, {first['field']}: {first['error']})")
    return result


def main(argv: Sequence[str] | None = None, cancel: threading.Event | None = None,
         prog: str = "python -m memabra.cli") -> int:
    """Parse flags, run what they ask, print the JSON result; return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    set_quiet("--quiet" in argv)
    label = cli_rules.setting_label(argv)
    args = None
    try:
        with sigterm_as_interrupt():
            args = build_parser(prog).parse_args(argv)
            args.command_line = " ".join([prog, *argv])
            if args.watch:
                return _watch(args)
            result, code = _run(args, cancel)
            _emit(result)
        unfinished = getattr(result, "unfinished", None)
        if unfinished:
            return _fail(f"the cycle {result.status} (report {result.report_id}), which stands, but did not finish "
                         f"{'; '.join(unfinished)}", EXIT_UNEXPECTED, debug)
        return code
    except SettingError as exc:
        return _fail(exc.worded(label), exc.exit_code, debug)
    except CorruptDocumentError as exc:
        base_dir = getattr(getattr(args, "settings", None), "base_dir", None)
        message = exc.worded(cli_rules.suggestion(args, base_dir, "--check")) if base_dir else str(exc)
        return _fail(message, exc.exit_code, debug)
    except MemabraError as exc:
        if RECEIVED:  # the stop, swallowed by a serialiser and reported as its own error
            return _stopped(RECEIVED[-1], debug)
        return _fail(str(exc), exc.exit_code, debug)
    except Terminated:
        return _stopped(signal.SIGTERM, debug)
    except KeyboardInterrupt:
        return _stopped(signal.SIGINT, debug)
    except ValidationError as exc:
        return _fail(setting_error(exc).worded(label), EXIT_BAD_INPUT, debug)
    except (ValueError, OSError) as exc:
        code = EXIT_BAD_INPUT if isinstance(exc, ValueError) else EXIT_UNEXPECTED
        return _fail(f"{type(exc).__name__}: {exc}", code, debug)
    except Exception as exc:  # noqa: BLE001 - the last line of defence prints one line, not a traceback
        return _fail(f"unexpected {type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
                     EXIT_UNEXPECTED, debug)


def _stopped(signum: int, debug: bool) -> int:
    """The one line (and exit code) of a command stopped by SIGTERM (143) or Ctrl-C (130)."""
    if signum == signal.SIGTERM:
        return _fail("terminated (SIGTERM); nothing half-written was left behind", EXIT_TERMINATED, debug)
    return _fail("interrupted; nothing half-written was left behind", EXIT_INTERRUPTED, debug)


def _watch(args: argparse.Namespace) -> int:
    """`--watch`: JSON lines on stdout until SIGTERM (exit 143) or Ctrl-C (exit 130), each stopping it cleanly."""
    from memabra.watching import watch_store

    settings = args.settings = settings_of(args)
    cli_rules.refuse_flags_that_do_not_apply(args, settings)
    cli_rules.check_store_for("watch", args, settings.base_dir)
    cli_rules.check_given_paths(args)
    store = Store(settings.base_dir)
    interval = args.watch_interval or DEFAULT_WATCH_SECONDS
    stop, received = threading.Event(), []

    def stopping(signum, frame) -> None:
        received.append(signum)
        stop.set()

    previous = {signum: signal.signal(signum, stopping) for signum in (signal.SIGTERM, signal.SIGINT)}
    request = lambda: cycle_request(store, settings, seen_trajectory_store=args.seen_trajectory_store,  # noqa: E731
                                    case_index=args.case_index)
    request()  # a bad suite, executor or path is refused before the watch starts
    print(f"watch: watching {store.base_dir} every {interval:g} s (guard {settings.guard.mode}, a cycle "
          f"at {settings.min_new_trajectories} new trajectories); stop with SIGTERM or Ctrl-C", file=sys.stderr,
          flush=True)
    out = sys.stdout
    try:
        with contextlib.redirect_stdout(sys.stderr):  # a user's executor may print; stdout is the event stream
            summary = watch_store(store, settings, request, interval=interval, stop=stop,
                                  emit=lambda document: _emit_line(out, document))
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    name = signal.Signals(received[0]).name if received else "request"
    print(f"watch: stopped by {name} after {summary.looks} looks, {summary.guard_checks} guard checks, "
          f"{summary.cycles} cycles and {summary.rollbacks} guard rollbacks", file=sys.stderr, flush=True)
    return 128 + received[0] if received else EXIT_OK


def _emit_line(out, document: dict[str, Any]) -> None:
    out.write(orjson.dumps(document).decode() + "\n")
    out.flush()


def _fail(message: str, code: int, debug: bool) -> int:
    if debug:
        traceback.print_exc(file=sys.stderr)
    first_line = " ".join(message.split())
    print(f"error: {first_line}", file=sys.stderr, flush=True)
    return code


def console_parser() -> CommandLineParser:
    """The `memabra` command's own flags (the console's)."""
    parser = CommandLineParser(prog="memabra", description="memabra's operator console "
                               "(`memabra --headless [flags]` runs `python -m memabra.cli` instead).")
    parser.add_argument("--base-dir", metavar="PATH", type=Path,
                        help="the store's folder (default: $MEMABRA_BASE_DIR, else ./artifacts)")
    parser.add_argument("--version", action="version", version=f"memabra {__version__}")
    return parser


def command(argv: Sequence[str] | None = None) -> int:
    """The `memabra` command: the console on the base dir, the headless CLI when `--headless` is given, or the
    HTTP door for agents with `serve`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve"]:
        from memabra.server import main as serve

        return serve(argv)
    if "--headless" in argv:
        argv.remove("--headless")
        return main(argv, prog="memabra --headless")
    try:
        args = console_parser().parse_args(argv)
        settings = resolve_settings(base_dir=args.base_dir)
        check_base_dir(settings.base_dir)
    except SettingError as exc:
        return _fail(exc.worded(flag_of), EXIT_BAD_INPUT, False)
    except BadInputError as exc:
        return _fail(str(exc), EXIT_BAD_INPUT, False)
    from memabra.tui.app import run_console

    return run_console(settings)


if __name__ == "__main__":
    sys.exit(main())
