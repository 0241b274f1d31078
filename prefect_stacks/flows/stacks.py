"""Terraform stacks as one-click jobs: plan, apply (with an optional approval gate),
destroy, and a drift check that never applies, each a deployment in
``deployments/prefect.yaml``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_link_artifact, create_markdown_artifact
from prefect.runtime import flow_run
from prefect.states import Completed, State

from prefect_stacks import events
from prefect_stacks._internal.failures import fails_cleanly
from prefect_stacks._internal.parameters import NO_TEXT, NO_VARIABLES, Text, Variables
from prefect_stacks.approvals import refusal, request_approval
from prefect_stacks.blocks.slack import slack_channel
from prefect_stacks.blocks.terraform import (
    PlanSummary,
    artifact_key,
    load_stack,
    terraform_apply,
    terraform_delete_workspace,
    terraform_destroy,
    terraform_init,
    terraform_outputs,
    terraform_plan,
    validate_workspace,
    workspace_slug,
)
from prefect_stacks.drift import DriftRecord, IgnoreRule, read_drift, tell_drift
from prefect_stacks.exceptions import ConfigurationError

DEFAULT_STACK = "local-webapp"


def _run_name(verb: str) -> Callable[[], str]:
    """``flow_run_name`` of a stack flow: ``apply-<stack>-<workspace>`` made of slugs only,
    whatever the parameters hold (a bad workspace is refused by the run itself, but its
    name is shown in the Runs list first)."""

    def name() -> str:
        parameters = flow_run.parameters or {}
        parts = [verb, workspace_slug(str(parameters.get("stack") or ""))[:60] or "stack"]
        if parameters.get("workspace"):
            parts.append(workspace_slug(str(parameters["workspace"]))[:60] or "workspace")
        return "-".join(parts)

    name.__name__ = f"{verb}_run_name"
    return name


def _check_parameters(workspace: str, approval_timeout: int | None = None) -> None:
    """Refuse bad parameters before anything runs, as a ConfigurationError (one line in
    the run's logs, the run Failed with it)."""
    if workspace:  # empty: the block's
        validate_workspace(workspace)
    if approval_timeout is not None and (
        not isinstance(approval_timeout, int) or approval_timeout <= 0
    ):
        raise ConfigurationError(
            f"approval_timeout={approval_timeout!r}: give the seconds to wait for an "
            "approval, a whole number above 0 (e.g. 3600)."
        )


def _not_applied(state: type[State], message: str) -> State:
    """End an apply that changed nothing: one WARNING line, the run in ``state``."""
    get_run_logger().warning("%s", message)
    return state(message=message)


def _announce(plan: PlanSummary, url: str | None) -> None:
    """``stacks.stack.applied``, related to this run: the event feed of the run (what
    `prefect deployment run --watch` prints) shows the page. Posted and confirmed before
    the run ends, so it comes before the run's Completed; never fails the apply."""
    try:
        events.emit(
            [
                events.stack_applied(
                    plan.stack,
                    plan.workspace,
                    url,
                    add=plan.add,
                    change=plan.change,
                    destroy=plan.destroy,
                    flow_run_id=str(flow_run.id),
                    flow_run_name=flow_run.name or "",
                )
            ]
        )
    except events.EmitError as exc:
        get_run_logger().warning("could not announce the apply: %s", exc)


@flow(name="stack-plan", flow_run_name=_run_name("plan"), log_prints=True)
@fails_cleanly
def stack_plan(
    stack: str = DEFAULT_STACK,
    workspace: Text = NO_TEXT,
    variables: Variables = NO_VARIABLES,
) -> PlanSummary:
    """Plan a Terraform stack and publish what would change as an artifact.

    Args:
        stack: Name of the TerraformStack block.
        workspace: Terraform workspace (default: the block's); created on demand.
        variables: Variables for this run, merged over the block's.
    """
    _check_parameters(workspace)
    block = load_stack(stack, variables)
    with terraform_init(block, workspace or None) as workdir:
        return terraform_plan(workdir)


@flow(name="stack-apply", flow_run_name=_run_name("apply"), log_prints=True)
@fails_cleanly
def stack_apply(
    stack: str = DEFAULT_STACK,
    workspace: Text = NO_TEXT,
    variables: Variables = NO_VARIABLES,
    require_approval: bool = False,
    approval_timeout: int = 3600,
) -> dict[str, Any]:
    """Plan, (optionally) wait for approval, apply, and return the stack's outputs.

    Args:
        stack: Name of the TerraformStack block.
        workspace: Terraform workspace (default: the block's); created on demand.
        variables: Variables for this run, merged over the block's.
        require_approval: Pause after the plan until someone approves it in the UI.
        approval_timeout: Seconds to wait for approval; then the run fails, nothing applied.
    """
    logger = get_run_logger()
    _check_parameters(workspace, approval_timeout)
    block = load_stack(stack, variables)
    with terraform_init(block, workspace or None) as workdir:
        plan = terraform_plan(workdir)
        if plan.has_changes:
            if require_approval:
                decided = request_approval(plan, approval_timeout)
                if refused := refusal(decided, plan, approval_timeout, rerun="stack-apply"):
                    return _not_applied(*refused)
            terraform_apply(workdir, plan)
        else:
            logger.info("no changes: nothing to apply")
        outputs = terraform_outputs(workdir)
    url = outputs.values.get("url")
    if not (isinstance(url, str) and url.startswith(("http://", "https://"))):
        url = None
    _announce(plan, url)
    if url is None:
        return outputs.values
    create_link_artifact(
        key=artifact_key("url", plan.stack, plan.workspace),
        link=url,
        link_text=url,
        description=f"The page {plan.stack} / {plan.workspace} serves",
    )
    # The last log line and the state message: what `prefect-stacks trigger --wait` and
    # the UI show last (`prefect deployment run --watch` shows the event above).
    logger.info("%s/%s applied: url=%s", plan.stack, plan.workspace, url)
    return Completed(message=f"applied: url={url}", data=outputs.values)


@flow(name="stack-destroy", flow_run_name=_run_name("destroy"), log_prints=True)
@fails_cleanly
def stack_destroy(
    stack: str = DEFAULT_STACK,
    workspace: Text = NO_TEXT,
    variables: Variables = NO_VARIABLES,
    delete_workspace: bool = False,
) -> None:
    """Destroy everything a stack created in a workspace.

    Args:
        stack: Name of the TerraformStack block.
        workspace: Terraform workspace (default: the block's).
        variables: Variables for this run, merged over the block's.
        delete_workspace: Also delete the (then empty) workspace.
    """
    _check_parameters(workspace)
    block = load_stack(stack, variables)
    with terraform_init(block, workspace or None, create_workspace=False) as workdir:
        terraform_destroy(workdir)
        if delete_workspace:
            terraform_delete_workspace(workdir)


@flow(name="drift-check", flow_run_name=_run_name("drift"), log_prints=True)
@fails_cleanly
def drift_check(
    stack: str = DEFAULT_STACK,
    workspace: Text = NO_TEXT,
    variables: Variables = NO_VARIABLES,
    ignore: list[str] | None = None,
    slack: str | None = None,
) -> dict[str, Any]:
    """Check whether the real infrastructure still is what the stack says: a plan with
    refresh, never applied. Drift is told once (event, Slack, artifact), and once when
    it is resolved.

    Args:
        stack: Name of the TerraformStack block.
        workspace: Terraform workspace (default: the block's); it must exist.
        variables: Variables for this run, merged over the block's.
        ignore: Known-noise diffs: `ADDRESS` or `ADDRESS:ATTRIBUTE` patterns, e.g.
            `github_team.team[*]:description`.
        slack: Name of a Slack Channel block told when drift starts, changes or ends.
    """
    _check_parameters(workspace)
    rules = [IgnoreRule.parse(rule) for rule in ignore or []]
    channel = slack_channel(slack)
    block = load_stack(stack, variables)
    with terraform_init(block, workspace or None, create_workspace=False) as workdir:
        if not workdir.exists:
            raise ConfigurationError(
                f"{stack}: workspace {workdir.workspace!r} does not exist, so there is "
                "nothing to check: apply the stack there first, or name another workspace"
            )
        plan = terraform_plan(workdir, artifact=False)
        drift = read_drift(plan, workdir.plan_json(Path(plan.plan_file or "")), rules)
    create_markdown_artifact(
        key=artifact_key("drift", drift.stack, drift.workspace),
        markdown=drift.to_markdown(),
        description=drift.headline(),
    )
    told = tell_drift(drift, DriftRecord(drift.stack, drift.workspace), channel)
    get_run_logger().info("%s (%s)", drift.headline(), told)
    return {
        "drifted": drift.drifted,
        "resources": [rc.address for rc in drift.resources],
        "ignored": drift.ignored,
        "told": told,
    }
