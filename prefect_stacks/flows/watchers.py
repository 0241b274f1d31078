"""The git watcher: branch heads of a repository -> ``stacks.git.commit`` events.

It observes branch -> head commit with ``git ls-remote`` and hands that to the one watch
loop, :func:`prefect_stacks.events.watching.watch` (state on the Prefect server, one event
per new version, a baseline on the first run). ``watch`` and ``default_watcher_name`` are
importable from here too.
"""

from __future__ import annotations

import fnmatch

from prefect import flow, get_run_logger, task
from prefect.blocks.system import Secret
from prefect.cache_policies import NO_CACHE

from prefect_stacks import events
from prefect_stacks._internal.failures import fails_cleanly
from prefect_stacks._internal.git import ls_remote_heads, redact_url
from prefect_stacks.blocks.base import load_block
from prefect_stacks.events.watching import default_watcher_name, watch

__all__ = ["default_watcher_name", "git_watcher", "list_branch_heads", "watch"]


def _secret(block: str | None) -> str | None:
    if not block:
        return None
    return load_block(
        Secret,
        block,
        create="create it (Blocks > Secret) or leave the token parameter empty for a "
        "public repository",
    ).get()


@task(cache_policy=NO_CACHE, task_run_name="git-ls-remote")
def list_branch_heads(repository: str, token_block: str | None) -> dict[str, str]:
    return ls_remote_heads(repository, _secret(token_block))


@flow(name="git-watcher", flow_run_name="git-watcher")
@fails_cleanly
def git_watcher(
    repository: str,
    branches: list[str] | None = None,
    token_block: str | None = None,
    watcher: str | None = None,
    baseline_on_first_run: bool = True,
) -> dict[str, list[str]]:
    """Emit `stacks.git.commit` for every branch whose head moved since the last run.

    Args:
        repository: Any git URL (https://, ssh://, git@host:path, a local path).
        branches: Branch name patterns (shell-style, e.g. `main`, `release/*`); all
            branches when empty.
        token_block: Name of a Secret block holding an HTTPS token (private repositories).
        watcher: Name of the watcher's state on the server; derived from the repository
            when empty. Two deployments watching one repository may share it.
        baseline_on_first_run: The first run records the current heads and emits nothing.
    """
    name = events.validate_watcher_name(
        watcher or default_watcher_name("git", events.normalize_repository(repository))
    )
    patterns = branches or ["*"]
    heads = list_branch_heads(repository, token_block)
    observed = {
        branch: sha
        for branch, sha in heads.items()
        if any(fnmatch.fnmatchcase(branch, p) for p in patterns)
    }
    get_run_logger().info(
        "%s: %d branch(es), %d matching %s",
        redact_url(repository),
        len(heads),
        len(observed),
        patterns,
    )
    return watch(
        name,
        observed,
        lambda branch, sha, before: events.git_commit(repository, branch, sha, before),
        baseline_on_first_run=baseline_on_first_run,
    )
