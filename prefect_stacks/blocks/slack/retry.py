"""The one retry policy of a Slack request (:class:`SlackRetry`) and the quiet, redacted
logger slack-sdk is given."""

from __future__ import annotations

import logging
import random
import re
import time
from typing import Any
from urllib.parse import urlsplit

from slack_sdk.http_retry import (
    ConnectionErrorRetryHandler,
    HttpRequest,
    HttpResponse,
    RetryState,
)

# A Retry-After longer than this is not waited for: the post fails and says so.
MAX_RETRY_AFTER_SECONDS = 60

# slack-sdk's clients log the request URL (for a webhook, the secret) at DEBUG, and at INFO
# when they retry, whenever their logger's own level is NOTSET or DEBUG; and they log every
# failed attempt at ERROR, even one a retry then fixes. Give them a logger of their own set
# to CRITICAL: SlackRetry below logs each retry, and the final failure is raised as a
# NotificationError. A filter masks token- and webhook-shaped text should anything get out.
SDK_LOGGER = logging.getLogger("prefect_stacks.slack_sdk")
SDK_LOGGER.setLevel(logging.CRITICAL)


class RedactSlackSecrets(logging.Filter):
    """Last line of defence: mask anything shaped like a Slack token or webhook path."""

    _patterns = (
        re.compile(r"xox[a-z]-[A-Za-z0-9-]+"),
        re.compile(r"(/services/)[^\s'\"]+"),
    )

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        for pattern in self._patterns:
            message = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + "***", message)
        record.msg, record.args = message, None
        return True


SDK_LOGGER.addFilter(RedactSlackSecrets())


class SlackRetry(ConnectionErrorRetryHandler):
    """The one retry policy of a Slack request, bounded by ``max_retry_count`` retries in all.

    * A 429 is retried after its ``Retry-After`` (1 s when absent) plus up to 1 s of jitter,
      as slack-sdk's ``RateLimitErrorRetryHandler`` does, but not when the wait would be
      longer than :data:`MAX_RETRY_AFTER_SECONDS` or the header is not a number of seconds
      (the stock handler would raise ``ValueError`` from ``int()``).
    * A refused, reset or unanswered connection is slack-sdk's ``ConnectionErrorRetryHandler``
      unchanged: which errors count, and exponential backoff from 0.5 s with jitter.

    Each retry is logged as a warning on ``log``.
    """

    def __init__(self, max_retry_count: int, log: Any) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self._log = log

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if rate_limited(response):
            wait = retry_after(response)
            return wait is not None and wait <= MAX_RETRY_AFTER_SECONDS
        return super()._can_retry(state=state, request=request, response=response, error=error)

    def prepare_for_next_attempt(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        retry = (state.current_attempt + 1, self.max_retry_count)
        if rate_limited(response):
            wait = retry_after(response) or 0
            self._log.warning(
                "Slack rate-limited the request (HTTP 429); retrying after %s s (retry %d of %d).",
                wait,
                *retry,
            )
            state.next_attempt_requested = True
            time.sleep(wait + random.random())
            state.increment_current_attempt()
            return
        self._log.warning(
            "Could not reach Slack (%s); retrying (retry %d of %d).",
            describe_connection_error(error),
            *retry,
        )
        super().prepare_for_next_attempt(
            state=state, request=request, response=response, error=error
        )


def rate_limited(response: HttpResponse | None) -> bool:
    return response is not None and response.status_code == 429


def retry_after(response: HttpResponse | None) -> int | None:
    """Seconds from a 429's Retry-After (1 when absent, as slack-sdk assumes); None when
    it is not a number of seconds."""
    if response is None:
        return None
    for key, value in response.headers.items():
        if key.lower() == "retry-after":
            raw = value[0] if isinstance(value, list) and value else value
            try:
                return max(0, int(str(raw).strip()))
            except ValueError:
                return None
    return 1


def describe_connection_error(error: BaseException | None) -> str:
    if error is None:
        return "no answer"
    reason = getattr(error, "reason", None)  # URLError wraps the OSError
    if reason is not None and not isinstance(reason, str):
        error = reason
    text = str(error) or type(error).__name__
    return f"{type(error).__name__}: {text}" if text != type(error).__name__ else text


def host_of(url: str) -> str:
    """Scheme, host and port only: a webhook URL's path is its secret, and a gateway URL
    may carry credentials."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"
