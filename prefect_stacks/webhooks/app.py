"""The webhook receiver: an ASGI (Starlette) app that verifies deliveries and emits the
same prefect-stacks events the watchers emit.

``POST /hooks/{source}`` where ``source`` names a :class:`WebhookSource` block, and
``GET /healthz``. For each delivery, in this order:

1. the source block (:mod:`prefect_stacks.webhooks.sources`: cached ~30 s, misses too,
   so a flood of unknown names costs the Prefect server one lookup per name per 30 s)
   -> 404 when there is none;
2. the body (:mod:`prefect_stacks.webhooks.body`): at most ``max_body_bytes`` (by
   ``Content-Length``, then counted while read) -> 413, all of it within
   ``body_timeout_seconds`` (a short or trickled body cannot hold the request) -> 408;
   both close the connection;
3. the signature or token, over the raw bytes, before anything is parsed -> 401;
4. parsing and translation with the builders of :mod:`prefect_stacks.events` -> 400/415
   (every unexpected shape is a 400, never a 5xx);
5. deduplication by delivery id (:mod:`prefect_stacks.webhooks.deliveries`: a bounded
   LRU of ids whose events Prefect accepted, and an in-flight set: a concurrent identical
   delivery waits for the first one's outcome) -> 200 ``duplicate``;
6. ``emit`` (:func:`prefect_stacks.events.aemit`): accepted -> 202 and the delivery is
   remembered; the server unreachable -> 503 + ``Retry-After`` and it is not, so the
   sender's retry is processed.

Every answer the app makes is JSON, Starlette's own too (unknown paths, wrong methods,
a trailing slash: a 404 naming the path, never a redirect); each delivery is logged on one
line (source, delivery id, status, event names), never with a secret or a body.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from prefect.events import Event
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import Match, Route

from prefect_stacks import events
from prefect_stacks.blocks.webhooks import WebhookSource
from prefect_stacks.exceptions import BadRequest, Busy, EmitError, SourceUnavailable, WebhookError
from prefect_stacks.webhooks import generic, github, gitlab, registry
from prefect_stacks.webhooks.body import BODY_TIMEOUT_SECONDS, read_body
from prefect_stacks.webhooks.common import Translation
from prefect_stacks.webhooks.deliveries import SEEN_CAPACITY, DeliveryLog
from prefect_stacks.webhooks.sources import (
    SOURCE_TTL_SECONDS,
    SourceCache,
    find_source,
)

logger = logging.getLogger("prefect_stacks.webhooks")

Emit = Callable[[list[Event]], Awaitable[None]]

RETRY_AFTER_SECONDS = 30
# How long a delivery waits for an identical one in flight before answering 503.
IN_FLIGHT_WAIT_SECONDS = 30.0
# Prefect block document names: lowercase letters, digits and dashes.
_SOURCE_NAME_RE = re.compile(r"^[a-z0-9-]{1,255}$")


# kind -> module with verify(source, headers, body, now) and translate(source, headers, body)
HANDLERS: dict[str, Any] = {
    "github": github,
    "gitlab": gitlab,
    "registry": registry,
    "generic": generic,
}


# --------------------------------------------------------------------------- the app


@dataclass
class _Outcome:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    delivery: str | None = None
    names: list[str] = field(default_factory=list)
    kind: str | None = None


def _clean(value: str | None, limit: int = 80, *, spaces: bool = False) -> str:
    """A header value fit for a log line: printable ASCII, bounded (no log injection)."""
    if value is None:
        return "-"
    out = "".join(
        c if c.isascii() and c.isprintable() and (spaces or c != " ") and c != '"' else "?"
        for c in value
    )
    return out[:limit] + ("..." if len(out) > limit else "")


def _retry_after(message: str, seconds: int = RETRY_AFTER_SECONDS) -> _Outcome:
    return _Outcome(503, {"error": message}, {"Retry-After": str(seconds)})


class Receiver:
    """The state behind one app: source cache, delivery log, emitter."""

    def __init__(
        self,
        *,
        emit: Emit,
        sources: Mapping[str, WebhookSource] | None,
        source_ttl_seconds: float,
        seen_capacity: int,
        in_flight_wait_seconds: float,
        body_timeout_seconds: float = BODY_TIMEOUT_SECONDS,
    ) -> None:
        self.emit = emit
        self.body_timeout = body_timeout_seconds
        if sources is not None:
            given = sources

            async def load(name: str) -> WebhookSource | None:
                return given.get(name)

            self.sources = SourceCache(load, source_ttl_seconds)
        else:
            self.sources = SourceCache(find_source, source_ttl_seconds)
        self.deliveries = DeliveryLog(seen_capacity)
        self.in_flight_wait = in_flight_wait_seconds

    async def healthz(self, request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def hook(self, request: Request) -> JSONResponse:
        started = time.monotonic()
        name = request.path_params.get("source", "")
        try:
            outcome = await self._hook(request, name)
        except Exception:  # a bug, not bad input: say so in the log, answer 500
            logger.exception("webhook %s: unexpected error", _clean(name))
            outcome = _Outcome(500, {"error": "internal error"})
        logger.info(
            'POST /hooks/%s %d kind=%s delivery=%s events=%s reason="%s" %.0fms',
            _clean(name),
            outcome.status,
            outcome.kind or "-",
            _clean(outcome.delivery, 200),
            ",".join(outcome.names) or "-",
            _clean(outcome.body.get("reason") or outcome.body.get("error"), 160, spaces=True),
            (time.monotonic() - started) * 1000,
        )
        return JSONResponse(outcome.body, status_code=outcome.status, headers=outcome.headers)

    async def _hook(self, request: Request, name: str) -> _Outcome:
        if not _SOURCE_NAME_RE.match(name):
            return _Outcome(404, {"error": "unknown source"})
        try:
            source = await self.sources.get(name)
        except SourceUnavailable as exc:
            logger.warning(
                "webhook source %s: lookup failed: %s", name, _clean(str(exc), 300, spaces=True)
            )
            return _retry_after("the Prefect server could not be asked for the source; retry")
        if source is None:
            return _Outcome(404, {"error": "unknown source"})
        handler = HANDLERS[source.kind]
        outcome = _Outcome(0, {}, kind=source.kind)
        for header_name in handler.DELIVERY_HEADERS:  # for the log line, even if refused
            if header_name in request.headers:
                outcome.delivery = request.headers[header_name]
                break
        try:
            body = await read_body(request, source.max_body_bytes, self.body_timeout)
            handler.verify(source, request.headers, body, time.time())
            try:
                translation = handler.translate(source, request.headers, body)
            except WebhookError:
                raise
            except Exception as exc:  # any shape the translator did not foresee
                logger.debug("webhook %s: unreadable payload", name, exc_info=True)
                raise BadRequest(f"unreadable payload ({type(exc).__name__})") from None
        except WebhookError as exc:
            outcome.status, outcome.body = exc.status, {"error": exc.reason}
            if exc.status in (408, 413):  # the rest of the body is not read
                outcome.headers["Connection"] = "close"
            return outcome
        except ClientDisconnect:
            outcome.status, outcome.body = 400, {"error": "client disconnected"}
            return outcome
        return await self._deliver(name, translation, outcome)

    async def _deliver(self, name: str, translation: Translation, outcome: _Outcome) -> _Outcome:
        if translation.pong:
            outcome.status, outcome.body = 200, {"status": "pong"}
            return outcome
        if not translation.deliveries:
            outcome.status = 202
            outcome.body = {"status": "ignored", "reason": translation.ignored or "nothing to do"}
            return outcome
        by_key: dict[str, list[Event]] = {}
        for delivery in translation.deliveries:
            by_key.setdefault(f"{name}\n{delivery.key}", delivery.events)
        outcome.delivery = ",".join(k.split("\n", 1)[1] for k in by_key)
        try:
            claimed = await self.deliveries.claim(by_key, self.in_flight_wait)
        except Busy:
            return _retry_after("an identical delivery is still being processed; retry", 5)
        if not claimed:
            outcome.status, outcome.body = 200, {"status": "duplicate"}
            return outcome
        batch = [event for key in claimed for event in by_key[key]]
        outcome.names = sorted({event.event for event in batch})
        done = False
        try:
            await self.emit(batch)
            done = True
        except EmitError as exc:
            refused = _refused_as_invalid(exc)
            logger.warning(
                "webhook %s: the Prefect server did not accept %d event(s): %s",
                name,
                len(batch),
                _clean(str(exc), 300, spaces=True),
            )
            if refused:
                outcome.status = 400
                outcome.body = {"error": "the Prefect server refused the event as invalid"}
                return outcome
            outcome.status = 503
            outcome.body = {"error": "the Prefect server did not accept the events; retry later"}
            outcome.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
            return outcome
        finally:
            self.deliveries.release(claimed, done=done)
        outcome.status = 202
        outcome.body = {"status": "accepted", "events": [str(event.id) for event in batch]}
        duplicates = len(by_key) - len(claimed)
        if duplicates:
            outcome.body["duplicates"] = duplicates
        return outcome


def _refused_as_invalid(exc: EmitError) -> bool:
    """The server answered 422: the event itself is invalid (retrying cannot help)."""
    cause = exc.__cause__
    return isinstance(cause, httpx.HTTPStatusError) and cause.response.status_code == 422


def _without_slash(request: Request) -> str | None:
    """The path without its trailing slash, when a route takes that path."""
    path = request.scope["path"]
    if not path.endswith("/") or path == "/":
        return None
    scope = {**request.scope, "path": path.rstrip("/")}
    if any(route.matches(scope)[0] != Match.NONE for route in request.app.routes):
        return scope["path"]
    return None


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own answers (unknown path, wrong method ...) as ``{"error": ...}``."""
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    error = str(exc.detail).lower()  # Starlette's phrase, e.g. "not found"
    if exc.status_code == 404:
        error = "not found"
        if (path := _without_slash(request)) is not None:
            error = f"not found; the path is {_clean(path, 300)} (no trailing slash)"
    elif exc.status_code == 405:
        allowed = sorted(m.strip() for m in headers.get("Allow", "").split(",") if m.strip())
        error = f"method not allowed; use {' or '.join(allowed)}" if allowed else error
    return JSONResponse({"error": error}, status_code=exc.status_code, headers=headers)


async def _server_error(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"error": "internal error"}, status_code=500)


def create_app(
    *,
    emit: Emit = events.aemit,
    sources: Mapping[str, WebhookSource] | None = None,
    source_ttl_seconds: float = SOURCE_TTL_SECONDS,
    seen_capacity: int = SEEN_CAPACITY,
    in_flight_wait_seconds: float = IN_FLIGHT_WAIT_SECONDS,
    body_timeout_seconds: float = BODY_TIMEOUT_SECONDS,
) -> Starlette:
    """The receiver app. ``emit`` and ``sources`` exist for tests: production uses
    :func:`prefect_stacks.events.aemit` and the ``WebhookSource`` blocks on the Prefect
    server in ``PREFECT_API_URL``. ``body_timeout_seconds``: how long a client has to send
    a whole body (408 after)."""
    receiver = Receiver(
        emit=emit,
        sources=sources,
        source_ttl_seconds=source_ttl_seconds,
        seen_capacity=seen_capacity,
        in_flight_wait_seconds=in_flight_wait_seconds,
        body_timeout_seconds=body_timeout_seconds,
    )
    app = Starlette(
        routes=[
            Route("/healthz", receiver.healthz, methods=["GET"]),
            Route("/hooks/{source}", receiver.hook, methods=["POST"]),
        ],
        exception_handlers={HTTPException: _http_error, 500: _server_error},
    )
    app.router.redirect_slashes = False  # a redirect would be built from the Host header
    app.state.receiver = receiver
    return app


__all__ = [
    "Busy",
    "DeliveryLog",
    "Receiver",
    "SourceCache",
    "SourceUnavailable",
    "create_app",
    "find_source",
]
