"""The HTTP door for agents on any host or in any language: `memabra serve` (needs `pip install memabra[server]`).

Importing this package needs neither starlette nor uvicorn; `main` says which extra to install when they are missing.
"""

from memabra.server.command import main
from memabra.server.settings import ServerSettings, server_settings

__all__ = ["main", "server_settings", "ServerSettings"]
