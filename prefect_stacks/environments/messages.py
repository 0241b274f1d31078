"""Telling about environments: a ``stacks.environment.<event>`` Prefect event and a Slack
message for each change (:func:`say`), the ``environments`` table artifact of every live
environment, the Slack layout (:func:`environment_message`) and the ``notify_environment``
task that posts one through a :class:`~prefect_stacks.blocks.slack.SlackChannel`. None of
these fails a run: the ledger is the truth, these are views::

    from prefect_stacks.blocks.slack import SlackChannel
    from prefect_stacks.environments.messages import notify_environment

    slack = SlackChannel.load("platform-alerts")
    notify_environment(slack, "created", name="demo-7f3a", url="https://demo-7f3a.example.com",
                       owner="alice", ttl_seconds=7200)

The generic Slack text helpers (escaping, clipping to Slack's limits, links) are in
:mod:`prefect_stacks.blocks.slack`.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from prefect_stacks import events
from prefect_stacks._internal.prefect_api import current_flow_run_id, current_flow_run_url
from prefect_stacks._internal.process import default_logger
from prefect_stacks.blocks.base import load_block
from prefect_stacks.blocks.slack import (
    MAX_BLOCKS,
    MAX_FIELD_TEXT,
    MAX_HEADER_TEXT,
    MAX_SECTION_TEXT,
    SlackChannel,
    clip,
    escape_mrkdwn,
    link,
    slack_length,
)
from prefect_stacks.environments.ledger import EnvironmentLedger
from prefect_stacks.environments.models import (
    Environment,
    expiry_text,
    format_duration,
    utcnow,
)
from prefect_stacks.exceptions import ConfigurationError

_EVENTS: dict[str, tuple[str, str]] = {
    "created": (":white_check_mark:", "Environment created"),
    "expiring": (":hourglass_flowing_sand:", "Environment expiring"),
    "destroyed": (":wastebasket:", "Environment destroyed"),
    "teardown-failed": (":rotating_light:", "Teardown FAILED"),
}
_ALERT_EVENTS = {"teardown-failed"}


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def humanize_seconds(seconds: float) -> str:
    """``42 min``, ``3 h 5 min``, ``2 d 4 h``."""
    seconds = int(round(abs(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes = int(round(seconds / 60))
    if minutes < 120:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def _relative(when: datetime, now: datetime) -> str:
    delta = (when - now).total_seconds()
    if abs(delta) < 30:
        return "now"
    span = humanize_seconds(delta)
    return f"in {span}" if delta > 0 else f"{span} ago"


def environment_message(
    event: str,
    *,
    name: str,
    url: str | None = None,
    owner: str | None = None,
    expires_at: datetime | None = None,
    ttl_seconds: int | None = None,
    run_url: str | None = None,
    detail: str | None = None,
    now: datetime | None = None,
) -> tuple[str, list[dict]]:
    """The message for an environment lifecycle event: ``(fallback text, blocks)``.

    ``event`` is ``created``, ``expiring``, ``destroyed``, ``teardown-failed`` (an alert)
    or any other word (shown as is). Every value is escaped for mrkdwn and cut to Slack's
    limits (header 150, section 3000, field 2000 characters; a handful of blocks), so a
    long name or a huge ``detail`` cannot make Slack reject the message. ``now`` is for
    tests ("expires in N min" is relative to it).
    """
    now = _as_utc(now or datetime.now(timezone.utc))
    emoji, title = _EVENTS.get(event, (":information_source:", f"Environment {event}"))
    alert = event in _ALERT_EVENTS

    header = clip(f"{emoji} {title}: {name}", MAX_HEADER_TEXT)
    fallback = f"{emoji} {title}: {escape_mrkdwn(name)}"
    if alert:
        fallback += " (resources may still be running)"
    blocks: list[dict] = [
        {"type": "header", "text": {"type": "plain_text", "text": header, "emoji": True}}
    ]
    if alert:
        blocks.append(_section(_ACTION_NEEDED.format(name=escape_mrkdwn(name))))
    blocks.append(_fields(name, url, expires_at, ttl_seconds, owner, now))
    if detail:
        blocks.append(_detail(detail, alert))
    if run_url:
        # A context link rather than a button: a URL button makes Slack call the app's
        # interactivity endpoint and shows a warning when the app has none.
        run_link = link(run_url, "View the Prefect flow run", limit=MAX_SECTION_TEXT - 10)
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f":link: {run_link}"}]}
        )
    return clip(fallback, MAX_SECTION_TEXT), blocks[:MAX_BLOCKS]


_ACTION_NEEDED = (
    ":rotating_light: *Action needed:* the teardown of *{name}* failed, so its resources may "
    "still be running (and costing). Read the error below and the flow run, fix the cause, "
    "then run the teardown again."
)


def _section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, MAX_SECTION_TEXT)}}


def _field(label: str, value: str) -> dict:
    head = f"*{label}*\n"
    return {"type": "mrkdwn", "text": head + clip(value, MAX_FIELD_TEXT - slack_length(head))}


def _fields(
    name: str,
    url: str | None,
    expires_at: datetime | None,
    ttl_seconds: int | None,
    owner: str | None,
    now: datetime,
) -> dict:
    """The section of labelled fields: environment, URL, expiry, TTL, owner."""
    fields = [_field("Environment", escape_mrkdwn(name))]
    if url:
        fields.append(_field("URL", link(url, url, limit=MAX_FIELD_TEXT - 10)))
    if expires_at is not None:
        when = _as_utc(expires_at)
        label = "Expired" if when <= now else "Expires"
        fields.append(_field(label, f"{when:%Y-%m-%d %H:%M} UTC ({_relative(when, now)})"))
    if ttl_seconds is not None:
        fields.append(_field("TTL", humanize_seconds(ttl_seconds)))
    if owner:
        fields.append(_field("Owner", escape_mrkdwn(owner)))
    return {"type": "section", "fields": fields}


def _detail(detail: str, alert: bool) -> dict:
    escaped = escape_mrkdwn(detail).replace("```", "'''")
    if alert:  # an error output: its end says most
        return _section("```" + clip(escaped, MAX_SECTION_TEXT - 6, keep="tail") + "```")
    return _section(escaped)


# --------------------------------------------------------------------- task


@task(cache_policy=NO_CACHE)
def notify_environment(
    slack: SlackChannel | None,
    event: str,
    *,
    raise_on_error: bool = False,
    **fields: Any,
) -> bool:
    """Post an environment lifecycle message (see :func:`environment_message` for the
    fields: ``name``, ``url``, ``owner``, ``expires_at``, ``ttl_seconds``, ``run_url``,
    ``detail``). Returns True when Slack took it.

    Without a block it only logs and returns False. When Slack fails it logs a warning
    and returns False, so that a Slack outage never stops a teardown; pass
    ``raise_on_error=True`` to raise the ``NotificationError`` instead.
    """
    log = default_logger()
    text, blocks = environment_message(event, **fields)
    name = fields.get("name")
    if slack is None:
        log.info("No Slack channel configured; not posting %r for environment %r.", event, name)
        return False
    try:
        slack.post(text, blocks)
    except Exception as exc:
        if raise_on_error:
            raise
        log.warning(
            "Could not post %r for environment %r to Slack: %s",
            event,
            name,
            slack.redact(str(exc)),
        )
        return False
    log.info("Posted %r for environment %r to Slack.", event, name)
    return True


__all__ = ["environment_message", "humanize_seconds", "notify_environment"]


def slack_channel(name: str | None) -> SlackChannel | None:
    """The SlackChannel block ``name`` (None for no name); a missing one is a
    ConfigurationError that says how to make it."""
    if not name:
        return None
    return load_block(
        SlackChannel, name, create="create it (Blocks > Slack Channel) or leave slack_block empty"
    )


def say(env: Environment, event: str, **extra: Any) -> None:
    """Tell about an environment event: a ``stacks.environment.<event>`` Prefect event
    (for automations) and a Slack message. Neither outage fails the run."""
    try:
        events.emit(
            [
                events.environment_event(
                    event,
                    name=env.name,
                    kind=env.kind,
                    state=env.state.value,
                    url=env.url,
                    owner=env.owner,
                    expires_at=env.expires_at,
                    version=str(env.revision),
                    flow_run_id=current_flow_run_id(),
                )
            ]
        )
    except Exception as exc:  # noqa: BLE001 - best effort, like Slack
        get_run_logger().warning("could not emit stacks.environment.%s: %s", event, exc)
    slack = None
    try:
        slack = slack_channel(env.slack_block)
    except ConfigurationError as exc:
        get_run_logger().warning("%s", exc)
    ttl = None
    if env.expires_at is not None:
        ttl = int((env.expires_at - env.created_at).total_seconds())
    notify_environment(
        slack,
        event,
        name=env.name,
        url=env.url,
        owner=env.owner,
        expires_at=env.expires_at,
        ttl_seconds=ttl,
        run_url=current_flow_run_url(),
        **extra,
    )


def refresh_environment_table(ledger: EnvironmentLedger | None = None) -> None:
    """Republish the ``environments`` table after a change of state (created, ready,
    failed, destroyed), so the UI's artifact is true between janitor runs. One ledger
    listing and one artifact; an outage is logged, never fails the run."""
    try:
        publish_environment_table((ledger or EnvironmentLedger()).list())
    except Exception as exc:  # noqa: BLE001 - the table is a view; the ledger is the truth
        get_run_logger().warning("could not refresh the environments table: %s", exc)


def publish_environment_table(entries: list[Environment]) -> None:
    """The ``environments`` table artifact: every live environment."""
    now = utcnow()
    rows = [
        {
            "name": e.name,
            "kind": e.kind,
            "state": e.state.value,
            "owner": e.owner or "",
            "age": format_duration(now - e.created_at),
            "expires in": expiry_text(e, now),
            "url": e.url or "",
        }
        for e in sorted(entries, key=lambda e: e.created_at)
    ]
    create_table_artifact(
        key="environments",
        table=rows or [{"name": "(none)", "state": "", "url": ""}],
        description=f"{len(rows)} live environment(s) at {now:%Y-%m-%d %H:%M:%S} UTC",
    )
