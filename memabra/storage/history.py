"""The store's audit log: one `history/<entry id>.json` per change of the active version or of the settings file,
created atomically and never rewritten, so a crash loses at most the entry being written, never an older one."""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from memabra.audit_models import HistoryEntry, SettingChange
from memabra.models import utc_now
from memabra.storage.folders import TimestampedFolder
from memabra.storage.layout import StoreLayout

MAX_COMMAND_CHARS = 500


def current_command() -> str:
    """This process's command line, as the audit log records who made a change."""
    program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    program = {"cli.py": "python -m memabra.cli", "__main__.py": "python -m memabra"}.get(program, program)
    words = [program, *sys.argv[1:]]
    return " ".join(words)[:MAX_COMMAND_CHARS]


class HistoryLog(TimestampedFolder[HistoryEntry]):
    """Append-only audit log under `<base-dir>/history/`; entry ids follow the order the changes were made in
    (every change is made under the store's lock)."""

    def __init__(self, base_dir: StoreLayout | str | Path):
        super().__init__(StoreLayout.of(base_dir).history_dir, HistoryEntry, "history entry")

    def append(self, kind: str, source: str, *, reason: str | None = None, command: str | None = None,
               now: datetime | None = None, **fields: Any) -> HistoryEntry:
        """Record one change (the caller holds the store's lock) and return its entry."""
        moment = now or utc_now()
        return self.create(lambda entry_id: HistoryEntry(
            entry_id=entry_id, kind=kind, changed_at=moment, source=source, reason=reason,
            command=current_command() if command is None else command, pid=os.getpid(), **fields), now=moment)

    def entries(self, kind: str | None = None) -> list[HistoryEntry]:
        """Every readable entry (of one kind, when given), newest first."""
        return [entry for entry in self.list() if kind is None or entry.kind == kind]

    def version_changes(self) -> list[HistoryEntry]:
        """Every change of the active version, newest first."""
        return self.entries("active_version")

    def active_at(self, moment: datetime) -> tuple[str | None, HistoryEntry | None]:
        """The version active at a moment and the change that made it so (None before the first one logged: then
        the version the first change replaced, None meaning the built-in heuristic)."""
        changes = self.version_changes()
        for change in changes:
            if change.changed_at <= moment:
                return change.version_id, change
        return (changes[-1].previous_version_id, None) if changes else (None, None)


def settings_changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, SettingChange]:
    """Each key whose value differs between two flat views of a settings file."""
    return {name: SettingChange(before=before.get(name), after=after.get(name))
            for name in sorted(set(before) | set(after)) if before.get(name) != after.get(name)}
