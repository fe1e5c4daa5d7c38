"""`memabra serve`: parse the flags, bind the socket, run the HTTP door under uvicorn until interrupted."""

from __future__ import annotations

import argparse
import math
import socket
import sys
from pathlib import Path
from typing import Sequence

from memabra.errors import EXIT_BAD_INPUT, EXIT_OK, EXIT_UNEXPECTED, BadInputError, MemabraError
from memabra.server.settings import (DEFAULT_CONCURRENCY_LIMIT, DEFAULT_HOST, DEFAULT_KEEP_ALIVE_TIMEOUT_S,
                                     DEFAULT_MAX_BODY_BYTES, DEFAULT_PORT, DEFAULT_REQUEST_TIMEOUT_S, ServerSettings,
                                     server_settings)

INSTALL_HINT = "memabra serve needs the server extra: pip install 'memabra[server]'"
SHUTDOWN_GRACE_S = 10


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # noqa: D401 - argparse's hook
        raise BadInputError(f"{message} (see memabra serve --help)")


def build_parser() -> argparse.ArgumentParser:
    """The flags of `memabra serve`."""
    parser = _Parser(prog="memabra serve",
                     description="Serve a store over HTTP: POST /v1/trajectories (JSON Lines, needs the bearer token), "
                                 "POST /v1/route, GET /v1/status. See docs/http.md.")
    parser.add_argument("serve", choices=["serve"], help=argparse.SUPPRESS)
    parser.add_argument("--base-dir", metavar="PATH", type=Path,
                        help="the store's folder (default: $MEMABRA_BASE_DIR, else ./artifacts)")
    parser.add_argument("--host", metavar="HOST", help=f"address to listen on (default {DEFAULT_HOST})")
    parser.add_argument("--port", metavar="N", type=int, help=f"TCP port (default {DEFAULT_PORT}; 0 picks a free one)")
    parser.add_argument("--read-only", action="store_true",
                        help="refuse POST /v1/trajectories; no token is needed then")
    parser.add_argument("--max-body-bytes", metavar="N", type=int,
                        help=f"largest request body accepted (default {DEFAULT_MAX_BODY_BYTES:,}); larger gets 413")
    parser.add_argument("--request-timeout", metavar="SECONDS", type=float,
                        help=f"longest a request may take (default {DEFAULT_REQUEST_TIMEOUT_S:g})")
    parser.add_argument("--keep-alive-timeout", metavar="SECONDS", type=float,
                        help=f"idle connections are closed after this (default {DEFAULT_KEEP_ALIVE_TIMEOUT_S:g})")
    parser.add_argument("--concurrency-limit", metavar="N", type=int,
                        help=f"connections served at once; more get 503 (default {DEFAULT_CONCURRENCY_LIMIT})")
    parser.add_argument("--access-log", action="store_true", help="log one line per request on stderr")
    return parser


def listen_socket(host: str, port: int) -> socket.socket:
    """A bound, listening TCP socket; one clear error when the address cannot be had."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise BadInputError(f"--host {host} cannot be resolved ({exc.strerror}); give an address like 127.0.0.1")
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise BadInputError(f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port or --host")
    sock.setblocking(False)
    return sock


def build_server(settings: ServerSettings, access_log: bool = False):
    """A uvicorn server for the store, with the settings' timeouts and concurrency limit (not started)."""
    import uvicorn

    from memabra.server.app import create_app

    config = uvicorn.Config(
        create_app(settings), http="h11", loop="asyncio", lifespan="on", log_level="warning",
        access_log=access_log, limit_concurrency=settings.concurrency_limit,
        timeout_keep_alive=max(1, math.ceil(settings.keep_alive_timeout_s)),
        timeout_graceful_shutdown=SHUTDOWN_GRACE_S, server_header=False,
    )
    return uvicorn.Server(config)


def _require_server_extra() -> None:
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise BadInputError(INSTALL_HINT) from None


def main(argv: Sequence[str]) -> int:
    """Run `memabra serve ...` (argv starts with "serve"); return the exit code."""
    argv = list(argv)
    try:
        if not argv or argv[0] != "serve":
            argv = ["serve", *argv]
        args = build_parser().parse_args(argv)
        _require_server_extra()
        settings = server_settings(base_dir=args.base_dir, host=args.host, port=args.port, read_only=args.read_only,
                                   max_body_bytes=args.max_body_bytes, request_timeout_s=args.request_timeout,
                                   keep_alive_timeout_s=args.keep_alive_timeout,
                                   concurrency_limit=args.concurrency_limit)
        if settings.base_dir.exists() and not settings.base_dir.is_dir():
            raise BadInputError(f"--base-dir {settings.base_dir} is a file; give the store's folder")
        server = build_server(settings, access_log=args.access_log)
        sock = listen_socket(settings.host, settings.port)
    except MemabraError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr, flush=True)
        return exc.exit_code
    except ValueError as exc:  # a bad MEMABRA_* setting met while loading the router
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr, flush=True)
        return EXIT_BAD_INPUT
    host, port = sock.getsockname()[:2]
    writes = "read-only" if settings.read_only else "writes need the bearer token"
    print(f"memabra serve: http://{host}:{port} for {settings.base_dir} ({writes}); Ctrl-C stops it",
          file=sys.stderr, flush=True)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    return EXIT_OK if server.started else EXIT_UNEXPECTED
