"""Where a GitHub repository block's ETags outlive a flow run: the
``GitHubResponseCache`` block, and reading and writing it for the response cache of
conditional requests (a failure is a warning, never an error: the cache only saves
requests)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import Field

from prefect_stacks._internal.http import MemoryResponseCache, ResponseCache
from prefect_stacks.blocks.base import StacksBlock, find_block

DEFAULT_CACHE_ENTRIES = 300

Warn = Callable[[str], None]


class GitHubResponseCache(StacksBlock):
    """ETags and the little data kept with them, per URL, for conditional requests of a
    `GitHubRepository` (named by its `response_cache_block` field): a scheduled watcher is
    a new process each poll, and this is how its `304 Not Modified` answers (which cost no
    rate limit) survive from one run to the next. Written by the block; not edited by hand.

    Example:
        Look at what a repository block remembers:
        ```python
        from prefect_stacks.blocks.github import GitHubResponseCache

        cache = GitHubResponseCache.load("BLOCK_NAME")
        print(len(cache.entries), "cached URLs")
        ```
    """

    _block_type_name = "GitHub Response Cache"
    _block_type_slug = "github-response-cache"
    _logo_url = "https://cdn.sanity.io/images/3ugk85nk/production/41971cfecfea5f79ff334164f06ecb34d1038dd4-250x250.png"  # noqa: E501
    _documentation_url = "https://docs.github.com/en/rest/using-the-rest-api/best-practices-for-using-the-rest-api#use-conditional-requests-if-appropriate"  # noqa: E501
    _description = (
        "ETags of GitHub API answers (and the few fields kept with each), so that a "
        "GitHub Repository block's conditional requests survive between flow runs."
    )

    entries: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "Per request (`GET <url> <shape>`): the ETag, the reduced data, the pagination "
            "links and when it was stored. Written by the GitHub Repository block."
        ),
    )
    max_entries: int = Field(
        default=DEFAULT_CACHE_ENTRIES,
        ge=10,
        le=10_000,
        description="Most entries kept; the least recently stored go first.",
    )


def open_response_cache(block_name: str | None, warn: Warn) -> MemoryResponseCache:
    """A cache for conditional requests, holding what the ``block_name`` document stored
    (if it is given and exists)."""
    cache = MemoryResponseCache(max_entries=DEFAULT_CACHE_ENTRIES)
    if block_name:
        stored = read_response_cache(block_name, warn)
        if stored is not None:
            cache.max_entries = stored.max_entries
            cache.merge(stored.entries, mark_dirty=False)
    return cache


def read_response_cache(block_name: str, warn: Warn) -> GitHubResponseCache | None:
    """The stored document; None (after a warning, unless it does not exist yet) if it
    cannot be read."""
    try:
        return find_block(GitHubResponseCache, block_name)
    except Exception as exc:
        warn(f"could not read response cache {block_name!r}: {exc}")
        return None


def save_response_cache(block_name: str | None, cache: ResponseCache | None, warn: Warn) -> bool:
    """Persist ``cache`` to the ``block_name`` document now (merged with what is stored:
    the newer entry wins), if it is a :class:`MemoryResponseCache` that changed. A failure
    is warned about, never raised. Returns True when something was written."""
    if not block_name or not isinstance(cache, MemoryResponseCache) or not cache.dirty:
        return False
    try:
        stored = read_response_cache(block_name, warn)
        if stored is not None:
            cache.merge(stored.entries, mark_dirty=False)
        GitHubResponseCache(entries=cache.snapshot(), max_entries=cache.max_entries).save(
            block_name, overwrite=True, _sync=True
        )
    except Exception as exc:
        warn(f"could not save response cache {block_name!r}: {exc}")
        return False
    cache.mark_clean()
    return True


__all__ = [
    "DEFAULT_CACHE_ENTRIES",
    "GitHubResponseCache",
    "open_response_cache",
    "read_response_cache",
    "save_response_cache",
]
