"""Where each part of the store lives under the base dir."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StoreLayout:
    """Paths of the store under one base dir (the operator guide's layout)."""

    base_dir: Path

    def __post_init__(self):
        object.__setattr__(self, "base_dir", Path(self.base_dir))

    @classmethod
    def of(cls, place: "StoreLayout | Path | str") -> "StoreLayout":
        """The layout itself, or the layout of a base dir given as a path."""
        return place if isinstance(place, StoreLayout) else cls(Path(place))

    @property
    def trajectories_dir(self) -> Path:
        return self.base_dir / "trajectories"

    @property
    def router_versions_dir(self) -> Path:
        return self.base_dir / "router-versions"

    @property
    def versions_dir(self) -> Path:
        return self.router_versions_dir / "versions"

    @property
    def current_path(self) -> Path:
        return self.router_versions_dir / "current.json"

    @property
    def reports_dir(self) -> Path:
        return self.base_dir / "training-reports"

    @property
    def challengers_dir(self) -> Path:
        """Dry runs' challengers, one `<report id>.json` each, kept for a reviewed promotion."""
        return self.reports_dir / "challengers"

    @property
    def history_dir(self) -> Path:
        """The audit log: one `<entry id>.json` per change, never rewritten."""
        return self.base_dir / "history"

    @property
    def settings_path(self) -> Path:
        return self.base_dir / "memabra.toml"

    @property
    def seen_path(self) -> Path:
        return self.base_dir / "seen-trajectories.json"

    @property
    def case_index_path(self) -> Path:
        return self.base_dir / "case-index.json"

    @property
    def lock_path(self) -> Path:
        return self.base_dir / ".lock"

    @property
    def cache_dir(self) -> Path:
        """Derived data that changes no result (rebuilt when missing)."""
        return self.base_dir / ".cache"

    @property
    def quarantine_dir(self) -> Path:
        return self.base_dir / "quarantine"
