"""The ``SlackChannel`` block: which channel, which credential (a bot token or an
incoming-webhook URL), how to reach Slack; posting; and the translation of every Slack error
code into a NotificationError that names the field to fix."""

from __future__ import annotations

import asyncio
from http.client import HTTPException
from typing import Any

from prefect.blocks.abstract import NotificationBlock
from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry import RetryHandler
from slack_sdk.webhook import WebhookClient

from prefect_stacks._internal.process import Redactor, default_logger
from prefect_stacks.blocks.base import StacksBlock
from prefect_stacks.blocks.slack.errors import (
    CHANNEL_ERRORS,
    MESSAGE_ERRORS,
    TOKEN_ERRORS,
    WEBHOOK_CHANNEL_ERRORS,
    WEBHOOK_URL_ERRORS,
)
from prefect_stacks.blocks.slack.retry import (
    SDK_LOGGER,
    SlackRetry,
    describe_connection_error,
    host_of,
)
from prefect_stacks.blocks.slack.text import MAX_MESSAGE_TEXT, clip, escape_mrkdwn
from prefect_stacks.exceptions import ConfigurationError, NotificationError, PrefectStacksError


class SlackChannel(NotificationBlock, StacksBlock):
    """A Slack channel to post to, with a bot token (``chat.postMessage``) or an incoming
    webhook. Prefect automations can use it as their notification block; flows post
    environment lifecycle messages through
    :func:`prefect_stacks.environments.messages.notify_environment`.

    Example:
        Load a stored channel and post to it:
        ```python
        from prefect_stacks.blocks.slack import SlackChannel

        slack = SlackChannel.load("BLOCK_NAME")
        slack.post("Deploy finished :tada:")
        ```
    """

    _block_type_name = "Slack Channel"
    _block_type_slug = "slack-channel"
    _logo_url = "https://cdn.sanity.io/images/3ugk85nk/production/c1965ecbf8704ee1ea20d77786de9a41ce1087d1-500x500.png"  # noqa: E501
    _documentation_url = "https://docs.slack.dev/reference/methods/chat.postMessage/"
    _description = (
        "A Slack channel that prefect-stacks posts notifications to, with a bot token "
        "(chat.postMessage) or an incoming-webhook URL."
    )

    # pydantic puts the raw input (the token!) into ValidationError messages otherwise
    model_config = ConfigDict(hide_input_in_errors=True)

    bot_token: SecretStr | None = Field(
        default=None,
        description=(
            "Bot token (`xoxb-...`) of a Slack app with the `chat:write` scope; set this or "
            "`webhook_url`, not both."
        ),
    )
    webhook_url: SecretStr | None = Field(
        default=None,
        description=(
            "Incoming-webhook URL (`https://hooks.slack.com/services/...`); the webhook is "
            "bound to its channel. Set this or `bot_token`, not both."
        ),
    )
    channel: str | None = Field(
        default=None,
        description=(
            "Channel to post to with the bot token: a name such as `#platform` or an id "
            "such as `C0123456789`; the app must be a member of it. Ignored with a webhook."
        ),
    )
    api_url: str = Field(
        default="https://slack.com/api/",
        description="Base URL of the Slack Web API (change it only for a Slack-compatible gateway).",  # noqa: E501
    )
    username: str | None = Field(
        default=None,
        description=(
            "Name to post as instead of the app's (a bot token needs the "
            "`chat:write.customize` scope for it)."
        ),
    )
    icon_emoji: str | None = Field(
        default=None,
        description="Emoji to post with instead of the app's icon, e.g. `:robot_face:`.",
    )
    timeout: float = Field(
        default=30,
        gt=0,
        le=300,
        description="Seconds to wait for Slack to answer one request.",
    )
    max_retries: int = Field(
        default=3,
        ge=0,
        le=10,
        description=(
            "How many times one message is retried, in all, when Slack rate-limits it "
            "(HTTP 429, after its Retry-After) or the connection fails."
        ),
    )

    @field_validator("channel", "username", "icon_emoji")
    @classmethod
    def _strip(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return value.strip() or None

    @model_validator(mode="after")
    def _check_credentials(self) -> SlackChannel:
        problem = self._configuration_problem()
        if problem:
            raise ValueError(problem)
        return self

    # ----------------------------------------------------------------- configuration
    @property
    def display_name(self) -> str:
        name = getattr(self, "_block_document_name", None)
        return f"SlackChannel {name!r}" if name else "SlackChannel"

    def _configuration_problem(self) -> str | None:
        token = self.bot_token.get_secret_value().strip() if self.bot_token else ""
        webhook = self.webhook_url.get_secret_value().strip() if self.webhook_url else ""
        if token and webhook:
            return (
                f"{self.display_name}: set exactly one of the fields `bot_token` and "
                "`webhook_url`, not both (clear one of them)."
            )
        if not token and not webhook:
            return (
                f"{self.display_name}: set one of the fields `bot_token` (a bot token "
                "`xoxb-...`, with `channel`) or `webhook_url` (an incoming-webhook URL)."
            )
        if webhook and not webhook.lower().startswith(("https://", "http://")):
            return (
                f"{self.display_name}: the field `webhook_url` must be an https:// URL "
                "(`https://hooks.slack.com/services/...`)."
            )
        if token and not self.channel:
            return (
                f"{self.display_name}: the field `channel` is required with `bot_token` "
                "(a channel name such as `#platform`, or a channel id)."
            )
        if token and not self.api_url.lower().startswith(("https://", "http://")):
            return (
                f"{self.display_name}: the field `api_url` must be an http(s) URL "
                f"(Slack's is https://slack.com/api/), not {self.api_url!r}."
            )
        return None

    def _secrets(self) -> list[str]:
        values = []
        for secret in (self.bot_token, self.webhook_url):
            if secret is not None and secret.get_secret_value():
                values.append(secret.get_secret_value())
                values.append(secret.get_secret_value().strip())
        return values

    def _retry_handlers(self) -> list[RetryHandler]:
        return [SlackRetry(max_retry_count=self.max_retries, log=self.logger)]

    def _payload(self, text: str, blocks: list[dict] | None) -> dict[str, Any]:
        payload: dict[str, Any] = {"text": text}
        if blocks:
            payload["blocks"] = blocks
        if self.username:
            payload["username"] = self.username
        if self.icon_emoji:
            payload["icon_emoji"] = self.icon_emoji
        return payload

    # ----------------------------------------------------------------- posting
    def post(self, text: str, blocks: list[dict] | None = None) -> str | None:
        """Post a message (mrkdwn ``text``, optional Block Kit ``blocks``, for which
        ``text`` is the notification fallback). Returns the message's ``ts`` with a bot
        token, None with a webhook (Slack does not say). Raises ``NotificationError``."""
        problem = self._configuration_problem()
        if problem:
            raise ConfigurationError(problem)
        if self.bot_token is not None and self.bot_token.get_secret_value().strip():
            return self._post_api(text, blocks)
        self._post_webhook(text, blocks)
        return None

    def post_or_warn(self, text: str) -> bool:
        """:meth:`post`, where a message is a courtesy that must never change a job's
        outcome: a failure is a warning in the log (naming what to fix); False then."""
        try:
            self.post(text)
        except PrefectStacksError as exc:
            default_logger().warning("could not tell Slack (%s): %s", self.display_name, exc)
            return False
        return True

    async def apost(self, text: str, blocks: list[dict] | None = None) -> str | None:
        """Async :meth:`post`. The sync client runs in a worker thread (contextvars, and so
        the run logger, go along); the event loop is never blocked by a Retry-After wait."""
        return await asyncio.to_thread(self.post, text, blocks)

    async def notify(self, body: str, subject: str | None = None) -> None:
        """Post ``body`` (and ``subject`` in bold above it) as plain text: ``&``, ``<``
        and ``>`` are escaped. This is the API Prefect automations call; a failure raises
        ``NotificationError``, which their notification action records as its log."""
        text = escape_mrkdwn(body)
        if subject:
            text = f"*{escape_mrkdwn(subject)}*\n{text}"
        await self.apost(clip(text, MAX_MESSAGE_TEXT - 1000))

    def _post_api(self, text: str, blocks: list[dict] | None) -> str | None:
        assert self.bot_token is not None
        client = WebClient(
            token=self.bot_token.get_secret_value().strip(),
            base_url=self.api_url,
            timeout=self.timeout,  # type: ignore[arg-type]  # urllib takes a float
            logger=SDK_LOGGER,
            retry_handlers=self._retry_handlers(),
        )
        try:
            response = client.chat_postMessage(channel=self.channel, **self._payload(text, blocks))
        except SlackApiError as exc:
            raise self._api_error(exc) from None
        except (OSError, HTTPException) as exc:
            raise self._unreachable(exc, host_of(self.api_url)) from None
        except SlackClientError as exc:
            raise self._fail(f"slack-sdk refused the request: {exc}") from None
        ts = response.get("ts")
        return str(ts) if ts is not None else None

    def _post_webhook(self, text: str, blocks: list[dict] | None) -> None:
        assert self.webhook_url is not None
        url = self.webhook_url.get_secret_value().strip()
        client = WebhookClient(
            url=url,
            timeout=self.timeout,  # type: ignore[arg-type]
            logger=SDK_LOGGER,
            retry_handlers=self._retry_handlers(),
        )
        try:
            response = client.send_dict(self._payload(text, blocks))
        except (OSError, HTTPException) as exc:
            raise self._unreachable(exc, host_of(url)) from None
        except SlackClientError as exc:
            raise self._fail(f"slack-sdk refused the webhook request: {exc}") from None
        if 200 <= response.status_code < 300:
            return
        raise self._webhook_error(response.status_code, (response.body or "").strip())

    # ----------------------------------------------------------------- errors
    def redact(self, text: str) -> str:
        """``text`` with this block's bot token and webhook URL masked."""
        return Redactor(self._secrets())(text)

    def _fail(self, message: str, **kwargs: Any) -> NotificationError:
        return NotificationError(self.redact(message), **kwargs)

    def _unreachable(self, exc: BaseException, host: str) -> NotificationError:
        return self._fail(
            f"{self.display_name}: could not reach Slack at {host} "
            f"({describe_connection_error(exc)}) after {self.max_retries} retries; check "
            "the network or proxy of this worker, or try again later.",
        )

    def _api_error(self, exc: SlackApiError) -> NotificationError:
        response = exc.response
        status = getattr(response, "status_code", None)
        data = response.data if isinstance(response.data, dict) else {}
        error = str(data.get("error") or f"HTTP {status}")
        where = f"{self.display_name}: Slack answered chat.postMessage with {error!r}"
        if error in TOKEN_ERRORS:
            message = (
                f"{where}: the bot token was rejected; fix the block field `bot_token` (the "
                "Bot User OAuth Token, `xoxb-...`, of an app installed in the workspace)."
            )
            return self._fail(message, error=error, field="bot_token", status=status)
        if error == "missing_scope":
            needed = data.get("needed") or "chat:write"
            message = (
                f"{where}: the app lacks the scope {needed!r}; add it under OAuth & "
                "Permissions, reinstall the app, and update the block field `bot_token` "
                "if the token changed."
            )
            return self._fail(message, error=error, field="bot_token", status=status)
        if error in CHANNEL_ERRORS:
            hint = self._channel_hint(error)
            return self._fail(f"{where}: {hint}", error=error, field="channel", status=status)
        if error == "ratelimited" or status == 429:
            message = (
                f"{where}: still rate-limited after {self.max_retries} retries; try again "
                "later, post less often, or raise the block field `max_retries`."
            )
            return self._fail(message, error="ratelimited", field="max_retries", status=status)
        if error in MESSAGE_ERRORS:
            details = data.get("errors") or (data.get("response_metadata") or {}).get("messages")
            message = f"{where}: Slack rejected the message itself"
            if details:
                message += " (" + "; ".join(str(d) for d in list(details)[:5]) + ")"
            message += "; the caller built an invalid message (text, blocks or their limits)."
            return self._fail(message, error=error, status=status)
        if status is not None and status >= 500:
            message = (
                f"{self.display_name}: Slack answered HTTP {status} (an outage or a "
                f"gateway error: {clip(error, 200)}); try again later."
            )
            return self._fail(message, error=error, status=status)
        return self._fail(
            f"{where} (HTTP {status}); see https://docs.slack.dev/reference/methods/"
            "chat.postMessage/#errors for what to fix.",
            error=error,
            status=status,
        )

    def _channel_hint(self, error: str) -> str:
        if error == "not_in_channel":
            return (
                f"the app is not a member of {self.channel!r}: invite the app to the "
                f"channel (`/invite @your-app` in {self.channel}) or fix the block "
                "field `channel`."
            )
        if error in ("is_archived", "channel_is_archived"):
            return (
                f"the channel {self.channel!r} is archived: unarchive it or fix the "
                "block field `channel`."
            )
        return (
            f"no channel {self.channel!r} that the app can see: fix the block field "
            "`channel` (a name such as `#platform` or an id), and for a private "
            "channel invite the app (`/invite @your-app`)."
        )

    def _webhook_error(self, status: int, body: str) -> NotificationError:
        error = body.splitlines()[0][:100] if body else f"HTTP {status}"
        where = f"{self.display_name}: the incoming webhook answered HTTP {status} {error!r}"
        if status == 429:
            message = (
                f"{where}: still rate-limited after {self.max_retries} retries; try again "
                "later, post less often, or raise the block field `max_retries`."
            )
            return self._fail(message, error=error, field="max_retries", status=status)
        if error in WEBHOOK_URL_ERRORS or (status in (401, 403, 404, 410) and not body):
            message = (
                f"{where}: the webhook URL is wrong, or the webhook was removed or disabled; "
                "fix the block field `webhook_url` (copy it from the app's Incoming Webhooks "
                "page, or add a new webhook there)."
            )
            return self._fail(message, error=error, field="webhook_url", status=status)
        if error in WEBHOOK_CHANNEL_ERRORS:
            message = (
                f"{where}: the webhook's channel is gone, archived or closed to the app; "
                "add a webhook for a channel it can post to and update the block field "
                "`webhook_url`."
            )
            return self._fail(message, error=error, field="webhook_url", status=status)
        if error in MESSAGE_ERRORS:
            message = (
                f"{where}: Slack rejected the message itself; the caller built an invalid "
                "message (text, blocks or their limits)."
            )
            return self._fail(message, error=error, status=status)
        if status >= 500:
            message = f"{where}: an outage or a gateway error; try again later."
            return self._fail(message, error=error, status=status)
        return self._fail(
            f"{where}; check the block field `webhook_url`.",
            error=error,
            field="webhook_url",
            status=status,
        )


def slack_channel(name: str | None) -> SlackChannel | None:
    """The ``SlackChannel`` block ``name`` a job tells, or None when no name is given (the
    job posts nothing). A missing block is a ConfigurationError naming it, before the
    job does anything."""
    from prefect_stacks.blocks.base import load_block

    if not name:
        return None
    return load_block(SlackChannel, name, create="create it (Blocks > Slack Channel)")
