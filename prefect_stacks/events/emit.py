"""Emitting: posting events to the Prefect server and knowing it accepted them
(:func:`emit`, :func:`aemit`, one bounded retry policy, :class:`EmitError`)."""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Iterable
from typing import Any

import httpx
from prefect import get_client
from prefect.events import Event
from prefect.settings import PREFECT_API_URL

from prefect_stacks._internal.prefect_api import apost_events, post_events
from prefect_stacks.exceptions import EmitError


def _payload(events: Iterable[Event]) -> list[dict[str, Any]]:
    return [e.model_dump(mode="json") for e in events]


def _retryable(exc: Exception) -> bool:
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code in (408, 429) or exc.response.status_code >= 500
    return isinstance(exc, httpx.TransportError)


_loop_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
    weakref.WeakKeyDictionary()
)


async def _loop_client() -> Any:
    """One Prefect client per event loop, kept open: opening one costs ~25 ms, more than
    the POST itself, and a webhook receiver posts on every delivery."""
    loop = asyncio.get_running_loop()
    client = _loop_clients.get(loop)
    api_url = PREFECT_API_URL.value()
    if client is None or str(client.api_url).rstrip("/") != str(api_url or "").rstrip("/"):
        client = get_client()
        await client.__aenter__()
        _loop_clients[loop] = client
    return client


class _EmitRetry:
    """The one retry policy of :func:`emit` and :func:`aemit`: transport errors and
    5xx/429/408 are retried with doubling waits (0.25 s up to 2 s) until
    ``deadline_seconds``; anything else, or the deadline, is :class:`EmitError`."""

    def __init__(self, count: int, deadline_seconds: float) -> None:
        self.count = count
        self.deadline = time.monotonic() + deadline_seconds
        self.delay = 0.25

    def wait_after(self, exc: Exception) -> float:
        """Seconds to wait before the next attempt; raises EmitError when there is none."""
        if not _retryable(exc) or self.deadline - time.monotonic() <= self.delay:
            raise EmitError(
                f"the Prefect server did not accept {self.count} event(s): "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        delay, self.delay = self.delay, min(self.delay * 2, 2.0)
        return delay


async def aemit(events: list[Event], *, deadline_seconds: float = 8.0) -> None:
    """Post ``events`` to the Prefect server (``POST /api/events``) and return once it
    accepted them. Unlike Prefect's ``emit_event`` (fire and forget: a server that is
    down loses the event with a log line), this raises :class:`EmitError` when the server
    did not take them within ``deadline_seconds`` of bounded retries, so the caller can
    keep its state (watcher) or answer non-2xx (webhook) and the change is seen again."""
    if not events:
        return
    body = _payload(events)
    retry = _EmitRetry(len(events), deadline_seconds)
    while True:
        try:
            await apost_events(await _loop_client(), body)
            return
        except Exception as exc:  # noqa: BLE001 - classified by the retry policy
            await asyncio.sleep(retry.wait_after(exc))


def emit(events: list[Event], *, deadline_seconds: float = 8.0) -> None:
    """Synchronous :func:`aemit`."""
    if not events:
        return
    body = _payload(events)
    retry = _EmitRetry(len(events), deadline_seconds)
    while True:
        try:
            with get_client(sync_client=True) as client:
                post_events(client, body)
            return
        except Exception as exc:  # noqa: BLE001 - classified by the retry policy
            time.sleep(retry.wait_after(exc))
