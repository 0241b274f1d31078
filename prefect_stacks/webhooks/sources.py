"""Where the receiver finds its sources: the ``WebhookSource`` block documents on the
Prefect server, looked up by name and cached (misses too) so that a flood of unknown names
costs the server one lookup per name per TTL."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from prefect_stacks.blocks.base import afind_block
from prefect_stacks.blocks.webhooks import WebhookSource
from prefect_stacks.exceptions import SourceUnavailable

SOURCE_TTL_SECONDS = 30.0
# Concurrent block lookups against the Prefect server.
LOOKUP_CONCURRENCY = 8


class SourceCache:
    """Block lookups by name, cached for ``ttl`` seconds including misses; one lookup
    per name at a time (concurrent requests for it share it); at most ``capacity``
    names remembered."""

    def __init__(
        self,
        load: Callable[[str], Awaitable[WebhookSource | None]],
        ttl: float = SOURCE_TTL_SECONDS,
        capacity: int = 10_000,
    ) -> None:
        self._load = load
        self._ttl = ttl
        self._capacity = capacity
        self._entries: OrderedDict[str, tuple[float, WebhookSource | None]] = OrderedDict()
        self._loading: dict[str, asyncio.Future[WebhookSource | None]] = {}
        self._limit: asyncio.Semaphore | None = None

    async def get(self, name: str) -> WebhookSource | None:
        hit = self._entries.get(name)
        if hit is not None and hit[0] > time.monotonic():
            self._entries.move_to_end(name)
            return hit[1]
        task = self._loading.get(name)
        if task is None:
            task = asyncio.ensure_future(self._lookup(name))
            self._loading[name] = task
            task.add_done_callback(lambda t, n=name: self._done(n, t))
        return await asyncio.shield(task)

    def _done(self, name: str, task: asyncio.Future[WebhookSource | None]) -> None:
        self._loading.pop(name, None)
        if not task.cancelled():
            task.exception()  # retrieved here too: every waiter may have gone

    async def _lookup(self, name: str) -> WebhookSource | None:
        if self._limit is None:
            self._limit = asyncio.Semaphore(LOOKUP_CONCURRENCY)
        async with self._limit:
            try:
                value = await self._load(name)
            except Exception as exc:
                raise SourceUnavailable(f"{type(exc).__name__}: {exc}") from exc
        self._entries[name] = (time.monotonic() + self._ttl, value)
        self._entries.move_to_end(name)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)
        return value


async def find_source(name: str) -> WebhookSource | None:
    """The ``WebhookSource`` block document ``name`` from the Prefect server, or None."""
    return await afind_block(WebhookSource, name)
