"""Queries of the store's audit log: the history of the active version and of the settings file, and which version
was active at a given moment."""

from __future__ import annotations

from datetime import datetime, timezone

from memabra.errors import BadInputError
from memabra.results import ActiveAt, HistoryResult
from memabra.storage.folders import ID_FORMAT
from memabra.storage.store import Store

MOMENT_FORMATS = ("2026-04-14T12:34:56Z, 2026-04-14T14:34:56+02:00, 2026-04-14 12:34 (UTC when no offset is given), "
                  "2026-04-14, or a version id like 20260414-123456")


def store_history(store: Store) -> HistoryResult:
    """Every recorded change, newest first: of the active version, then of the settings file."""
    entries = store.history.entries()
    return HistoryResult(history=[entry for entry in entries if entry.kind == "active_version"],
                         settings_changes=[entry for entry in entries if entry.kind == "settings"])


def parse_moment(text: str, what: str = "--active-at") -> datetime:
    """A moment from ISO 8601 or a version id, in UTC when no offset is given; BadInputError listing the formats."""
    value = text.strip()
    try:
        moment = datetime.strptime(value, ID_FORMAT)
    except ValueError:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise BadInputError(f"{what} {text!r} is not a time; give {MOMENT_FORMATS}") from None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


def active_version_at(store: Store, moment: datetime) -> ActiveAt:
    """The version active at a moment: the newest logged change made by then; before the first one, the version it
    replaced (the heuristic in a new store); with no log at all, current.json's version from its promotion on."""
    history = store.history
    version_id, change = history.active_at(moment)
    since = change.changed_at if change else None
    source = change.source if change else None
    reason = change.reason if change else None
    if change is None and not history.version_changes():
        current = store.versions.current()
        if current is not None and current.promoted_at <= moment:
            version_id, since, source, reason = (current.version_id, current.promoted_at, current.promotion_source,
                                                 current.reason)
    return ActiveAt(active_at=moment, version_id=version_id, active_router="version" if version_id else "heuristic",
                    since=since, source=source, reason=reason)
