"""GitHub's REST API (version ``2022-11-28``) for one repository: :class:`GitHubClient`,
which the ``GitHubRepository`` block hands back (``get_client()``), with the calls the
pull-request watcher and the feature-environment flow need (pull requests, commit
statuses, the sticky pull-request comment, releases).

Every call opens one :meth:`GitHubClient.session` of the HTTP helper
(:mod:`prefect_stacks._internal.http`): conditional GETs through the response cache,
rate limits waited out (GitHub's rules: ``GitHubRateLimitPolicy``) within one budget per
operation, 5xx and connection errors retried, 4xx answers turned into a ``GitHubError``
that says what to fix; the cache is saved (``on_session_end``) when the session ends.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, urlsplit

from pydantic import SecretStr

from prefect_stacks._internal.http import (
    GitHubRateLimitPolicy,
    HttpClient,
    HttpResult,
    ResponseCache,
    WaitBudget,
)
from prefect_stacks._internal.process import default_logger
from prefect_stacks.blocks.github.errors import describe_error
from prefect_stacks.blocks.github.models import (
    STATUS_STATES,
    Comment,
    CommitStatus,
    PullRequest,
    Release,
    clip_description,
    comment_from_api,
    digest,
    first_line,
    listed_comment,
    login_of,
    reduce_pull,
    reduce_pulls,
    reduce_sticky_comments,
    sticky_body,
)
from prefect_stacks.blocks.github.releases import Published, Source, list_published
from prefect_stacks.exceptions import GitHubError

API_VERSION = "2022-11-28"
MEDIA_TYPE = "application/vnd.github+json"
PULLS_PER_PAGE = 100
COMMENTS_PER_PAGE = 100

_SHA_RE = re.compile(r"^(?:[0-9a-fA-F]{40}|[0-9a-fA-F]{64})$")


def token_value(token: SecretStr | None) -> str | None:
    """The token, unwrapped at the point of use (None when empty)."""
    if token is None:
        return None
    return token.get_secret_value().strip() or None


def token_secrets(token: str | None) -> list[str]:
    """Every spelling of the token that must be masked in messages."""
    if not token:
        return []
    return [token, quote(token, safe=""), f"Bearer {token}"]


class GitHubClient:
    """The REST calls of one repository, for one configuration (built by
    ``GitHubRepository.get_client()``; cheap: each call opens its own session).

    Args:
        owner, repo: the repository.
        display_name: how messages name the block (its document name, else owner/repo).
        api_url: the REST API root.
        token: the token (unwrapped only to build the request headers).
        timeout, max_retries, retry_backoff, max_rate_limit_wait: see the block's fields.
        cache: the response cache of conditional requests.
        on_session_end: called after every session (the block saves the cache there).
    """

    def __init__(
        self,
        *,
        owner: str,
        repo: str,
        display_name: str,
        api_url: str,
        token: SecretStr | None,
        timeout: float,
        max_retries: int,
        retry_backoff: float,
        max_rate_limit_wait: float,
        cache: ResponseCache | None,
        on_session_end: Callable[[], Any] | None = None,
    ) -> None:
        self.owner = owner
        self.repo = repo
        self.display_name = display_name
        self.api_url = api_url
        self._token = token
        self.timeout = timeout
        self.max_retries = max_retries
        self.retry_backoff = retry_backoff
        self.max_rate_limit_wait = max_rate_limit_wait
        self.cache = cache
        self.on_session_end = on_session_end

    def __repr__(self) -> str:  # never the token
        return f"GitHubClient({self.full_name}, {self.api_url})"

    @property
    def full_name(self) -> str:
        """``owner/repo``."""
        return f"{self.owner}/{self.repo}"

    @property
    def _repo_path(self) -> str:
        return f"/repos/{quote(self.owner, safe='')}/{quote(self.repo, safe='')}"

    def _budget(self) -> WaitBudget:
        return WaitBudget(self.max_rate_limit_wait)

    # ----------------------------------------------------------------- HTTP
    @contextmanager
    def session(self) -> Iterator[HttpClient]:
        """The HTTP helper configured for GitHub (headers, token, retries, rate-limit
        policy, cache, error messages); ``on_session_end`` runs when it closes."""
        headers = {"Accept": MEDIA_TYPE, "X-GitHub-Api-Version": API_VERSION}
        token = token_value(self._token)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        client = HttpClient(
            base_url=self.api_url,
            service="GitHub",
            headers=headers,
            secrets=token_secrets(token),
            timeout=self.timeout,
            max_retries=self.max_retries,
            retry_backoff=self.retry_backoff,
            max_rate_limit_wait=self.max_rate_limit_wait,
            rate_limit_policy=GitHubRateLimitPolicy(),
            cache=self.cache,
            error_class=GitHubError,
            describe_error=self._describe_error,
        )
        try:
            with client:
                yield client
        finally:
            if self.on_session_end is not None:
                self.on_session_end()

    def _describe_error(self, result: HttpResult, what: str) -> GitHubError:
        token = token_value(self._token)
        return describe_error(
            result,
            what,
            block=self.display_name,
            owner=self.owner,
            repo=self.repo,
            has_token=bool(token),
            secrets=token_secrets(token),
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
        with self.session() as http:
            pages = http.paginate(
                f"{self._repo_path}/pulls",
                params={"state": "open", "per_page": PULLS_PER_PAGE, "base": base or None},
                reduce=reduce_pulls,
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
        number = check_number(number)
        with self.session() as http:
            result = http.request(
                "GET",
                f"{self._repo_path}/pulls/{number}",
                reduce=reduce_pull,
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
        with self.session() as http:
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
            creator=login_of(data.get("creator")),
        )

    # ----------------------------------------------------------------- comments
    def upsert_sticky_comment(self, number: int, marker: str, body: str) -> Comment:
        """One comment per pull request and ``marker``, identified by the hidden first line
        ``<!-- prefect-stacks:{marker} -->``: found by listing the comments (every page,
        conditionally), updated (``PATCH``) only if its body changed, else created
        (``POST``). A create whose answer is lost (connection dropped, 5xx) is never simply
        repeated: the comments are listed again first. ``body`` is cut to GitHub's 65536
        characters, marker line included."""
        number = check_number(number)
        full = sticky_body(marker, body)
        tag = first_line(full)
        wanted = digest(full)
        where = f"pull request #{number} of {self.full_name}"
        attempted_create = False
        with self.session() as http:
            budget = self._budget()
            for attempt in range(self.max_retries + 1):
                last = attempt >= self.max_retries
                existing = self._find_sticky(http, number, tag, budget)
                if existing is not None and existing["sha256"] == wanted:
                    action = "created" if attempted_create else "unchanged"
                    return listed_comment(existing, full, action)
                if existing is not None:
                    what = f"updating comment {existing['id']} ({marker!r}) on {where}"
                    try:
                        return self._update_comment(http, existing["id"], full, what, budget)
                    except GitHubError as exc:
                        # deleted since it was listed: list again (then create it)
                        if exc.status != 404 or last:
                            raise
                        continue
                try:
                    what = f"creating the {marker!r} comment on {where}"
                    return self._create_comment(http, number, full, what, budget)
                except GitHubError as exc:
                    if not exc.ambiguous or last:
                        raise
                    attempted_create = True
                    default_logger().warning(
                        "GitHubRepository %r: %s Looking at the comments again before "
                        "retrying, so as not to post it twice.",
                        self.display_name,
                        exc,
                    )
                    http.pause_before_retry(attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def _update_comment(
        self, http: HttpClient, comment_id: int, full: str, what: str, budget: WaitBudget
    ) -> Comment:
        result = http.request(
            "PATCH",
            f"{self._repo_path}/issues/comments/{comment_id}",
            json_body={"body": full},
            budget=budget,
            what=what,
        )
        return comment_from_api(result.data, full, "updated")

    def _create_comment(
        self, http: HttpClient, number: int, full: str, what: str, budget: WaitBudget
    ) -> Comment:
        result = http.request(
            "POST",
            f"{self._repo_path}/issues/{number}/comments",
            json_body={"body": full},
            idempotent=False,
            budget=budget,
            what=what,
        )
        return comment_from_api(result.data, full, "created")

    def _find_sticky(
        self, http: HttpClient, number: int, tag: str, budget: WaitBudget
    ) -> dict[str, Any] | None:
        """The oldest of our comments on the pull request whose first line is ``tag``."""
        matches = []
        for page in http.paginate(
            f"{self._repo_path}/issues/{number}/comments",
            params={"per_page": COMMENTS_PER_PAGE},
            reduce=reduce_sticky_comments,
            shape="sticky.v1",
            budget=budget,
            what=f"the comments of pull request #{number} of {self.full_name}",
        ):
            matches.extend(c for c in page.data or [] if c.get("marker") == tag)
        if not matches:
            return None
        return min(matches, key=lambda c: int(c["id"]))

    # ----------------------------------------------------------------- releases
    @property
    def web_url(self) -> str:
        """The web site of :attr:`api_url` (``https://github.com`` for the public API)."""
        return web_root(self.api_url)

    def list_releases(self, per_page: int = 30) -> list[Release]:
        """The newest ``per_page`` (1-100) releases, newest first
        (``GET /repos/{owner}/{repo}/releases``, one page, conditional). Drafts are
        listed only for a token with push access."""
        return list_published(self, "releases", per_page).releases

    def list_published(self, source: Source = "releases", per_page: int = 50) -> Published:
        """The newest releases or tags, following a renamed repository
        (:func:`prefect_stacks.blocks.github.releases.list_published`)."""
        return list_published(self, source, per_page)


def web_root(api_url: str) -> str:
    """The web site of a REST API root: ``https://api.github.com`` -> ``https://github.com``;
    ``https://HOST/api/v3`` (GitHub Enterprise Server) -> ``https://HOST``."""
    parts = urlsplit(api_url)
    if (parts.hostname or "").lower() == "api.github.com":
        return "https://github.com"
    return f"{parts.scheme}://{parts.netloc}"


def check_number(number: int) -> int:
    """``number`` if it is a pull request number (a positive integer), else ValueError."""
    if isinstance(number, bool) or not isinstance(number, int) or number <= 0:
        raise ValueError(f"pull request number {number!r} must be a positive integer")
    return number


__all__ = [
    "API_VERSION",
    "COMMENTS_PER_PAGE",
    "MEDIA_TYPE",
    "PULLS_PER_PAGE",
    "GitHubClient",
    "check_number",
    "token_secrets",
    "token_value",
    "web_root",
]
