"""Error mapping of the HTTP helper: :class:`HTTPServiceError`, the :class:`Failure`
context that builds it for one request (service, method, URL, redaction), and how an
answer's body and message are read for error messages."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from prefect_stacks.exceptions import PrefectStacksError


class HTTPServiceError(PrefectStacksError):
    """An HTTP API answered with an error, or could not be reached (after the retries).

    ``ambiguous`` is True when a request that is not idempotent may or may not have been
    carried out (the connection broke after it was sent, or the server answered 5xx).
    ``rate_limited`` is True when a rate limit outlasted the wait budget.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        method: str | None = None,
        url: str | None = None,
        ambiguous: bool = False,
        rate_limited: bool = False,
        reset_at: datetime | None = None,
        service_message: str | None = None,
        errors: list[Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.method = method
        self.url = url
        self.ambiguous = ambiguous
        self.rate_limited = rate_limited
        self.reset_at = reset_at
        self.service_message = service_message
        self.errors = errors or []


@dataclass(frozen=True)
class Failure:
    """What an error about one request says: the service, what was asked (``what``, for
    messages), the method and URL (attributes of the error), and the masking of secrets."""

    service: str
    base_url: str
    method: str
    url: str
    what: str
    error_class: type[HTTPServiceError] = HTTPServiceError
    redact: Callable[[str], str] = str

    def error(self, message: str, **kwargs: Any) -> HTTPServiceError:
        """``error_class`` with the redacted ``message``, this request's method and URL."""
        return self.error_class(self.redact(message), method=self.method, url=self.url, **kwargs)


def short_url(url: str) -> str:
    """Path and query of a URL, for messages (the host is in the block's config)."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def describe_transport_error(exc: BaseException) -> str:
    """``ConnectError: [Errno 111] Connection refused``, or just the class name."""
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text


def parse_body(response: httpx.Response) -> Any:
    """The answer's JSON; its text (first 2000 characters) if it is not JSON; None if empty."""
    if not response.content:
        return None
    try:
        return response.json()
    except (ValueError, UnicodeDecodeError):
        return response.text[:2000]


def message_of(response: httpx.Response) -> str | None:
    """The ``message`` of a JSON error body (first 500 characters), if any."""
    body = parse_body(response)
    if isinstance(body, Mapping) and body.get("message") is not None:
        return str(body["message"])[:500]
    return None


def service_message(data: Any) -> str | None:
    """The ``message`` of already parsed JSON data, if any."""
    if isinstance(data, Mapping):
        message = data.get("message")
        return str(message) if message is not None else None
    return None


def status_error(failure: Failure, status: int, message: str | None) -> HTTPServiceError:
    """The error for a final non-success answer no ``describe_error`` explained."""
    return failure.error(
        f"{failure.service} answered HTTP {status} to {failure.what}"
        + (f": {message}" if message else ""),
        status=status,
        service_message=message,
    )


__all__ = [
    "Failure",
    "HTTPServiceError",
    "describe_transport_error",
    "message_of",
    "parse_body",
    "service_message",
    "short_url",
    "status_error",
]
