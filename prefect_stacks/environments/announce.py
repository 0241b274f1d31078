"""Telling about environments: a ``stacks.environment.<event>`` Prefect event and a Slack
message for each change (:func:`say`), and the ``environments`` table artifact of every
live environment. None of these fails a run: the ledger is the truth, these are views."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger
from prefect.artifacts import create_table_artifact

from prefect_stacks import events
from prefect_stacks._internal.prefect_api import current_flow_run_id, current_flow_run_url
from prefect_stacks.blocks.base import load_block
from prefect_stacks.blocks.slack import SlackChannel, notify_environment
from prefect_stacks.environments.ledger import EnvironmentLedger
from prefect_stacks.environments.models import (
    Environment,
    expiry_text,
    format_duration,
    utcnow,
)
from prefect_stacks.exceptions import ConfigurationError


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
