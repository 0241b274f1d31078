"""Rate limits of the HTTP helper: waited out, not turned into failures.

A :class:`RateLimitPolicy` reads each answer: the default one knows ``429`` +
``Retry-After``; :class:`GitHubRateLimitPolicy` knows GitHub's ``X-RateLimit-*`` headers
and its secondary limits (another service with its own headers subclasses it too).
:class:`RateLimitWaits` turns what the policy says into a pause, logged at INFO, until the
operation's :class:`WaitBudget` would be exceeded: then the error names the limit and when
it resets.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import httpx

from prefect_stacks._internal.http.errors import Failure, message_of
from prefect_stacks._internal.http.retry import Pause, retry_after_seconds, server_now


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


class GitHubRateLimitPolicy(RateLimitPolicy):
    """GitHub's documented rate-limit answers (REST API, "Rate limits for the REST API"):

    * ``403``/``429`` with ``Retry-After``: wait that long (a secondary limit, usually);
    * ``403``/``429`` with ``X-RateLimit-Remaining: 0``: the primary limit; wait until
      ``X-RateLimit-Reset`` (epoch seconds, compared with the answer's ``Date``) + 1 s;
    * ``403``/``429`` whose message says "secondary rate limit" (or the older "abuse
      detection"), or any ``429``, without either header: wait one minute, doubling on
      each further rate-limited answer.

    Any other ``403`` is a permission problem, not a wait.
    """

    def classify(self, response: httpx.Response, streak: int) -> RateLimitWait | None:
        if response.status_code not in (403, 429):
            return None
        message = ""
        try:
            body = response.json()
            if isinstance(body, dict):
                message = str(body.get("message") or "").lower()
        except (ValueError, UnicodeDecodeError):
            pass
        secondary = "secondary rate limit" in message or "abuse" in message
        remaining = (response.headers.get("x-ratelimit-remaining") or "").strip()
        resource = (response.headers.get("x-ratelimit-resource") or "").strip()
        reset_at = None
        try:
            reset_at = datetime.fromtimestamp(
                int(response.headers.get("x-ratelimit-reset", "")), timezone.utc
            )
        except (TypeError, ValueError, OverflowError, OSError):
            pass
        primary_name = f"primary rate limit ({resource})" if resource else "primary rate limit"
        retry_after = retry_after_seconds(response)
        if retry_after is not None:
            if remaining == "0" and not secondary:
                return RateLimitWait(retry_after, primary_name, reset_at, "Retry-After")
            return RateLimitWait(retry_after, "secondary rate limit", None, "Retry-After")
        if remaining == "0" and reset_at is not None:
            seconds = (reset_at - server_now(response)).total_seconds() + 1
            return RateLimitWait(
                max(1.0, seconds), primary_name, reset_at, "until X-RateLimit-Reset"
            )
        if secondary or response.status_code == 429 or remaining == "0":
            return RateLimitWait(
                60.0 * 2 ** min(streak, 6),
                "secondary rate limit",
                None,
                "no Retry-After: at least one minute, doubling",
            )
        return None


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


__all__ = [
    "GitHubRateLimitPolicy",
    "RateLimitPolicy",
    "RateLimitWait",
    "RateLimitWaits",
    "WaitBudget",
]
