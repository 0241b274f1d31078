"""Terraform stacks as one-click jobs: plan, apply (with an optional approval gate) and
destroy, each a deployment in ``deployments/prefect.yaml``."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal

from prefect import flow, get_run_logger, pause_flow_run
from prefect.artifacts import create_link_artifact, create_markdown_artifact
from prefect.input import RunInput
from prefect.states import Cancelled
from pydantic import Field

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
)

DEFAULT_STACK = "local-webapp"


class ApprovalInput(RunInput):
    """The form shown in the Prefect UI when an apply waits for approval."""

    decision: Literal["approve", "reject"] = Field(
        description="Approve applies the plan shown above; reject ends the run unchanged."
    )
    approver: str = Field(
        min_length=1, description="Who decides (name or handle); recorded with the run."
    )
    comment: str = Field(default="", description="Why; recorded with the run.")


def request_approval(plan: PlanSummary, timeout: int) -> ApprovalInput:
    """Pause the run until someone approves or rejects the plan in the UI (or through
    the API), and record who decided and why as an artifact."""
    logger = get_run_logger()
    logger.info("waiting for approval: %s (resume the run in the UI)", plan.headline())
    answer: ApprovalInput = pause_flow_run(
        wait_for_input=ApprovalInput.with_initial_data(
            description=plan.to_markdown() + "\n\nApprove to apply this plan.",
        ),
        timeout=timeout,
    )
    at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    logger.info("%s by %s: %s", answer.decision, answer.approver, answer.comment or "-")
    create_markdown_artifact(
        key=artifact_key("approval", plan.stack, plan.workspace),
        markdown=(
            f"### Apply {answer.decision}d: `{plan.stack}` / `{plan.workspace}`\n\n"
            f"| by | at | comment |\n|---|---|---|\n"
            f"| {answer.approver} | {at} | {answer.comment or '-'} |\n\n"
            f"Plan: {plan.headline()}"
        ),
        description=f"{answer.decision} by {answer.approver}",
    )
    return answer


@flow(name="stack-plan", flow_run_name="plan-{stack}-{workspace}", log_prints=True)
def stack_plan(
    stack: str = DEFAULT_STACK,
    workspace: str | None = None,
    variables: dict[str, Any] | None = None,
) -> PlanSummary:
    """Plan a Terraform stack and publish what would change as an artifact.

    Args:
        stack: Name of the TerraformStack block.
        workspace: Terraform workspace (default: the block's); created on demand.
        variables: Variables for this run, merged over the block's.
    """
    block = load_stack(stack, variables)
    with terraform_init(block, workspace) as workdir:
        return terraform_plan(workdir)


@flow(name="stack-apply", flow_run_name="apply-{stack}-{workspace}", log_prints=True)
def stack_apply(
    stack: str = DEFAULT_STACK,
    workspace: str | None = None,
    variables: dict[str, Any] | None = None,
    require_approval: bool = False,
    approval_timeout: int = 3600,
) -> dict[str, Any]:
    """Plan, (optionally) wait for approval, apply, and return the stack's outputs.

    Args:
        stack: Name of the TerraformStack block.
        workspace: Terraform workspace (default: the block's); created on demand.
        variables: Variables for this run, merged over the block's.
        require_approval: Pause after the plan until someone approves it in the UI.
        approval_timeout: Seconds to wait for approval before the run fails.
    """
    logger = get_run_logger()
    block = load_stack(stack, variables)
    with terraform_init(block, workspace) as workdir:
        plan = terraform_plan(workdir)
        if plan.has_changes:
            if require_approval:
                answer = request_approval(plan, approval_timeout)
                if answer.decision != "approve":
                    return Cancelled(
                        message=f"apply rejected by {answer.approver}: {answer.comment or '-'}"
                    )
            terraform_apply(workdir, plan)
        else:
            logger.info("no changes: nothing to apply")
        outputs = terraform_outputs(workdir)
    url = outputs.values.get("url")
    if isinstance(url, str) and url.startswith(("http://", "https://")):
        create_link_artifact(
            key=artifact_key("url", plan.stack, plan.workspace),
            link=url,
            link_text=f"{plan.stack} / {plan.workspace}",
            description=f"URL of {plan.stack} in workspace {plan.workspace}",
        )
    return outputs.values


@flow(name="stack-destroy", flow_run_name="destroy-{stack}-{workspace}", log_prints=True)
def stack_destroy(
    stack: str = DEFAULT_STACK,
    workspace: str | None = None,
    variables: dict[str, Any] | None = None,
    delete_workspace: bool = False,
) -> None:
    """Destroy everything a stack created in a workspace.

    Args:
        stack: Name of the TerraformStack block.
        workspace: Terraform workspace (default: the block's).
        variables: Variables for this run, merged over the block's.
        delete_workspace: Also delete the (then empty) workspace.
    """
    block = load_stack(stack, variables)
    with terraform_init(block, workspace, create_workspace=False) as workdir:
        terraform_destroy(workdir)
        if delete_workspace:
            terraform_delete_workspace(workdir)
