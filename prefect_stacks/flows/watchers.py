"""The polling watchers, each observing versions and handing them to the one watch loop,
:func:`prefect_stacks.events.watching.watch` (state on the Prefect server, one event per
new version, a baseline on the first run):

* ``git-watcher``: branch -> head commit (``git ls-remote``) -> ``stacks.git.commit``;
* ``registry-watcher``: image + tag policy -> tag and digest (a ``ContainerRegistry``
  block) -> ``stacks.image.updated``, the event the receiver emits for the registry's
  push notification, with the same id for the same push.

``watch`` and ``default_watcher_name`` are importable from here too.
"""

from __future__ import annotations

import fnmatch

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, Field

from prefect_stacks import events
from prefect_stacks._internal.failures import fails_cleanly
from prefect_stacks._internal.git import ls_remote_heads, redact_url
from prefect_stacks.blocks.base import load_block, secret_value
from prefect_stacks.blocks.registry import ContainerRegistry, MutableTag, TagPolicy, resolve
from prefect_stacks.events.watching import WatcherState, default_watcher_name, watch
from prefect_stacks.exceptions import PrefectStacksError, RegistryError

__all__ = [
    "WatchedImage",
    "default_watcher_name",
    "git_watcher",
    "list_branch_heads",
    "registry_watcher",
    "resolve_images",
    "watch",
]


@task(cache_policy=NO_CACHE, task_run_name="git-ls-remote")
def list_branch_heads(repository: str, token_block: str | None) -> dict[str, str]:
    return ls_remote_heads(repository, secret_value(token_block, field="token_block"))


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


# --------------------------------------------------------------------------- registry
class WatchedImage(BaseModel):
    """One repository of the registry and the tag policy to follow in it."""

    repository: str = Field(description="Repository in the registry, e.g. `acme/shop`.")
    policy: TagPolicy = Field(
        default_factory=lambda: MutableTag(tag="latest"),
        description="Which tag to follow: a tag, a semver range, a regex, the newest build.",
    )

    @property
    def key(self) -> str:
        return f"{self.repository} {self.policy.label}"


@task(cache_policy=NO_CACHE, task_run_name="registry-resolve")
def resolve_images(
    registry: ContainerRegistry, images: list[WatchedImage], seen: dict[str, str]
) -> tuple[dict[str, str], dict[str, str]]:
    """``(observed, failed)``: key -> ``tag@digest`` for each image a policy points at,
    and key -> error for each that could not be read (the others go on)."""
    logger = get_run_logger()
    observed: dict[str, str] = {}
    failed: dict[str, str] = {}
    with registry.get_client() as client:
        client.will_read([image.repository for image in images])
        for image in images:
            before = seen.get(image.key)
            if before and isinstance(image.policy, MutableTag):
                client.remember_digest(image.repository, image.policy.tag, before.split("@")[1])
            try:
                found = resolve(client, image.repository, image.policy)
            except RegistryError as exc:
                logger.warning("%s: %s", image.key, exc)
                failed[image.key] = str(exc)
                continue
            if found is None:
                logger.info("%s: no tag qualifies", image.key)
                continue
            observed[image.key] = f"{found.tag}@{found.digest}"
        logger.info(
            "%s: %d image(s) resolved in %d request(s), %d answered 304 (unchanged)",
            registry.host,
            len(observed),
            client.requests,
            client.not_modified,
        )
    return observed, failed


@flow(name="registry-watcher", flow_run_name="registry-watcher")
@fails_cleanly
def registry_watcher(
    registry: str,
    images: list[WatchedImage],
    watcher: str | None = None,
    baseline_on_first_run: bool = True,
) -> dict[str, list[str]]:
    """Emit `stacks.image.updated` for every watched image whose tag or digest changed
    since the last run.

    Args:
        registry: Name of a ContainerRegistry block.
        images: Repositories and the tag policy to follow in each.
        watcher: Name of the watcher's state on the server; derived from the registry
            when empty.
        baseline_on_first_run: The first run records what is there and emits nothing.
    """
    block = load_block(
        ContainerRegistry, registry, create="create it (Blocks > Container Registry)"
    )
    name = events.validate_watcher_name(watcher or default_watcher_name("registry", block.host))
    repositories = {image.key: image.repository for image in images}
    seen = WatcherState(name).load()
    observed, failed = resolve_images(block, images, seen)

    def image_event(key: str, version: str, before: str | None):
        tag, _, digest = version.partition("@")
        return events.image_updated(block.host, repositories[key], tag, digest)

    report = watch(
        name,
        observed,
        image_event,
        baseline_on_first_run=baseline_on_first_run,
        # an image that could not be read this time is kept as it was, not forgotten
        confirm_gone=lambda key, before: False if key in failed else None,
        seen=seen,
    )
    report["failed"] = sorted(failed)
    if failed:
        raise PrefectStacksError(
            f"{len(failed)} of {len(images)} image(s) could not be read (the others were "
            "handled): " + "; ".join(f"{key}: {error}" for key, error in sorted(failed.items()))
        )
    return report
