"""Reading a delivery's body: bounded in size and in time.

The size: ``Content-Length`` first, then the stream is counted while read, so a missing or
lying length cannot make the receiver buffer more than ``limit`` bytes -> 413. The time:
the whole body must arrive within ``timeout`` seconds of the first read, so a client that
sends fewer bytes than it announced, or trickles them, cannot hold a request open -> 408.
Both answers close the connection (the rest of the body is never read)."""

from __future__ import annotations

import asyncio

from starlette.requests import Request

from prefect_stacks.exceptions import BadRequest, TooLarge, TooSlow

# Seconds a client has to send the whole body.
BODY_TIMEOUT_SECONDS = 10.0


async def read_body(request: Request, limit: int, timeout: float = BODY_TIMEOUT_SECONDS) -> bytes:
    """The raw body, at most ``limit`` bytes, all of it within ``timeout`` seconds."""
    lengths = request.headers.getlist("content-length")
    if len(lengths) > 1:
        raise BadRequest("more than one Content-Length")
    if lengths:
        raw = lengths[0].strip()
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
            raise BadRequest("invalid Content-Length")
        if int(raw) > limit:
            raise TooLarge(limit)
    try:
        # one deadline for the whole body, not per chunk: a trickle cannot extend it
        return await asyncio.wait_for(_stream(request, limit), timeout)
    except asyncio.TimeoutError:
        raise TooSlow(timeout) from None


async def _stream(request: Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)
