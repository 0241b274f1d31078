"""Telling people what a deploy did: one event (``stacks.deploy.succeeded`` or
``stacks.deploy.rolled-back``) and, when a Slack block is named, one message. A message
that cannot be sent is a warning in the run's log: it never turns a deploy's outcome
into another."""

from __future__ import annotations

from prefect.runtime import flow_run

from prefect_stacks import events
from prefect_stacks._internal.process import default_logger
from prefect_stacks.blocks.slack import slack_channel
from prefect_stacks.deploys.methods import Image
from prefect_stacks.deploys.targets import Target
from prefect_stacks.exceptions import EmitError, PrefectStacksError


def _run_id() -> str | None:
    return flow_run.get_id()


def _post(slack: str | None, text: str) -> None:
    if not slack:
        return
    try:
        channel = slack_channel(slack)
    except PrefectStacksError as exc:
        default_logger().warning("could not tell Slack (%s): %s", slack, exc)
        return
    channel.post_or_warn(text)


def _emit(event) -> None:
    try:
        events.emit([event])
    except EmitError as exc:
        default_logger().warning("could not emit %s: %s", event.event, exc)


def succeeded(target: Target, image: Image, method: str, slack: str | None) -> None:
    _emit(
        events.deploy_succeeded(
            target.key, image.pinned, image.digest, image.tag, method, _run_id()
        )
    )
    _post(slack, f":white_check_mark: *{target.key}* now runs `{image.pinned}` ({method})")


def rolled_back(
    target: Target,
    running: Image,
    *,
    failed: Image | None,
    reason: str,
    stage: str,
    quarantined: bool,
    pinned: bool,
    slack: str | None,
) -> None:
    _emit(
        events.deploy_rolled_back(
            target.key,
            running.pinned,
            running.digest,
            failed_digest=failed.digest if failed else None,
            reason=reason,
            stage=stage,
            quarantined=quarantined,
            pinned=pinned,
            flow_run_id=_run_id(),
        )
    )
    what = f"`{failed.short}` failed ({stage}): {reason}" if failed else reason
    notes = []
    if quarantined and failed:
        notes.append(f"`{failed.digest[:19]}` is quarantined for this target")
    if pinned:
        notes.append("the target is pinned until someone runs kubernetes-unpin")
    _post(
        slack,
        f":rewind: *{target.key}* rolled back to `{running.pinned}`: {what}"
        + (f" ({'; '.join(notes)})" if notes else ""),
    )
