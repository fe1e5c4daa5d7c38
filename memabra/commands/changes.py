"""The CLI's commands that promote a reviewed challenger or ask about the active version's history:
`--promote REPORT_ID` (with `--force`), `--history`, `--active-at TIMESTAMP`, and `--reason TEXT` (which a cycle and
`--rollback` take too)."""

from __future__ import annotations

import argparse
from typing import Any

from pydantic import BaseModel

from memabra.errors import BadInputError
from memabra.storage.folders import validate_timestamp_id
from memabra.storage.store import Store


def _report_id(value: str) -> str:
    try:
        return validate_timestamp_id(value, "report id")
    except BadInputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_flags(actions: Any, parser: argparse.ArgumentParser) -> None:
    """Register the actions (in the mutually exclusive group) and their options."""
    actions.add_argument("--promote", metavar="REPORT_ID", type=_report_id,
                         help="save a dry run's reviewed challenger as a new version and make it active (needs "
                              "--force and --reason unless its gates passed and its baseline is still active)")
    actions.add_argument("--history", action="store_true",
                         help="print every change of the active version (and of memabra.toml), newest first")
    actions.add_argument("--active-at", metavar="TIMESTAMP",
                         help="print which version was active at that moment (e.g. 2026-04-14T12:34:56Z)")
    parser.add_argument("--force", action="store_true",
                        help="with --promote: promote although its gates failed or its baseline is no longer "
                             "active (needs --reason)")
    parser.add_argument("--reason", metavar="TEXT",
                        help="why, kept in the audit log: with a cycle, --promote or --rollback")


def run(args: argparse.Namespace, store: Store) -> BaseModel:
    """Do what the flags ask and return the result to print."""
    from memabra import audit, promotion

    command = getattr(args, "command_line", None)
    if args.promote:
        return promotion.promote_reviewed(store, args.promote, force=args.force, reason=args.reason, command=command)
    if args.history:
        return audit.store_history(store)
    return audit.active_version_at(store, audit.parse_moment(args.active_at))
