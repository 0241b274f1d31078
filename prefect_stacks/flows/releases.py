"""``release-watcher``: follow many GitHub repositories' releases (or tags) and tell
people about each new one.

The steps: list each repository's newest releases, conditionally (an idle poll is all
``304``: no rate limit spent) → what is new since the last listing and passes the
repository's filters → which stacks a Terraform or provider release concerns → one
``stacks.release.published`` event per new release through the one watch loop (state on
the server; a first run, and a repository seen for the first time, record a baseline
and announce nothing) → Slack: one message per release, or one digest for many → the
run's artifact. A repository that moved is followed and reported; one that is gone or
rate-limited is reported and kept as it was, and the others go on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import deployment
from pydantic import SecretStr

from prefect_stacks import events
from prefect_stacks._internal.failures import fails_cleanly
from prefect_stacks.blocks.base import secret_value
from prefect_stacks.blocks.github import GitHubRepository
from prefect_stacks.blocks.github.api import web_root
from prefect_stacks.blocks.github.cache import open_response_cache, save_response_cache
from prefect_stacks.blocks.github.releases import Published
from prefect_stacks.blocks.slack import SlackChannel, slack_channel
from prefect_stacks.blocks.terraform import artifact_key
from prefect_stacks.events.watching import BASELINE_KEY, WatcherState, watch
from prefect_stacks.exceptions import ConfigurationError, GitHubError, PrefectStacksError
from prefect_stacks.releases.announce import digest_message, release_message, run_summary
from prefect_stacks.releases.impact import Impact, StackCatalog
from prefect_stacks.releases.models import (
    NewRelease,
    WatchedRepository,
    new_releases,
    remembered,
    seen_tags,
)

__all__ = ["WatchedRepository", "list_repositories", "release_watcher"]

GITHUB_API_URL = "https://api.github.com"


@dataclass
class Listings:
    """What one poll read: repository key -> its listing, and why the others were not."""

    published: dict[str, Published] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)


@task(cache_policy=NO_CACHE, task_run_name="github-list-releases")
def list_repositories(
    repositories: list[WatchedRepository],
    api_url: str,
    token: SecretStr | None,
    cache_block: str,
    max_rate_limit_wait: float,
) -> Listings:
    """Each repository's newest releases or tags, through one response cache (saved once
    at the end). Once GitHub's rate limit is spent, the rest are not asked this run."""
    logger = get_run_logger()
    cache = open_response_cache(cache_block, logger.warning)
    cache.max_entries = max(cache.max_entries, 3 * len(repositories))
    found = Listings()
    exhausted: str | None = None
    for watched in repositories:
        if exhausted is not None:
            found.problems[watched.key] = exhausted
            continue
        owner, _, name = watched.repository.partition("/")
        block = GitHubRepository(
            owner=owner,
            repo=name,
            token=token,
            api_url=api_url,
            max_rate_limit_wait=max_rate_limit_wait,
        )
        block.use_response_cache(cache)
        try:
            published = block.get_client().list_published(watched.source)
        except GitHubError as exc:
            logger.warning("%s: %s", watched.repository, exc)
            found.problems[watched.key] = str(exc)
            if exc.rate_limited:
                exhausted = f"not asked: GitHub's rate limit is spent ({exc})"
            continue
        if published.moved_to:
            logger.warning(
                "%s moved to %s (renamed or transferred): followed; put the new name in the list",
                watched.repository,
                published.moved_to,
            )
        found.published[watched.key] = published
    save_response_cache(cache_block, cache, logger.warning)
    return found


def _default_watcher() -> str:
    """``releases-<deployment>`` (or ``releases`` outside a deployment): stable when the
    list changes, so a repository added later is the only one recorded silently, and
    apart per deployment, so two lists never forget each other's repositories."""
    slug = re.sub(r"[^a-z0-9_-]+", "-", (deployment.name or "").lower()).strip("-")
    return f"releases-{slug}"[:63].rstrip("-") if slug else "releases"


def _impacts(found: list[NewRelease]) -> dict[int, Impact]:
    """The impact line of each new Terraform or provider release (stacks read once)."""
    catalog = StackCatalog()
    impacts = {}
    for index, new in enumerate(found):
        component = new.watched.component
        if component is not None and (impact := catalog.impact(component, new.release.tag_name)):
            impacts[index] = impact
    return impacts


def _tell_slack(
    channel: SlackChannel, found: list[NewRelease], impacts: dict[int, Impact], digest_over: int
) -> None:
    if len(found) > digest_over:
        channel.post(digest_message(found, impacts))
        return
    for index, new in enumerate(found):
        channel.post(release_message(new, impacts.get(index)))


@flow(name="release-watcher", flow_run_name="release-watcher")
@fails_cleanly
def release_watcher(
    repositories: list[WatchedRepository],
    slack: str | None = None,
    token_block: str | None = None,
    api_url: str = GITHUB_API_URL,
    digest_over: int = 3,
    watcher: str | None = None,
    baseline_on_first_run: bool = True,
    max_rate_limit_wait: float = 30,
) -> dict:
    """Tell Slack (and emit `stacks.release.published`) for every new release of the
    repositories, with which stacks a Terraform or provider release concerns.

    Args:
        repositories: GitHub repositories (`owner/name`), each with its filters: source
            (releases, or tags for projects without releases), prereleases, a semver
            constraint, include / exclude regexes.
        slack: Name of a Slack Channel block; empty: events and the artifact only.
        token_block: Name of a Secret block with a GitHub token (no scope needed for
            public repositories): 5,000 requests an hour instead of 60, and unchanged
            listings answered `304` for free.
        api_url: GitHub's REST API (`https://HOST/api/v3` for GitHub Enterprise Server).
        digest_over: More new releases than this in one run are told in one message.
        watcher: Name of the watcher's state on the server; empty: `releases-<deployment
            name>` (`releases` outside a deployment).
        baseline_on_first_run: The first run records what is there and tells nothing (a
            repository added to the list later is recorded silently too).
        max_rate_limit_wait: Seconds to wait out a rate limit before reporting it.
    """
    if not repositories:
        raise ConfigurationError("repositories is empty: name at least one `owner/name`")
    if digest_over < 0 or not 0 <= max_rate_limit_wait <= 3600:
        raise ConfigurationError(
            "digest_over must be 0 or more and max_rate_limit_wait 0 to 3600 seconds"
        )
    keys = [w.key for w in repositories]
    if len(set(keys)) != len(keys):
        twice = sorted({k for k in keys if keys.count(k) > 1})
        raise ConfigurationError(f"repositories lists {', '.join(twice)} more than once")
    name = events.validate_watcher_name(watcher or _default_watcher())
    token = secret_value(token_block, field="token_block")
    channel = slack_channel(slack)
    listings = list_repositories(
        repositories,
        api_url.rstrip("/"),
        SecretStr(token) if token else None,
        f"{name.replace('_', '-')}-etags",  # block names have no underscores
        max_rate_limit_wait,
    )
    state = WatcherState(name)
    seen = state.load()
    announcing = BASELINE_KEY in seen or not baseline_on_first_run
    by_key = {w.key: w for w in repositories}
    found: dict[str, list[NewRelease]] = {}
    observed: dict[str, str] = {}
    for key, published in listings.published.items():
        observed[key] = seen_tags(published.releases)
        before = remembered(seen.get(key))
        if before is None and not baseline_on_first_run:
            before = []  # no baseline: everything listed is new
        if announcing and before is not None:  # a repository seen before: what is new
            repository = published.moved_to or by_key[key].repository
            found[key] = new_releases(by_key[key], repository, published.releases, before)
    new = [release for key in keys for release in found.get(key, [])]
    impacts = _impacts(new)
    web = web_root(api_url)

    def release_events(key: str, version: str, before: str | None):
        return [
            events.release_published(
                f"{web}/{n.repository}.git",
                n.release.tag_name,
                n.release.name or "",
                n.release.html_url,
                n.kind == "prerelease",
            )
            for n in found.get(key, [])
        ]

    report = watch(
        name,
        observed,
        release_events,
        baseline_on_first_run=baseline_on_first_run,
        confirm_gone=lambda key, before: False if key in by_key else None,
        seen=seen,
    )
    moved = {by_key[k].repository: p.moved_to for k, p in listings.published.items() if p.moved_to}
    create_markdown_artifact(
        key=artifact_key("releases", name),
        markdown=run_summary(new, impacts, listings.problems, moved, len(repositories)),
        description=f"release-watcher {name}: {len(new)} new release(s)",
    )
    if channel is not None and new:
        try:
            _tell_slack(channel, new, impacts, digest_over)
        except PrefectStacksError as exc:
            raise PrefectStacksError(
                f"{len(new)} new release(s) recorded, their events emitted and listed in the "
                f"run's artifact, but Slack was not told: {exc}"
            ) from exc
    result = {
        "new": [
            {"repository": n.repository, "tag": n.release.tag_name, "kind": n.kind} for n in new
        ],
        "baseline": report["baseline"],
        "moved": moved,
        "problems": listings.problems,
    }
    get_run_logger().info(
        "%d repositories: %d new release(s), %d moved, %d not read",
        len(repositories),
        len(new),
        len(moved),
        len(listings.problems),
    )
    if listings.problems:
        raise PrefectStacksError(
            f"{len(listings.problems)} of {len(repositories)} repositories could not be read "
            "(the others were handled): "
            + "; ".join(f"{key}: {problem}" for key, problem in sorted(listings.problems.items()))
        )
    return result
