"""Rate limits of the HTTP helper: waited out, not turned into failures.

A :class:`RateLimitPolicy` reads each answer (the default one knows ``429`` +
``Retry-After``; a service with its own headers, such as GitHub's ``X-RateLimit-*`` and
secondary limits, subclasses it) and :class:`RateLimitWaits` turns what it says into a
pause, logged at INFO, until the operation's :class:`WaitBudget` would be exceeded: then
the error names the limit and when it resets.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import httpx

from prefect_stacks._internal.http.errors import Failure, message_of
from prefect_stacks._internal.http.retry import Pause, retry_after_seconds


@dataclass
class RateLimitWait:
    """A rate-limited answer, and how long to wait before trying again."""

    seconds: float
    limit: str  # e.g. "primary rate limit", "secondary rate limit", "rate limit"
    reset_at: datetime | None = None
    reason: str = ""  # how the wait was worked out, for the log line


class RateLimitPolicy:
    """Decides whether an answer means "rate-limited, wait". The default knows HTTP 429
    with ``Retry-After`` (seconds or an HTTP date), and 429 without it (backoff from 1 s).
    Services with their own headers subclass it."""

    def classify(self, response: httpx.Response, streak: int) -> RateLimitWait | None:
        """``streak`` counts the rate-limited answers this request already got."""
        if response.status_code != 429:
            return None
        retry_after = retry_after_seconds(response)
        if retry_after is not None:
            return RateLimitWait(retry_after, "rate limit", reason="Retry-After")
        return RateLimitWait(float(2**streak), "rate limit", reason="backoff")


class WaitBudget:
    """How many seconds of rate-limit waiting one operation (all its requests) may spend."""

    def __init__(self, max_seconds: float) -> None:
        self.max_seconds = max_seconds
        self.spent = 0.0

    def allows(self, seconds: float) -> bool:
        return self.spent + seconds <= self.max_seconds

    def spend(self, seconds: float) -> None:
        self.spent += seconds


class RateLimitWaits:
    """The rate-limit waits of one request, spent from a (shared) :class:`WaitBudget`."""

    def __init__(self, failure: Failure, policy: RateLimitPolicy, budget: WaitBudget) -> None:
        self.failure = failure
        self.policy = policy
        self.budget = budget
        self.streak = 0  # rate-limited answers so far

    def after_response(self, response: httpx.Response) -> Pause | None:
        """None when the answer is not rate-limited; else the pause to wait it out (spent
        from the budget), or the error when the budget does not allow it."""
        wait = self.policy.classify(response, self.streak)
        if wait is None:
            return None
        self.streak += 1
        f, budget = self.failure, self.budget
        reset = f"; it resets at {wait.reset_at:%Y-%m-%d %H:%M:%S} UTC" if wait.reset_at else ""
        if not budget.allows(wait.seconds):
            raise f.error(
                f"{f.service}: {wait.limit} exceeded on {f.what}: waiting "
                f"{wait.seconds:.0f} s more would exceed the wait budget of "
                f"{budget.max_seconds:.0f} s (already waited {budget.spent:.0f} s)"
                f"{reset}. Try again later, or raise `max_rate_limit_wait`.",
                status=response.status_code,
                rate_limited=True,
                reset_at=wait.reset_at,
                service_message=message_of(response),
            )
        message = (
            f"{f.service}: {wait.limit} exceeded on {f.what} (HTTP {response.status_code}); "
            f"waiting {wait.seconds:.0f} s ({wait.reason or 'as told'}){reset} "
            f"[{budget.spent:.0f} of {budget.max_seconds:.0f} s waited]."
        )
        budget.spend(wait.seconds)
        return Pause(wait.seconds, message, level="info")


__all__ = ["RateLimitPolicy", "RateLimitWait", "RateLimitWaits", "WaitBudget"]
