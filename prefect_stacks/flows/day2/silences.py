"""``monitoring-silence``: silence the alerts of a deployment window in Alertmanager, or
expire the silence afterwards.

Create: the matchers, a duration, an author and a comment → one silence (a rerun extends
the same silence instead of adding another) → its id, end and link, in the run's result,
an artifact and Slack. Expire: by the id that create returned, or every active silence
with exactly these matchers; expiring what is already expired or gone is success.
"""

from __future__ import annotations

from typing import Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from prefect_stacks._internal.prefect_api import current_flow_run_creator
from prefect_stacks.blocks.alertmanager import (
    Alertmanager,
    create_silence,
    expire_silence,
    matchers_of,
)
from prefect_stacks.blocks.base import load_block
from prefect_stacks.blocks.slack import slack_channel
from prefect_stacks.exceptions import ConfigurationError

DEFAULT_AUTHOR = "prefect-stacks"


@flow(
    name="monitoring-silence",
    description="Silence alerts in Alertmanager for a while (matchers, duration, author, "
    "comment), or expire that silence.",
)
def monitoring_silence(
    action: Literal["create", "expire"],
    matchers: dict[str, str] | list[str] | None = None,
    duration_minutes: float = 60,
    comment: str = "",
    author: str = "",
    silence_id: str = "",
    alertmanager: str = "default",
    slack: str = "",
) -> dict[str, object]:
    """Create or expire a silence.

    Args:
        action: `create` a silence, or `expire` one.
        matchers: Labels to silence: {"service": "shop"} or matchers such as
            'alertname=~"Http5xx|Latency"', 'env!="dev"'. For expire without an id: every
            active silence with exactly these matchers.
        duration_minutes: How long the silence lasts (create).
        comment: Why (create; Alertmanager requires one), e.g. "deploy of shop 1.4".
        author: Who asks; empty: the run's creator, else "prefect-stacks".
        silence_id: The silence to expire (what create returned).
        alertmanager: Name of the Alertmanager block.
        slack: Name of a Slack Channel block to tell; empty: none.
    """
    channel = slack_channel(slack)
    log = get_run_logger()
    if action == "create":
        if not matchers:
            raise ConfigurationError('create needs matchers, e.g. {"service": "shop"}')
        if duration_minutes <= 0:
            raise ConfigurationError("duration_minutes must be more than 0")
        who = author or current_flow_run_creator() or DEFAULT_AUTHOR
        made = create_silence(alertmanager, matchers, duration_minutes, who, comment)
        text = (
            f"Alerts matching {', '.join(matchers_of(matchers))} are silenced until "
            f"{made['ends_at'][:16].replace('T', ' ')} UTC by {who}: {comment} ({made['url']})"
        )
        result: dict[str, object] = {"action": action, "silence_id": made["id"], **made}
    else:
        if silence_id:
            ids = [silence_id]
        elif matchers:
            block = load_block(
                Alertmanager, alertmanager, create="create it (Blocks > Alertmanager)"
            )
            with block.get_client() as client:
                ids = [s["id"] for s in client.active_silences(matchers)]
        else:
            raise ConfigurationError("expire needs the silence_id (or the matchers) to expire")
        expired = [i for i in ids if expire_silence(alertmanager, i)]
        text = (
            f"Silence(s) {', '.join(expired)} expired: alerts are back."
            if expired
            else f"No active silence to expire ({', '.join(ids) or 'none matched'}): done already."
        )
        result = {"action": action, "expired": expired, "asked": ids}
    log.info("%s", text)
    create_markdown_artifact(f"# monitoring-silence {action}\n\n{text}", key="monitoring-silence")
    if channel:
        channel.post_or_warn(text)
    return result
