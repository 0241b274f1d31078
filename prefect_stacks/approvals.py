"""The approval gate: pause a run on a plan until someone approves or rejects it in the
Prefect UI (or through the API), and record who decided and why. One gate for every job that
applies a plan after review (stacks today; IAM and database copies use the same).

The form is a typed ``RunInput`` (:class:`ApprovalInput`); the decision is kept as an
artifact ``approval-<stack>-<workspace>``. Nobody deciding within the timeout, or a
rejection, ends the run without applying anything (:func:`refusal`).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal

from prefect import get_client, get_run_logger, pause_flow_run
from prefect.artifacts import create_markdown_artifact
from prefect.exceptions import FlowPauseTimeout
from prefect.input import RunInput
from prefect.runtime import flow_run
from prefect.states import Cancelled, Failed, Running, State
from pydantic import Field

from prefect_stacks.blocks.terraform import PlanSummary, artifact_key


class ApprovalInput(RunInput):
    """The form shown in the Prefect UI when an apply waits for approval."""

    decision: Literal["approve", "reject"] = Field(
        description="Approve applies the plan shown above; reject ends the run unchanged."
    )
    approver: str = Field(
        min_length=1, description="Who decides (name or handle); recorded with the run."
    )
    comment: str = Field(default="", description="Why; recorded with the run.")


def request_approval(plan: PlanSummary, timeout: int) -> ApprovalInput | None:
    """Pause the run until someone approves or rejects the plan in the UI (or through
    the API), and record who decided and why as an artifact. None when nobody decided
    within ``timeout`` seconds."""
    logger = get_run_logger()
    logger.info("waiting for approval: %s (resume the run in the UI)", plan.headline())
    try:
        answer: ApprovalInput = pause_flow_run(
            wait_for_input=ApprovalInput.with_initial_data(
                description=plan.to_markdown() + "\n\nApprove to apply this plan.",
            ),
            timeout=timeout,
        )
    except FlowPauseTimeout:
        _resume_expired_pause()
        return None
    at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    verdict = "approved" if answer.decision == "approve" else "rejected"
    if answer.decision == "approve":
        logger.info("apply approved by %s: %s", answer.approver, answer.comment or "-")
    create_markdown_artifact(
        key=artifact_key("approval", plan.stack, plan.workspace),
        markdown=(
            f"### Apply {verdict}: `{plan.stack}` / `{plan.workspace}`\n\n"
            f"| by | at | comment |\n|---|---|---|\n"
            f"| {answer.approver} | {at} | {answer.comment or '-'} |\n\n"
            f"Plan: {plan.headline()}"
        ),
        description=f"{verdict} by {answer.approver}",
    )
    return answer


def refusal(
    answer: ApprovalInput | None, plan: PlanSummary, timeout: int, *, rerun: str
) -> tuple[type[State], str] | None:
    """What ends a run whose plan was not approved: ``(state, message)``, Failed when
    nobody decided in time, Cancelled when rejected; None when approved. ``rerun`` names
    the flow to run again for a fresh plan."""
    if answer is None:
        return (
            Failed,
            f"nobody approved or rejected the plan within {_duration(timeout)}"
            f" (approval_timeout={timeout}): nothing was applied. Run "
            f"{rerun} again for a fresh plan to approve, or raise approval_timeout.",
        )
    if answer.decision != "approve":
        return (
            Cancelled,
            f"apply rejected by {answer.approver} ({answer.comment or 'no comment'}):"
            f" nothing was applied to {plan.stack}/{plan.workspace}",
        )
    return None


def _resume_expired_pause() -> None:
    """Put the run back to Running after its pause expired: the server turns any state
    proposed from an expired pause into Failed("... never resumed."), which would hide
    the message the run ends with (what was applied, what to do)."""
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(
            flow_run.id, Running(message="no approval in time; ending the run"), force=True
        )


def _duration(seconds: int) -> str:
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"
