"""A dedicated environment for every pull request.

* ``pull-request-watcher`` (scheduled, or run by an automation on webhook events): the
  open pull requests -> ``stacks.pull-request.opened|updated|closed|merged`` events, and
  for each: a new or updated one gets environment ``PR_<n>`` (ledger entry) with its own
  deployment ``feature-environment/PR_<n>``, which is run for the head commit; a merged
  or closed one gets ``feature-environment-cleanup``. A pull request missing from the
  listing is only closed after GitHub confirms it (``GET /pulls/<n>``): a listing that
  failed, was partial or came back empty while the API erred never closes anything.
* ``feature-environment`` (one deployment per pull request, concurrency 1, queued): for
  one head commit: commit status pending -> clone at that commit (real git) -> build (a
  command, and/or an image built and pushed through prefect-docker, tagged with the SHA)
  -> apply the stack into workspace ``PR_<n>`` with the version = SHA (and the image,
  pinned by digest) -> smoke check the URL -> status success/failure with the URL, and
  one sticky comment. A run whose commit is no longer the newest does nothing: the
  newest one is queued behind it.
* ``feature-environment-cleanup``: the environments teardown (stack, workspace, the
  deployment and its queued runs), then a final comment and status.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from prefect import flow, get_client, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import (
    ConcurrencyLimitConfig,
    ConcurrencyLimitStrategy,
)
from prefect.deployments import run_deployment
from prefect.deployments.runner import DeploymentApplyError, EntrypointType

from prefect_stacks import events
from prefect_stacks._internal import prefect_api
from prefect_stacks._internal.failures import fails_cleanly
from prefect_stacks._internal.git import redact_url
from prefect_stacks._internal.parameters import NO_TEXT, NO_VARIABLES, Text, Variables
from prefect_stacks.blocks.base import load_block
from prefect_stacks.blocks.docker import ImageBuild, build_and_push
from prefect_stacks.blocks.github import GitHubRepository, PullRequest
from prefect_stacks.blocks.terraform import load_stack
from prefect_stacks.environments.deploy_steps import apply_stack, build, checkout, smoke_check
from prefect_stacks.environments.ledger import EnvironmentLedger
from prefect_stacks.environments.lifecycle import (
    TEARDOWN_DEPLOYMENT,
    finish_deploy,
    start_deploy,
)
from prefect_stacks.environments.models import EnvironmentState
from prefect_stacks.environments.pull_requests import (
    FeatureEnvironmentSettings,
    ensure_entry,
    env_name,
    nothing_to_deploy,
    record_head,
    report_deploying,
    report_destroyed,
    report_failed,
    report_ready,
)
from prefect_stacks.environments.teardown import teardown
from prefect_stacks.events.watching import default_watcher_name, validate_watcher_name, watch
from prefect_stacks.exceptions import ConfigurationError, PrefectStacksError

FEATURE_FLOW = "feature-environment"
CLEANUP_DEPLOYMENT = "feature-environment-cleanup/default"


def _github(name: str) -> GitHubRepository:
    return load_block(
        GitHubRepository,
        name,
        create="create it (Blocks > GitHub Repository) with the owner, repo and a token",
    )


# --------------------------------------------------------------------------- watcher


def _wanted(
    pr: PullRequest, base: str | None, labels: list[str] | None, include_drafts: bool
) -> bool:
    if pr.draft and not include_drafts:
        return False
    if base and pr.base_ref != base:
        return False
    return not labels or set(labels) <= set(pr.labels)


def _event(action: str, block: GitHubRepository, pr: PullRequest) -> Any:
    """The event a webhook delivery about the same transition carries (events.md):
    ``opened`` when the pull request (re)appears among the wanted ones, at its
    ``updated_at``; ``closed``/``merged`` at ``closed_at``/``merged_at``."""
    field = events.PR_TRANSITION_FIELDS.get(action)
    return events.pull_request(
        action,
        at=getattr(pr, field) if field else None,
        repository=block.github_clone_url(),
        number=pr.number,
        head_ref=pr.head_ref,
        head_sha=pr.head_sha,
        base_ref=pr.base_ref,
        title=pr.title,
        author=pr.author or "",
        url=pr.html_url,
    )


@task(cache_policy=NO_CACHE, task_run_name="list-open-pull-requests")
def list_open_pull_requests(block: GitHubRepository, base: str | None) -> list[PullRequest]:
    try:
        return block.list_open_pull_requests(base=base)
    finally:
        block.save_response_cache()


@flow(name="pull-request-watcher", flow_run_name="pull-request-watcher")
@fails_cleanly
def pull_request_watcher(
    repository: str,
    stack: str = "local-webapp",
    base: Text = NO_TEXT,
    labels: list[str] | None = None,
    include_drafts: bool = False,
    build_command: list[str] | None = None,
    image_build: ImageBuild | None = None,
    variables: Variables = NO_VARIABLES,
    work_pool: str = "local",
    watcher: Text = NO_TEXT,
) -> dict[str, list[int]]:
    """Give every open pull request its environment PR_<n>, deploy each new head commit,
    clean up merged and closed ones.

    Args:
        repository: Name of the GitHubRepository block.
        stack: TerraformStack block applied for each environment.
        base: Only pull requests into this branch (all when empty).
        labels: Only pull requests carrying all of these labels.
        include_drafts: Also draft pull requests.
        build_command: Command run in the checkout of each commit before deploying, as
            a list (e.g. ["make", "build"]); none when empty.
        image_build: Build a container image of each commit (tag = SHA) on a
            prefect-docker DockerHost, push it, and give the stack its reference pinned
            by digest; none when empty.
        variables: Extra stack variables for every environment.
        work_pool: Work pool of the per-pull-request deployments.
        watcher: Name of the watcher's state; derived from the repository when empty.
    """
    logger = get_run_logger()
    block = _github(repository)
    name = validate_watcher_name(
        watcher or default_watcher_name("pr", f"{block.owner}/{block.repo}".lower())
    )
    open_prs = list_open_pull_requests(block, base or None)  # raises: nothing below runs
    wanted = {pr.number: pr for pr in open_prs if _wanted(pr, base, labels, include_drafts)}
    report: dict[str, list[int]] = {
        "opened": [],
        "updated": [],
        "closed": [],
        "merged": [],
        "kept": [],
    }
    settings = FeatureEnvironmentSettings(
        repository=repository,
        stack=stack,
        build_command=build_command,
        image_build=image_build,
        variables=variables or {},
    )
    gone: dict[str, PullRequest] = {}

    def opened_or_updated(key: str, sha: str, previous: str | None) -> Any:
        return _event("opened" if previous is None else "updated", block, wanted[int(key)])

    def deploy(key: str, sha: str, previous: str | None) -> None:
        deploy_pull_request(wanted[int(key)], settings, work_pool)
        report["opened" if previous is None else "updated"].append(int(key))

    def confirm_gone(key: str, previous: str) -> Any:
        """A pull request missing from the listing is closed only once GitHub says so."""
        number = int(key)
        try:
            pr = block.get_pull_request(number)
        except Exception as exc:  # noqa: BLE001 - unconfirmed: keep the environment
            logger.warning("PR #%d is not in the listing; GitHub did not confirm: %s", number, exc)
            report["kept"].append(number)
            return False
        if pr.state == "open":
            logger.info(
                "PR #%d is open but no longer matches (draft, base or labels): kept", number
            )
            report["kept"].append(number)
            return False
        gone[key] = pr
        return _event("merged" if pr.merged else "closed", block, pr)

    def clean_up(key: str, previous: str) -> None:
        pr = gone[key]
        run_deployment(
            CLEANUP_DEPLOYMENT,
            parameters={"number": pr.number, "repository": repository, "merged": pr.merged},
            timeout=0,
            as_subflow=False,
        )
        report["merged" if pr.merged else "closed"].append(pr.number)

    watch(
        name,
        {str(number): pr.head_sha for number, pr in wanted.items()},
        opened_or_updated,
        baseline_on_first_run=False,  # every open pull request gets its environment
        on_new=deploy,
        confirm_gone=confirm_gone,
        on_gone=clean_up,
    )
    block.save_response_cache()
    logger.info(
        "%s/%s: %d open (%d wanted); opened %s, updated %s, merged %s, closed %s, kept %s",
        block.owner,
        block.repo,
        len(open_prs),
        len(wanted),
        report["opened"],
        report["updated"],
        report["merged"],
        report["closed"],
        report["kept"],
    )
    return report


def deploy_pull_request(
    pr: PullRequest, settings: FeatureEnvironmentSettings, work_pool: str
) -> str:
    """Ensure PR_<n> (ledger entry and deployment) and run it for the head commit; older
    runs still queued are deleted (the newest head supersedes them). Returns the run id."""
    name = env_name(pr.number)
    ledger = EnvironmentLedger()
    ensure_entry(pr, settings, ledger)
    deployment_id = ensure_feature_deployment(pr.number, settings, work_pool)
    record_head(name, pr.head_sha, deployment_id, ledger)
    with get_client(sync_client=True) as client:
        # runs of an older head that have not started are pointless now
        prefect_api.delete_scheduled_runs(client, deployment_id)
    run = run_deployment(
        f"{FEATURE_FLOW}/{name}",
        parameters=settings.parameters(pr.number, sha=pr.head_sha),
        timeout=0,
        as_subflow=False,
        tags=[f"env:{name}", f"sha:{pr.head_sha[:12]}"],
    )
    return str(run.id)


def ensure_feature_deployment(
    number: int, settings: FeatureEnvironmentSettings, work_pool: str
) -> str:
    """The id of deployment ``feature-environment/PR_<n>``, created when missing.

    Created once, never re-applied: re-applying replaces the deployment's concurrency
    limit, and a run holding the old one's slot would then overlap the next. The
    settings travel with each run's parameters instead."""
    name = env_name(number)
    with get_client(sync_client=True) as client:
        found = prefect_api.deployment_id(client, f"{FEATURE_FLOW}/{name}")
    if found:
        return str(found)
    deployment = feature_environment.to_deployment(
        name=name,
        parameters=settings.parameters(number),
        concurrency_limit=ConcurrencyLimitConfig(
            limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE
        ),
        work_pool_name=work_pool,
        entrypoint_type=EntrypointType.MODULE_PATH,
        tags=[f"env:{name}", "project:prefect-stacks"],
        description=f"Deploys each new commit of pull request #{number} into {name}.",
    )
    try:
        return str(deployment.apply())
    except DeploymentApplyError as exc:
        raise ConfigurationError(
            f"could not create deployment {FEATURE_FLOW}/{name}: {exc} (the "
            f"pull-request-watcher parameter work_pool names the pool; `prefect work-pool "
            f"ls` lists them)"
        ) from exc


# --------------------------------------------------------------------------- deploy


@flow(name=FEATURE_FLOW, flow_run_name="{repository}-pr-{number}-{sha:.7}")
@fails_cleanly
def feature_environment(
    number: int,
    sha: str,
    repository: str,
    stack: str = "local-webapp",
    build_command: list[str] | None = None,
    image_build: ImageBuild | None = None,
    variables: dict[str, Any] | None = None,
    smoke: bool = True,
) -> dict[str, Any]:
    """Deploy one commit of a pull request into its environment PR_<n>.

    Args:
        number: Pull request number.
        sha: The head commit to deploy.
        repository: Name of the GitHubRepository block.
        stack: TerraformStack block to apply (variable `app_version` = the SHA).
        build_command: Command run in the checkout before deploying (a list).
        image_build: Build and push an image of the commit (tag = SHA) through
            prefect-docker; the stack variable it names gets image:sha@digest.
        variables: Extra stack variables.
        smoke: Check that the environment's URL answers and shows the SHA.
    """
    name = env_name(number)
    ledger = EnvironmentLedger()
    env = ledger.get(name)
    skipped = nothing_to_deploy(env, sha)
    if skipped:
        return {"name": name, "state": skipped}
    block = _github(repository)
    report_deploying(block, number, env, sha)
    start_deploy(name, ledger)
    workdir: Path | None = None
    image: str | None = None
    try:
        workdir = checkout(block, sha)
        if build_command:
            build(build_command, workdir, number, sha)
        stack_variables = {**(variables or {}), "app_version": sha}
        if image_build:
            source = redact_url(block.get_clone_url())
            image = build_and_push(image_build, workdir, sha, source, name)
            stack_variables[image_build.variable] = image
        url = apply_stack(load_stack(stack, stack_variables), name)
        if smoke and url:
            smoke_check(url, sha)
    except BaseException as exc:
        env = finish_deploy(name, ledger, TEARDOWN_DEPLOYMENT, exc=exc, version=sha)
        report_failed(block, number, env, sha, exc)
        raise
    finally:
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
    env = finish_deploy(name, ledger, TEARDOWN_DEPLOYMENT, url=url, version=sha)
    if env.state != EnvironmentState.ready:
        return {"name": name, "state": env.state.value}
    report_ready(block, number, env, sha, image)
    get_run_logger().info("%s runs %s at %s", name, sha[:12], env.url)
    result = {"name": name, "url": env.url, "sha": sha, "state": "ready"}
    return {**result, "image": image} if image else result


# --------------------------------------------------------------------------- cleanup


@flow(name="feature-environment-cleanup", flow_run_name="cleanup-pr-{number}")
@fails_cleanly
def feature_environment_cleanup(number: int, repository: str, merged: bool = False) -> str:
    """Destroy PR_<n> (stack, workspace, its deployment and queued runs) after the pull
    request was merged or closed; say so on the pull request.

    Args:
        number: Pull request number.
        repository: Name of the GitHubRepository block.
        merged: The pull request was merged (else closed).
    """
    name = env_name(number)
    ledger = EnvironmentLedger()
    if ledger.find(name) is None:
        get_run_logger().info("%s has no ledger entry: nothing to clean up", name)
        return "already gone"
    outcome = teardown(name, "requested", ledger=ledger)
    if outcome not in ("destroyed", "already destroyed"):
        raise PrefectStacksError(f"{name}: teardown {outcome}; it is retried")
    report_destroyed(_github(repository), number, ledger.get(name), merged)
    return outcome
