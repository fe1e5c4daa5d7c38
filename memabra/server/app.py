"""The HTTP door's ASGI application: log trajectories, ask the active router, read the store's status."""

from __future__ import annotations

import contextlib
import hmac
import logging
from typing import Any, Callable

import anyio
import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from memabra.errors import BadInputError, MemabraError
from memabra.server.settings import ServerSettings

logger = logging.getLogger("memabra.server")

DOCS_HINT = "see docs/http.md"


class ApiError(Exception):
    """A request refused with an HTTP status and a one-line reason for the client."""

    def __init__(self, status_code: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.headers = headers


def json_response(document: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(document, option=orjson.OPT_NON_STR_KEYS), status_code=status_code,
                    headers=headers, media_type="application/json")


def error_response(status_code: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return json_response({"error": message}, status_code, headers)


def check_token(request: Request, settings: ServerSettings) -> None:
    """Let a write through only with `Authorization: Bearer <the token>` (compared in constant time)."""
    if settings.read_only:
        raise ApiError(403, "this server is read-only (started with --read-only); it stores no trajectories")
    header = request.headers.get("authorization")
    scheme, _, given = (header or "").partition(" ")
    if not header or scheme.lower() != "bearer" or not given.strip():
        raise ApiError(401, "writes need the header `Authorization: Bearer <token>` (the server's MEMABRA_API_TOKEN)",
                       {"WWW-Authenticate": "Bearer"})
    if not hmac.compare_digest(given.strip().encode(), settings.token.encode()):
        raise ApiError(403, "the bearer token is wrong; send the server's MEMABRA_API_TOKEN")


async def read_body(request: Request, settings: ServerSettings) -> bytes:
    """The request body, refused (413) past the size limit and (408) when it does not arrive in time."""
    limit = settings.max_body_bytes
    too_large = ApiError(413, f"request body is over the {limit:,}-byte limit (--max-body-bytes); "
                              "send fewer trajectories per request", {"Connection": "close"})
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise ApiError(400, f"Content-Length {declared!r} is not a number of bytes")
        if int(declared) > limit:
            raise too_large
    chunks: list[bytes] = []
    size = 0
    try:
        with anyio.fail_after(settings.request_timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise too_large
                chunks.append(chunk)
    except TimeoutError:
        raise ApiError(408, f"the request body did not arrive within {settings.request_timeout_s:g} s",
                       {"Connection": "close"}) from None
    return b"".join(chunks)


async def in_thread(settings: ServerSettings, work: Callable[[], Any], what: str) -> Any:
    """Run blocking work off the event loop, answering 503 when it outlasts the request timeout."""
    try:
        with anyio.fail_after(settings.request_timeout_s):
            return await anyio.to_thread.run_sync(work, abandon_on_cancel=True)
    except TimeoutError:
        raise ApiError(503, f"{what} did not finish within {settings.request_timeout_s:g} s; retry later "
                            "(a retried post stores nothing twice)") from None
    except BadInputError as exc:
        raise ApiError(422, str(exc)) from exc
    except MemabraError as exc:
        raise ApiError(500, str(exc)) from exc


def parse_json_object(body: bytes, expected: str) -> dict[str, Any]:
    """The body as a JSON object: 400 when it is not JSON at all, 422 when it is JSON of the wrong shape."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"the body is not valid JSON ({exc}); send {expected}") from None
    if not isinstance(document, dict):
        raise ApiError(422, f"the body is JSON but not an object; send {expected}")
    return document


ROUTE_BODY = '{"task": {...}, "candidates": [{...}, ...]}'
INLINE_ROUTE_MAX_BYTES = 64 * 1024
"""A route request this small is answered on the event loop: scoring takes less than handing it to a thread."""


def create_app(settings: ServerSettings) -> Starlette:
    """The application serving one store under `settings`; the router and writer are made at startup."""
    from memabra.serving import load_active_router

    router = load_active_router(settings.base_dir)
    intake = None
    if settings.accepts_writes:
        from memabra.server.intake import TrajectoryIntake

        intake = TrajectoryIntake(settings.base_dir)

    async def post_trajectories(request: Request) -> Response:
        check_token(request, settings)
        body = await read_body(request, settings)
        if not body.strip():
            raise ApiError(400, "the body is empty; send JSON Lines, one trajectory per line "
                                "(docs/trajectory-schema.md)")
        result = await in_thread(settings, lambda: intake.ingest(body), "storing the trajectories")
        if result["invalid_count"] and result["invalid_count"] == result["line_count"]:
            first = result["invalid"][0]
            message = (f"all {result['line_count']} lines were refused (first: line {first['line']}, "
                       f"{first['field']}: {first['error']}); see docs/trajectory-schema.md")
            return json_response({"error": message, **result}, 422)
        return json_response(result)

    async def post_route(request: Request) -> Response:
        body = await read_body(request, settings)
        document = parse_json_object(body, ROUTE_BODY)
        missing = [name for name in ("task", "candidates") if name not in document]
        if missing:
            raise ApiError(422, f"the body has no {' and no '.join(missing)}; send {ROUTE_BODY}")
        if not isinstance(document["candidates"], list):
            raise ApiError(422, f"candidates must be a list of candidates; send {ROUTE_BODY}")
        route = lambda: router.route(document["task"], document["candidates"])  # noqa: E731
        if len(body) > INLINE_ROUTE_MAX_BYTES:
            decision = await in_thread(settings, route, "routing")
        else:
            try:
                decision = route()
            except BadInputError as exc:
                raise ApiError(422, str(exc)) from exc
        return json_response(decision.model_dump(mode="json"))

    async def get_status(request: Request) -> Response:
        from memabra.status import store_status

        status = await in_thread(settings, lambda: store_status(settings.base_dir).document(), "reading the status")
        return json_response(status)

    async def api_error(request: Request, exc: ApiError) -> Response:
        return error_response(exc.status_code, exc.message, exc.headers)

    async def http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 404:
            message = f"no endpoint at {request.url.path}; {DOCS_HINT}"
        elif exc.status_code == 405:
            allowed = (exc.headers or {}).get("Allow", "")
            message = f"{request.method} is not allowed on {request.url.path}; use {allowed}"
        else:
            message = str(exc.detail)
        return error_response(exc.status_code, message, exc.headers)

    async def unexpected_error(request: Request, exc: Exception) -> Response:
        logger.exception("unexpected error serving %s %s", request.method, request.url.path)
        return error_response(500, f"unexpected {type(exc).__name__}: {exc}")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        if intake is not None:
            await anyio.to_thread.run_sync(intake.load)
        try:
            yield
        finally:
            if intake is not None:
                intake.close()

    return Starlette(
        routes=[
            Route("/v1/trajectories", post_trajectories, methods=["POST"]),
            Route("/v1/route", post_route, methods=["POST"]),
            Route("/v1/status", get_status, methods=["GET"]),
        ],
        exception_handlers={ApiError: api_error, HTTPException: http_error, Exception: unexpected_error},
        lifespan=lifespan,
    )
