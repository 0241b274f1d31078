"""Slack: the ``SlackChannel`` block (configuration and client), its one retry handler, and
the Slack text helpers (mrkdwn escaping, Slack's limits, links) that message layouts use.

The block is the "hook" (which channel, which credential, how to reach Slack); message
layouts and the tasks that post them live beside their subject (an environment's are in
:mod:`prefect_stacks.environments.messages`)::

    from prefect_stacks.blocks.slack import SlackChannel

    slack = SlackChannel.load("platform-alerts")
    slack.post("Deploy finished :tada:")

Messages go through slack-sdk's sync clients (``WebClient.chat_postMessage`` with a bot
token, ``WebhookClient`` with an incoming-webhook URL) with one retry handler,
:class:`SlackRetry`: a 429 is retried after its ``Retry-After``, a dropped or refused
connection after a short backoff, at most ``max_retries`` times in all. The async methods
run the same sync call in a worker thread: slack-sdk's async clients need aiohttp, which
prefect-stacks does not depend on.

Slack answers most failures with HTTP 200 and ``{"ok": false, "error": "..."}``; each is
raised as a :class:`~prefect_stacks.exceptions.NotificationError` naming the error code and
the block field to fix. The token and the webhook URL never appear in an error or a log.
"""

from prefect_stacks.blocks.slack.block import SlackChannel, slack_channel
from prefect_stacks.blocks.slack.retry import MAX_RETRY_AFTER_SECONDS, SlackRetry
from prefect_stacks.blocks.slack.text import (
    MAX_BLOCKS,
    MAX_FIELD_TEXT,
    MAX_HEADER_TEXT,
    MAX_MESSAGE_TEXT,
    MAX_SECTION_TEXT,
    clip,
    escape_mrkdwn,
    link,
    slack_length,
)

__all__ = [
    "MAX_BLOCKS",
    "MAX_FIELD_TEXT",
    "MAX_HEADER_TEXT",
    "MAX_MESSAGE_TEXT",
    "MAX_RETRY_AFTER_SECONDS",
    "MAX_SECTION_TEXT",
    "SlackChannel",
    "SlackRetry",
    "clip",
    "escape_mrkdwn",
    "link",
    "slack_channel",
    "slack_length",
]
