"""Error mapping of the HTTP helper: :class:`HTTPServiceError`, the :class:`Failure`
context that builds it for one request (service, method, URL, redaction), and how an
answer's body and message are read for error messages."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from prefect_stacks.exceptions import HTTPServiceError


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
