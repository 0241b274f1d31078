"""Deduplication of deliveries: the ids whose events Prefect accepted (a bounded LRU)
and those in flight (a concurrent identical delivery waits for the first one's outcome)."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Iterable

from prefect_stacks.exceptions import Busy

SEEN_CAPACITY = 100_000


class DeliveryLog:
    """Delivery ids whose events Prefect accepted (a bounded LRU), and those in flight."""

    def __init__(self, capacity: int = SEEN_CAPACITY) -> None:
        self._capacity = capacity
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._in_flight: dict[str, asyncio.Event] = {}

    def __contains__(self, key: str) -> bool:
        return key in self._seen

    def __len__(self) -> int:
        return len(self._seen)

    async def claim(self, keys: Iterable[str], timeout: float) -> list[str]:
        """Claim the ``keys`` not yet seen (in sorted order, so two requests claiming
        overlapping sets cannot wait on each other); a key in flight is waited for and
        claimed only if that attempt failed. Returns the claimed keys; the caller must
        :meth:`release` them."""
        deadline = time.monotonic() + timeout
        claimed: list[str] = []
        try:
            for key in sorted(set(keys)):
                while True:
                    if key in self._seen:
                        self._seen.move_to_end(key)
                        break
                    waiter = self._in_flight.get(key)
                    if waiter is None:
                        self._in_flight[key] = asyncio.Event()
                        claimed.append(key)
                        break
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise Busy(key)
                    try:
                        await asyncio.wait_for(waiter.wait(), left)
                    except asyncio.TimeoutError:
                        raise Busy(key) from None
        except BaseException:
            self.release(claimed, done=False)
            raise
        return claimed

    def release(self, keys: Iterable[str], *, done: bool) -> None:
        for key in keys:
            if done:
                self._seen[key] = None
                self._seen.move_to_end(key)
                while len(self._seen) > self._capacity:
                    self._seen.popitem(last=False)
            waiter = self._in_flight.pop(key, None)
            if waiter is not None:
                waiter.set()
