"""memabra keeps an AI agent's router learning safely: train a challenger, gate it, promote it, roll it back.

The public Python API is listed in `__all__`; each name is imported on first use, so `import memabra` stays light.
"""

__version__ = "0.1.0"

_PUBLIC_API = {
    "run_online_learning_workflow": "memabra.api",
    "load_active_router": "memabra.serving",
    "append_trajectory": "memabra.serving",
    "ActiveRouter": "memabra.serving",
    "TrajectoryWriter": "memabra.storage.trajectories",
    "RouterVersionStore": "memabra.router_versioning",
    "Store": "memabra.storage.store",
    "Settings": "memabra.settings",
    "load_settings": "memabra.settings",
    "PromotionPolicy": "memabra.evaluation.gates",
    "CycleResult": "memabra.results",
    "StoreStatus": "memabra.results",
    "CheckResult": "memabra.results",
    "store_status": "memabra.status",
    "check_store": "memabra.check",
}
__all__ = ["__version__", *_PUBLIC_API]


def __getattr__(name: str):
    """Import a public name on first use."""
    if name in _PUBLIC_API:
        import importlib

        return getattr(importlib.import_module(_PUBLIC_API[name]), name)
    raise AttributeError(f"module 'memabra' has no attribute {name!r}")
