"""Conditional requests of the HTTP helper: MemoryResponseCache (LRU, dirty flag,
snapshot and merge) and the client's ETag / If-None-Match / 304 round trip
(httpx.MockTransport)."""

from __future__ import annotations

import httpx
import pytest

from prefect_stacks._internal.http import (
    CacheEntry,
    HttpClient,
    HTTPServiceError,
    MemoryResponseCache,
    cache_key,
)

API = "https://api.example.test"


class EtagServer:
    """Answers 200 with an ETag of its current version, 304 when If-None-Match has it."""

    def __init__(self) -> None:
        self.version = 1
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        etag = f'"v{self.version}"'
        if request.headers.get("if-none-match") == etag:
            return httpx.Response(304, headers={"ETag": etag})
        return httpx.Response(
            200,
            json={"version": self.version, "noise": "x" * 50},
            headers={"ETag": etag, "Link": f'<{API}/things?page=2>; rel="next"'},
        )


def client(server: EtagServer, cache: MemoryResponseCache | None) -> HttpClient:
    return HttpClient(
        base_url=API, service="Example", cache=cache, transport=httpx.MockTransport(server)
    )


def keep_version(body):
    return {"version": body["version"]}


def test_a_get_sends_the_etag_it_saw_and_a_304_answers_from_the_cache():
    server, cache = EtagServer(), MemoryResponseCache()
    http = client(server, cache)
    first = http.request("GET", "/things", reduce=keep_version)
    assert (first.status, first.from_cache, first.data) == (200, False, {"version": 1})
    second = http.request("GET", "/things", reduce=keep_version)
    assert server.requests[1].headers["if-none-match"] == '"v1"'
    assert (second.status, second.from_cache, second.data) == (304, True, {"version": 1})
    assert second.next_url == f"{API}/things?page=2"  # the links were cached too
    server.version = 2
    third = http.request("GET", "/things", reduce=keep_version)
    assert (third.status, third.data) == (200, {"version": 2})
    # what is cached is the reduced data, under method, URL and shape
    entry = cache.get(cache_key("GET", f"{API}/things"))
    assert entry is not None and entry.etag == '"v2"' and entry.data == {"version": 2}


def test_the_shape_keeps_two_reductions_of_one_url_apart():
    server, cache = EtagServer(), MemoryResponseCache()
    http = client(server, cache)
    http.request("GET", "/things", reduce=keep_version, shape="v.1")
    raw = http.request("GET", "/things", shape="raw")
    assert raw.status == 200 and "noise" in raw.data
    assert "if-none-match" not in server.requests[1].headers
    assert len(cache) == 2


def test_no_cache_or_not_conditional_sends_no_etag_and_stores_nothing():
    server, cache = EtagServer(), MemoryResponseCache()
    client(server, None).request("GET", "/things")
    http = client(server, cache)
    http.request("GET", "/things", conditional=False)
    http.request("POST", "/things", json_body={})
    assert all("if-none-match" not in r.headers for r in server.requests)
    assert len(cache) == 0


def test_a_304_without_a_cached_entry_is_an_error():
    http = HttpClient(
        base_url=API,
        service="Example",
        cache=MemoryResponseCache(),
        transport=httpx.MockTransport(lambda request: httpx.Response(304)),
    )
    with pytest.raises(HTTPServiceError, match="answered HTTP 304"):
        http.request("GET", "/things")


def test_memory_cache_drops_the_least_recently_used():
    cache = MemoryResponseCache(max_entries=2)
    cache.put("a", CacheEntry("1", "A"))
    cache.put("b", CacheEntry("2", "B"))
    assert cache.get("a") is not None  # now b is the least recently used
    cache.put("c", CacheEntry("3", "C"))
    assert cache.get("b") is None and cache.get("a") is not None and len(cache) == 2


def test_memory_cache_is_dirty_only_when_something_changed():
    cache = MemoryResponseCache()
    assert not cache.dirty
    cache.put("a", CacheEntry('"1"', {"x": 1}))
    assert cache.dirty
    cache.mark_clean()
    cache.put("a", CacheEntry('"1"', {"x": 1}))
    assert not cache.dirty
    cache.put("a", CacheEntry('"1"', {"x": 2}))
    assert cache.dirty


def test_snapshot_and_merge_keep_the_newer_entry_and_skip_bad_ones():
    old = MemoryResponseCache()
    old.put("a", CacheEntry('"old"', 1, stored_at=100.0))
    old.put("b", CacheEntry('"b"', 2, stored_at=100.0))
    new = MemoryResponseCache(entries={"a": CacheEntry('"new"', 3, stored_at=200.0).to_json()})
    assert not new.dirty  # loaded, not changed
    snapshot = old.snapshot()
    snapshot["bad"] = {"etag": ""}
    snapshot["worse"] = "not a mapping"
    new.merge(snapshot)
    assert new.dirty
    assert new.get("a").etag == '"new"'  # the newer one stayed
    assert new.get("b").data == 2
    assert new.get("bad") is None and new.get("worse") is None


def test_merge_keeps_the_newest_max_entries():
    cache = MemoryResponseCache(max_entries=2)
    cache.merge(
        {k: CacheEntry(k, k, stored_at=t).to_json() for k, t in (("x", 3), ("y", 1), ("z", 2))}
    )
    assert len(cache) == 2 and cache.get("y") is None
