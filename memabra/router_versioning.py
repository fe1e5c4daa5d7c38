"""The operator guide's import path for the version store (`from memabra.router_versioning import RouterVersionStore`)."""

from memabra.storage.versions import ReportStore, RouterVersionStore

__all__ = ["RouterVersionStore", "ReportStore"]
