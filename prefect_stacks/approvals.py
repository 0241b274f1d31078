"""The approval gate: pause a run on a plan until someone approves or rejects it in the
Prefect UI (or through the API), and record who decided and why. One gate for every job that
applies a plan after review (stacks today; IAM and database copies use the same).

The form is a typed ``RunInput`` (:class:`ApprovalInput`); the decision is kept as an
artifact ``approval-<stack>-<workspace>``. Nobody deciding within the timeout, or a
rejection, ends the run without applying anything (:func:`refusal`).

An approval is bound to the plan it was given for: the SHA-256 of the saved plan file is
shown in the form (and may be sent back with the answer); when the file applied is not
that one, or the answer names another plan, nothing is applied. With four eyes, the
person who requested the run cannot approve it.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from prefect import get_client, get_run_logger, pause_flow_run
from prefect.artifacts import create_markdown_artifact
from prefect.exceptions import FlowPauseTimeout
from prefect.input import RunInput
from prefect.runtime import flow_run
from prefect.states import Cancelled, Failed, Running, State
from pydantic import Field

from prefect_stacks.blocks.terraform import PlanSummary, artifact_key

# How often a paused run asks the server whether it was answered (Prefect's default is
# 10 s, so an approval took up to 10 s to start the apply).
APPROVAL_POLL_SECONDS = 2


class ApprovalInput(RunInput):
    """The form shown in the Prefect UI when an apply waits for approval."""

    decision: Literal["approve", "reject"] = Field(
        description="Approve applies the plan shown above; reject ends the run unchanged."
    )
    approver: str = Field(
        min_length=1, description="Who decides (name or handle); recorded with the run."
    )
    comment: str = Field(default="", description="Why; recorded with the run.")
    plan_sha256: str = Field(
        default="",
        description=(
            "The plan this decision is about (filled in with the plan shown). An answer "
            "naming another plan is refused; empty means the plan shown."
        ),
    )


def plan_sha256(plan: PlanSummary) -> str:
    """SHA-256 of the saved plan file ("" when the plan was not saved)."""
    if not plan.plan_file:
        return ""
    return hashlib.sha256(Path(plan.plan_file).read_bytes()).hexdigest()


def request_approval(
    plan: PlanSummary, timeout: int, *, details: str = ""
) -> tuple[ApprovalInput, str] | None:
    """Pause the run until someone approves or rejects the plan in the UI (or through
    the API), and record who decided and why as an artifact. Returns the answer and the
    SHA-256 of the plan file when it was shown (for :func:`refusal`); None when nobody
    decided within ``timeout`` seconds. ``details`` go above the plan in the form (the
    IAM access summary)."""
    logger = get_run_logger()
    shown = plan_sha256(plan)
    logger.info(
        "waiting for approval: %s (resume the run in the UI); plan sha256 %s",
        plan.headline(),
        shown or "-",
    )
    description = (details + "\n\n" if details else "") + plan.to_markdown()
    if shown:
        description += f"\n\nPlan file SHA-256: `{shown}`"
    try:
        answer: ApprovalInput = pause_flow_run(
            wait_for_input=ApprovalInput.with_initial_data(
                description=description + "\n\nApprove to apply this plan.",
                plan_sha256=shown,
            ),
            timeout=timeout,
            poll_interval=APPROVAL_POLL_SECONDS,
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
            f"Plan: {plan.headline()}" + (f" (sha256 `{shown}`)" if shown else "")
        ),
        description=f"{verdict} by {answer.approver}",
    )
    return answer, shown


def refusal(
    decided: tuple[ApprovalInput, str] | None,
    plan: PlanSummary,
    timeout: int,
    *,
    rerun: str,
    requester: str | None = None,
) -> tuple[type[State], str] | None:
    """What ends a run whose plan was not approved: ``(state, message)``, Failed when
    nobody decided in time, when the answer names another plan, when the plan file is
    no longer the one shown, or when ``requester`` (four eyes) approved their own run;
    Cancelled when rejected; None when approved. ``rerun`` names the flow to run again
    for a fresh plan."""
    if decided is None:
        return (
            Failed,
            f"nobody approved or rejected the plan within {_duration(timeout)}"
            f" (approval_timeout={timeout}): nothing was applied. Run "
            f"{rerun} again for a fresh plan to approve, or raise approval_timeout.",
        )
    answer, shown = decided
    if answer.decision != "approve":
        return (
            Cancelled,
            f"apply rejected by {answer.approver} ({answer.comment or 'no comment'}):"
            f" nothing was applied to {plan.stack}/{plan.workspace}",
        )
    reason = None
    if requester and answer.approver.strip().lower() == requester.strip().lower():
        reason = (
            f"{answer.approver} requested this run and cannot approve it too (four_eyes): "
            f"nothing was applied. Run {rerun} again and have someone else approve."
        )
    elif answer.plan_sha256 and answer.plan_sha256.strip().lower() != shown:
        reason = (
            f"the approval by {answer.approver} is for plan {answer.plan_sha256[:12]}, not "
            f"the plan of this run ({shown[:12]}): nothing was applied. Approve the plan "
            f"shown, or run {rerun} again."
        )
    elif (now := plan_sha256(plan)) != shown:
        reason = (
            f"the plan file changed after it was approved (sha256 {shown[:12]} approved, "
            f"{now[:12]} now): nothing was applied. Run {rerun} again for a new approval."
        )
    if reason is None:
        return None
    # the decision's artifact said "approved": its newest version says it did not count
    create_markdown_artifact(
        key=artifact_key("approval", plan.stack, plan.workspace),
        markdown=f"### Approval refused: `{plan.stack}` / `{plan.workspace}`\n\n{reason}",
        description=f"approval by {answer.approver} refused",
    )
    return Failed, reason


def request_go_ahead(what: str, details: str, timeout: int, *, key: str) -> ApprovalInput | None:
    """The same gate for a job that is not a Terraform plan (a maintenance switch, a
    deploy): pause until someone approves or rejects ``what`` (``details`` in the form),
    record who decided as the artifact ``key``. None when nobody decided in time."""
    logger = get_run_logger()
    logger.info("waiting for approval: %s (resume the run in the UI)", what)
    try:
        answer: ApprovalInput = pause_flow_run(
            wait_for_input=ApprovalInput.with_initial_data(
                description=f"{details}\n\nApprove to go ahead; reject to end the run "
                "with nothing done."
            ),
            timeout=timeout,
            poll_interval=APPROVAL_POLL_SECONDS,
        )
    except FlowPauseTimeout:
        _resume_expired_pause()
        return None
    verdict = "approved" if answer.decision == "approve" else "rejected"
    at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    logger.info("%s %s by %s: %s", what, verdict, answer.approver, answer.comment or "-")
    create_markdown_artifact(
        key=key,
        markdown=(
            f"### {what}: {verdict}\n\n| by | at | comment |\n|---|---|---|\n"
            f"| {answer.approver} | {at} | {answer.comment or '-'} |"
        ),
        description=f"{verdict} by {answer.approver}",
    )
    return answer


def go_ahead_refusal(
    answer: ApprovalInput | None, what: str, timeout: int, *, rerun: str
) -> tuple[type[State], str] | None:
    """What ends a run that was not let go ahead: Failed when nobody decided within
    ``timeout``, Cancelled when rejected; None when approved. Nothing was done yet."""
    if answer is None:
        return (
            Failed,
            f"nobody approved or rejected {what} within {_duration(timeout)} "
            f"(approval_timeout={timeout}): nothing was done. Run {rerun} again, or raise "
            "approval_timeout.",
        )
    if answer.decision != "approve":
        return (
            Cancelled,
            f"{what} rejected by {answer.approver} ({answer.comment or 'no comment'}): "
            "nothing was done",
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
