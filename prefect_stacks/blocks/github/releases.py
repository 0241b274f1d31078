"""What a repository has published, for the release watcher: its releases
(``GET /repos/{owner}/{repo}/releases``) or, for projects that publish none, its tags
(``GET /repos/{owner}/{repo}/tags``), one page, newest first, conditionally (an
unchanged page is a ``304`` that costs no rate limit).

A renamed or transferred repository answers ``301`` with the new place
(``/repositories/{id}/...``); the listing is read there and :attr:`Published.moved_to`
names the repository's new ``owner/name``, so the caller can say what to fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

from prefect_stacks._internal.http import HttpClient, WaitBudget
from prefect_stacks.blocks.github.models import Release, reduce_releases
from prefect_stacks.exceptions import GitHubError

if TYPE_CHECKING:
    from prefect_stacks.blocks.github.api import GitHubClient

Source = Literal["releases", "tags"]
_MOVED_RE = re.compile(r"^(?P<repo>.*/repositories/\d+)(?:/|\?|$)")


@dataclass(frozen=True)
class Published:
    """The newest releases (or tags, as releases without dates) of one repository."""

    releases: list[Release]
    moved_to: str | None = None  # the new owner/name when GitHub answered 301


def _reduce_tags(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, list):
        raise GitHubError(f"GitHub answered a tag listing with something else: {body!r:.200}")
    return [{"name": item.get("name") or ""} for item in body if isinstance(item, dict)]


def _reduce_full_name(body: Any) -> str:
    return body.get("full_name", "") if isinstance(body, dict) else ""


def list_published(
    client: GitHubClient, source: Source = "releases", per_page: int = 50
) -> Published:
    """The newest ``per_page`` (1-100) releases or tags of the client's repository. Drafts
    are listed by GitHub only to a token with push access; they are the caller's to drop."""
    if source not in ("releases", "tags"):
        raise ValueError(f"source {source!r} must be 'releases' or 'tags'")
    if isinstance(per_page, bool) or not isinstance(per_page, int) or not 1 <= per_page <= 100:
        raise ValueError(f"per_page {per_page!r} must be an integer from 1 to 100")
    what = f"the {source} of {client.full_name}"
    path = f"/repos/{quote(client.owner, safe='')}/{quote(client.repo, safe='')}/{source}"
    with client.session() as http:
        budget = WaitBudget(client.max_rate_limit_wait)
        moved_to = None
        try:
            data = _get(http, path, source, per_page, budget, what)
        except GitHubError as exc:
            match = _MOVED_RE.match(exc.location or "") if exc.status == 301 else None
            if match is None:
                raise
            moved_to = (
                http.request(
                    "GET",
                    match["repo"],
                    reduce=_reduce_full_name,
                    shape="full-name.v1",
                    budget=budget,
                    what=f"where {client.full_name} moved",
                ).data
                or match["repo"]
            )
            data = _get(http, f"{match['repo']}/{source}", source, per_page, budget, what)
    if source == "releases":
        return Published([Release.model_validate(item) for item in data], moved_to)
    web = f"{client.web_url}/{moved_to or client.full_name}"
    return Published(
        [
            Release(
                tag_name=tag["name"],
                name=tag["name"],
                html_url=f"{web}/releases/tag/{quote(tag['name'])}",
            )
            for tag in data
            if tag["name"]
        ],
        moved_to,
    )


def _get(
    http: HttpClient, path: str, source: Source, per_page: int, budget: WaitBudget, what: str
) -> list[dict[str, Any]]:
    result = http.request(
        "GET",
        path,
        params={"per_page": per_page},
        reduce=reduce_releases if source == "releases" else _reduce_tags,
        shape=f"{source}.v1",
        budget=budget,
        what=what,
    )
    return list(result.data or [])


__all__ = ["Published", "Source", "list_published"]
