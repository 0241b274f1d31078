"""``iam-apply``: access management as a stack (``stacks/iam``, or yours).

The steps: plan → the access summary in words from the plan JSON (artifact, Slack) → a
plan that would remove a break-glass principal is refused before anyone is asked → pause
for approval with the typed form (the one approval gate), bound to the plan file's hash
→ with four eyes, the requester cannot approve → apply exactly the approved plan file.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.states import Completed, Failed, State

from prefect_stacks._internal.failures import fails_cleanly
from prefect_stacks._internal.parameters import NO_TEXT, NO_VARIABLES, Text, Variables
from prefect_stacks._internal.prefect_api import current_flow_run_creator, current_flow_run_url
from prefect_stacks.approvals import refusal, request_approval
from prefect_stacks.blocks.slack import SlackChannel, slack_channel
from prefect_stacks.blocks.terraform import (
    artifact_key,
    load_stack,
    terraform_apply,
    terraform_init,
    terraform_plan,
    validate_workspace,
)
from prefect_stacks.exceptions import ConfigurationError
from prefect_stacks.iam.summary import access_changes, parse_principals, removals, to_markdown

__all__ = ["iam_apply"]


def _requester(requested_by: str, four_eyes: bool) -> str | None:
    """Who asked for this run: the server's record (Prefect Cloud), else ``requested_by``."""
    who = current_flow_run_creator() or requested_by.strip() or None
    if four_eyes and who is None:
        raise ConfigurationError(
            "four_eyes is on but nobody is named as the requester: set requested_by (a "
            "self-hosted Prefect server does not record who started a run), e.g. the CI "
            "job's $GITLAB_USER_LOGIN, or turn four_eyes off"
        )
    return who


def _ended(state: type[State], message: str, channel: SlackChannel | None, where: str) -> State:
    get_run_logger().warning("%s", message)
    if channel is not None:
        channel.post_or_warn(f":no_entry: *{where}*: not applied. {message}")
    return state(message=message)


@flow(name="iam-apply", flow_run_name="iam-apply", log_prints=True)
@fails_cleanly
def iam_apply(
    stack: str = "iam",
    workspace: Text = NO_TEXT,
    variables: Variables = NO_VARIABLES,
    break_glass: list[str] | None = None,
    four_eyes: bool = True,
    requested_by: str = "",
    slack: str | None = None,
    approval_timeout: int = 86400,
) -> State:
    """Plan an access stack, say what it changes in words, wait for an approval bound to
    that plan, and apply exactly it.

    Args:
        stack: Name of the TerraformStack block of the access stack.
        workspace: Terraform workspace (default: the block's).
        variables: Variables for this run, merged over the block's.
        break_glass: Principals no plan may remove: `postgres:<role>`, `github:<login>`
            (or `@<login>`), `team:<name>`. Such a plan is refused before anyone is asked.
        four_eyes: The person who requested the run cannot approve it.
        requested_by: Who requests the run (a self-hosted server does not record it).
        slack: Name of a Slack Channel block told about the request and the outcome.
        approval_timeout: Seconds to wait for the approval; then nothing is applied.
    """
    if workspace:
        validate_workspace(workspace)
    if not isinstance(approval_timeout, int) or approval_timeout <= 0:
        raise ConfigurationError(f"approval_timeout={approval_timeout!r}: seconds, above 0")
    protected = parse_principals(break_glass or [])
    requester = _requester(requested_by, four_eyes)
    channel = slack_channel(slack)
    logger = get_run_logger()
    block = load_stack(stack, variables)
    with terraform_init(block, workspace or None) as workdir:
        plan = terraform_plan(workdir)
        where = f"{plan.stack}/{plan.workspace}"
        if not plan.has_changes:
            logger.info("no changes: access is as the stack says")
            return Completed(message="no changes")
        changes = access_changes(workdir.plan_json(Path(plan.plan_file or "")))
        summary = to_markdown(f"Access changes: `{where}`", changes)
        create_markdown_artifact(
            key=artifact_key("access", plan.stack, plan.workspace),
            markdown=summary,
            description=f"{len(changes)} access change(s) in {where}",
        )
        for change in changes:
            logger.info("access: %s", change.sentence)
        if blocked := removals(changes, protected):
            return _ended(
                Failed,
                "refused before approval: the plan would remove break-glass "
                + "; ".join(f"{c.principal} ({c.sentence})" for c in blocked)
                + ". Nothing was applied; keep them in the access file, or change "
                "break_glass.",
                channel,
                where,
            )
        if channel is not None:
            lines = "\n".join(f"• {c.sentence}" for c in changes[:30])
            channel.post_or_warn(
                f":lock: *{where}*: access change waiting for approval"
                f"{f' (requested by {requester})' if requester else ''}\n{lines}\n"
                f"{current_flow_run_url() or ''}"
            )
        decided = request_approval(plan, approval_timeout, details=summary)
        refused = refusal(
            decided,
            plan,
            approval_timeout,
            rerun="iam-apply",
            requester=requester if four_eyes else None,
        )
        if refused:
            return _ended(*refused, channel, where)
        assert decided is not None
        terraform_apply(workdir, plan)
    approver = decided[0].approver
    message = f"applied {len(changes)} access change(s) to {where}, approved by {approver}"
    logger.info("%s", message)
    if channel is not None:
        channel.post_or_warn(f":white_check_mark: *{where}*: {message}")
    return Completed(message=message)
