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

The package: :mod:`.block` (the ``GitHubRepository`` block: configuration, git
credentials, building the client), :mod:`.api` (``GitHubClient``: the REST calls),
:mod:`.models` (``PullRequest`` and the other answers, the reducers kept in the cache, the
comment and status bodies), :mod:`.cache` (the ``GitHubResponseCache`` block and its
persistence), :mod:`.errors` (``GitHubError`` and its messages).
"""

from prefect_stacks._internal.http import GitHubRateLimitPolicy
from prefect_stacks.blocks.github.api import API_VERSION, GitHubClient
from prefect_stacks.blocks.github.block import GITHUB_API_URL, GitHubRepository
from prefect_stacks.blocks.github.cache import DEFAULT_CACHE_ENTRIES, GitHubResponseCache
from prefect_stacks.blocks.github.models import (
    MARKER_PREFIX,
    MAX_COMMENT_BODY,
    MAX_STATUS_DESCRIPTION,
    STATUS_STATES,
    Comment,
    CommitStatus,
    PullRequest,
    Release,
    clip_description,
    marker_tag,
    sticky_body,
)
from prefect_stacks.exceptions import GitHubError

__all__ = [
    "API_VERSION",
    "DEFAULT_CACHE_ENTRIES",
    "GITHUB_API_URL",
    "MARKER_PREFIX",
    "MAX_COMMENT_BODY",
    "MAX_STATUS_DESCRIPTION",
    "STATUS_STATES",
    "Comment",
    "CommitStatus",
    "GitHubClient",
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
