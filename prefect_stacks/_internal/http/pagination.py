"""Pagination of the HTTP helper: ``Link: <...>; rel="next"`` headers parsed
(:func:`parse_links`) and followed page by page (:func:`follow_pages`), refusing link
loops and listings longer than a bound (the caller refuses links to another origin)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol, TypeVar

import httpx

from prefect_stacks._internal.http.errors import short_url


class Page(Protocol):
    @property
    def next_url(self) -> str | None: ...


P = TypeVar("P", bound=Page)


def parse_links(header: str | None) -> dict[str, str]:
    """``<url>; rel="next", <url>; rel="last"`` -> ``{"next": url, "last": url}``."""
    if not header:
        return {}
    links: dict[str, str] = {}
    for item in httpx.Response(200, headers={"link": header}).links.values():
        url = item.get("url")
        for rel in (item.get("rel") or "").split():
            if url:
                links[rel] = url
    return links


def follow_pages(
    first_url: str,
    fetch: Callable[[str], P],
    *,
    resolve: Callable[[str], str],
    fail: Callable[[str], Exception],
    service: str,
    what: str | None,
    max_pages: int,
    asked: str | None = None,
) -> Iterator[P]:
    """``fetch`` each page from ``first_url`` on, following each page's ``next_url``
    (passed through ``resolve`` first, which may refuse it by raising). A link back to a
    page already read, or more than ``max_pages`` pages, raises ``fail(message)``: the
    caller never sees a partial listing as a whole one. ``what`` names the listing in
    those messages (else its path; ``asked``: the path the caller gave)."""
    url: str | None = first_url
    seen: set[str] = set()
    pages = 0
    while url is not None:
        if url in seen:
            raise fail(
                f"{service}: the listing {what or short_url(url)} links back to a page "
                f"already read ({short_url(url)}); stopping instead of looping."
            )
        if pages >= max_pages:
            raise fail(
                f"{service}: the listing {what or short_url(asked or first_url)} has more than "
                f"{max_pages} pages; refusing to read a partial listing."
            )
        seen.add(url)
        page = fetch(url)
        pages += 1
        yield page
        url = page.next_url
        if url is not None:
            url = resolve(url)


__all__ = ["Page", "follow_pages", "parse_links"]
