"""A pull request's environment ``PR_<n>``: its name and commit-status context, the
settings its ``feature-environment/PR_<n>`` deployment runs with, its ledger entry, and
what the pull request is told (commit status and one sticky comment)."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger
from pydantic import BaseModel, Field

from prefect_stacks._internal.prefect_api import current_flow_run_url
from prefect_stacks.blocks.docker import ImageBuild
from prefect_stacks.blocks.github import GitHubRepository, PullRequest
from prefect_stacks.environments.ledger import EnvironmentLedger
from prefect_stacks.environments.models import Environment, EnvironmentState

COMMENT_MARKER = "environment"


def env_name(number: int) -> str:
    return f"PR_{int(number)}"


def status_context(number: int) -> str:
    return f"prefect-stacks/{env_name(number)}"


class FeatureEnvironmentSettings(BaseModel):
    """What every run of a pull request's ``feature-environment`` deployment is given
    besides the pull request's number and commit: the watcher's settings, passed with
    each run (the deployment is created once and never re-applied)."""

    repository: str = Field(description="Name of the GitHubRepository block.")
    stack: str = Field(description="TerraformStack block applied for the environment.")
    build_command: list[str] | None = Field(
        default=None, description="Command run in the checkout before deploying."
    )
    image_build: ImageBuild | None = Field(
        default=None, description="Build and push an image of the commit (tag = SHA)."
    )
    variables: dict[str, Any] = Field(default_factory=dict, description="Extra stack variables.")

    def parameters(self, number: int, sha: str | None = None) -> dict[str, Any]:
        """The ``feature_environment`` flow's parameters for pull request ``number`` (at
        commit ``sha``, for a run)."""
        params = {"number": number, **self.model_dump(mode="json")}
        return params if sha is None else {**params, "sha": sha}


# ------------------------------------------------------------------ the ledger entry


def ensure_entry(
    pr: PullRequest, settings: FeatureEnvironmentSettings, ledger: EnvironmentLedger
) -> Environment:
    """The live entry of ``pr``'s environment; recorded (no expiry) when it has none or
    its last one was destroyed."""
    name = env_name(pr.number)
    env = ledger.find(name)
    if env is not None and env.state != EnvironmentState.destroyed:
        return env
    return ledger.create(
        Environment(
            name=name,
            kind="pr",
            owner=pr.author,
            stack=settings.stack,
            workspace=name,
            variables=dict(settings.variables),
            expires_at=None,
            desired_version=pr.head_sha,
        )
    )


def record_head(name: str, sha: str, deployment_id: str, ledger: EnvironmentLedger) -> None:
    """The entry now wants commit ``sha``; its deployment is one of its Prefect objects
    (the teardown deletes it)."""

    def record(e: Environment) -> None:
        e.desired_version = sha
        if deployment_id not in e.objects.deployments:
            e.objects.deployments.append(deployment_id)

    ledger.update(name, record)


def nothing_to_deploy(env: Environment, sha: str) -> str | None:
    """Why a run for ``sha`` does nothing (the state to report), or None to deploy:
    the environment is gone or going, or a newer commit is wanted (its run is queued
    behind this one)."""
    logger = get_run_logger()
    if not env.is_live or env.state == EnvironmentState.destroying:
        logger.info("%s is %s: nothing to deploy", env.name, env.state.value)
        return env.state.value
    if env.desired_version and env.desired_version != sha:
        logger.info("%s now wants %s: %s superseded", env.name, env.desired_version[:12], sha[:12])
        return "superseded"
    return None


# ------------------------------------------------------ what the pull request is told


def comment_body(env: Environment, sha: str, state: str, detail: str = "") -> str:
    lines = [
        f"### Environment `{env.name}`",
        "",
        "| | |",
        "|---|---|",
        f"| state | **{state}** |",
        f"| commit | `{sha[:12]}` |",
        f"| URL | {env.url or '—'} |",
    ]
    run_url = current_flow_run_url()
    if run_url:
        lines.append(f"| Prefect run | [{run_url.rsplit('/', 1)[-1][:8]}]({run_url}) |")
    if detail:
        lines += ["", detail]
    return "\n".join(lines)


def report_deploying(block: GitHubRepository, number: int, env: Environment, sha: str) -> None:
    block.set_commit_status(
        sha, "pending", status_context(number), f"Deploying {env.name}", current_flow_run_url()
    )
    block.upsert_sticky_comment(number, COMMENT_MARKER, comment_body(env, sha, "deploying"))


def report_failed(
    block: GitHubRepository, number: int, env: Environment, sha: str, exc: BaseException
) -> None:
    """Status failure and the error in the comment; a GitHub outage is only logged (the
    deploy's error matters more)."""
    try:
        block.set_commit_status(
            sha,
            "failure",
            status_context(number),
            f"{env.name}: deploy failed",
            current_flow_run_url(),
        )
        detail = f"Deploy failed: `{type(exc).__name__}: {str(exc)[:500]}`"
        block.upsert_sticky_comment(
            number, COMMENT_MARKER, comment_body(env, sha, "failed", detail)
        )
    except Exception as report_exc:  # noqa: BLE001 - the deploy error matters more
        get_run_logger().error("could not report the failure to GitHub: %s", report_exc)


def report_ready(
    block: GitHubRepository, number: int, env: Environment, sha: str, image: str | None
) -> None:
    block.set_commit_status(
        sha, "success", status_context(number), f"{env.name} is up to date", env.url
    )
    detail = f"Image `{image}`" if image else ""
    block.upsert_sticky_comment(number, COMMENT_MARKER, comment_body(env, sha, "ready", detail))


def report_destroyed(block: GitHubRepository, number: int, env: Environment, merged: bool) -> None:
    why = "merged" if merged else "closed"
    block.upsert_sticky_comment(
        number,
        COMMENT_MARKER,
        comment_body(env, env.deployed_version or "-" * 12, "destroyed", f"Pull request {why}."),
    )
    if env.deployed_version:
        block.set_commit_status(
            env.deployed_version,
            "success",
            status_context(number),
            f"{env.name} destroyed ({why})",
            None,
        )
