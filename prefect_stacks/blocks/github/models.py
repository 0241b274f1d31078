"""What the GitHub block reads and writes: the models it answers with (``PullRequest``,
``Comment``, ``CommitStatus``, ``Release``), the reducers that keep of each API answer only
what the response cache needs, and the bodies it sends (the sticky comment's marker line,
a commit status description cut to GitHub's limit)."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from prefect_stacks.exceptions import GitHubError

MAX_STATUS_DESCRIPTION = 140  # GitHub's limit on a commit status description
MAX_COMMENT_BODY = 65536  # GitHub's limit on an issue/PR comment body (characters)
MARKER_PREFIX = "<!-- prefect-stacks:"
STATUS_STATES = ("pending", "success", "failure", "error")

_MARKER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,99}$")


def login_of(value: Any) -> str | None:
    if isinstance(value, dict):
        login = value.get("login")
        return str(login) if login is not None else None
    return None


class PullRequest(BaseModel):
    """A pull request, as much of it as the watcher and the flows use."""

    number: int
    title: str
    state: Literal["open", "closed"]
    draft: bool = False
    head_ref: str
    head_sha: str
    head_repo_full_name: str | None = None  # None when the fork was deleted
    base_ref: str
    base_repo_full_name: str | None = None
    labels: list[str] = Field(default_factory=list)
    author: str | None = None
    html_url: str = ""
    merged: bool = False
    merged_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    closed_at: datetime | None = None

    @property
    def from_fork(self) -> bool:
        """True when the head branch lives in another repository (or a deleted fork)."""
        if self.head_repo_full_name is None:
            return True
        return (self.head_repo_full_name or "").lower() != (self.base_repo_full_name or "").lower()

    @classmethod
    def from_api(cls, data: Any) -> PullRequest:
        if not isinstance(data, dict):
            raise GitHubError(
                f"GitHub answered a pull request that is not an object: {data!r:.200}"
            )
        head = data.get("head") or {}
        base = data.get("base") or {}
        merged_at = data.get("merged_at")
        # The listing has no `merged` field (only GET /pulls/{n} has): merged_at says it.
        merged = bool(data["merged"]) if "merged" in data else merged_at is not None
        return cls(
            number=data["number"],
            title=data.get("title") or "",
            state=data["state"],
            draft=bool(data.get("draft")),
            head_ref=head.get("ref") or "",
            head_sha=head.get("sha") or "",
            head_repo_full_name=(head.get("repo") or {}).get("full_name"),
            base_ref=base.get("ref") or "",
            base_repo_full_name=(base.get("repo") or {}).get("full_name"),
            labels=[str(label.get("name")) for label in data.get("labels") or [] if label],
            author=login_of(data.get("user")),
            html_url=data.get("html_url") or "",
            merged=merged,
            merged_at=merged_at,
            created_at=data.get("created_at"),
            updated_at=data.get("updated_at"),
            closed_at=data.get("closed_at"),
        )


class Comment(BaseModel):
    """prefect-stacks' sticky comment on a pull request, after an upsert."""

    id: int
    html_url: str = ""
    author: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    body: str
    action: Literal["created", "updated", "unchanged"]


class CommitStatus(BaseModel):
    """A commit status as GitHub recorded it."""

    id: int
    state: Literal["pending", "success", "failure", "error"]
    context: str
    description: str | None = None
    target_url: str | None = None
    created_at: datetime | None = None
    creator: str | None = None


class Release(BaseModel):
    """A release of the repository."""

    id: int | None = None
    tag_name: str
    name: str | None = None
    html_url: str = ""
    draft: bool = False
    prerelease: bool = False
    created_at: datetime | None = None
    published_at: datetime | None = None  # None for drafts


# --------------------------------------------------------------------------- reducers
# What the response cache keeps of a 200 answer: only what the operation needs.


def _expect_list(body: Any, what: str) -> list[Any]:
    if not isinstance(body, list):
        raise GitHubError(f"GitHub answered {what} with something else than a list: {body!r:.200}")
    return body


def reduce_pulls(body: Any) -> list[dict[str, Any]]:
    items = _expect_list(body, "a pull-request listing")
    return [PullRequest.from_api(item).model_dump(mode="json") for item in items]


def reduce_pull(body: Any) -> dict[str, Any]:
    return PullRequest.from_api(body).model_dump(mode="json")


def reduce_releases(body: Any) -> list[dict[str, Any]]:
    items = _expect_list(body, "a release listing")
    return [
        Release(
            id=item.get("id"),
            tag_name=item.get("tag_name") or "",
            name=item.get("name"),
            html_url=item.get("html_url") or "",
            draft=bool(item.get("draft")),
            prerelease=bool(item.get("prerelease")),
            created_at=item.get("created_at"),
            published_at=item.get("published_at"),
        ).model_dump(mode="json")
        for item in items
        if isinstance(item, dict)
    ]


def digest(text: str) -> str:
    """SHA-256 of a comment body: how an unchanged sticky comment is recognised."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def first_line(text: str) -> str:
    """The first line of a comment body, stripped (where the marker is)."""
    return text.split("\n", 1)[0].strip()


def reduce_sticky_comments(body: Any) -> list[dict[str, Any]]:
    """Of a page of comments, only prefect-stacks' own (marker on the first line): id,
    marker, digest of the body, and what :class:`Comment` shows."""
    kept = []
    for item in _expect_list(body, "a comment listing"):
        if not isinstance(item, dict):
            continue
        text = item.get("body") or ""
        first = first_line(text)
        if first.startswith(MARKER_PREFIX) and first.endswith("-->"):
            kept.append(
                {
                    "id": item["id"],
                    "marker": first,
                    "sha256": digest(text),
                    "html_url": item.get("html_url") or "",
                    "author": login_of(item.get("user")),
                    "created_at": item.get("created_at"),
                    "updated_at": item.get("updated_at"),
                }
            )
    return kept


def marker_tag(marker: str) -> str:
    """The hidden first line that identifies a sticky comment: ``<!-- prefect-stacks:m -->``."""
    if not isinstance(marker, str) or not _MARKER_RE.match(marker):
        raise ValueError(
            f"marker {marker!r} must be 1-100 letters, digits, '_', '.', ':', '/' or '-', "
            "starting with a letter or digit"
        )
    return f"{MARKER_PREFIX}{marker} -->"


def sticky_body(marker: str, body: str) -> str:
    """The full comment body: the marker line, then ``body``, cut to GitHub's 65536
    characters (with a note saying so)."""
    tag = marker_tag(marker)
    full = body if first_line(body) == tag else f"{tag}\n{body}"
    if len(full) > MAX_COMMENT_BODY:
        note = f"\n\n… (cut: a GitHub comment holds at most {MAX_COMMENT_BODY} characters)"
        full = full[: MAX_COMMENT_BODY - len(note)] + note
    return full


def clip_description(text: str | None) -> str | None:
    """A commit status description cut to GitHub's 140 characters."""
    if text is None:
        return None
    text = " ".join(text.split())
    if len(text) <= MAX_STATUS_DESCRIPTION:
        return text
    return text[: MAX_STATUS_DESCRIPTION - 1] + "…"


def comment_from_api(data: Any, full: str, action: Literal["created", "updated"]) -> Comment:
    """The :class:`Comment` GitHub answered a create or an update with (``full``: the body
    sent, if the answer lacks it)."""
    data = data if isinstance(data, dict) else {}
    return Comment(
        id=data.get("id") or 0,
        html_url=data.get("html_url") or "",
        author=login_of(data.get("user")),
        created_at=data.get("created_at"),
        updated_at=data.get("updated_at"),
        body=data.get("body") if isinstance(data.get("body"), str) else full,
        action=action,
    )


def listed_comment(
    listed: dict[str, Any], full: str, action: Literal["created", "unchanged"]
) -> Comment:
    """The :class:`Comment` for a sticky comment found by listing (what
    :func:`reduce_sticky_comments` kept of it) whose body is already ``full``."""
    return Comment(
        id=listed["id"],
        html_url=listed.get("html_url") or "",
        author=listed.get("author"),
        created_at=listed.get("created_at"),
        updated_at=listed.get("updated_at"),
        body=full,
        action=action,
    )


__all__ = [
    "MARKER_PREFIX",
    "MAX_COMMENT_BODY",
    "MAX_STATUS_DESCRIPTION",
    "STATUS_STATES",
    "Comment",
    "CommitStatus",
    "PullRequest",
    "Release",
    "clip_description",
    "comment_from_api",
    "digest",
    "first_line",
    "listed_comment",
    "login_of",
    "marker_tag",
    "reduce_pull",
    "reduce_pulls",
    "reduce_releases",
    "reduce_sticky_comments",
    "sticky_body",
]
