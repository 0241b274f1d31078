"""Retries of the HTTP helper: exponential backoff with jitter, ``Retry-After`` read as
seconds or an HTTP date, and :class:`Retries`, which decides for one request whether a
connection error or a 5xx answer is retried (and after how long) or raised.

A request that is not idempotent (a POST creating something) is retried only when it
surely never reached the server (connection refused, connect timeout); otherwise the error
is raised with ``ambiguous=True`` so that the caller can look before it tries again.
"""

from __future__ import annotations

import email.utils
import random
from dataclasses import dataclass
from datetime import datetime, timezone

import httpx

from prefect_stacks._internal.http.errors import Failure, describe_transport_error, message_of

MAX_RETRY_BACKOFF = 30.0
# A 5xx's Retry-After longer than this is not honoured as such (the normal backoff is used).
MAX_SERVER_RETRY_AFTER = 60.0
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH"})


@dataclass(frozen=True)
class Pause:
    """Sleep ``seconds`` before trying again, saying so with ``message`` at ``level``."""

    seconds: float
    message: str
    level: str = "warning"


def backoff_delay(retry_backoff: float, attempt: int) -> float:
    """``retry_backoff`` × 2^``attempt`` (capped at 30 s), plus up to 10 % jitter."""
    delay = min(MAX_RETRY_BACKOFF, retry_backoff * (2**attempt))
    return delay + random.uniform(0, delay * 0.1)  # noqa: S311 - jitter, not crypto


def retry_after_seconds(response: httpx.Response) -> float | None:
    """``Retry-After`` as seconds (it may be a number or an HTTP date); None if absent or
    unreadable."""
    raw = response.headers.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - server_now(response)).total_seconds())


def server_now(response: httpx.Response) -> datetime:
    """The server's clock at the answer (its ``Date`` header), else ours: a reset time in
    epoch seconds is best compared with the clock that set it."""
    raw = response.headers.get("date")
    if raw:
        try:
            when = email.utils.parsedate_to_datetime(raw)
            if when is not None:
                return when if when.tzinfo else when.replace(tzinfo=timezone.utc)
        except (TypeError, ValueError):
            pass
    return datetime.now(timezone.utc)


class Retries:
    """The retries of one request: at most ``max_retries`` after the first attempt, for
    connection errors and 5xx answers. Each ``after_*`` method returns the :class:`Pause`
    before the next attempt (and counts it), or raises the error that ends the request."""

    def __init__(
        self, failure: Failure, *, max_retries: int, retry_backoff: float, idempotent: bool
    ) -> None:
        self.failure = failure
        self.max_retries = max_retries
        self.retry_backoff = retry_backoff
        self.idempotent = idempotent
        self.attempt = 0  # retries spent

    def after_transport_error(self, exc: httpx.TransportError) -> Pause:
        """The connection failed (or timed out) before an answer came."""
        f = self.failure
        never_sent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
        detail = describe_transport_error(exc)
        if not (self.idempotent or never_sent):
            raise f.error(
                f"{f.service}: the connection failed during {f.what} ({detail}); it "
                "may or may not have been carried out.",
                ambiguous=True,
            ) from None
        if self.attempt >= self.max_retries:
            raise f.error(
                f"{f.service}: could not complete {f.what} ({detail}) after "
                f"{self.attempt + 1} attempts; check the network of this worker and the "
                f"API URL {f.base_url}, or try again later.",
            ) from None
        delay = backoff_delay(self.retry_backoff, self.attempt)
        return self._pause(delay, f"{f.service}: {f.what} failed ({detail})")

    def after_response(self, response: httpx.Response) -> Pause | None:
        """None for an answer below 500; a pause (honouring a short ``Retry-After``) or
        the error for a 5xx."""
        status = response.status_code
        if status < 500:
            return None
        f = self.failure
        message = message_of(response)
        detail = f"HTTP {status}" + (f": {message}" if message else "")
        if not self.idempotent:
            raise f.error(
                f"{f.service} answered {detail} to {f.what}; it may or may not "
                "have been carried out.",
                status=status,
                ambiguous=True,
                service_message=message,
            ) from None
        if self.attempt >= self.max_retries:
            raise f.error(
                f"{f.service} answered {detail} to {f.what} after {self.attempt + 1} "
                f"attempts (an outage or a gateway error); try again later.",
                status=status,
                service_message=message,
            ) from None
        delay = backoff_delay(self.retry_backoff, self.attempt)
        told = retry_after_seconds(response)
        if told is not None and told <= MAX_SERVER_RETRY_AFTER:
            delay = max(delay, told)
        return self._pause(delay, f"{f.service} answered {detail} to {f.what}")

    def _pause(self, delay: float, happened: str) -> Pause:
        self.attempt += 1
        return Pause(
            delay,
            f"{happened}; retrying in {delay:.1f} s (retry {self.attempt} of {self.max_retries}).",
        )


__all__ = [
    "IDEMPOTENT_METHODS",
    "MAX_RETRY_BACKOFF",
    "MAX_SERVER_RETRY_AFTER",
    "Pause",
    "Retries",
    "backoff_delay",
    "retry_after_seconds",
    "server_now",
]
