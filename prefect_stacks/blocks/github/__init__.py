"""GitHub: the ``GitHubRepository`` block (one repository on github.com or a GitHub
Enterprise Server, and the token to reach it) and ``GitHubResponseCache`` (where its
ETags outlive a flow run).

What the pull-request watcher and the feature-environment flow need, over GitHub's REST
API (version ``2022-11-28``) through the one HTTP helper (:mod:`prefect_stacks._internal.http`)::

    from prefect_stacks.blocks.github import GitHubRepository

    repo = GitHubRepository.load("shop")
    for pr in repo.list_open_pull_requests(base="main"):
        env = f"PR_{pr.number}"
        repo.set_commit_status(pr.head_sha, "pending", "prefect-stacks/env", f"Creating {env}")
        repo.upsert_sticky_comment(pr.number, "environment", f"**{env}** is coming up.")

Every GET is conditional (``If-None-Match`` with the ETag last seen for that URL; a ``304``
costs no rate limit on GitHub). What is remembered per URL is only what the operation
needs (a few fields per pull request, the ids and body digests of prefect-stacks' own
comments), so the cache stays small enough to persist in a ``GitHubResponseCache`` block
document named by ``response_cache_block``: a scheduled watcher (a new process each poll)
then keeps its ETags across runs. Rate limits are waited out (bounded by
``max_rate_limit_wait``), 5xx and connection errors retried (bounded by ``max_retries``),
and every error a user can act on is a :class:`GitHubError` naming what to fix. The token
never reaches a log line, an exception or a repr.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Literal
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
)

from prefect_stacks._internal.git import auth_env, redact_url
from prefect_stacks._internal.http import (
    HttpClient,
    HttpResult,
    HTTPServiceError,
    MemoryResponseCache,
    RateLimitPolicy,
    RateLimitWait,
    ResponseCache,
    WaitBudget,
    retry_after_seconds,
    server_now,
)
from prefect_stacks._internal.process import Redactor, default_logger
from prefect_stacks.blocks.base import StacksBlock
from prefect_stacks.exceptions import ConfigurationError

GITHUB_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
MEDIA_TYPE = "application/vnd.github+json"
MAX_STATUS_DESCRIPTION = 140  # GitHub's limit on a commit status description
MAX_COMMENT_BODY = 65536  # GitHub's limit on an issue/PR comment body (characters)
MARKER_PREFIX = "<!-- prefect-stacks:"
STATUS_STATES = ("pending", "success", "failure", "error")
DEFAULT_CACHE_ENTRIES = 300
PULLS_PER_PAGE = 100
COMMENTS_PER_PAGE = 100

# Logins: letters, digits and hyphens (underscores in Enterprise Managed Users' handles);
# GitHub caps them at 39 characters, EMU handles add a suffix.
_OWNER_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_-]{0,98}[A-Za-z0-9_])?$")
_REPO_RE = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
_MARKER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,99}$")
_SHA_RE = re.compile(r"^(?:[0-9a-fA-F]{40}|[0-9a-fA-F]{64})$")
_BLOCK_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,99}$")

_REQUIRED_PERMISSIONS = (
    "a fine-grained token needs, on this repository: Pull requests (read; write to "
    "comment), Commit statuses (read and write), Issues (read and write, for comments) and "
    "Contents (read); a classic token needs the `repo` scope (`public_repo` for a public "
    "repository); an organization using SAML SSO must also authorize the token"
)


class GitHubError(HTTPServiceError):
    """GitHub answered with an error, could not be reached, or kept rate-limiting past the
    wait budget. The message names the block, what was asked and what to fix; the token
    never appears in it. ``status``, ``service_message`` (GitHub's ``message``),
    ``errors`` (GitHub's ``errors``), ``rate_limited`` and ``reset_at`` are attributes."""


# --------------------------------------------------------------------------- models


def _login(value: Any) -> str | None:
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
            author=_login(data.get("user")),
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


def _reduce_pulls(body: Any) -> list[dict[str, Any]]:
    items = _expect_list(body, "a pull-request listing")
    return [PullRequest.from_api(item).model_dump(mode="json") for item in items]


def _reduce_pull(body: Any) -> dict[str, Any]:
    return PullRequest.from_api(body).model_dump(mode="json")


def _reduce_releases(body: Any) -> list[dict[str, Any]]:
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


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _first_line(text: str) -> str:
    return text.split("\n", 1)[0].strip()


def _reduce_sticky_comments(body: Any) -> list[dict[str, Any]]:
    """Of a page of comments, only prefect-stacks' own (marker on the first line): id,
    marker, digest of the body, and what :class:`Comment` shows."""
    kept = []
    for item in _expect_list(body, "a comment listing"):
        if not isinstance(item, dict):
            continue
        text = item.get("body") or ""
        first = _first_line(text)
        if first.startswith(MARKER_PREFIX) and first.endswith("-->"):
            kept.append(
                {
                    "id": item["id"],
                    "marker": first,
                    "sha256": _digest(text),
                    "html_url": item.get("html_url") or "",
                    "author": _login(item.get("user")),
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
    full = body if _first_line(body) == tag else f"{tag}\n{body}"
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


# --------------------------------------------------------------------------- rate limits


class GitHubRateLimitPolicy(RateLimitPolicy):
    """GitHub's documented rate-limit answers (REST API, "Rate limits for the REST API"):

    * ``403``/``429`` with ``Retry-After``: wait that long (a secondary limit, usually);
    * ``403``/``429`` with ``X-RateLimit-Remaining: 0``: the primary limit; wait until
      ``X-RateLimit-Reset`` (epoch seconds, compared with the answer's ``Date``) + 1 s;
    * ``403``/``429`` whose message says "secondary rate limit" (or the older "abuse
      detection"), or any ``429``, without either header: wait one minute, doubling on
      each further rate-limited answer.

    Any other ``403`` is a permission problem, not a wait.
    """

    def classify(self, response: httpx.Response, streak: int) -> RateLimitWait | None:
        if response.status_code not in (403, 429):
            return None
        message = ""
        try:
            body = response.json()
            if isinstance(body, dict):
                message = str(body.get("message") or "").lower()
        except (ValueError, UnicodeDecodeError):
            pass
        secondary = "secondary rate limit" in message or "abuse" in message
        remaining = (response.headers.get("x-ratelimit-remaining") or "").strip()
        resource = (response.headers.get("x-ratelimit-resource") or "").strip()
        reset_at = None
        try:
            reset_at = datetime.fromtimestamp(
                int(response.headers.get("x-ratelimit-reset", "")), timezone.utc
            )
        except (TypeError, ValueError, OverflowError, OSError):
            pass
        primary_name = f"primary rate limit ({resource})" if resource else "primary rate limit"
        retry_after = retry_after_seconds(response)
        if retry_after is not None:
            if remaining == "0" and not secondary:
                return RateLimitWait(retry_after, primary_name, reset_at, "Retry-After")
            return RateLimitWait(retry_after, "secondary rate limit", None, "Retry-After")
        if remaining == "0" and reset_at is not None:
            seconds = (reset_at - server_now(response)).total_seconds() + 1
            return RateLimitWait(
                max(1.0, seconds), primary_name, reset_at, "until X-RateLimit-Reset"
            )
        if secondary or response.status_code == 429 or remaining == "0":
            return RateLimitWait(
                60.0 * 2 ** min(streak, 6),
                "secondary rate limit",
                None,
                "no Retry-After: at least one minute, doubling",
            )
        return None


# --------------------------------------------------------------------------- blocks


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


class GitHubRepository(StacksBlock):
    """A GitHub repository (github.com or GitHub Enterprise Server) and the token to
    reach it: open pull requests, commit statuses, a sticky pull-request comment,
    releases, and git credentials for Prefect's `git_clone` pull step.

    Example:
        Load a stored repository and list its open pull requests:
        ```python
        from prefect_stacks.blocks.github import GitHubRepository

        repo = GitHubRepository.load("BLOCK_NAME")
        for pr in repo.list_open_pull_requests():
            print(pr.number, pr.head_ref, pr.head_sha)
        ```
    """

    _block_type_name = "GitHub Repository"
    _block_type_slug = "github-repository"
    _logo_url = "https://cdn.sanity.io/images/3ugk85nk/production/41971cfecfea5f79ff334164f06ecb34d1038dd4-250x250.png"  # noqa: E501
    _documentation_url = "https://docs.github.com/en/rest/pulls/pulls"
    _description = (
        "A GitHub repository (github.com or GitHub Enterprise Server) with the token "
        "prefect-stacks uses to read its pull requests and releases, post commit statuses "
        "and a sticky pull-request comment, and clone it."
    )

    # pydantic puts the raw input (the token!) into ValidationError messages otherwise
    model_config = ConfigDict(hide_input_in_errors=True)

    owner: str = Field(
        default=...,
        description="Owner of the repository: a user or organization login, e.g. `acme`.",
    )
    repo: str = Field(
        default=...,
        description="Name of the repository, e.g. `shop` (without `.git`).",
    )
    token: SecretStr | None = Field(
        default=None,
        description=(
            "A GitHub token: fine-grained with, on this repository, Pull requests (read; "
            "write to comment), Commit statuses (read and write), Issues (read and write) "
            "and Contents (read); or classic with the `repo` scope. Empty: anonymous "
            "(public repositories only, 60 requests per hour)."
        ),
    )
    api_url: str = Field(
        default=GITHUB_API_URL,
        description=(
            "Base URL of the REST API: `https://api.github.com`, or "
            "`https://HOST/api/v3` for GitHub Enterprise Server."
        ),
    )
    clone_url: str | None = Field(
        default=None,
        description=(
            "URL (or local path) to clone the repository from. Empty: "
            "`https://github.com/OWNER/REPO.git`, or `https://HOST/OWNER/REPO.git` for "
            "GitHub Enterprise Server. Never put a token in it."
        ),
    )
    timeout: float = Field(
        default=30,
        gt=0,
        le=300,
        description="Seconds to wait for GitHub to answer one request.",
    )
    max_retries: int = Field(
        default=4,
        ge=0,
        le=10,
        description=(
            "How many times a request is retried after a connection error or a 5xx answer "
            "(rate limits are waited out separately)."
        ),
    )
    retry_backoff: float = Field(
        default=1.0,
        ge=0,
        le=60,
        description="Seconds before the first retry; the wait doubles on each retry (max 30 s).",
    )
    max_rate_limit_wait: float = Field(
        default=900,
        ge=0,
        le=86_400,
        description=(
            "Most seconds one operation waits for GitHub's rate limits to lift (primary: "
            "until X-RateLimit-Reset; secondary: Retry-After, or a minute doubling) before "
            "failing with an error that names the limit and its reset time."
        ),
    )
    response_cache_block: str | None = Field(
        default=None,
        description=(
            "Name of a GitHub Response Cache block document that keeps the ETags of "
            "conditional requests between flow runs (created on first use). Empty: an "
            "in-memory cache that lives as long as this block object."
        ),
    )

    _cache: Any = PrivateAttr(default=None)

    # ----------------------------------------------------------------- validation
    @field_validator("owner")
    @classmethod
    def _check_owner(cls, value: str) -> str:
        value = (value or "").strip()
        if "/" in value:
            raise ConfigurationError(
                f"GitHubRepository: owner {value!r} holds a '/': set `owner` to the user or "
                "organization (e.g. `acme`) and `repo` to the repository name (e.g. `shop`)."
            )
        if not _OWNER_RE.match(value):
            raise ConfigurationError(
                f"GitHubRepository: owner {value!r} is not a GitHub user or organization "
                "login (letters, digits and hyphens, not starting or ending with a hyphen); "
                "fix the field `owner`."
            )
        return value

    @field_validator("repo")
    @classmethod
    def _check_repo(cls, value: str) -> str:
        value = (value or "").strip()
        if value.lower().endswith(".git") and len(value) > 4:
            value = value[:-4]
        if not _REPO_RE.match(value) or value in (".", ".."):
            raise ConfigurationError(
                f"GitHubRepository: repo {value!r} is not a GitHub repository name (1-100 "
                "letters, digits, '.', '-' or '_'); fix the field `repo`."
            )
        return value

    @field_validator("api_url")
    @classmethod
    def _check_api_url(cls, value: str) -> str:
        value = (value or "").strip().rstrip("/")
        parts = urlsplit(value)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(
                f"GitHubRepository: api_url {value!r} is not an http(s) URL; use "
                "`https://api.github.com` or `https://HOST/api/v3` (GitHub Enterprise)."
            )
        if parts.username or parts.password:
            raise ConfigurationError(
                f"GitHubRepository: api_url {redact_url(value)!r} carries credentials; put "
                "the token in the field `token`."
            )
        return value

    @field_validator("clone_url")
    @classmethod
    def _check_clone_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        if "://" in value:
            parts = urlsplit(value)
            if parts.password or (parts.username and parts.scheme.lower() in ("http", "https")):
                raise ConfigurationError(
                    f"GitHubRepository: clone_url {redact_url(value)!r} carries credentials: "
                    "they would reach argv and logs. Put the token in the field `token`."
                )
        return value

    @field_validator("response_cache_block")
    @classmethod
    def _check_cache_block(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        if not _BLOCK_NAME_RE.match(value):
            raise ConfigurationError(
                f"GitHubRepository: response_cache_block {value!r} is not a block document "
                "name (lowercase letters, digits and dashes)."
            )
        return value

    # ----------------------------------------------------------------- naming
    @property
    def full_name(self) -> str:
        """``owner/repo``."""
        return f"{self.owner}/{self.repo}"

    @property
    def display_name(self) -> str:
        name = getattr(self, "_block_document_name", None)
        return name or self.full_name

    @property
    def _repo_path(self) -> str:
        return f"/repos/{quote(self.owner, safe='')}/{quote(self.repo, safe='')}"

    def get_clone_url(self) -> str:
        """``clone_url``, or the one derived from ``api_url`` (``https://github.com/o/r.git``;
        ``https://HOST/o/r.git`` for GitHub Enterprise Server)."""
        return self.clone_url or self.github_clone_url()

    def github_clone_url(self) -> str:
        """The clone URL GitHub itself gives the repository (what its webhooks carry as
        ``repository.clone_url``), derived from ``api_url``; ``clone_url`` (a mirror, a
        local copy) does not change it. Events name the repository by this URL, so a
        watcher's and a webhook's events about one pull request are the same event."""
        parts = urlsplit(self.api_url)
        host = parts.netloc
        if (parts.hostname or "").lower() == "api.github.com":
            return f"https://github.com/{self.owner}/{self.repo}.git"
        return f"{parts.scheme}://{host}/{self.owner}/{self.repo}.git"

    # ----------------------------------------------------------------- secrets
    def _token(self) -> str | None:
        if self.token is None:
            return None
        return self.token.get_secret_value().strip() or None

    def _secrets(self) -> list[str]:
        token = self._token()
        if not token:
            return []
        return [token, quote(token, safe=""), f"Bearer {token}"]

    def git_auth_env(self) -> tuple[dict[str, str], list[str]]:
        """Environment for our own git commands (``_git.auth_env``: the token as an
        ``http.extraHeader`` through ``GIT_CONFIG_*``, never in a URL or argv) and the
        values to mask in their output. Pass both to ``run_process(env=, secrets=)``."""
        return auth_env(self._token())

    def format_git_credentials(self, url: str) -> str:
        """The URL with the token embedded, for Prefect's ``GitRepository`` (the
        ``git_clone`` pull step calls ``credentials.format_git_credentials(url)`` on a
        credentials block that has it): ``https://x-access-token:TOKEN@host/o/r.git``,
        which works for classic, fine-grained and GitHub App installation tokens.

        The URL is returned unchanged without a token, for a non-https URL (a local path,
        ssh), and for a host other than this repository's (the token is not handed to
        another server).
        """
        token = self._token()
        parts = urlsplit(url)
        if not token or parts.scheme.lower() != "https" or not parts.hostname:
            return url
        host = parts.hostname.lower() + (f":{parts.port}" if parts.port else "")
        if host != self._git_host():
            default_logger().warning(
                "GitHubRepository %r: not adding the token to %s: its host is not %s.",
                self.display_name,
                redact_url(url),
                self._git_host(),
            )
            return url
        netloc = f"x-access-token:{quote(token, safe='')}@{host}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))

    def _git_host(self) -> str:
        clone = urlsplit(self.get_clone_url())
        if clone.hostname:
            return clone.hostname.lower() + (f":{clone.port}" if clone.port else "")
        api = urlsplit(self.api_url)
        if (api.hostname or "").lower() == "api.github.com":
            return "github.com"
        return (api.hostname or "").lower() + (f":{api.port}" if api.port else "")

    # ----------------------------------------------------------------- response cache
    @property
    def response_cache(self) -> ResponseCache:
        """The cache of conditional requests (loaded from ``response_cache_block`` on
        first use)."""
        if self._cache is None:
            cache = MemoryResponseCache(max_entries=DEFAULT_CACHE_ENTRIES)
            if self.response_cache_block:
                stored = self._load_cache_document()
                if stored is not None:
                    cache.max_entries = stored.max_entries
                    cache.merge(stored.entries, mark_dirty=False)
            self._cache = cache
        return self._cache

    def use_response_cache(self, cache: ResponseCache) -> None:
        """Plug in another cache (any object with ``get(key)`` and ``put(key, entry)``).
        Only a ``MemoryResponseCache`` is persisted to ``response_cache_block``."""
        self._cache = cache

    def _load_cache_document(self) -> GitHubResponseCache | None:
        name = self.response_cache_block
        assert name
        try:
            return GitHubResponseCache.load(name, _sync=True)
        except ValueError as exc:
            if "Unable to find block document" not in str(exc):
                self._warn_cache(f"could not read response cache {name!r}: {exc}")
            return None
        except Exception as exc:
            self._warn_cache(f"could not read response cache {name!r}: {exc}")
            return None

    def save_response_cache(self) -> bool:
        """Persist the cache to ``response_cache_block`` now (merged with what is stored:
        the newer entry wins). Called after every operation that changed the cache; a
        failure is logged, never raised (the cache only saves requests). Returns True when
        something was written."""
        name = self.response_cache_block
        cache = self._cache
        if not name or not isinstance(cache, MemoryResponseCache) or not cache.dirty:
            return False
        try:
            stored = self._load_cache_document()
            if stored is not None:
                cache.merge(stored.entries, mark_dirty=False)
            GitHubResponseCache(entries=cache.snapshot(), max_entries=cache.max_entries).save(
                name, overwrite=True, _sync=True
            )
        except Exception as exc:
            self._warn_cache(f"could not save response cache {name!r}: {exc}")
            return False
        cache.mark_clean()
        return True

    def _warn_cache(self, message: str) -> None:
        default_logger().warning(
            "GitHubRepository %r: %s; the next requests may download again what they "
            "could have had as 304 Not Modified.",
            self.display_name,
            Redactor(self._secrets())(message),
        )

    # ----------------------------------------------------------------- HTTP
    def _budget(self) -> WaitBudget:
        return WaitBudget(self.max_rate_limit_wait)

    @contextmanager
    def _session(self) -> Iterator[HttpClient]:
        headers = {"Accept": MEDIA_TYPE, "X-GitHub-Api-Version": API_VERSION}
        token = self._token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        client = HttpClient(
            base_url=self.api_url,
            service="GitHub",
            headers=headers,
            secrets=self._secrets(),
            timeout=self.timeout,
            max_retries=self.max_retries,
            retry_backoff=self.retry_backoff,
            max_rate_limit_wait=self.max_rate_limit_wait,
            rate_limit_policy=GitHubRateLimitPolicy(),
            cache=self.response_cache,
            error_class=GitHubError,
            describe_error=self._describe_error,
        )
        try:
            with client:
                yield client
        finally:
            self.save_response_cache()

    def _describe_error(self, result: HttpResult, what: str) -> GitHubError:
        status = result.status
        message = result.service_message()
        data = result.data if isinstance(result.data, dict) else {}
        errors = data.get("errors") if isinstance(data.get("errors"), list) else []
        name = self.display_name
        said = f"{status} {message}" if message else f"HTTP {status}"
        if status == 401:
            if self._token():
                text = (
                    f"GitHubRepository {name!r}: GitHub answered {said} to {what}: bad "
                    f"credentials: check the token of block {name!r} (field `token`: it may "
                    "be expired, revoked or mistyped)."
                )
            else:
                text = (
                    f"GitHubRepository {name!r}: GitHub answered {said} to {what}: it needs "
                    f"authentication: set the field `token` of block {name!r}."
                )
        elif status == 403:
            text = (
                f"GitHubRepository {name!r}: GitHub answered {said} to {what}: the token of "
                f"block {name!r} is not allowed to do this; {_REQUIRED_PERMISSIONS}."
            )
        elif status == 404:
            text = (
                f"GitHubRepository {name!r}: GitHub answered 404 Not Found to {what}: check "
                f"the fields `owner` ({self.owner!r}) and `repo` ({self.repo!r}) and the "
                "number asked for. GitHub also answers 404 when the repository is private "
                f"and the token cannot see it (no `token`, or a token without access to "
                f"{self.full_name})."
            )
        elif status == 422:
            details = "; ".join(_format_error(e) for e in errors[:10])
            text = f"GitHubRepository {name!r}: GitHub rejected {what} ({said})"
            if details:
                text += f": {details}"
            text += "."
        else:
            text = f"GitHubRepository {name!r}: GitHub answered {said} to {what}."
        return GitHubError(
            Redactor(self._secrets())(text),
            status=status,
            method=result.method,
            url=result.url,
            service_message=message,
            errors=errors,
        )

    # ----------------------------------------------------------------- pull requests
    def list_open_pull_requests(self, base: str | None = None) -> list[PullRequest]:
        """Every open pull request (into ``base`` when given), newest first:
        ``GET /repos/{owner}/{repo}/pulls?state=open&per_page=100`` and each
        ``rel="next"`` page, every page conditional. A page that fails (after the
        retries) raises :class:`GitHubError`: never a partial list."""
        what = f"the open pull requests of {self.full_name}"
        if base:
            what += f" into {base!r}"
        found: dict[int, PullRequest] = {}
        with self._session() as http:
            pages = http.paginate(
                f"{self._repo_path}/pulls",
                params={"state": "open", "per_page": PULLS_PER_PAGE, "base": base or None},
                reduce=_reduce_pulls,
                shape="pulls.v1",
                budget=self._budget(),
                what=what,
            )
            for page in pages:
                for item in page.data or []:
                    pr = PullRequest.model_validate(item)
                    found.setdefault(pr.number, pr)  # a PR shifted across pages: once
        return list(found.values())

    def get_pull_request(self, number: int) -> PullRequest:
        """One pull request, whatever its state (``GET /repos/{owner}/{repo}/pulls/{n}``):
        the watcher confirms with it that a pull request gone from the open list is closed
        or merged."""
        number = _check_number(number)
        with self._session() as http:
            result = http.request(
                "GET",
                f"{self._repo_path}/pulls/{number}",
                reduce=_reduce_pull,
                shape="pull.v1",
                budget=self._budget(),
                what=f"pull request #{number} of {self.full_name}",
            )
        return PullRequest.model_validate(result.data)

    # ----------------------------------------------------------------- statuses
    def set_commit_status(
        self,
        sha: str,
        state: str,
        context: str,
        description: str | None,
        target_url: str | None = None,
    ) -> CommitStatus:
        """``POST /repos/{owner}/{repo}/statuses/{sha}``: ``state`` is pending, success,
        failure or error; ``context`` names the check (one status per context is shown);
        ``description`` is cut to GitHub's 140 characters; ``target_url`` is the link the
        check shows (e.g. the environment or the flow run)."""
        if not isinstance(sha, str) or not _SHA_RE.match(sha):
            raise ValueError(f"sha {sha!r} is not a full commit SHA (40 or 64 hex digits)")
        if state not in STATUS_STATES:
            raise ValueError(f"state {state!r} must be one of {', '.join(STATUS_STATES)}")
        context = (context or "").strip()
        if not context:
            raise ValueError("context must not be empty (e.g. 'prefect-stacks/environment')")
        if target_url is not None and not target_url.lower().startswith(("https://", "http://")):
            raise ValueError(f"target_url {target_url!r} must be an http(s) URL")
        body: dict[str, Any] = {"state": state, "context": context}
        clipped = clip_description(description)
        if clipped:
            body["description"] = clipped
        if target_url:
            body["target_url"] = target_url
        with self._session() as http:
            result = http.request(
                "POST",
                f"{self._repo_path}/statuses/{sha.lower()}",
                json_body=body,
                idempotent=True,  # posting the same status twice is harmless
                budget=self._budget(),
                what=f"commit status {context!r} on {sha[:12]} of {self.full_name}",
            )
        data = result.data if isinstance(result.data, dict) else {}
        return CommitStatus(
            id=data.get("id") or 0,
            state=data.get("state") or state,
            context=data.get("context") or context,
            description=data.get("description", clipped),
            target_url=data.get("target_url", target_url),
            created_at=data.get("created_at"),
            creator=_login(data.get("creator")),
        )

    # ----------------------------------------------------------------- comments
    def upsert_sticky_comment(self, number: int, marker: str, body: str) -> Comment:
        """One comment per pull request and ``marker``, identified by the hidden first line
        ``<!-- prefect-stacks:{marker} -->``: found by listing the comments (every page,
        conditionally), updated (``PATCH``) only if its body changed, else created
        (``POST``). A create whose answer is lost (connection dropped, 5xx) is never simply
        repeated: the comments are listed again first. ``body`` is cut to GitHub's 65536
        characters, marker line included."""
        number = _check_number(number)
        full = sticky_body(marker, body)
        tag = _first_line(full)
        digest = _digest(full)
        where = f"pull request #{number} of {self.full_name}"
        attempted_create = False
        with self._session() as http:
            budget = self._budget()
            for attempt in range(self.max_retries + 1):
                existing = self._find_sticky(http, number, tag, budget)
                if existing is not None:
                    if existing["sha256"] == digest:
                        return Comment(
                            id=existing["id"],
                            html_url=existing.get("html_url") or "",
                            author=existing.get("author"),
                            created_at=existing.get("created_at"),
                            updated_at=existing.get("updated_at"),
                            body=full,
                            action="created" if attempted_create else "unchanged",
                        )
                    try:
                        result = http.request(
                            "PATCH",
                            f"{self._repo_path}/issues/comments/{existing['id']}",
                            json_body={"body": full},
                            budget=budget,
                            what=f"updating comment {existing['id']} ({marker!r}) on {where}",
                        )
                    except GitHubError as exc:
                        # deleted since it was listed: list again (then create it)
                        if exc.status != 404 or attempt >= self.max_retries:
                            raise
                        continue
                    return _comment(result.data, full, "updated")
                try:
                    result = http.request(
                        "POST",
                        f"{self._repo_path}/issues/{number}/comments",
                        json_body={"body": full},
                        idempotent=False,
                        budget=budget,
                        what=f"creating the {marker!r} comment on {where}",
                    )
                except GitHubError as exc:
                    if not exc.ambiguous or attempt >= self.max_retries:
                        raise
                    attempted_create = True
                    default_logger().warning(
                        "GitHubRepository %r: %s Looking at the comments again before "
                        "retrying, so as not to post it twice.",
                        self.display_name,
                        exc,
                    )
                    http.pause_before_retry(attempt)
                    continue
                return _comment(result.data, full, "created")
        raise AssertionError("unreachable")  # pragma: no cover

    def _find_sticky(
        self, http: HttpClient, number: int, tag: str, budget: WaitBudget
    ) -> dict[str, Any] | None:
        """The oldest of our comments on the pull request whose first line is ``tag``."""
        matches = []
        for page in http.paginate(
            f"{self._repo_path}/issues/{number}/comments",
            params={"per_page": COMMENTS_PER_PAGE},
            reduce=_reduce_sticky_comments,
            shape="sticky.v1",
            budget=budget,
            what=f"the comments of pull request #{number} of {self.full_name}",
        ):
            matches.extend(c for c in page.data or [] if c.get("marker") == tag)
        if not matches:
            return None
        return min(matches, key=lambda c: int(c["id"]))

    # ----------------------------------------------------------------- releases
    def list_releases(self, per_page: int = 30) -> list[Release]:
        """The newest ``per_page`` (1-100) releases, newest first
        (``GET /repos/{owner}/{repo}/releases``, one page, conditional). Drafts are
        listed only for a token with push access."""
        if isinstance(per_page, bool) or not isinstance(per_page, int) or not 1 <= per_page <= 100:
            raise ValueError(f"per_page {per_page!r} must be an integer from 1 to 100")
        with self._session() as http:
            result = http.request(
                "GET",
                f"{self._repo_path}/releases",
                params={"per_page": per_page},
                reduce=_reduce_releases,
                shape="releases.v1",
                budget=self._budget(),
                what=f"the releases of {self.full_name}",
            )
        return [Release.model_validate(item) for item in result.data or []]


def _check_number(number: int) -> int:
    if isinstance(number, bool) or not isinstance(number, int) or number <= 0:
        raise ValueError(f"pull request number {number!r} must be a positive integer")
    return number


def _comment(data: Any, full: str, action: Literal["created", "updated"]) -> Comment:
    data = data if isinstance(data, dict) else {}
    return Comment(
        id=data.get("id") or 0,
        html_url=data.get("html_url") or "",
        author=_login(data.get("user")),
        created_at=data.get("created_at"),
        updated_at=data.get("updated_at"),
        body=data.get("body") if isinstance(data.get("body"), str) else full,
        action=action,
    )


def _format_error(error: Any) -> str:
    """One entry of GitHub's 422 ``errors``: a string, or {resource, field, code, message}."""
    if isinstance(error, str):
        return error
    if not isinstance(error, dict):
        return repr(error)
    if error.get("message"):
        where = ".".join(str(error[k]) for k in ("resource", "field") if error.get(k))
        return f"{where}: {error['message']}" if where else str(error["message"])
    parts = [f"{k}={error[k]}" for k in ("resource", "field", "code", "value") if k in error]
    return ", ".join(parts) or repr(error)


__all__ = [
    "API_VERSION",
    "Comment",
    "CommitStatus",
    "GitHubError",
    "GitHubRateLimitPolicy",
    "GitHubRepository",
    "GitHubResponseCache",
    "PullRequest",
    "Release",
    "clip_description",
    "marker_tag",
    "sticky_body",
]
