"""Router versions and the pointer to the active one, with promotion and rollback."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from memabra.errors import BadInputError, CorruptDocumentError
from memabra.audit_models import ReviewedChallenger
from memabra.models import CurrentRouter, RollbackEntry, RouterVersion, TrainingReport, utc_now
from memabra.storage.documents import DocumentFile
from memabra.storage.folders import TimestampedFolder, validate_timestamp_id
from memabra.storage.history import HistoryLog
from memabra.storage.layout import StoreLayout
from memabra.storage.lock import StoreLock
from memabra.storage.quarantine import quarantine_file


def version_summary(version: RouterVersion, active_id: str | None) -> dict[str, Any]:
    """A version without its weights, as listings show it."""
    summary = version.model_dump(mode="json", exclude={"router", "training_segments"})
    summary["router_kind"] = version.router.get("kind")
    summary["active"] = version.version_id == active_id
    return summary


class RouterVersionStore:
    """Saved routers under `<base-dir>/router-versions/`: every version kept, one of them current."""

    def __init__(self, base_dir: StoreLayout | str | Path):
        layout = self.layout = StoreLayout.of(base_dir)
        self.base_dir = layout.base_dir
        self.versions = TimestampedFolder(layout.versions_dir, RouterVersion, "version id")
        self.current_file = DocumentFile(layout.current_path, CurrentRouter)
        self.history = HistoryLog(layout)

    def save(self, router: Any, now: datetime | None = None, **lineage: Any) -> RouterVersion:
        """Save a router (its `to_dict()` serialisation, or that dict itself) as a new version with a fresh,
        never-reused id and return it; current is unchanged."""
        document = router if isinstance(router, dict) else router.to_dict()
        moment = now or utc_now()
        version = self.versions.create(
            lambda version_id: RouterVersion(version_id=version_id, created_at=moment, router=document, **lineage),
            now=moment,
        )
        if not isinstance(router, dict):
            router.version_id = version.version_id
        return version

    def attach_report(self, version: RouterVersion, report_id: str) -> RouterVersion:
        """Record which training report produced a version (written once the report exists)."""
        version = version.model_copy(update={"report_id": report_id})
        DocumentFile(self.versions.path(version.version_id), RouterVersion).write(version)
        return version

    def get_version(self, version_id: str) -> RouterVersion:
        """One saved version; BadInputError if the id is malformed or unknown."""
        return self.versions.get(version_id)

    def list_versions(self) -> list[dict[str, Any]]:
        """Every version, newest first, without weights, with `active` marking the current one."""
        current = self.current()
        active_id = current.version_id if current else None
        return [version_summary(version, active_id) for version in self.versions.list()]

    def current(self) -> CurrentRouter | None:
        """The current document, or None while no version is active."""
        return self.current_file.read()

    def promote(self, version: RouterVersion, report: TrainingReport | None = None,
                now: datetime | None = None, source: str = "cycle", reason: str | None = None,
                command: str | None = None) -> CurrentRouter:
        """Make a saved version current after a cycle (or a reviewed promotion) accepted it; the caller holds the
        lock."""
        previous = self.current()
        current = CurrentRouter(
            version_id=version.version_id,
            promoted_at=now or utc_now(),
            promotion_source=source,
            benchmark_summary=version.metrics,
            prior_version_id=previous.version_id if previous else None,
            report_id=report.report_id if report else version.report_id,
            rollback_history=previous.rollback_history if previous else [],
            reason=reason,
        )
        return self.make_current(current, command)

    def make_current(self, current: CurrentRouter, command: str | None = None) -> CurrentRouter:
        """Write current.json and append the change to the audit log: the one way the active version changes
        (the caller holds the lock)."""
        self.current_file.write(current)
        self.history.append("active_version", current.promotion_source, reason=current.reason, command=command,
                            now=current.promoted_at, version_id=current.version_id,
                            previous_version_id=current.prior_version_id, report_id=current.report_id)
        return current

    def rollback(self, version_id: str, reason: str | None = None, command: str | None = None,
                 expected_active: str | None = None) -> CurrentRouter:
        """Make an earlier version current again, keeping the audit trail; returns the new current document.
        With `expected_active`, refuse (under the lock) unless that version is still the active one."""
        validate_timestamp_id(version_id, "version id")
        with StoreLock(self.layout, "rollback"):
            target = self.get_version(version_id)
            try:
                previous = self.current()
            except CorruptDocumentError:
                if expected_active is not None:
                    raise
                # Rolling back is how an operator repairs an unreadable current.json: a copy goes to quarantine,
                # then one rename replaces it, so a kill at any point leaves the old file or the new one.
                quarantine_file(self.layout, self.current_file.path, keep_original=True)
                previous = None
            if expected_active is not None and (previous is None or previous.version_id != expected_active):
                active = previous.version_id if previous else "the built-in heuristic"
                raise BadInputError(f"version {expected_active} is no longer active ({active} is); nothing was "
                                    "rolled back")
            if previous and previous.version_id == version_id:
                raise BadInputError(f"version {version_id} is already active; nothing to roll back")
            now = utc_now()
            previous_id = previous.version_id if previous else None
            history = list(previous.rollback_history) if previous else []
            history.append(RollbackEntry(rollback_from=previous_id, version_id=version_id, rolled_back_at=now))
            current = CurrentRouter(
                version_id=version_id,
                promoted_at=now,
                promotion_source="rollback",
                benchmark_summary=target.metrics,
                prior_version_id=previous_id,
                report_id=target.report_id,
                rollback_from=previous_id,
                rolled_back_at=now,
                rollback_history=history,
                reason=reason,
            )
            self.make_current(current, command)
        return current


class ReportStore(TimestampedFolder[TrainingReport]):
    """Training reports under `<base-dir>/training-reports/`, one per run."""

    def __init__(self, base_dir: StoreLayout | str | Path):
        super().__init__(StoreLayout.of(base_dir).reports_dir, TrainingReport, "report id")


class ChallengerStore(TimestampedFolder[ReviewedChallenger]):
    """Dry runs' challengers under `<base-dir>/training-reports/challengers/`, named by their report's id."""

    def __init__(self, base_dir: StoreLayout | str | Path):
        super().__init__(StoreLayout.of(base_dir).challengers_dir, ReviewedChallenger, "dry-run challenger")

    def keep(self, challenger: ReviewedChallenger) -> None:
        """Store a dry run's challenger once, beside its report."""
        DocumentFile(self.path(challenger.report_id), ReviewedChallenger).create(challenger)
