"""The operator guide's import path for the version store (`from memabra.router_versioning import RouterVersionStore`)."""

from __future__ import annotations

import os
from typing import Any

from memabra.settings import resolve_base_dir
from memabra.storage import versions as stored
from memabra.storage.layout import StoreLayout


class RouterVersionStore(stored.RouterVersionStore):
    """The version store of a base dir (with no argument, `$MEMABRA_BASE_DIR`'s, else `./artifacts`'s), answering
    in the JSON documents the guide prints."""

    def __init__(self, base_dir: StoreLayout | str | os.PathLike | None = None):
        super().__init__(base_dir if isinstance(base_dir, StoreLayout) else resolve_base_dir(base_dir))

    def get_current(self) -> dict[str, Any] | None:
        """The current document as JSON, or None while no version is active."""
        current = self.current()
        return current.model_dump(mode="json") if current else None

    def rollback(self, version_id: str) -> dict[str, Any]:  # type: ignore[override]
        """Make an earlier version current again, keeping the audit trail; returns the new current document."""
        return super().rollback(version_id).model_dump(mode="json")


class ReportStore(stored.ReportStore):
    """The training reports of a base dir; with no argument, `$MEMABRA_BASE_DIR`'s, else `./artifacts`'s."""

    def __init__(self, base_dir: StoreLayout | str | os.PathLike | None = None):
        super().__init__(base_dir if isinstance(base_dir, StoreLayout) else resolve_base_dir(base_dir))


__all__ = ["RouterVersionStore", "ReportStore"]
