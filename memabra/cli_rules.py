"""What the CLI checks before it acts: which flags apply to the chosen action, whether the store may be read or
written for it, the paths the operator gave, and rollback's targets (`previous`, the version already active)."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Callable, TypeVar

from memabra.cli_progress import note
from memabra.suggestions import command_to_run
from memabra.errors import BadInputError, CorruptDocumentError, LockHeldError, SettingError
from memabra.settings import ENV_PREFIX, Settings, setting_fields, setting_group
from memabra.storage.store import check_base_dir

ACTIONS = ("status", "list_versions", "history", "active_at", "rollback", "promote", "demo_trajectories", "ingest",
           "check", "guard_check", "watch")
"""The action flags, by their argparse names; none of them means a cycle."""

READ_ONLY_ACTIONS = {"status", "list_versions", "history", "active_at"}
"""Actions that only read the store (and `--check` without `--repair`)."""

FLAG_ACTIONS: dict[str, set[str]] = {
    "repair": {"check"},
    "force": {"promote"},
    "reason": {"cycle", "promote", "rollback"},
    "dry_run": {"cycle"},
    "baseline_version": {"cycle"},
    "seen_trajectory_store": {"cycle", "status", "watch"},
    "case_index": {"cycle", "demo_trajectories", "watch"},
    "strict": {"ingest"},
    "format": {"status", "list_versions", "history"},
    "wait": {"cycle", "rollback", "promote", "check"},
    "watch_interval": {"watch"},
}
"""Flags that only some actions use; a flag given to any other action is refused (exit 2) rather than ignored."""

GROUP_ACTIONS: dict[str, set[str]] = {
    "cycle": {"cycle", "watch", "status"}, "gates": {"cycle", "watch", "status"},
    "benchmark": {"cycle", "watch", "status"}, "exploration": {"cycle", "watch", "status", "demo_trajectories"},
}
"""Settings by group: the actions that read them (the store and learning groups apply to every action; `--status`
reports every setting's effective value and source, so every setting applies to it)."""

T = TypeVar("T")


def flag_of(setting: str) -> str:
    """The command-line flag of a setting or option (`holdout_share` -> `--holdout-share`), or the flag its field
    names in `json_schema_extra` (`gate_profile` -> `--gates`)."""
    info = setting_fields().get(setting)
    extra = info.json_schema_extra if info is not None and isinstance(info.json_schema_extra, dict) else {}
    return extra.get("flag") or "--" + setting.replace("_", "-")


def chosen_action(args: argparse.Namespace) -> str:
    """The action the flags ask for (`cycle` when no action flag is given)."""
    for action in ACTIONS:
        value = getattr(args, action, None)
        if value not in (None, False):
            return action
    return "cycle"


def is_read_only(action: str, args: argparse.Namespace) -> bool:
    """Whether the action only reads the store."""
    if getattr(args, "rebuild_case_index", False):
        return False
    return action in READ_ONLY_ACTIONS or (action == "check" and not args.repair)


def refuse_flags_that_do_not_apply(args: argparse.Namespace, settings: Settings) -> None:
    """Exit 2 naming every given flag the chosen action would ignore (a dry run of a rollback is no dry run)."""
    action = chosen_action(args)
    refused = [flag_of(name) for name, actions in FLAG_ACTIONS.items()
               if getattr(args, name, None) not in (None, False) and action not in actions
               and not (name == "case_index" and args.rebuild_case_index)]
    refused += [flag_of(name) for name in setting_fields()
                if getattr(args, name, None) is not None and setting_group(name) in GROUP_ACTIONS
                and action not in GROUP_ACTIONS[setting_group(name)] and name != "dry_run"]
    if refused:
        works = FLAG_ACTIONS.get(refused[0][2:].replace("-", "_"), set()) if len(refused) == 1 else set()
        hint = f" (it works with {' or '.join(sorted(_action_words(works)))})" if works else ""
        raise BadInputError(f"{', '.join(refused)} {'does' if len(refused) == 1 else 'do'} not apply to "
                            f"{_action_words({action})[0]}{hint}; leave it out (see --help)")
    if getattr(settings, "dry_run", False) and action != "cycle":
        raise BadInputError(f"{ENV_PREFIX}DRY_RUN is set, but a dry run applies only to a cycle, not to "
                            f"{flag_of(action)}; unset it to run {flag_of(action)}")


def _action_words(actions: set[str]) -> list[str]:
    return ["a cycle" if action == "cycle" else flag_of(action) for action in actions]


def setting_label(argv: list[str]) -> Callable[[str], str]:
    """How an error names a setting: its flag when the flag was given, else its `MEMABRA_*` variable when that is
    set, else the flag."""
    def label(name: str) -> str:
        flag = flag_of(name)
        given = any(word == flag or word.startswith(flag + "=") for word in argv)
        variable = ENV_PREFIX + name.upper()
        return variable if not given and os.environ.get(variable) not in (None, "") else flag
    return label


def check_store_for(action: str, args: argparse.Namespace, base_dir: Path) -> None:
    """Refuse a base dir the action cannot use: a command that only reads (or rolls back, or cycles) needs an
    existing, readable store and never creates one; a writing one needs a writable place."""
    if action in ("demo_trajectories", "ingest"):
        check_base_dir(base_dir)
        return
    if not base_dir.is_dir() and not base_dir.exists():
        fill = " (fill it with --demo-trajectories N or --ingest PATH)" if action == "cycle" else ""
        raise SettingError("base_dir", f"{{setting:base_dir}} {base_dir} does not exist; check the path{fill}")
    check_base_dir(base_dir, must_exist=True, writable=not is_read_only(action, args))


def check_given_paths(args: argparse.Namespace) -> None:
    """Paths the operator named are the operator's mistakes, not store corruption: a folder, a missing case index,
    or a file that is not the document the flag wants is exit 2 naming the flag."""
    from memabra.runtime.case_index import CaseIndex
    from memabra.storage.seen import SeenTrajectoryStore

    for name in ("seen_trajectory_store", "case_index"):
        path = getattr(args, name, None)
        if path is not None and path.is_dir():
            raise BadInputError(f"{flag_of(name)} {path} is a folder; give the path of a .json file")
    if args.case_index is not None and not args.rebuild_case_index:
        if not args.case_index.exists() and chosen_action(args) == "cycle":
            note(f"--case-index {args.case_index} does not exist yet: this cycle evaluates without episodic hints "
                 "and writes it after evaluation")
        elif not args.case_index.exists():
            raise BadInputError(f"--case-index {args.case_index} does not exist; give a case index file or add "
                                "--rebuild-case-index to build it there")
    if args.case_index is not None and args.case_index.is_file() and not args.rebuild_case_index:
        try:
            CaseIndex.load(args.case_index)
        except CorruptDocumentError as exc:
            raise BadInputError(f"--case-index {args.case_index} is not a case index ({exc.detail}); give a file "
                                "written by --rebuild-case-index") from None
    if args.seen_trajectory_store is not None and args.seen_trajectory_store.is_file():  # not a FIFO: never block
        try:
            SeenTrajectoryStore(args.seen_trajectory_store).read()
        except CorruptDocumentError as exc:
            raise BadInputError(f"--seen-trajectory-store {args.seen_trajectory_store} is not a seen-ids file "
                                f"({exc.detail}); give the file a cycle wrote, or a new path") from None


def waiting_for_lock(run: Callable[[], T], seconds: float | None, on_wait: Callable[[str], None]) -> T:
    """Run, and while the store's lock is held retry for up to `seconds` (none or 0: fail at once, exit 75)."""
    deadline = time.monotonic() + (seconds or 0)
    told = False
    while True:
        try:
            return run()
        except LockHeldError as exc:
            if time.monotonic() >= deadline:
                raise LockHeldError(f"{exc} (waited {seconds:g} s)" if seconds else str(exc), exc.holder) from None
            if not told:
                on_wait(f"waiting up to {seconds:g} s: {exc}")
                told = True
            time.sleep(min(0.25, max(deadline - time.monotonic(), 0.01)))


def suggestion(args: argparse.Namespace, base_dir: Path, *flags: str) -> str:
    """The command to run next, with the store and the other paths this command was given."""
    return command_to_run(base_dir, *flags, seen_trajectory_store=getattr(args, "seen_trajectory_store", None),
                          case_index=getattr(args, "case_index", None))
