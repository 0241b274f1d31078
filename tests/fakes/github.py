"""A contract fake of GitHub's REST API (the parts prefect-stacks uses), as a real HTTP
server on 127.0.0.1.

It follows GitHub's public contract (paths, headers, status codes, pagination, ETag/304,
rate-limit headers, error bodies), so the code under test is the production code pointed
at another base URL. Because it is a real socket server (HTTP/1.1, keep-alive), a flow
running in another process (a Prefect worker's subprocess) can call it too::

    with FakeGitHub(tokens={"ghp_test": "bot"}, repos=["acme/shop"]) as gh:
        number = gh.open_pull_request("Add cart", head="feat/cart")
        repo = GitHubRepository(owner="acme", repo="shop", token="ghp_test", api_url=gh.api_url)
        assert [pr.number for pr in repo.list_open_pull_requests()] == [number]

Endpoints (``{o}/{r}`` or, as GitHub's own ``Link`` headers use, ``/repositories/{id}``):

* ``GET /repos/{o}/{r}`` the repository;
* ``GET /repos/{o}/{r}/pulls`` (``state`` open|closed|all, ``base``, ``head`` =
  ``owner:ref``, ``sort`` created|updated, ``direction``, ``per_page`` default 30 max 100,
  ``page``), newest first by default: numbers grow with creation, so "created desc" is
  "number desc";
* ``GET /repos/{o}/{r}/pulls/{n}`` (with ``merged``, which listings lack, as on GitHub);
* ``POST /repos/{o}/{r}/statuses/{sha}`` -> 201; 422 for a bad ``state``, a description over
  140 characters, or an unknown commit; ``GET /repos/{o}/{r}/commits/{ref}/status``
  (combined: the latest status per context) and ``.../commits/{ref}/statuses``; ``ref`` is
  a SHA or a branch that a pull request heads;
* ``GET|POST /repos/{o}/{r}/issues/{n}/comments`` (oldest first, paginated; 422 for an
  empty body or one over 65536 characters), ``GET|PATCH /repos/{o}/{r}/issues/comments/{id}``;
* ``GET /repos/{o}/{r}/releases`` (newest first, paginated; drafts only for tokens with
  push access, i.e. not the read-only ones); :meth:`load_releases` fills it from a file of
  release payloads in GitHub's shape (``tests/data/github/``);
* ``GET /repos/{o}/{r}/tags`` (paginated; items ``name``, ``commit`` {``sha``, ``url``},
  ``zipball_url``, ``tarball_url``, ``node_id``), in the order the tags were added, newest
  first: GitHub does not document the order of this listing, so a client must not rely on
  it (sort by version, or read releases, instead);
* ``GET /rate_limit`` (never counted, as on GitHub).

Contract details:

* ``Link`` headers exactly in GitHub's format and order (``rel="prev"``, ``"next"``,
  ``"last"``, ``"first"``), absolute ``/repositories/{id}/...`` URLs keeping the query, with
  ``page`` last; omitted when everything fits one page;
* a strong ``ETag`` on every 200 GET, derived from the body; ``If-None-Match`` matching it
  -> ``304`` with no body, and the rate limit is NOT decremented;
* ``X-RateLimit-Limit/Remaining/Used/Reset/Resource`` on every answer; each other answer
  (2xx, 3xx, 4xx) counts. Per token (5000 an hour) and for anonymous callers (60);
  exhausted -> ``403`` ``{"message": "API rate limit exceeded for ..."}`` with remaining 0
  until the reset time, then the window starts again;
* ``Authorization: Bearer <t>`` or ``token <t>``: an unknown token is ``401 {"message":
  "Bad credentials"}``; a private repository without access is ``404`` (as on GitHub); a
  write with a read-only token is ``403 "Resource not accessible by personal access
  token"``; a request without ``User-Agent`` is ``403``, as on GitHub;
* error bodies ``{"message", "documentation_url", "status"}``, 422 with GitHub's ``errors``;
* a renamed or transferred repository (:meth:`rename_repository`): every request to the old
  ``/repos/{old}/...`` answers ``301 Moved Permanently`` (a ``GET``; other methods ``307``,
  as GitHub answers writes) with ``Location: {base}/repositories/{id}/...`` (the same rest
  of the path, the query kept) and GitHub's body ``{"message": "Moved Permanently", "url",
  "documentation_url"}``; it counts against the rate limit, as on GitHub. The new name and
  ``/repositories/{id}`` answer as usual (``GET /repositories/{id}`` is the repository, with
  its new ``full_name``). A private repository the caller cannot see stays ``404``;
* a deleted repository (:meth:`delete_repository`): every request to it, by name or id,
  answers ``404 Not Found``.

Failure switches, each for the next N matching requests (optionally only for a path prefix
of the canonical ``/repos/{o}/{r}/...`` path, and a method): :meth:`fail` (an HTTP error,
500 by default), :meth:`secondary_limit` (403 + ``Retry-After`` and GitHub's
secondary-limit message), :meth:`drop` (the connection is closed without an answer; with
``after_processing=True`` the request is carried out first: an answer lost on the way),
and :meth:`exhaust_rate_limit` (the primary limit, until a reset time), plus
:meth:`empty_listing_with_error`: the open-pulls listing answers ``200 []`` on its first
page, with a ``Link`` to a page 2 that then answers 502 -- the shape of a listing taken
while the API is failing, which a client must not read as "no open pull requests".
Faulted answers do not count against the primary rate limit.

Everything the fake answered is logged (:attr:`requests`, :meth:`count`,
:meth:`counts_by_path`, :meth:`counts_by_status`), without tokens.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import math
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from tests.fakes._server import FakeServer

DOCS = "https://docs.github.com/rest"
RATE_DOCS = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
SECONDARY_DOCS = (
    "https://docs.github.com/free-pro-team@latest/rest/overview/"
    "rate-limits-for-the-rest-api#about-secondary-rate-limits"
)
SUPPORTED_API_VERSIONS = ("2022-11-28", "2026-03-10")
STATUS_STATES = ("error", "failure", "pending", "success")
MAX_STATUS_DESCRIPTION = 140
MAX_COMMENT_BODY = 65536
_HIDDEN_HEADERS = {"authorization", "cookie"}


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _sha(seed: str) -> str:
    return hashlib.sha1(seed.encode()).hexdigest()  # noqa: S324 - a fake commit id


@dataclass
class FakePull:
    number: int
    id: int
    title: str
    body: str
    head_ref: str
    head_sha: str
    head_repo: str | None  # full name; None: a deleted fork
    base_ref: str
    base_sha: str
    draft: bool
    labels: list[str]
    author: str
    state: str = "open"
    merged: bool = False
    merged_at: str | None = None
    closed_at: str | None = None
    merge_commit_sha: str | None = None
    created_at: str = field(default_factory=_now)
    updated_at: str = field(default_factory=_now)


@dataclass
class FakeRepo:
    id: int
    owner: str
    name: str
    private: bool = False
    collaborators: set[str] | None = None  # logins with access to a private repo; None: all
    default_branch: str = "main"
    pulls: dict[int, FakePull] = field(default_factory=dict)
    comments: dict[int, list[int]] = field(default_factory=dict)  # issue number -> ids
    statuses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # sha -> list
    releases: list[dict[str, Any]] = field(default_factory=list)
    branches: dict[str, str] = field(default_factory=dict)  # ref -> sha
    tags: list[tuple[str, str]] = field(default_factory=list)  # (name, sha), oldest first
    commits: set[str] = field(default_factory=set)
    next_number: int = 1

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


@dataclass
class RecordedRequest:
    """A request the fake answered (or dropped)."""

    method: str
    path: str  # canonical: /repos/{o}/{r}/... even when asked as /repositories/{id}/...
    # (a request to a renamed repository's old name keeps that name: it was answered 301)
    raw_path: str
    query: dict[str, str]
    status: int | None  # None when the connection was dropped
    login: str | None  # who the token belongs to (never the token)
    conditional: bool  # If-None-Match was sent
    headers: dict[str, str]  # minus Authorization and Cookie
    at: float = field(default_factory=time.monotonic)


@dataclass
class _Bucket:
    limit: int
    used: int = 0
    reset: int = 0


@dataclass
class _Fault:
    kind: str  # status | secondary | drop | drop_after | empty_first_page | later_page_status
    remaining: int
    arg: Any = None
    path_prefix: str | None = None
    method: str | None = None
    matcher: Callable[[str, str, dict[str, str]], bool] | None = None

    def matches(self, method: str, path: str, query: dict[str, str]) -> bool:
        if self.method and self.method.upper() != method:
            return False
        if self.path_prefix and not path.startswith(self.path_prefix):
            return False
        return self.matcher(method, path, query) if self.matcher else True


class _Answer:
    def __init__(
        self, status: int, body: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        self.status = status
        self.body = body
        self.headers = headers or {}
        self.count = True  # against the primary rate limit


def _error(status: int, message: str, docs: str = DOCS, **extra: Any) -> _Answer:
    body = {"message": message, **extra, "documentation_url": docs, "status": str(status)}
    return _Answer(status, body)


def _not_found(docs: str = DOCS) -> _Answer:
    return _error(404, "Not Found", docs)


def _validation_failed(errors: list[dict[str, Any]], docs: str = DOCS) -> _Answer:
    return _error(422, "Validation Failed", docs, errors=errors)


def _is_pulls_listing(method: str, path: str, query: dict[str, str]) -> bool:
    parts = path.strip("/").split("/")
    return method == "GET" and len(parts) == 4 and parts[0] == "repos" and parts[3] == "pulls"


class FakeGitHub(FakeServer):
    """The fake server. Use it as a context manager, or call :meth:`start`/:meth:`stop`.

    Args:
        tokens: valid tokens: a mapping token -> login, or a list (all one login,
            ``prefect-stacks-bot``).
        read_only_tokens: tokens (also valid) whose writes answer 403.
        repos: repositories to create (``owner/name``), public; the first is the default
            ``repo`` of the control methods.
        rate_limit: requests per hour per token; ``anonymous_rate_limit`` without a token.
    """

    def __init__(
        self,
        tokens: Mapping[str, str] | Iterable[str] = ("ghp_fake_token",),
        *,
        read_only_tokens: Iterable[str] = (),
        repos: Iterable[str] = ("acme/shop",),
        rate_limit: int = 5000,
        anonymous_rate_limit: int = 60,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if isinstance(tokens, Mapping):
            self._tokens = {str(k): str(v) for k, v in tokens.items()}
        else:
            self._tokens = {str(t): "prefect-stacks-bot" for t in tokens}
        self._read_only = set(read_only_tokens)
        for token in self._read_only:
            self._tokens.setdefault(token, "read-only-bot")
        self.rate_limit = rate_limit
        self.anonymous_rate_limit = anonymous_rate_limit
        self._init_server(host, port)
        self._lock = threading.RLock()
        self._repos: dict[str, FakeRepo] = {}
        self._repos_by_id: dict[int, FakeRepo] = {}
        self._moved: dict[str, FakeRepo] = {}  # old full name (lower) -> renamed repository
        self._comments: dict[int, dict[str, Any]] = {}
        self._buckets: dict[str, _Bucket] = {}
        self._user_ids: dict[str, int] = {}
        self._faults: list[_Fault] = []
        self._requests: list[RecordedRequest] = []
        self._seq = 1000
        for full_name in repos:
            self.add_repository(full_name)

    @property
    def api_url(self) -> str:
        """For ``GitHubRepository(api_url=...)`` (the API is at the root, as on api.github.com)."""
        return self.base_url

    # ------------------------------------------------------------------ state control
    def _next_id(self) -> int:
        with self._lock:
            self._seq += 1
            return self._seq

    def _repo(self, repo: str | None) -> FakeRepo:
        with self._lock:
            if repo is None:
                return next(iter(self._repos.values()))
            return self._repos[repo.lower()]

    def _user_id(self, login: str) -> int:
        with self._lock:
            return self._user_ids.setdefault(login, len(self._user_ids) + 1)

    def add_repository(
        self,
        full_name: str,
        *,
        private: bool = False,
        collaborators: Iterable[str] | None = None,
        default_branch: str = "main",
    ) -> FakeRepo:
        owner, _, name = full_name.partition("/")
        with self._lock:
            repo = FakeRepo(
                id=self._next_id(),
                owner=owner,
                name=name,
                private=private,
                collaborators=set(collaborators) if collaborators is not None else None,
                default_branch=default_branch,
            )
            repo.branches[default_branch] = _sha(f"{full_name}:{default_branch}")
            repo.commits.add(repo.branches[default_branch])
            self._repos[full_name.lower()] = repo
            self._repos_by_id[repo.id] = repo
            self._moved.pop(full_name.lower(), None)  # a new repository takes an old name
            return repo

    def rename_repository(self, old_full_name: str, new_full_name: str) -> FakeRepo:
        """Rename (or transfer, when the owner changes) a repository. Afterwards, as on
        GitHub, requests to ``/repos/{old}/...`` answer 301 (307 for writes) to
        ``/repositories/{id}/...``; the new name and the id work. Control methods take the
        new name (the old one is a KeyError, as a helper given a stale name should be)."""
        owner, _, name = new_full_name.partition("/")
        if not owner or not name or "/" in name:
            raise ValueError(f"not an owner/name: {new_full_name!r}")
        old_key, new_key = old_full_name.lower(), new_full_name.lower()
        with self._lock:
            r = self._repos[old_key]
            if new_key != old_key and new_key in self._repos:
                raise ValueError(f"{new_full_name} already exists")
            old_name = r.full_name
            r.owner, r.name = owner, name
            # same position: the first repository stays the default ``repo``
            self._repos = {(new_key if k == old_key else k): v for k, v in self._repos.items()}
            self._moved.pop(new_key, None)  # renamed back onto an old name: no redirect
            if new_key != old_key:
                self._moved[old_key] = r
            for c in self._comments.values():
                if c["repo"] == old_name:
                    c["repo"] = r.full_name
            for other in self._repos.values():
                for pr in other.pulls.values():
                    if pr.head_repo is not None and pr.head_repo.lower() == old_key:
                        pr.head_repo = r.full_name
            return r

    def delete_repository(self, full_name: str) -> None:
        """Delete a repository: every request to it (by name, old name or id) answers 404;
        pull requests elsewhere from it get ``head.repo: null``, as from a deleted fork."""
        key = full_name.lower()
        with self._lock:
            r = self._repos.pop(key)
            self._repos_by_id.pop(r.id, None)
            for old in [k for k, v in self._moved.items() if v is r]:
                del self._moved[old]
            for cid in [i for i, c in self._comments.items() if c["repo"] == r.full_name]:
                del self._comments[cid]
            for other in self._repos.values():
                for pr in other.pulls.values():
                    if pr.head_repo is not None and pr.head_repo.lower() == key:
                        pr.head_repo = None

    def add_tag(self, name: str, sha: str | None = None, *, repo: str | None = None) -> str:
        """A tag on ``sha`` (made up when not given, and made a known commit); returns the
        SHA. Adding an existing name moves the tag: it then lists as the newest."""
        with self._lock:
            r = self._repo(repo)
            sha = sha or _sha(f"{r.full_name}:tag:{name}")
            r.tags = [t for t in r.tags if t[0] != name]
            r.tags.append((name, sha))
            r.commits.add(sha)
            return sha

    def add_commit(self, sha: str, *, repo: str | None = None) -> None:
        """Make ``sha`` a known commit (statuses can only be set on known commits)."""
        with self._lock:
            self._repo(repo).commits.add(sha)

    def open_pull_request(
        self,
        title: str,
        head: str,
        *,
        repo: str | None = None,
        sha: str | None = None,
        base: str = "main",
        draft: bool = False,
        labels: Iterable[str] = (),
        author: str = "octocat",
        body: str = "",
        fork: str | None = None,
        fork_deleted: bool = False,
    ) -> int:
        """Open a pull request from ``head`` (in ``fork``, another repository's full name,
        when given) into ``base``; returns its number."""
        with self._lock:
            r = self._repo(repo)
            number = r.next_number
            r.next_number += 1
            head_sha = sha or _sha(f"{r.full_name}:{head}:{number}:{time.time()}")
            head_repo = None if fork_deleted else (fork or r.full_name)
            base_sha = r.branches.get(base) or _sha(f"{r.full_name}:{base}")
            pr = FakePull(
                number=number,
                id=self._next_id(),
                title=title,
                body=body,
                head_ref=head,
                head_sha=head_sha,
                head_repo=head_repo,
                base_ref=base,
                base_sha=base_sha,
                draft=draft,
                labels=list(labels),
                author=author,
            )
            r.pulls[number] = pr
            r.commits.add(head_sha)
            if head_repo == r.full_name:
                r.branches[head] = head_sha
            return number

    def _pull(self, number: int, repo: str | None) -> tuple[FakeRepo, FakePull]:
        r = self._repo(repo)
        return r, r.pulls[number]

    def push(self, number: int, sha: str | None = None, *, repo: str | None = None) -> str:
        """A new commit on the pull request's head branch; returns its SHA."""
        with self._lock:
            r, pr = self._pull(number, repo)
            pr.head_sha = sha or _sha(f"{r.full_name}:{number}:{pr.head_sha}:{time.time()}")
            pr.updated_at = _now()
            r.commits.add(pr.head_sha)
            if pr.head_repo == r.full_name:
                r.branches[pr.head_ref] = pr.head_sha
            return pr.head_sha

    def update_pull_request(self, number: int, *, repo: str | None = None, **changes: Any) -> None:
        """Change ``title``, ``body``, ``draft``, ``labels`` or ``base_ref``."""
        with self._lock:
            _, pr = self._pull(number, repo)
            for key, value in changes.items():
                if key not in ("title", "body", "draft", "labels", "base_ref"):
                    raise TypeError(f"cannot change {key!r}")
                setattr(pr, key, list(value) if key == "labels" else value)
            pr.updated_at = _now()

    def merge(self, number: int, *, repo: str | None = None) -> str:
        """Merge an open pull request; returns the merge commit SHA."""
        with self._lock:
            r, pr = self._pull(number, repo)
            if pr.state != "open":
                raise ValueError(f"pull request #{number} is not open")
            pr.state, pr.merged = "closed", True
            pr.merged_at = pr.closed_at = pr.updated_at = _now()
            pr.merge_commit_sha = _sha(f"merge:{r.full_name}:{number}:{pr.head_sha}")
            r.branches[pr.base_ref] = pr.merge_commit_sha
            r.commits.add(pr.merge_commit_sha)
            return pr.merge_commit_sha

    def close(self, number: int, *, repo: str | None = None) -> None:
        with self._lock:
            _, pr = self._pull(number, repo)
            pr.state = "closed"
            pr.closed_at = pr.updated_at = _now()

    def reopen(self, number: int, *, repo: str | None = None) -> None:
        with self._lock:
            _, pr = self._pull(number, repo)
            if pr.merged:
                raise ValueError(f"pull request #{number} is merged; it cannot be reopened")
            pr.state, pr.closed_at, pr.updated_at = "open", None, _now()

    def add_release(
        self,
        tag_name: str,
        *,
        repo: str | None = None,
        name: str | None = None,
        draft: bool = False,
        prerelease: bool = False,
        body: str = "",
        author: str = "octocat",
    ) -> int:
        with self._lock:
            r = self._repo(repo)
            now = _now()
            release = {
                "id": self._next_id(),
                "tag_name": tag_name,
                "target_commitish": r.default_branch,
                "name": name if name is not None else tag_name,
                "body": body,
                "draft": draft,
                "prerelease": prerelease,
                "created_at": now,
                "published_at": None if draft else now,
                "author": author,
            }
            r.releases.append(release)
            return release["id"]

    def load_releases(self, path: str | os.PathLike[str], *, repo: str | None = None) -> list[int]:
        """Add each release of ``path`` (a JSON list as GitHub's "List releases" returns it,
        newest first, e.g. ``tests/data/github/releases-hashicorp-terraform.json``) to
        ``repo``, keeping ``tag_name``, ``name``, ``body``, ``draft``, ``prerelease``,
        ``created_at``, ``published_at``, ``target_commitish`` and the author's login. Ids,
        node ids, URLs and the author object are the fake's own (the listing serves them on
        its base URL); assets are not kept. They are added oldest first, so the listing
        serves them in the file's order, after (newer than) releases added before. Returns
        the new ids, in the file's order."""
        with open(path, encoding="utf-8") as f:
            items = json.load(f)
        if not isinstance(items, list):
            raise ValueError(f"{path}: not a JSON list of releases")
        ids: list[int] = []
        with self._lock:
            r = self._repo(repo)
            for item in reversed(items):
                author = (item.get("author") or {}).get("login") or "ghost"
                rid = self.add_release(
                    item["tag_name"],
                    repo=r.full_name,
                    draft=bool(item.get("draft")),
                    prerelease=bool(item.get("prerelease")),
                    author=author,
                )
                r.releases[-1].update(
                    name=item.get("name"),
                    body=item.get("body"),
                    target_commitish=item.get("target_commitish") or r.default_branch,
                    created_at=item.get("created_at") or r.releases[-1]["created_at"],
                    published_at=item.get("published_at"),
                )
                ids.append(rid)
        return ids[::-1]

    def add_comment(
        self, number: int, body: str, *, author: str = "octocat", repo: str | None = None
    ) -> int:
        """A comment by someone else (as if posted in the UI); returns its id."""
        with self._lock:
            r = self._repo(repo)
            if number not in r.pulls:
                raise KeyError(number)
            return self._create_comment(r, number, body, author)

    def delete_comment(self, comment_id: int) -> None:
        """Delete a comment (as someone could in the UI)."""
        with self._lock:
            c = self._comments.pop(comment_id)
            self._repos[c["repo"].lower()].comments[c["issue"]].remove(comment_id)

    def _create_comment(self, r: FakeRepo, number: int, body: str, author: str) -> int:
        now = _now()
        comment_id = self._next_id()
        self._comments[comment_id] = {
            "id": comment_id,
            "repo": r.full_name,
            "issue": number,
            "body": body,
            "author": author,
            "created_at": now,
            "updated_at": now,
        }
        r.comments.setdefault(number, []).append(comment_id)
        return comment_id

    # ------------------------------------------------------------------ state reading
    def pull_request(self, number: int, *, repo: str | None = None) -> FakePull:
        with self._lock:
            return self._pull(number, repo)[1]

    def webhook_payload(
        self, action: str, number: int, *, repo: str | None = None, **extra: Any
    ) -> dict[str, Any]:
        """The body GitHub POSTs for a ``pull_request`` webhook about this pull request in
        its current state (``X-GitHub-Event: pull_request``): ``action``, ``number``, the
        pull request as ``GET /pulls/{n}`` shows it, the repository and the sender;
        ``extra`` adds action-specific fields (``label``, ``changes``)."""
        with self._lock:
            r, pr = self._pull(number, repo)
            base = self.base_url
            return {
                "action": action,
                "number": number,
                "pull_request": self._pull_json(base, r, pr, full=True),
                "repository": self._repo_json(base, r.full_name),
                "sender": self._user(base, pr.author),
                **extra,
            }

    def comments(self, number: int, *, repo: str | None = None) -> list[dict[str, Any]]:
        """Comments on a pull request, oldest first: id, body, author, created/updated."""
        with self._lock:
            r = self._repo(repo)
            return [dict(self._comments[i]) for i in r.comments.get(number, [])]

    def statuses(self, sha: str, *, repo: str | None = None) -> list[dict[str, Any]]:
        """Every status set on ``sha``, oldest first."""
        with self._lock:
            return [dict(s) for s in self._repo(repo).statuses.get(sha, [])]

    def latest_statuses(self, sha: str, *, repo: str | None = None) -> dict[str, dict[str, Any]]:
        """The latest status per context, as the combined status shows them."""
        latest: dict[str, dict[str, Any]] = {}
        for status in self.statuses(sha, repo=repo):
            latest[status["context"]] = status
        return latest

    def rate_limit_remaining(self, token: str | None = None) -> int:
        with self._lock:
            bucket = self._bucket(self._tokens.get(token) if token else None)
            return bucket.limit - bucket.used

    # ------------------------------------------------------------------ request log
    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def count(
        self,
        path: str | None = None,
        *,
        prefix: str | None = None,
        method: str | None = None,
        status: int | None | str = "any",
    ) -> int:
        """Requests to exactly ``path`` (or under ``prefix``), by ``method``, answered
        ``status`` (None: dropped)."""
        n = 0
        for r in self.requests:
            if path is not None and r.path != path:
                continue
            if prefix is not None and not r.path.startswith(prefix):
                continue
            if method is not None and r.method != method.upper():
                continue
            if status != "any" and r.status != status:
                continue
            n += 1
        return n

    def counts_by_path(self) -> Counter[str]:
        """``"METHOD /canonical/path"`` -> number of requests."""
        return Counter(f"{r.method} {r.path}" for r in self.requests)

    def counts_by_status(self) -> Counter[int | None]:
        return Counter(r.status for r in self.requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    # ------------------------------------------------------------------ switches
    def _add_fault(self, fault: _Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def fail(
        self,
        count: int = 1,
        *,
        status: int = 500,
        path_prefix: str | None = None,
        method: str | None = None,
    ) -> None:
        """Answer the next ``count`` matching requests with an HTTP error (500 by default)."""
        self._add_fault(_Fault("status", count, status, path_prefix, method))

    def secondary_limit(
        self,
        count: int = 1,
        *,
        retry_after: int | None = 1,
        status: int = 403,
        path_prefix: str | None = None,
        method: str | None = None,
    ) -> None:
        """Answer the next ``count`` matching requests as GitHub does when a secondary rate
        limit is hit: ``status`` (403, or 429), GitHub's message, and ``Retry-After``
        (omitted when None: then clients must wait at least a minute)."""
        self._add_fault(_Fault("secondary", count, (retry_after, status), path_prefix, method))

    def drop(
        self,
        count: int = 1,
        *,
        path_prefix: str | None = None,
        method: str | None = None,
        after_processing: bool = False,
    ) -> None:
        """Close the connection of the next ``count`` matching requests without an answer;
        with ``after_processing`` the request is carried out first (the answer is lost)."""
        kind = "drop_after" if after_processing else "drop"
        self._add_fault(_Fault(kind, count, None, path_prefix, method))

    def exhaust_rate_limit(self, reset_in: float = 2.0, *, token: str | None = None) -> None:
        """Use up the primary rate limit of ``token`` (of every token and anonymous callers
        when None) until ``reset_in`` seconds from now (rounded up to a whole epoch second,
        as ``X-RateLimit-Reset`` is)."""
        reset = math.ceil(time.time() + reset_in)
        with self._lock:
            logins = [self._tokens[token]] if token else [*set(self._tokens.values()), None]
            for login in logins:
                bucket = self._bucket(login)
                bucket.used = bucket.limit
                bucket.reset = reset

    def empty_listing_with_error(
        self, count: int = 1, *, status: int = 502, error_count: int = 10
    ) -> None:
        """The next ``count`` first pages of a pull-request listing answer ``200 []`` with a
        ``Link`` to a page 2 (rel next and last), and the next ``error_count`` requests for
        a later page of a pull-request listing answer ``status``: the API failing while a
        listing is taken. Reading "no pull requests" from it would close every
        environment; a client must raise instead. (An empty first page without any Link is
        indistinguishable from an empty repository: hence the watcher's confirmation of
        each vanished pull request with ``GET /pulls/{n}``.)"""

        def first_page(method: str, path: str, query: dict[str, str]) -> bool:
            return _is_pulls_listing(method, path, query) and query.get("page", "1") == "1"

        def later_page(method: str, path: str, query: dict[str, str]) -> bool:
            return _is_pulls_listing(method, path, query) and query.get("page", "1") != "1"

        self._add_fault(_Fault("empty_first_page", count, None, matcher=first_page))
        self._add_fault(_Fault("status", error_count, status, matcher=later_page))

    def reset(self) -> None:
        """Forget pending faults and the request log; refill every rate limit."""
        with self._lock:
            self._faults.clear()
            self._requests.clear()
            self._buckets.clear()

    # ------------------------------------------------------------------ internals
    def _take_fault(self, method: str, path: str, query: dict[str, str], kinds: set[str]):
        with self._lock:
            for fault in self._faults:
                if fault.kind in kinds and fault.matches(method, path, query):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _bucket(self, login: str | None) -> _Bucket:
        key = login or ""
        bucket = self._buckets.get(key)
        now = int(time.time())
        if bucket is None:
            limit = self.rate_limit if login else self.anonymous_rate_limit
            bucket = self._buckets[key] = _Bucket(limit=limit, reset=now + 3600)
        if now >= bucket.reset:
            bucket.used, bucket.reset = 0, now + 3600
        return bucket

    def _rate_headers(self, login: str | None) -> dict[str, str]:
        b = self._bucket(login)
        return {
            "X-RateLimit-Limit": str(b.limit),
            "X-RateLimit-Remaining": str(max(0, b.limit - b.used)),
            "X-RateLimit-Used": str(b.used),
            "X-RateLimit-Reset": str(b.reset),
            "X-RateLimit-Resource": "core",
        }

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _canonical(self, path: str) -> tuple[str, FakeRepo | None]:
        """``/repositories/{id}/x`` -> ``/repos/{o}/{r}/x``; and the repository asked for."""
        parts = path.split("/")
        if len(parts) >= 3 and parts[1] == "repositories" and parts[2].isdigit():
            repo = self._repos_by_id.get(int(parts[2]))
            if repo is None:
                return path, None
            rest = "/".join(parts[3:])
            path = f"/repos/{repo.owner}/{repo.name}" + (f"/{rest}" if rest else "")
            return path, repo
        if len(parts) >= 4 and parts[1] == "repos":
            key = f"{unquote(parts[2])}/{unquote(parts[3])}".lower()
            return path, self._repos.get(key)
        return path, None

    # --- JSON shapes
    def _user(self, base: str, login: str) -> dict[str, Any]:
        uid = self._user_id(login)
        return {
            "login": login,
            "id": uid,
            "node_id": f"U_{uid}",
            "avatar_url": f"{base}/avatars/{login}",
            "url": f"{base}/users/{login}",
            "html_url": f"{base}/{login}",
            "type": "Bot" if login.endswith("[bot]") else "User",
            "site_admin": False,
        }

    def _repo_json(self, base: str, full_name: str) -> dict[str, Any]:
        repo = self._repos.get(full_name.lower())
        owner, _, name = full_name.partition("/")
        rid = repo.id if repo else int(hashlib.sha1(full_name.encode()).hexdigest()[:6], 16)  # noqa: S324
        return {
            "id": rid,
            "node_id": f"R_{rid}",
            "name": name,
            "full_name": full_name,
            "private": repo.private if repo else False,
            "owner": self._user(base, owner),
            "html_url": f"{base}/{full_name}",
            "url": f"{base}/repos/{full_name}",
            "fork": repo is None,
            "clone_url": f"{base}/{full_name}.git",
            "default_branch": repo.default_branch if repo else "main",
        }

    def _pull_json(self, base: str, r: FakeRepo, pr: FakePull, *, full: bool) -> dict[str, Any]:
        api = f"{base}/repos/{r.full_name}"
        head_owner = (pr.head_repo or r.full_name).partition("/")[0]
        data: dict[str, Any] = {
            "url": f"{api}/pulls/{pr.number}",
            "id": pr.id,
            "node_id": f"PR_{pr.id}",
            "html_url": f"{base}/{r.full_name}/pull/{pr.number}",
            "diff_url": f"{base}/{r.full_name}/pull/{pr.number}.diff",
            "patch_url": f"{base}/{r.full_name}/pull/{pr.number}.patch",
            "issue_url": f"{api}/issues/{pr.number}",
            "comments_url": f"{api}/issues/{pr.number}/comments",
            "statuses_url": f"{api}/statuses/{pr.head_sha}",
            "number": pr.number,
            "state": pr.state,
            "locked": False,
            "title": pr.title,
            "user": self._user(base, pr.author),
            "body": pr.body or None,
            "labels": [
                {
                    "id": int(hashlib.sha1(n.encode()).hexdigest()[:6], 16),  # noqa: S324
                    "name": n,
                    "color": "ededed",
                    "default": False,
                    "description": None,
                }
                for n in pr.labels
            ],
            "milestone": None,
            "active_lock_reason": None,
            "created_at": pr.created_at,
            "updated_at": pr.updated_at,
            "closed_at": pr.closed_at,
            "merged_at": pr.merged_at,
            "merge_commit_sha": pr.merge_commit_sha,
            "assignee": None,
            "assignees": [],
            "requested_reviewers": [],
            "requested_teams": [],
            "head": {
                "label": f"{head_owner}:{pr.head_ref}",
                "ref": pr.head_ref,
                "sha": pr.head_sha,
                "user": self._user(base, head_owner),
                "repo": self._repo_json(base, pr.head_repo) if pr.head_repo else None,
            },
            "base": {
                "label": f"{r.owner}:{pr.base_ref}",
                "ref": pr.base_ref,
                "sha": pr.base_sha,
                "user": self._user(base, r.owner),
                "repo": self._repo_json(base, r.full_name),
            },
            "author_association": "CONTRIBUTOR",
            "auto_merge": None,
            "draft": pr.draft,
        }
        if full:  # only GET /pulls/{n} has these
            data.update(
                {
                    "merged": pr.merged,
                    "mergeable": True if pr.state == "open" else None,
                    "mergeable_state": "clean" if pr.state == "open" else "unknown",
                    "merged_by": self._user(base, "octocat") if pr.merged else None,
                    "comments": len(r.comments.get(pr.number, [])),
                    "review_comments": 0,
                    "commits": 1,
                    "additions": 1,
                    "deletions": 0,
                    "changed_files": 1,
                }
            )
        return data

    def _comment_json(self, base: str, c: dict[str, Any]) -> dict[str, Any]:
        api = f"{base}/repos/{c['repo']}"
        return {
            "url": f"{api}/issues/comments/{c['id']}",
            "html_url": f"{base}/{c['repo']}/pull/{c['issue']}#issuecomment-{c['id']}",
            "issue_url": f"{api}/issues/{c['issue']}",
            "id": c["id"],
            "node_id": f"IC_{c['id']}",
            "user": self._user(base, c["author"]),
            "created_at": c["created_at"],
            "updated_at": c["updated_at"],
            "author_association": "CONTRIBUTOR",
            "body": c["body"],
            "performed_via_github_app": None,
        }

    def _release_json(self, base: str, r: FakeRepo, rel: dict[str, Any]) -> dict[str, Any]:
        api = f"{base}/repos/{r.full_name}"
        return {
            "url": f"{api}/releases/{rel['id']}",
            "html_url": f"{base}/{r.full_name}/releases/tag/{rel['tag_name']}",
            "assets_url": f"{api}/releases/{rel['id']}/assets",
            # GitHub's is on uploads.github.com; the fake has one host
            "upload_url": f"{api}/releases/{rel['id']}/assets{{?name,label}}",
            "tarball_url": f"{api}/tarball/{rel['tag_name']}",
            "zipball_url": f"{api}/zipball/{rel['tag_name']}",
            "id": rel["id"],
            "node_id": f"RE_{rel['id']}",
            "tag_name": rel["tag_name"],
            "target_commitish": rel["target_commitish"],
            "name": rel["name"],
            "body": rel["body"],
            "draft": rel["draft"],
            "prerelease": rel["prerelease"],
            "created_at": rel["created_at"],
            "published_at": rel["published_at"],
            "author": self._user(base, rel["author"]),
            "assets": [],
        }

    @staticmethod
    def _tag_json(base: str, r: FakeRepo, name: str, sha: str) -> dict[str, Any]:
        api = f"{base}/repos/{r.full_name}"
        ref = base64.urlsafe_b64encode(f"refs/tags/{name}".encode()).decode().rstrip("=")
        return {
            "name": name,
            "zipball_url": f"{api}/zipball/refs/tags/{name}",
            "tarball_url": f"{api}/tarball/refs/tags/{name}",
            "commit": {"sha": sha, "url": f"{api}/commits/{sha}"},
            "node_id": f"REF_{r.id}_{ref}",
        }

    # --- pagination
    @staticmethod
    def _page(
        items: list[Any], query: dict[str, str], link_base: str, query_items: list[tuple[str, str]]
    ) -> tuple[list[Any], dict[str, str]]:
        try:
            per_page = int(query.get("per_page", "30"))
        except ValueError:
            per_page = 30
        per_page = min(100, max(1, per_page))
        try:
            page = max(1, int(query.get("page", "1")))
        except ValueError:
            page = 1
        last = max(1, math.ceil(len(items) / per_page))
        chunk = items[(page - 1) * per_page : page * per_page]
        kept = [(k, v) for k, v in query_items if k != "page"]

        def url(n: int) -> str:
            return f"{link_base}?{urlencode([*kept, ('page', str(n))])}"

        links = []
        if page > 1:
            links.append(f'<{url(page - 1)}>; rel="prev"')
        if page < last:
            links.append(f'<{url(page + 1)}>; rel="next"')
            links.append(f'<{url(last)}>; rel="last"')
        if page > 1:
            links.append(f'<{url(1)}>; rel="first"')
        headers = {"Link": ", ".join(links)} if links else {}
        return chunk, headers

    # --- routing
    def _answer(
        self,
        method: str,
        path: str,
        repo: FakeRepo | None,
        query: dict[str, str],
        query_items: list[tuple[str, str]],
        body: Any,
        login: str | None,
        token: str | None,
        base: str,
        raw_query: str = "",
    ) -> _Answer:
        if path == "/rate_limit" and method == "GET":
            b = self._bucket(login)
            core = {
                "limit": b.limit,
                "used": b.used,
                "remaining": b.limit - b.used,
                "reset": b.reset,
            }
            answer = _Answer(200, {"resources": {"core": core}, "rate": core})
            answer.count = False
            return answer
        parts = path.strip("/").split("/")
        if len(parts) < 3 or parts[0] != "repos":
            return _not_found()
        rest = parts[3:]
        if repo is None:
            moved = self._moved.get(f"{unquote(parts[1])}/{unquote(parts[2])}".lower())
            if moved is not None and self._can_see(moved, login):
                return self._moved_permanently(method, base, moved, rest, raw_query)
        if repo is None or not self._can_see(repo, login):
            return _not_found()
        writing = method in ("POST", "PATCH", "PUT", "DELETE")
        if writing and login is None:
            return _error(401, "Requires authentication")
        if writing and token in self._read_only:
            return _error(403, "Resource not accessible by personal access token")
        link_base = f"{base}/repositories/{repo.id}/" + "/".join(rest)

        if not rest and method == "GET":
            return _Answer(200, self._repo_json(base, repo.full_name))
        if rest == ["pulls"] and method == "GET":
            return self._list_pulls(base, repo, query, query_items, link_base)
        if len(rest) == 2 and rest[0] == "pulls" and method == "GET":
            pr = repo.pulls.get(int(rest[1])) if rest[1].isdigit() else None
            if pr is None:
                return _not_found(f"{DOCS}/pulls/pulls#get-a-pull-request")
            return _Answer(200, self._pull_json(base, repo, pr, full=True))
        if len(rest) == 2 and rest[0] == "statuses" and method == "POST":
            return self._create_status(base, repo, unquote(rest[1]), body, login)
        if len(rest) >= 3 and rest[0] == "commits" and rest[-1] in ("status", "statuses"):
            if method != "GET":
                return _not_found()
            ref = unquote("/".join(rest[1:-1]))
            sha = ref if ref in repo.commits else repo.branches.get(ref)
            if sha is None:
                return _error(422, f"No commit found for SHA: {ref}", f"{DOCS}/commits/statuses")
            statuses = list(reversed(repo.statuses.get(sha, [])))  # newest first
            if rest[-1] == "statuses":
                chunk, headers = self._page(statuses, query, link_base, query_items)
                return _Answer(200, chunk, headers)
            return _Answer(200, self._combined(base, repo, sha, statuses))
        if len(rest) == 3 and rest[0] == "issues" and rest[2] == "comments":
            number = int(rest[1]) if rest[1].isdigit() else -1
            if number not in repo.pulls:
                return _not_found(f"{DOCS}/issues/comments")
            if method == "GET":
                items = [
                    self._comment_json(base, self._comments[i])
                    for i in repo.comments.get(number, [])
                ]
                chunk, headers = self._page(items, query, link_base, query_items)
                return _Answer(200, chunk, headers)
            if method == "POST":
                problem = self._check_comment_body(body)
                if problem:
                    return problem
                comment_id = self._create_comment(repo, number, body["body"], login or "ghost")
                c = self._comments[comment_id]
                headers = {
                    "Location": f"{base}/repos/{repo.full_name}/issues/comments/{comment_id}"
                }
                return _Answer(201, self._comment_json(base, c), headers)
            return _not_found()
        if len(rest) == 3 and rest[:2] == ["issues", "comments"]:
            c = self._comments.get(int(rest[2])) if rest[2].isdigit() else None
            if c is None or c["repo"] != repo.full_name:
                return _not_found(f"{DOCS}/issues/comments")
            if method == "GET":
                return _Answer(200, self._comment_json(base, c))
            if method == "PATCH":
                problem = self._check_comment_body(body)
                if problem:
                    return problem
                c["body"] = body["body"]
                c["updated_at"] = _now()
                return _Answer(200, self._comment_json(base, c))
            return _not_found()
        if rest == ["tags"] and method == "GET":
            items = [self._tag_json(base, repo, n, s) for n, s in reversed(repo.tags)]
            chunk, headers = self._page(items, query, link_base, query_items)
            return _Answer(200, chunk, headers)
        if rest == ["releases"] and method == "GET":
            releases = sorted(repo.releases, key=lambda x: x["id"], reverse=True)
            if token is None or token in self._read_only:
                releases = [x for x in releases if not x["draft"]]
            items = [self._release_json(base, repo, x) for x in releases]
            chunk, headers = self._page(items, query, link_base, query_items)
            return _Answer(200, chunk, headers)
        return _not_found()

    @staticmethod
    def _moved_permanently(
        method: str, base: str, repo: FakeRepo, rest: list[str], raw_query: str
    ) -> _Answer:
        """GitHub's answer for a renamed repository's old name: 301 for a GET, 307 for
        other methods (so that clients repeat the method and body), same body."""
        location = f"{base}/repositories/{repo.id}" + "".join(f"/{p}" for p in rest)
        if raw_query:
            location += f"?{raw_query}"
        body = {
            "message": "Moved Permanently",
            "url": location,
            "documentation_url": "https://docs.github.com/v3/#http-redirects",
        }
        return _Answer(301 if method == "GET" else 307, body, {"Location": location})

    def _can_see(self, repo: FakeRepo, login: str | None) -> bool:
        if not repo.private:
            return True
        if login is None:
            return False
        return repo.collaborators is None or login in repo.collaborators

    def _list_pulls(
        self,
        base: str,
        repo: FakeRepo,
        query: dict[str, str],
        query_items: list[tuple[str, str]],
        link_base: str,
    ) -> _Answer:
        state = query.get("state", "open")
        if state not in ("open", "closed", "all"):
            return _validation_failed(
                [{"resource": "PullRequest", "field": "state", "code": "invalid"}],
                f"{DOCS}/pulls/pulls#list-pull-requests",
            )
        pulls = [p for p in repo.pulls.values() if state == "all" or p.state == state]
        if "base" in query:
            pulls = [p for p in pulls if p.base_ref == query["base"]]
        if "head" in query:
            owner, _, ref = query["head"].partition(":")
            pulls = [
                p
                for p in pulls
                if p.head_ref == ref and (p.head_repo or "").partition("/")[0] == owner
            ]
        if query.get("sort", "created") == "updated":
            pulls.sort(key=lambda p: (p.updated_at, p.number))
        else:  # created (default): numbers grow with creation
            pulls.sort(key=lambda p: p.number)
        if query.get("direction", "desc") != "asc":
            pulls.reverse()
        items = [self._pull_json(base, repo, p, full=False) for p in pulls]
        chunk, headers = self._page(items, query, link_base, query_items)
        return _Answer(200, chunk, headers)

    def _create_status(
        self, base: str, repo: FakeRepo, sha: str, body: Any, login: str | None
    ) -> _Answer:
        docs = f"{DOCS}/commits/statuses#create-a-commit-status"
        if not isinstance(body, dict):
            return _error(400, "Problems parsing JSON", docs)
        errors = []
        state = body.get("state")
        if state not in STATUS_STATES:
            errors.append(
                {
                    "resource": "Status",
                    "code": "custom",
                    "field": "state",
                    "message": "state is not included in the list",
                }
            )
        description = body.get("description")
        if isinstance(description, str) and len(description) > MAX_STATUS_DESCRIPTION:
            errors.append(
                {
                    "resource": "Status",
                    "code": "custom",
                    "field": "description",
                    "message": "description is too long (maximum is 140 characters)",
                }
            )
        if errors:
            return _validation_failed(errors, docs)
        if sha not in repo.commits:
            return _error(422, f"No commit found for SHA: {sha}", docs)
        now = _now()
        sid = self._next_id()
        status = {
            "url": f"{base}/repos/{repo.full_name}/statuses/{sha}",
            "avatar_url": None,
            "id": sid,
            "node_id": f"SC_{sid}",
            "state": state,
            "description": description,
            "target_url": body.get("target_url"),
            "context": body.get("context") or "default",
            "created_at": now,
            "updated_at": now,
            "creator": self._user(base, login or "ghost"),
        }
        repo.statuses.setdefault(sha, []).append(status)
        return _Answer(201, status)

    def _combined(
        self, base: str, repo: FakeRepo, sha: str, newest_first: list[dict[str, Any]]
    ) -> dict[str, Any]:
        latest: dict[str, dict[str, Any]] = {}
        for status in newest_first:
            latest.setdefault(status["context"], status)
        states = {s["state"] for s in latest.values()}
        if states & {"error", "failure"}:
            combined = "failure"
        elif not latest or "pending" in states:
            combined = "pending"
        else:
            combined = "success"
        return {
            "state": combined,
            "statuses": list(latest.values()),
            "sha": sha,
            "total_count": len(latest),
            "repository": self._repo_json(base, repo.full_name),
            "commit_url": f"{base}/repos/{repo.full_name}/commits/{sha}",
            "url": f"{base}/repos/{repo.full_name}/commits/{sha}/status",
        }

    @staticmethod
    def _check_comment_body(body: Any) -> _Answer | None:
        docs = f"{DOCS}/issues/comments"
        if not isinstance(body, dict) or not isinstance(body.get("body"), str):
            return _validation_failed(
                [{"resource": "IssueComment", "code": "missing_field", "field": "body"}], docs
            )
        text = body["body"]
        if not text.strip():
            return _validation_failed(
                [{"resource": "IssueComment", "code": "missing_field", "field": "body"}], docs
            )
        if len(text) > MAX_COMMENT_BODY:
            return _validation_failed(
                [
                    {
                        "resource": "IssueComment",
                        "code": "custom",
                        "field": "body",
                        "message": "body is too long (maximum is 65536 characters)",
                    }
                ],
                docs,
            )
        return None


def _etag(data: bytes) -> str:
    return '"' + hashlib.sha256(data).hexdigest()[:32] + '"'


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate == "*":
            return True
        if candidate.removeprefix("W/") == etag:
            return True
    return False


class _Handler(BaseHTTPRequestHandler):
    fake: FakeGitHub
    server_version = "FakeGitHub/1.0"
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, a keep-alive client's
    # delayed ACK adds ~40 ms to every answer (GitHub answers in one go).
    disable_nagle_algorithm = True
    timeout = 30

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:  # noqa: N802
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def do_PATCH(self) -> None:  # noqa: N802
        self._handle("PATCH")

    def do_PUT(self) -> None:  # noqa: N802
        self._handle("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        fake = self.fake
        split = urlsplit(self.path)
        raw_path = split.path
        query_items = parse_qsl(split.query, keep_blank_values=True)
        query = dict(query_items)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HIDDEN_HEADERS}
        conditional = self.headers.get("If-None-Match") is not None
        host = self.headers.get("Host") or "{}:{}".format(*self.server.server_address[:2])
        base = f"http://{host}"

        with fake._lock:
            path, repo = fake._canonical(raw_path)
            token, login, auth_error = self._auth()

            def record(status: int | None) -> None:
                fake._record(
                    RecordedRequest(
                        method=method,
                        path=path,
                        raw_path=raw_path,
                        query=query,
                        status=status,
                        login=login,
                        conditional=conditional,
                        headers=headers,
                    )
                )

            fault = fake._take_fault(
                method, path, query, {"status", "secondary", "drop", "drop_after"}
            )
            if fault is not None and fault.kind == "drop":
                record(None)
                self.close_connection = True
                return
            if fault is not None and fault.kind == "status":
                status = int(fault.arg)
                messages = {500: "Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}
                answer = _error(status, messages.get(status, "Server Error"))
                record(status)
                self._send(answer, fake._rate_headers(login))
                return
            if fault is not None and fault.kind == "secondary":
                retry_after, status = fault.arg
                request_id = f"{fake._next_id():X}:{fake._next_id():X}"
                answer = _error(
                    status,
                    "You have exceeded a secondary rate limit. Please wait a few minutes "
                    "before you try again. If you reach out to GitHub Support for help, "
                    f"please include the request ID {request_id}.",
                    SECONDARY_DOCS,
                )
                extra = fake._rate_headers(login)
                if retry_after is not None:
                    extra["Retry-After"] = str(retry_after)
                record(status)
                self._send(answer, extra)
                return

            if not self.headers.get("User-Agent"):
                answer = _error(
                    403,
                    "Request forbidden by administrative rules. Please make sure your "
                    "request has a User-Agent header "
                    "(https://docs.github.com/en/rest/overview/resources-in-the-rest-api"
                    "#user-agent-required). Check https://developer.github.com for other "
                    "possible causes.",
                )
                record(403)
                self._send(answer, {})
                return
            version = self.headers.get("X-GitHub-Api-Version")
            if version is not None and version not in SUPPORTED_API_VERSIONS:
                answer = _error(
                    400,
                    f"Unsupported 'X-GitHub-Api-Version' header: {version}. Supported "
                    f"versions are: {', '.join(SUPPORTED_API_VERSIONS)}",
                    f"{DOCS}/overview/api-versions",
                )
                record(400)
                self._send(answer, fake._rate_headers(None))
                return
            if auth_error:
                bucket = fake._bucket(None)
                bucket.used = min(bucket.limit, bucket.used + 1)
                record(401)
                self._send(_error(401, "Bad credentials"), fake._rate_headers(None))
                return

            bucket = fake._bucket(login)
            if bucket.used >= bucket.limit and path != "/rate_limit":
                who = f"user ID {fake._user_id(login)}" if login else self.client_address[0]
                message = f"API rate limit exceeded for {who}."
                if not login:
                    message += (
                        " (But here's the good news: Authenticated requests get a higher "
                        "rate limit. Check out the documentation for more details.)"
                    )
                record(403)
                self._send(
                    _error(403, message, f"{RATE_DOCS}#about-rate-limits"),
                    fake._rate_headers(login),
                )
                return

            body: Any = None
            if raw:
                try:
                    body = json.loads(raw.decode("utf-8"))
                except (ValueError, UnicodeDecodeError):
                    bucket.used += 1
                    record(400)
                    self._send(_error(400, "Problems parsing JSON"), fake._rate_headers(login))
                    return

            empty = fake._take_fault(method, path, query, {"empty_first_page"})
            if empty is not None and repo is not None and fake._can_see(repo, login):
                link_base = f"{base}/repositories/{repo.id}/pulls"
                kept = [(k, v) for k, v in query_items if k != "page"]
                page2 = f"{link_base}?{urlencode([*kept, ('page', '2')])}"
                answer = _Answer(200, [], {"Link": f'<{page2}>; rel="next", <{page2}>; rel="last"'})
            else:
                answer = fake._answer(
                    method,
                    path,
                    repo,
                    query,
                    query_items,
                    body,
                    login,
                    token,
                    base,
                    raw_query=split.query,
                )

            data = b"" if answer.body is None else json.dumps(answer.body).encode()
            extra = dict(answer.headers)
            if method == "GET" and answer.status == 200:
                etag = _etag(data)
                extra["ETag"] = etag
                extra["Cache-Control"] = "private, max-age=60, s-maxage=60"
                if _etag_matches(self.headers.get("If-None-Match"), etag):
                    # 304: no body, and not counted against the rate limit
                    record(304)
                    self._send(_Answer(304), {**extra, **fake._rate_headers(login)}, body=False)
                    return
            if answer.count:
                bucket.used += 1
            record(answer.status if fault is None else None)
            if fault is not None and fault.kind == "drop_after":
                self.close_connection = True  # carried out; the answer is lost
                return
            self._send(answer, {**extra, **fake._rate_headers(login)}, data=data)

    def _auth(self) -> tuple[str | None, str | None, bool]:
        """(token, login, bad credentials)"""
        header = (self.headers.get("Authorization") or "").strip()
        if not header:
            return None, None, False
        scheme, _, value = header.partition(" ")
        if scheme.lower() not in ("bearer", "token") or not value.strip():
            return None, None, True
        token = value.strip()
        login = self.fake._tokens.get(token)
        if login is None:
            return token, None, True
        return token, login, False

    def _send(
        self,
        answer: _Answer,
        headers: dict[str, str],
        *,
        body: bool = True,
        data: bytes | None = None,
    ) -> None:
        if data is None:
            data = b"" if answer.body is None else json.dumps(answer.body).encode()
        self.send_response(answer.status)
        self.send_header("X-GitHub-Api-Version-Selected", "2022-11-28")
        self.send_header("X-GitHub-Media-Type", "github.v3; format=json")
        self.send_header("X-GitHub-Request-Id", f"FAKE:{self.fake._next_id():X}")
        self.send_header("Vary", "Accept, Authorization, Cookie, X-GitHub-OTP")
        for key, value in {**answer.headers, **headers}.items():
            self.send_header(key, str(value))
        if body and answer.status != 304:
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body and answer.status != 304:
            self.wfile.write(data)


def main(argv: list[str] | None = None) -> None:
    """Run the fake by hand: ``python -m tests.fakes.github --port 8080 --token ghp_x
    --repo acme/shop --pulls 3``."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", action="append", default=[])
    parser.add_argument("--repo", action="append", default=[])
    parser.add_argument("--pulls", type=int, default=0, help="open this many pull requests")
    args = parser.parse_args(argv)
    fake = FakeGitHub(
        tokens=args.token or ["ghp_fake_token"], repos=args.repo or ["acme/shop"], port=args.port
    )
    for i in range(args.pulls):
        fake.open_pull_request(f"Change {i + 1}", head=f"feature/{i + 1}")
    with fake:
        print(f"api_url={fake.api_url}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


FakeGitHub.handler = _Handler


if __name__ == "__main__":
    main()
