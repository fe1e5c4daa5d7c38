"""The audit trail's documents: a dry run's kept challenger, and each change of the active version or a setting."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from memabra.models import Document

class ReviewedChallenger(Document):
    """A dry run's challenger, kept beside its report so it can be promoted later exactly as reviewed."""

    report_id: str
    created_at: datetime
    router: dict[str, Any]
    """The router's own serialisation, as a version would hold it."""
    baseline_version_id: str | None
    training_trajectory_count: int = 0
    training_segments: list[str] = Field(default_factory=list)


class SettingChange(Document):
    """One setting's value before and after a change of the store's settings file (null: not in the file)."""

    before: Any = None
    after: Any = None


class HistoryEntry(Document):
    """One change recorded in the store's audit log: of the active version, or of the settings file."""

    entry_id: str
    kind: Literal["active_version", "settings"]
    changed_at: datetime
    source: str
    """What made the change: `cycle`, `promote`, `rollback`, `console`...; an open set (a guard may add its own)."""
    reason: str | None = None
    command: str = ""
    """The command line or front end that made it."""
    pid: int | None = None
    version_id: str | None = None
    """The version active after the change (null: the built-in heuristic)."""
    previous_version_id: str | None = None
    report_id: str | None = None
    settings: dict[str, SettingChange] = Field(default_factory=dict)
    """For a settings change: each changed key (gates by their own names) with its values before and after."""
