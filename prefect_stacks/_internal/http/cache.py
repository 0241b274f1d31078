"""Conditional requests of the HTTP helper: the response cache.

With a :class:`ResponseCache`, a GET sends the ``ETag`` it saw last for that URL as
``If-None-Match``; a ``304`` answers from the cache. What is cached is what the caller's
``reduce`` function kept of the body (not the raw body), keyed by method, URL and the
caller's ``shape`` name (:func:`cache_key`), so a cache can be persisted cheaply
(:class:`MemoryResponseCache` snapshots to JSON and merges snapshots back).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class CacheEntry:
    """What a conditional GET remembers of one URL: its ETag, the reduced data and the
    response's links (so that a ``304`` page still knows its next page)."""

    etag: str
    data: Any
    links: dict[str, str] = field(default_factory=dict)
    stored_at: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        return {"etag": self.etag, "data": self.data, "links": self.links, "at": self.stored_at}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> CacheEntry | None:
        try:
            etag = value["etag"]
            if not isinstance(etag, str) or not etag:
                return None
            links = value.get("links") or {}
            return cls(
                etag=etag,
                data=value.get("data"),
                links={str(k): str(v) for k, v in dict(links).items()},
                stored_at=float(value.get("at") or 0.0),
            )
        except (KeyError, TypeError, ValueError):
            return None


class ResponseCache(Protocol):
    """Where conditional GETs keep their ETags (any object with these two methods)."""

    def get(self, key: str) -> CacheEntry | None: ...

    def put(self, key: str, entry: CacheEntry) -> None: ...


class MemoryResponseCache:
    """An in-memory LRU :class:`ResponseCache`, thread-safe, that can be snapshotted as
    JSON (to persist it elsewhere) and merged with a snapshot (newer entries win)."""

    def __init__(self, max_entries: int = 1000, entries: Mapping[str, Any] | None = None) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[str, CacheEntry] = OrderedDict()
        self._lock = threading.Lock()
        self._dirty = False
        if entries:
            self.merge(entries, mark_dirty=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __repr__(self) -> str:
        return f"MemoryResponseCache({len(self)} entries, max {self.max_entries})"

    @property
    def dirty(self) -> bool:
        """True when something was stored since the last :meth:`mark_clean`."""
        return self._dirty

    def mark_clean(self) -> None:
        self._dirty = False

    def get(self, key: str) -> CacheEntry | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def put(self, key: str, entry: CacheEntry) -> None:
        with self._lock:
            old = self._entries.get(key)
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
            if old is None or old.etag != entry.etag or old.data != entry.data:
                self._dirty = True

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Every entry as JSON-able dicts, oldest first."""
        with self._lock:
            return {key: entry.to_json() for key, entry in self._entries.items()}

    def merge(self, entries: Mapping[str, Any], *, mark_dirty: bool = True) -> None:
        """Add ``entries`` (a :meth:`snapshot`); where both hold a key the newer wins."""
        parsed = []
        for key, value in entries.items():
            entry = CacheEntry.from_json(value) if isinstance(value, Mapping) else None
            if entry is not None:
                parsed.append((entry.stored_at, str(key), entry))
        parsed.sort(key=lambda item: item[0])
        with self._lock:
            for _, key, entry in parsed:
                old = self._entries.get(key)
                if old is not None and old.stored_at >= entry.stored_at:
                    continue
                self._entries[key] = entry
                if mark_dirty:
                    self._dirty = True
            ordered = sorted(self._entries.items(), key=lambda item: item[1].stored_at)
            self._entries = OrderedDict(ordered[-self.max_entries :])


def cache_key(method: str, url: str, shape: str = "") -> str:
    """``GET <url> <shape>``: one entry per request and per reduction of its body."""
    return f"{method} {url} {shape}".rstrip()


class ConditionalGet:
    """The ETag side of one request: the ``If-None-Match`` header of each attempt, the
    cached entry a ``304`` answers with, and storing a new ETag. Without a cache (or for a
    request that is not conditional) it does nothing."""

    def __init__(self, cache: ResponseCache | None, key: str) -> None:
        self.cache = cache
        self.key = key
        self.entry: CacheEntry | None = None

    def headers(self) -> dict[str, str]:
        """Looks the entry up again (another request may have stored a newer one)."""
        self.entry = self.cache.get(self.key) if self.cache is not None else None
        return {"If-None-Match": self.entry.etag} if self.entry is not None else {}

    def not_modified(self, status: int) -> CacheEntry | None:
        """The entry a ``304`` answers with (None for another status, or no entry sent)."""
        return self.entry if status == 304 else None

    def store(self, etag: str | None, data: Any, links: dict[str, str]) -> None:
        if self.cache is not None and etag:
            self.cache.put(self.key, CacheEntry(etag=etag, data=data, links=links))


__all__ = ["CacheEntry", "ConditionalGet", "MemoryResponseCache", "ResponseCache", "cache_key"]
