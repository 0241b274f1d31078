"""Watchers: the polling side of events (a "resource check").

A watcher observes versions of keys (branch -> head commit, tag -> digest, PR -> head
commit ...), compares them with what it saw last time (kept on the Prefect server by
:class:`~prefect_stacks.events.WatcherState`), emits one event per new version, and saves
a key only after its event was accepted. A first run records a baseline instead of
flooding the automations with every existing branch (``baseline_on_first_run``).

:func:`watch` is the shared machinery; the pull-request, registry and release watchers
call it with their own observation and event builder. The git watcher is below.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from collections.abc import Callable

from prefect import flow, get_run_logger, task
from prefect.blocks.system import Secret
from prefect.cache_policies import NO_CACHE
from prefect.events import Event

from prefect_stacks import events
from prefect_stacks._internal.failures import fails_cleanly
from prefect_stacks._internal.git import ls_remote_heads, redact_url
from prefect_stacks.blocks.base import load_block

EMIT_BATCH = 50

MakeEvent = Callable[[str, str, "str | None"], Event]


def watch(
    watcher: str,
    observed: dict[str, str],
    make_event: MakeEvent,
    *,
    baseline_on_first_run: bool = True,
) -> dict[str, list[str]]:
    """Emit one event per key whose version changed since the last run of ``watcher``.

    Args:
        watcher: name of the watcher's state on the server (lowercase, e.g. ``git-shop``).
        observed: key -> version, as the source reports it now.
        make_event: builds the event for ``(key, version, previous version or None)``.
        baseline_on_first_run: on the very first run record what is there and emit
            nothing (False: every key is new and emits).

    Returns ``{"emitted": [...], "baseline": [...], "forgotten": [...]}`` (keys).
    """
    logger = get_run_logger()
    state = events.WatcherState(watcher)
    seen = state.load()
    report: dict[str, list[str]] = {"emitted": [], "baseline": [], "forgotten": []}
    first = events.BASELINE_KEY not in seen
    if first and baseline_on_first_run:
        for key, version in sorted(observed.items()):
            state.save(key, version)
            report["baseline"].append(key)
        state.save(events.BASELINE_KEY, "1")
        logger.info(
            "%s: first run, recorded a baseline of %d version(s); nothing emitted "
            "(set baseline_on_first_run=False to emit them)",
            watcher,
            len(observed),
        )
        return report

    changes = [
        (key, version, seen.get(key))
        for key, version in sorted(observed.items())
        if seen.get(key) != version
    ]
    for start in range(0, len(changes), EMIT_BATCH):
        batch = changes[start : start + EMIT_BATCH]
        built = [make_event(key, version, previous) for key, version, previous in batch]
        events.emit(built)  # raises before any state is saved: next run sees them again
        for (key, version, _), event in zip(batch, built, strict=True):
            state.save(key, version)
            report["emitted"].append(key)
            logger.info("%s: %s %s (event %s)", watcher, event.event, key, event.id)
        if len(changes) > EMIT_BATCH:
            logger.info("%s: %d of %d emitted", watcher, start + len(batch), len(changes))
    if first:
        state.save(events.BASELINE_KEY, "1")
    for key in sorted(set(seen) - set(observed) - {events.BASELINE_KEY}):
        state.forget(key)  # gone at the source; if it comes back it is new again
        report["forgotten"].append(key)
    logger.info(
        "%s: %d observed, %d new version(s) emitted, %d gone",
        watcher,
        len(observed),
        len(report["emitted"]),
        len(report["forgotten"]),
    )
    return report


def default_watcher_name(kind: str, source: str) -> str:
    """``git-github-com-acme-shop-1a2b3c``: readable, unique per source, a valid name."""
    slug = re.sub(r"[^a-z0-9]+", "-", source.lower()).strip("-")[:40].strip("-")
    digest = hashlib.sha1(source.encode()).hexdigest()[:6]
    return f"{kind}-{slug}-{digest}"


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
