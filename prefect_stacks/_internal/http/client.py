"""The HTTP client: :class:`HttpClient` composes the pieces of this package (retries,
rate-limit waits, conditional requests, pagination, error mapping) around one httpx
client, and answers with an :class:`HttpResult`."""

from __future__ import annotations

import functools
import json
import ssl
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from prefect_stacks._internal.http.cache import ConditionalGet, ResponseCache, cache_key
from prefect_stacks._internal.http.errors import (
    Failure,
    parse_body,
    service_message,
    short_url,
    status_error,
)
from prefect_stacks._internal.http.pagination import follow_pages, parse_links
from prefect_stacks._internal.http.rate_limit import RateLimitPolicy, RateLimitWaits, WaitBudget
from prefect_stacks._internal.http.retry import IDEMPOTENT_METHODS, Pause, Retries, backoff_delay
from prefect_stacks._internal.process import Redactor, default_logger
from prefect_stacks._version import __version__
from prefect_stacks.exceptions import HTTPServiceError


def user_agent() -> str:
    return f"prefect-stacks/{__version__} (+https://pypi.org/project/prefect-stacks/)"


@dataclass
class HttpResult:
    """An answer: status, headers, the (reduced) JSON data, parsed links, and whether it
    came from the cache (a ``304``)."""

    method: str
    url: str
    status: int
    headers: httpx.Headers
    data: Any
    links: dict[str, str] = field(default_factory=dict)
    from_cache: bool = False

    @property
    def next_url(self) -> str | None:
        return self.links.get("next")

    def service_message(self) -> str | None:
        return service_message(self.data)


ErrorDescriber = Callable[[HttpResult, str], Exception]


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The TLS context every client shares: the system's CA store (or SSL_CERT_FILE /
    SSL_CERT_DIR), loaded once per process. Loading it is ~30 ms, which a client per
    call (a watcher's hundred repositories) would otherwise pay each time."""
    return httpx.create_ssl_context(trust_env=True)


def clean_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Query parameters without the ``None`` ones, booleans as ``true``/``false``."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        out[key] = value
    return out


class HttpClient:
    """A configured HTTP client for one service (see the package docstring). Use it as a
    context manager; one instance per operation is fine (the cache lives outside it).

    Args:
        base_url: the API root; relative paths are joined to it, and absolute URLs (links)
            must share its origin.
        service: the service's name for messages, e.g. ``"GitHub"``.
        headers: sent on every request (may hold the credential).
        secrets: values masked in every message (the credential, in every spelling).
        timeout: seconds per request (connect, read, write, pool).
        max_retries: retries after the first attempt, for connection errors and 5xx.
        retry_backoff: seconds before the first retry; doubles each time (max 30 s).
        max_rate_limit_wait: default budget of rate-limit waiting per operation.
        rate_limit_policy: decides what a rate-limited answer looks like.
        cache: where conditional GETs keep their ETags; None: no conditional requests.
        error_class: raised for exhausted retries and budgets.
        describe_error: turns a final non-success answer (4xx) into an exception.
        sleep: ``time.sleep`` (tests may pass another).
    """

    def __init__(
        self,
        *,
        base_url: str,
        service: str,
        headers: Mapping[str, str] | None = None,
        secrets: Iterable[str] = (),
        timeout: float = 30.0,
        max_retries: int = 4,
        retry_backoff: float = 1.0,
        max_rate_limit_wait: float = 900.0,
        rate_limit_policy: RateLimitPolicy | None = None,
        cache: ResponseCache | None = None,
        error_class: type[HTTPServiceError] = HTTPServiceError,
        describe_error: ErrorDescriber | None = None,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.service = service
        self.max_retries = max_retries
        self.retry_backoff = retry_backoff
        self.max_rate_limit_wait = max_rate_limit_wait
        self.policy = rate_limit_policy or RateLimitPolicy()
        self.cache = cache
        self.error_class = error_class
        self.describe_error = describe_error
        self.redact = Redactor(secrets)
        self._sleep = sleep
        all_headers = {"User-Agent": user_agent()}
        all_headers.update(headers or {})
        self._client = httpx.Client(
            headers=all_headers,
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            trust_env=True,
            verify=tls_context(),
            transport=transport,
        )
        origin = urlsplit(self.base_url)
        self._origin = (origin.scheme.lower(), (origin.netloc or "").lower())

    def __repr__(self) -> str:  # never the headers: they hold the credential
        return f"HttpClient({self.service}, {self.base_url})"

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    # ------------------------------------------------------------------ helpers
    def set_credential(self, header: str, value: str, secret: str) -> None:
        """Send ``header: value`` from now on (a token obtained mid-operation, e.g. after
        a registry's 401 challenge); ``secret`` is masked in every message from now on."""
        self._client.headers[header] = value
        self.redact = Redactor([*self.redact.secrets, secret, value])

    def url(self, path_or_url: str) -> str:
        """``path_or_url`` joined to the base URL; an absolute URL must share its origin."""
        if "://" in path_or_url:
            parts = urlsplit(path_or_url)
            if (parts.scheme.lower(), (parts.netloc or "").lower()) != self._origin:
                raise self.error_class(
                    f"{self.service} pointed to {parts.scheme}://{parts.netloc}, another "
                    f"origin than the configured API {self.base_url}; not following it "
                    "(the credential would go along). Check the API URL of the block.",
                    url=path_or_url,
                )
            return path_or_url
        return f"{self.base_url}/{path_or_url.lstrip('/')}"

    def _full_url(self, path_or_url: str, params: Mapping[str, Any] | None) -> str:
        url = self.url(path_or_url)
        if params:
            url = str(httpx.URL(url).copy_merge_params(clean_params(params)))
        return url

    def pause_before_retry(self, attempt: int) -> float:
        """Sleep the backoff of retry ``attempt`` (0-based), for callers that retry a whole
        step themselves; returns the seconds slept."""
        delay = backoff_delay(self.retry_backoff, attempt)
        self._sleep(delay)
        return delay

    def _pause(self, pause: Pause) -> None:
        getattr(default_logger(), pause.level)(self.redact(pause.message))
        self._sleep(pause.seconds)

    # ------------------------------------------------------------------ requests
    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        conditional: bool | None = None,
        reduce: Callable[[Any], Any] | None = None,
        shape: str = "",
        idempotent: bool | None = None,
        budget: WaitBudget | None = None,
        what: str | None = None,
    ) -> HttpResult:
        """One request, with retries, rate-limit waits and (for GETs with a cache) ETags.

        Returns the answer for 2xx and 304 (``data`` is ``reduce(json)``, or the cached
        reduced data for a 304; for a ``HEAD``, ``reduce`` gets the answer's headers,
        lower-cased, and a ``HEAD`` is conditional when asked to be). Raises
        ``describe_error(result, what)`` for other 4xx, and ``error_class`` for exhausted
        retries or wait budget.
        """
        method = method.upper()
        url = self._full_url(path_or_url, params)
        if conditional is None:
            conditional = method == "GET"
        failure = Failure(
            self.service,
            self.base_url,
            method,
            url,
            what or f"{method} {short_url(url)}",
            self.error_class,
            self.redact,
        )
        retries = Retries(
            failure,
            max_retries=self.max_retries,
            retry_backoff=self.retry_backoff,
            idempotent=method in IDEMPOTENT_METHODS if idempotent is None else idempotent,
        )
        limits = RateLimitWaits(
            failure, self.policy, budget or WaitBudget(self.max_rate_limit_wait)
        )
        etags = ConditionalGet(self.cache if conditional else None, cache_key(method, url, shape))
        content = None if json_body is None else json.dumps(json_body).encode()
        while True:
            headers = etags.headers()
            if content is not None:
                headers["Content-Type"] = "application/json"
            try:
                response = self._client.request(method, url, headers=headers, content=content)
            except httpx.TransportError as exc:
                self._pause(retries.after_transport_error(exc))
                continue
            pause = limits.after_response(response) or retries.after_response(response)
            if pause is not None:
                self._pause(pause)
                continue
            return self._answer(failure, response, etags, reduce)

    def _answer(
        self,
        failure: Failure,
        response: httpx.Response,
        etags: ConditionalGet,
        reduce: Callable[[Any], Any] | None,
    ) -> HttpResult:
        """The result of a final answer (2xx, or 304 from the cache); the error of any other."""
        method, url, status = failure.method, failure.url, response.status_code
        links = parse_links(response.headers.get("link"))
        cached = etags.not_modified(status)
        if cached is not None:
            return HttpResult(method, url, 304, response.headers, cached.data, cached.links, True)
        if method == "HEAD":  # a HEAD answers in its headers: they are its "body"
            body: Any = {name.lower(): value for name, value in response.headers.items()}
        else:
            body = parse_body(response)
        if 200 <= status < 300:
            data = reduce(body) if reduce is not None else body
            if method in ("GET", "HEAD"):
                etags.store(response.headers.get("etag"), data, links)
            return HttpResult(method, url, status, response.headers, data, links)
        result = HttpResult(method, url, status, response.headers, body, links)
        if self.describe_error is None:
            raise status_error(failure, status, result.service_message())
        error = self.describe_error(result, failure.what)
        if isinstance(error, HTTPServiceError):
            error.args = (self.redact(str(error)),)
        raise error

    def paginate(
        self,
        path_or_url: str,
        *,
        params: Mapping[str, Any] | None = None,
        reduce: Callable[[Any], Any] | None = None,
        shape: str = "",
        budget: WaitBudget | None = None,
        what: str | None = None,
        max_pages: int = 200,
    ) -> Iterator[HttpResult]:
        """GET a listing page by page, following ``rel="next"`` links (conditionally,
        each page with its own ETag). A page that fails raises: the caller never sees a
        partial listing as a whole one. More than ``max_pages`` pages, or a link back to a
        page already read, raises too."""
        budget = budget or WaitBudget(self.max_rate_limit_wait)

        def fetch(url: str) -> HttpResult:
            return self.request("GET", url, reduce=reduce, shape=shape, budget=budget, what=what)

        yield from follow_pages(
            self._full_url(path_or_url, params),
            fetch,
            resolve=self.url,  # same origin only
            fail=lambda message: self.error_class(self.redact(message)),
            service=self.service,
            what=what,
            max_pages=max_pages,
            asked=path_or_url,
        )


__all__ = ["ErrorDescriber", "HttpClient", "HttpResult", "clean_params", "user_agent"]
