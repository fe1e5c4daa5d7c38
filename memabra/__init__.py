"""memabra keeps an AI agent's router learning safely: train a challenger, gate it, promote it, roll it back."""

__version__ = "0.1.0"

_AGENT_API = {
    "load_active_router": "memabra.serving",
    "append_trajectory": "memabra.serving",
    "ActiveRouter": "memabra.serving",
    "TrajectoryWriter": "memabra.storage.trajectories",
}
__all__ = ["__version__", *_AGENT_API]


def __getattr__(name: str):
    """Import the agent API on first use, so `import memabra` stays light."""
    if name in _AGENT_API:
        import importlib

        return getattr(importlib.import_module(_AGENT_API[name]), name)
    raise AttributeError(f"module 'memabra' has no attribute {name!r}")
