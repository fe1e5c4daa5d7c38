"""What `memabra serve` listens on and enforces: one function resolves it from flags, then the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from memabra.errors import BadInputError
from memabra.settings import DEFAULT_BASE_DIR

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
"""16 MiB: about 25,000 demo-sized trajectories per POST."""
DEFAULT_REQUEST_TIMEOUT_S = 30.0
"""Longest a request may take from its first body byte to its answer."""
DEFAULT_KEEP_ALIVE_TIMEOUT_S = 5.0
DEFAULT_CONCURRENCY_LIMIT = 256
"""Connections and requests served at once; more are answered 503 at once."""

TOKEN_VARIABLE = "MEMABRA_API_TOKEN"
BASE_DIR_VARIABLE = "MEMABRA_BASE_DIR"


@dataclass(frozen=True)
class ServerSettings:
    """Everything the HTTP server needs to know about where it serves and what it accepts."""

    base_dir: Path
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    token: str | None = None
    read_only: bool = False
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S
    keep_alive_timeout_s: float = DEFAULT_KEEP_ALIVE_TIMEOUT_S
    concurrency_limit: int = DEFAULT_CONCURRENCY_LIMIT

    @property
    def accepts_writes(self) -> bool:
        return not self.read_only


def server_settings(base_dir: str | os.PathLike | None = None, host: str | None = None, port: int | None = None,
                    token: str | None = None, read_only: bool = False, max_body_bytes: int | None = None,
                    request_timeout_s: float | None = None, keep_alive_timeout_s: float | None = None,
                    concurrency_limit: int | None = None,
                    environ: Mapping[str, str] | None = None) -> ServerSettings:
    """Resolve the server's settings: a given value, else its environment variable, else the default; refuse a
    server that accepts writes without a token."""
    environ = os.environ if environ is None else environ
    token = token if token is not None else (environ.get(TOKEN_VARIABLE) or None)
    if base_dir is None:
        base_dir = environ.get(BASE_DIR_VARIABLE) or DEFAULT_BASE_DIR
    settings = ServerSettings(
        base_dir=Path(base_dir),
        host=host or DEFAULT_HOST,
        port=DEFAULT_PORT if port is None else port,
        token=token,
        read_only=read_only,
        max_body_bytes=DEFAULT_MAX_BODY_BYTES if max_body_bytes is None else max_body_bytes,
        request_timeout_s=DEFAULT_REQUEST_TIMEOUT_S if request_timeout_s is None else request_timeout_s,
        keep_alive_timeout_s=DEFAULT_KEEP_ALIVE_TIMEOUT_S if keep_alive_timeout_s is None else keep_alive_timeout_s,
        concurrency_limit=DEFAULT_CONCURRENCY_LIMIT if concurrency_limit is None else concurrency_limit,
    )
    if not 0 <= settings.port <= 65535:
        raise BadInputError(f"--port {settings.port} is not a TCP port; give 1 to 65535 (0 picks a free one)")
    if settings.max_body_bytes < 1:
        raise BadInputError(f"--max-body-bytes {settings.max_body_bytes} is too small; give 1 or more")
    if settings.request_timeout_s <= 0 or settings.keep_alive_timeout_s <= 0:
        raise BadInputError("timeouts must be positive numbers of seconds")
    if settings.concurrency_limit < 1:
        raise BadInputError(f"--concurrency-limit {settings.concurrency_limit} is too small; give 1 or more")
    if settings.accepts_writes and not settings.token:
        raise BadInputError(f"POST /v1/trajectories needs a token: set {TOKEN_VARIABLE} "
                            "(clients send `Authorization: Bearer <token>`), or start with --read-only")
    return settings
