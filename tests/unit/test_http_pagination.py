"""Pagination of the HTTP helper: Link headers parsed, rel="next" followed page by page,
link loops, overlong listings and links to another origin refused (httpx.MockTransport
and plain objects)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest

from prefect_stacks._internal.http import HttpClient, HTTPServiceError, follow_pages, parse_links

API = "https://api.example.test"


def pages_server(links: dict[str, str | None], seen: list[str]):
    """``links``: page number -> the URL of its next page (None: the last)."""

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        page = request.url.params.get("page", "1")
        nxt = links[page]
        headers = {"Link": f'<{nxt}>; rel="next"'} if nxt else {}
        return httpx.Response(200, json=[f"item-{page}"], headers=headers)

    return HttpClient(base_url=API, service="Example", transport=httpx.MockTransport(handler))


def test_parse_links_reads_every_rel():
    header = f'<{API}/x?page=2>; rel="next", <{API}/x?page=5>; rel="last"'
    assert parse_links(header) == {"next": f"{API}/x?page=2", "last": f"{API}/x?page=5"}
    assert parse_links(None) == {} and parse_links("") == {}


def test_paginate_follows_next_until_the_last_page():
    seen: list[str] = []
    http = pages_server(
        {"1": f"{API}/things?page=2&per_page=1", "2": f"{API}/things?page=3&per_page=1", "3": None},
        seen,
    )
    pages = http.paginate("/things", params={"per_page": 1, "unset": None})
    assert seen == []  # lazy: nothing is asked before the first page is wanted
    assert [p.data for p in pages] == [["item-1"], ["item-2"], ["item-3"]]
    assert seen[0] == f"{API}/things?per_page=1"
    assert len(seen) == 3


def test_a_link_back_to_a_page_already_read_stops_the_listing():
    seen: list[str] = []
    http = pages_server({"1": f"{API}/things?page=2", "2": f"{API}/things?page=1"}, seen)
    http_pages = http.paginate("/things?page=1", what="the things")
    with pytest.raises(HTTPServiceError, match="the things links back to a page already read"):
        list(http_pages)
    assert len(seen) == 2


def test_more_pages_than_allowed_is_refused_not_cut():
    seen: list[str] = []
    links = {str(n): f"{API}/things?page={n + 1}" for n in range(1, 10)}
    http = pages_server(links, seen)
    with pytest.raises(HTTPServiceError, match=r"/things has more than 3 pages; refusing"):
        list(http.paginate("/things", max_pages=3))
    assert len(seen) == 3


def test_a_next_link_to_another_origin_is_not_followed():
    seen: list[str] = []
    http = pages_server({"1": "https://evil.example/things?page=2"}, seen)
    with pytest.raises(HTTPServiceError, match="another origin") as caught:
        list(http.paginate("/things"))
    assert caught.value.url == "https://evil.example/things?page=2"
    assert seen == [f"{API}/things"]


@dataclass
class Page:
    name: str
    next_url: str | None


def test_follow_pages_with_plain_objects_resolves_each_next_link():
    book = {"/1": Page("one", "2"), "/2": Page("two", None)}
    fetched: list[str] = []

    def fetch(url: str) -> Page:
        fetched.append(url)
        return book[url]

    pages = follow_pages(
        "/1",
        fetch,
        resolve=lambda link: f"/{link}",
        fail=ValueError,
        service="S",
        what=None,
        max_pages=5,
    )
    assert [p.name for p in pages] == ["one", "two"]
    assert fetched == ["/1", "/2"]
