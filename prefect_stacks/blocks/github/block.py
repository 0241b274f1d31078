"""The ``GitHubRepository`` block: one repository on github.com or a GitHub Enterprise
Server, and the token to reach it. Configuration (validated), git credentials, the
response cache it keeps, and :meth:`GitHubRepository.get_client`, the
:class:`~prefect_stacks.blocks.github.api.GitHubClient` that makes the REST calls; the
block's own REST methods delegate to it.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import ConfigDict, Field, PrivateAttr, SecretStr, field_validator

from prefect_stacks._internal.git import auth_env, redact_url
from prefect_stacks._internal.http import ResponseCache
from prefect_stacks._internal.process import Redactor, default_logger
from prefect_stacks.blocks.base import StacksBlock
from prefect_stacks.blocks.github.api import GitHubClient, token_secrets, token_value, web_root
from prefect_stacks.blocks.github.cache import open_response_cache, save_response_cache
from prefect_stacks.blocks.github.models import Comment, CommitStatus, PullRequest, Release
from prefect_stacks.exceptions import ConfigurationError

GITHUB_API_URL = "https://api.github.com"

# Logins: letters, digits and hyphens (underscores in Enterprise Managed Users' handles);
# GitHub caps them at 39 characters, EMU handles add a suffix.
_OWNER_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_-]{0,98}[A-Za-z0-9_])?$")
_REPO_RE = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
_BLOCK_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,99}$")


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

    def get_clone_url(self) -> str:
        """``clone_url``, or the one derived from ``api_url`` (``https://github.com/o/r.git``;
        ``https://HOST/o/r.git`` for GitHub Enterprise Server)."""
        return self.clone_url or self.github_clone_url()

    def github_clone_url(self) -> str:
        """The clone URL GitHub itself gives the repository (what its webhooks carry as
        ``repository.clone_url``), derived from ``api_url``; ``clone_url`` (a mirror, a
        local copy) does not change it. Events name the repository by this URL, so a
        watcher's and a webhook's events about one pull request are the same event."""
        return f"{web_root(self.api_url)}/{self.owner}/{self.repo}.git"

    # ----------------------------------------------------------------- secrets
    def git_token(self) -> str | None:
        """The token as text, for a git clone (``_internal.git.clone(token=...)`` sends it
        as a header); None when the repository is read anonymously."""
        return token_value(self.token)

    def _secrets(self) -> list[str]:
        return token_secrets(self.git_token())

    def git_auth_env(self) -> tuple[dict[str, str], list[str]]:
        """Environment for our own git commands (``_internal.git.auth_env``: the token as an
        ``http.extraHeader`` through ``GIT_CONFIG_*``, never in a URL or argv) and the
        values to mask in their output. Pass both to ``run_process(env=, secrets=)``."""
        return auth_env(self.git_token())

    def format_git_credentials(self, url: str) -> str:
        """The URL with the token embedded, for Prefect's ``GitRepository`` (the
        ``git_clone`` pull step calls ``credentials.format_git_credentials(url)`` on a
        credentials block that has it): ``https://x-access-token:TOKEN@host/o/r.git``,
        which works for classic, fine-grained and GitHub App installation tokens.

        The URL is returned unchanged without a token, for a non-https URL (a local path,
        ssh), and for a host other than this repository's (the token is not handed to
        another server).
        """
        token = self.git_token()
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
            self._cache = open_response_cache(self.response_cache_block, self._warn_cache)
        return self._cache

    def use_response_cache(self, cache: ResponseCache) -> None:
        """Plug in another cache (any object with ``get(key)`` and ``put(key, entry)``).
        Only a ``MemoryResponseCache`` is persisted to ``response_cache_block``."""
        self._cache = cache

    def save_response_cache(self) -> bool:
        """Persist the cache to ``response_cache_block`` now (merged with what is stored:
        the newer entry wins). Called after every operation that changed the cache; a
        failure is logged, never raised (the cache only saves requests). Returns True when
        something was written."""
        return save_response_cache(self.response_cache_block, self._cache, self._warn_cache)

    def _warn_cache(self, message: str) -> None:
        default_logger().warning(
            "GitHubRepository %r: %s; the next requests may download again what they "
            "could have had as 304 Not Modified.",
            self.display_name,
            Redactor(self._secrets())(message),
        )

    # ----------------------------------------------------------------- REST API
    def get_client(self) -> GitHubClient:
        """The client of GitHub's REST API for this repository and configuration; its
        sessions use :attr:`response_cache` and save it when they end."""
        return GitHubClient(
            owner=self.owner,
            repo=self.repo,
            display_name=self.display_name,
            api_url=self.api_url,
            token=self.token,
            timeout=self.timeout,
            max_retries=self.max_retries,
            retry_backoff=self.retry_backoff,
            max_rate_limit_wait=self.max_rate_limit_wait,
            cache=self.response_cache,
            on_session_end=self.save_response_cache,
        )

    def list_open_pull_requests(self, base: str | None = None) -> list[PullRequest]:
        """Every open pull request (into ``base`` when given), newest first; never a
        partial list (:meth:`GitHubClient.list_open_pull_requests`)."""
        return self.get_client().list_open_pull_requests(base)

    def get_pull_request(self, number: int) -> PullRequest:
        """One pull request, whatever its state (:meth:`GitHubClient.get_pull_request`)."""
        return self.get_client().get_pull_request(number)

    def set_commit_status(
        self,
        sha: str,
        state: str,
        context: str,
        description: str | None,
        target_url: str | None = None,
    ) -> CommitStatus:
        """Post the commit status ``context`` on ``sha``
        (:meth:`GitHubClient.set_commit_status`)."""
        return self.get_client().set_commit_status(sha, state, context, description, target_url)

    def upsert_sticky_comment(self, number: int, marker: str, body: str) -> Comment:
        """Create or update the one comment per pull request and ``marker``
        (:meth:`GitHubClient.upsert_sticky_comment`)."""
        return self.get_client().upsert_sticky_comment(number, marker, body)

    def list_releases(self, per_page: int = 30) -> list[Release]:
        """The newest ``per_page`` releases (:meth:`GitHubClient.list_releases`)."""
        return self.get_client().list_releases(per_page)


__all__ = ["GITHUB_API_URL", "GitHubRepository"]
