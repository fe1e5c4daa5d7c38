"""The command to run, as the tool suggests it: the store path (and any other path) it was run with, quoted for a
shell, so a suggestion pasted from another folder acts on the same store."""

from __future__ import annotations

import shlex
from pathlib import Path

CLI_PROGRAM = "python -m memabra.cli"


def command_to_run(base_dir: Path | str, *flags: str, seen_trajectory_store: Path | str | None = None,
                   case_index: Path | str | None = None, program: str = CLI_PROGRAM) -> str:
    """`python -m memabra.cli --base-dir BASE FLAGS...`, with the non-default paths in use, each shell-quoted."""
    words = [program, "--base-dir", shlex.quote(str(base_dir))]
    if seen_trajectory_store is not None:
        words += ["--seen-trajectory-store", shlex.quote(str(seen_trajectory_store))]
    if case_index is not None:
        words += ["--case-index", shlex.quote(str(case_index))]
    words += [shlex.quote(flag) if flag.strip() != flag or " " in flag else flag for flag in flags]
    return " ".join(words)
