"""The one HTTP client helper of prefect-stacks.

Every block that talks to an HTTP API (GitHub, and the registry, Alertmanager ... blocks to
come) goes through :class:`HttpClient`:

* **timeouts** on every request;
* **retries** with exponential backoff (``retry_backoff`` × 2ⁿ, capped at 30 s, bounded by
  ``max_retries``) for connection errors and 5xx answers. A request that is not idempotent
  (a POST creating something) is retried only when it surely never reached the server
  (connection refused, connect timeout); otherwise the error is raised with
  ``ambiguous=True`` so that the caller can look before it tries again;
* **rate limits are waited out**, not turned into failures: a :class:`RateLimitPolicy`
  reads each answer (the default one knows ``429`` + ``Retry-After``; GitHub's knows its
  primary and secondary limits) and the client sleeps as told, logging each wait at INFO
  through the Prefect run logger, until a :class:`WaitBudget` (per operation) would be
  exceeded: then the error names the limit and when it resets;
* **conditional requests**: with a :class:`ResponseCache`, a GET sends the ``ETag`` it saw
  last for that URL as ``If-None-Match``; a ``304`` answers from the cache. What is cached
  is what the caller's ``reduce`` function kept of the body (not the raw body), keyed by
  method, URL and the caller's ``shape`` name, so a cache can be persisted cheaply;
* **pagination** through ``Link: <...>; rel="next"`` (:meth:`HttpClient.paginate`), refusing
  links to another origin (the credential would follow them) and link loops;
* **secrets** (tokens in headers) never reach a log line, an exception or a repr: error
  messages are passed through :class:`~prefect_stacks._internal.process.Redactor` and exceptions are
  raised ``from None`` (httpx's own carry the request, and so its headers).

Non-success answers that are not retried (4xx) are turned into exceptions by the caller's
``describe_error`` (which knows what a 404 means for its service); the rest raise the
client's ``error_class``, a :class:`HTTPServiceError` subclass.
"""

from __future__ import annotations

import email.utils
import json
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from prefect_stacks._internal.process import Redactor, default_logger
from prefect_stacks.exceptions import PrefectStacksError

MAX_RETRY_BACKOFF = 30.0
# A 5xx's Retry-After longer than this is not honoured as such (the normal backoff is used).
MAX_SERVER_RETRY_AFTER = 60.0
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH"})


def user_agent() -> str:
    from prefect_stacks._version import __version__

    return f"prefect-stacks/{__version__} (+https://pypi.org/project/prefect-stacks/)"


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


# --------------------------------------------------------------------------- cache


@dataclass
class CacheEntry:
    """What a conditional GET remembers of one URL: its ETag, the reduced data and the
    response's links (so that a ``304`` page still knows its next page)."""

    etag: str
    data: Any
    links: dict[str, str] = field(default_factory=dict)
    stored_at: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        return {"etag": self.etag, "data": self.data, "links": self.links, "at": self.stored_at}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> CacheEntry | None:
        try:
            etag = value["etag"]
            if not isinstance(etag, str) or not etag:
                return None
            links = value.get("links") or {}
            return cls(
                etag=etag,
                data=value.get("data"),
                links={str(k): str(v) for k, v in dict(links).items()},
                stored_at=float(value.get("at") or 0.0),
            )
        except (KeyError, TypeError, ValueError):
            return None


class ResponseCache(Protocol):
    """Where conditional GETs keep their ETags (any object with these two methods)."""

    def get(self, key: str) -> CacheEntry | None: ...

    def put(self, key: str, entry: CacheEntry) -> None: ...


class MemoryResponseCache:
    """An in-memory LRU :class:`ResponseCache`, thread-safe, that can be snapshotted as
    JSON (to persist it elsewhere) and merged with a snapshot (newer entries win)."""

    def __init__(self, max_entries: int = 1000, entries: Mapping[str, Any] | None = None) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[str, CacheEntry] = OrderedDict()
        self._lock = threading.Lock()
        self._dirty = False
        if entries:
            self.merge(entries, mark_dirty=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __repr__(self) -> str:
        return f"MemoryResponseCache({len(self)} entries, max {self.max_entries})"

    @property
    def dirty(self) -> bool:
        """True when something was stored since the last :meth:`mark_clean`."""
        return self._dirty

    def mark_clean(self) -> None:
        self._dirty = False

    def get(self, key: str) -> CacheEntry | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def put(self, key: str, entry: CacheEntry) -> None:
        with self._lock:
            old = self._entries.get(key)
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
            if old is None or old.etag != entry.etag or old.data != entry.data:
                self._dirty = True

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Every entry as JSON-able dicts, oldest first."""
        with self._lock:
            return {key: entry.to_json() for key, entry in self._entries.items()}

    def merge(self, entries: Mapping[str, Any], *, mark_dirty: bool = True) -> None:
        """Add ``entries`` (a :meth:`snapshot`); where both hold a key the newer wins."""
        parsed = []
        for key, value in entries.items():
            entry = CacheEntry.from_json(value) if isinstance(value, Mapping) else None
            if entry is not None:
                parsed.append((entry.stored_at, str(key), entry))
        parsed.sort(key=lambda item: item[0])
        with self._lock:
            for _, key, entry in parsed:
                old = self._entries.get(key)
                if old is not None and old.stored_at >= entry.stored_at:
                    continue
                self._entries[key] = entry
                if mark_dirty:
                    self._dirty = True
            ordered = sorted(self._entries.items(), key=lambda item: item[1].stored_at)
            self._entries = OrderedDict(ordered[-self.max_entries :])


# --------------------------------------------------------------------------- rate limits


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


class WaitBudget:
    """How many seconds of rate-limit waiting one operation (all its requests) may spend."""

    def __init__(self, max_seconds: float) -> None:
        self.max_seconds = max_seconds
        self.spent = 0.0

    def allows(self, seconds: float) -> bool:
        return self.spent + seconds <= self.max_seconds

    def spend(self, seconds: float) -> None:
        self.spent += seconds


# --------------------------------------------------------------------------- client


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
        if isinstance(self.data, Mapping):
            message = self.data.get("message")
            return str(message) if message is not None else None
        return None


ErrorDescriber = Callable[[HttpResult, str], Exception]


def parse_links(header: str | None) -> dict[str, str]:
    """``<url>; rel="next", <url>; rel="last"`` -> ``{"next": url, "last": url}``."""
    if not header:
        return {}
    links: dict[str, str] = {}
    for item in httpx.Response(200, headers={"link": header}).links.values():
        url = item.get("url")
        for rel in (item.get("rel") or "").split():
            if url:
                links[rel] = url
    return links


def _short(url: str) -> str:
    """Path and query of a URL, for messages (the host is in the block's config)."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _describe_transport_error(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text


def _parse_body(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except (ValueError, UnicodeDecodeError):
        return response.text[:2000]


class HttpClient:
    """A configured HTTP client for one service (see the module docstring). Use it as a
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
    def url(self, path_or_url: str) -> str:
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

    def _fail(self, message: str, **kwargs: Any) -> HTTPServiceError:
        return self.error_class(self.redact(message), **kwargs)

    def _backoff(self, attempt: int) -> float:
        delay = min(MAX_RETRY_BACKOFF, self.retry_backoff * (2**attempt))
        return delay + random.uniform(0, delay * 0.1)  # noqa: S311 - jitter, not crypto

    def pause_before_retry(self, attempt: int) -> float:
        """Sleep the backoff of retry ``attempt`` (0-based), for callers that retry a whole
        step themselves; returns the seconds slept."""
        delay = self._backoff(attempt)
        self._sleep(delay)
        return delay

    def _log(self, level: str, message: str, *args: Any) -> None:
        log = default_logger()
        getattr(log, level)(self.redact(message % args if args else message))

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
        reduced data for a 304). Raises ``describe_error(result, what)`` for other 4xx,
        and ``error_class`` for exhausted retries or wait budget.
        """
        method = method.upper()
        request_url = self.url(path_or_url)
        if params:
            request_url = str(httpx.URL(request_url).copy_merge_params(_clean(params)))
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS
        if conditional is None:
            conditional = method == "GET"
        cache = self.cache if conditional else None
        key = f"{method} {request_url} {shape}".rstrip()
        budget = budget or WaitBudget(self.max_rate_limit_wait)
        what = what or f"{method} {_short(request_url)}"

        attempt = 0  # retries spent on connection errors and 5xx
        streak = 0  # rate-limited answers so far
        while True:
            entry = cache.get(key) if cache is not None else None
            headers = {"If-None-Match": entry.etag} if entry is not None else {}
            content = None
            if json_body is not None:
                content = json.dumps(json_body).encode()
                headers["Content-Type"] = "application/json"
            try:
                response = self._client.request(
                    method, request_url, headers=headers, content=content
                )
            except httpx.TransportError as exc:
                never_sent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
                detail = _describe_transport_error(exc)
                if not (idempotent or never_sent):
                    raise self._fail(
                        f"{self.service}: the connection failed during {what} ({detail}); it "
                        "may or may not have been carried out.",
                        method=method,
                        url=request_url,
                        ambiguous=True,
                    ) from None
                if attempt >= self.max_retries:
                    raise self._fail(
                        f"{self.service}: could not complete {what} ({detail}) after "
                        f"{attempt + 1} attempts; check the network of this worker and the "
                        f"API URL {self.base_url}, or try again later.",
                        method=method,
                        url=request_url,
                    ) from None
                delay = self._backoff(attempt)
                self._log(
                    "warning",
                    "%s: %s failed (%s); retrying in %.1f s (retry %d of %d).",
                    self.service,
                    what,
                    detail,
                    delay,
                    attempt + 1,
                    self.max_retries,
                )
                self._sleep(delay)
                attempt += 1
                continue

            wait = self.policy.classify(response, streak)
            if wait is not None:
                streak += 1
                reset = (
                    f"; it resets at {wait.reset_at:%Y-%m-%d %H:%M:%S} UTC" if wait.reset_at else ""
                )
                if not budget.allows(wait.seconds):
                    raise self._fail(
                        f"{self.service}: {wait.limit} exceeded on {what}: waiting "
                        f"{wait.seconds:.0f} s more would exceed the wait budget of "
                        f"{budget.max_seconds:.0f} s (already waited {budget.spent:.0f} s)"
                        f"{reset}. Try again later, or raise `max_rate_limit_wait`.",
                        status=response.status_code,
                        method=method,
                        url=request_url,
                        rate_limited=True,
                        reset_at=wait.reset_at,
                        service_message=_message_of(response),
                    )
                self._log(
                    "info",
                    "%s: %s exceeded on %s (HTTP %d); waiting %.0f s (%s)%s "
                    "[%.0f of %.0f s waited].",
                    self.service,
                    wait.limit,
                    what,
                    response.status_code,
                    wait.seconds,
                    wait.reason or "as told",
                    reset,
                    budget.spent,
                    budget.max_seconds,
                )
                self._sleep(wait.seconds)
                budget.spend(wait.seconds)
                continue

            status = response.status_code
            if status >= 500:
                message = _message_of(response)
                detail = f"HTTP {status}" + (f": {message}" if message else "")
                if not idempotent:
                    raise self._fail(
                        f"{self.service} answered {detail} to {what}; it may or may not "
                        "have been carried out.",
                        status=status,
                        method=method,
                        url=request_url,
                        ambiguous=True,
                        service_message=message,
                    ) from None
                if attempt >= self.max_retries:
                    raise self._fail(
                        f"{self.service} answered {detail} to {what} after {attempt + 1} "
                        f"attempts (an outage or a gateway error); try again later.",
                        status=status,
                        method=method,
                        url=request_url,
                        service_message=message,
                    ) from None
                delay = self._backoff(attempt)
                told = retry_after_seconds(response)
                if told is not None and told <= MAX_SERVER_RETRY_AFTER:
                    delay = max(delay, told)
                self._log(
                    "warning",
                    "%s answered %s to %s; retrying in %.1f s (retry %d of %d).",
                    self.service,
                    detail,
                    what,
                    delay,
                    attempt + 1,
                    self.max_retries,
                )
                self._sleep(delay)
                attempt += 1
                continue

            links = parse_links(response.headers.get("link"))
            if status == 304 and entry is not None:
                return HttpResult(
                    method, request_url, 304, response.headers, entry.data, entry.links, True
                )
            body = _parse_body(response)
            if 200 <= status < 300:
                data = reduce(body) if reduce is not None else body
                etag = response.headers.get("etag")
                if cache is not None and etag and method == "GET":
                    cache.put(key, CacheEntry(etag=etag, data=data, links=links))
                return HttpResult(method, request_url, status, response.headers, data, links)
            result = HttpResult(method, request_url, status, response.headers, body, links)
            if self.describe_error is not None:
                error = self.describe_error(result, what)
                if isinstance(error, HTTPServiceError):
                    error.args = (self.redact(str(error)),)
                raise error
            message = result.service_message()
            raise self._fail(
                f"{self.service} answered HTTP {status} to {what}"
                + (f": {message}" if message else ""),
                status=status,
                method=method,
                url=request_url,
                service_message=message,
            )

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
        url: str | None = self.url(path_or_url)
        if params:
            url = str(httpx.URL(url).copy_merge_params(_clean(params)))
        seen: set[str] = set()
        pages = 0
        while url is not None:
            if url in seen:
                raise self._fail(
                    f"{self.service}: the listing {what or _short(url)} links back to a page "
                    f"already read ({_short(url)}); stopping instead of looping."
                )
            if pages >= max_pages:
                raise self._fail(
                    f"{self.service}: the listing {what or _short(path_or_url)} has more than "
                    f"{max_pages} pages; refusing to read a partial listing."
                )
            seen.add(url)
            page = self.request("GET", url, reduce=reduce, shape=shape, budget=budget, what=what)
            pages += 1
            yield page
            url = page.next_url
            if url is not None:
                url = self.url(url)  # same origin only


def _clean(params: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        out[key] = value
    return out


def _message_of(response: httpx.Response) -> str | None:
    body = _parse_body(response)
    if isinstance(body, Mapping) and body.get("message") is not None:
        return str(body["message"])[:500]
    return None


__all__ = [
    "CacheEntry",
    "HTTPServiceError",
    "HttpClient",
    "HttpResult",
    "MemoryResponseCache",
    "RateLimitPolicy",
    "RateLimitWait",
    "ResponseCache",
    "WaitBudget",
    "parse_links",
    "retry_after_seconds",
    "server_now",
    "user_agent",
]
