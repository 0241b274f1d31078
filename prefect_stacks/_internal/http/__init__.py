"""The one HTTP client helper of prefect-stacks.

Every block that talks to an HTTP API (GitHub, and the registry, Alertmanager ... blocks to
come) goes through :class:`HttpClient` (:mod:`.client`), which composes one small module
per concern:

* **timeouts** on every request;
* **retries** (:mod:`.retry`) with exponential backoff (``retry_backoff`` × 2ⁿ, capped at
  30 s, bounded by ``max_retries``) for connection errors and 5xx answers. A request that
  is not idempotent (a POST creating something) is retried only when it surely never
  reached the server (connection refused, connect timeout); otherwise the error is raised
  with ``ambiguous=True`` so that the caller can look before it tries again;
* **rate limits are waited out** (:mod:`.rate_limit`), not turned into failures: a
  :class:`RateLimitPolicy` reads each answer (the default one knows ``429`` +
  ``Retry-After``; GitHub's knows its primary and secondary limits) and the client sleeps
  as told, logging each wait at INFO through the Prefect run logger, until a
  :class:`WaitBudget` (per operation) would be exceeded: then the error names the limit
  and when it resets;
* **conditional requests** (:mod:`.cache`): with a :class:`ResponseCache`, a GET sends the
  ``ETag`` it saw last for that URL as ``If-None-Match``; a ``304`` answers from the cache.
  What is cached is what the caller's ``reduce`` function kept of the body (not the raw
  body), keyed by method, URL and the caller's ``shape`` name, so a cache can be persisted
  cheaply;
* **pagination** (:mod:`.pagination`) through ``Link: <...>; rel="next"``
  (:meth:`HttpClient.paginate`), refusing links to another origin (the credential would
  follow them) and link loops;
* **secrets** (tokens in headers) never reach a log line, an exception or a repr: error
  messages are passed through :class:`~prefect_stacks._internal.process.Redactor` and
  exceptions are raised ``from None`` (httpx's own carry the request, and so its headers).

Non-success answers that are not retried (4xx) are turned into exceptions by the caller's
``describe_error`` (which knows what a 404 means for its service); the rest raise the
client's ``error_class``, a :class:`HTTPServiceError` subclass (:mod:`.errors`).
"""

from prefect_stacks._internal.http.cache import (
    CacheEntry,
    ConditionalGet,
    MemoryResponseCache,
    ResponseCache,
    cache_key,
)
from prefect_stacks._internal.http.client import (
    ErrorDescriber,
    HttpClient,
    HttpResult,
    clean_params,
    user_agent,
)
from prefect_stacks._internal.http.errors import Failure
from prefect_stacks._internal.http.pagination import follow_pages, parse_links
from prefect_stacks._internal.http.rate_limit import (
    GitHubRateLimitPolicy,
    RateLimitPolicy,
    RateLimitWait,
    RateLimitWaits,
    WaitBudget,
)
from prefect_stacks._internal.http.retry import (
    IDEMPOTENT_METHODS,
    MAX_RETRY_BACKOFF,
    MAX_SERVER_RETRY_AFTER,
    Pause,
    Retries,
    backoff_delay,
    retry_after_seconds,
    server_now,
)
from prefect_stacks.exceptions import HTTPServiceError

__all__ = [
    "IDEMPOTENT_METHODS",
    "MAX_RETRY_BACKOFF",
    "MAX_SERVER_RETRY_AFTER",
    "CacheEntry",
    "ConditionalGet",
    "ErrorDescriber",
    "Failure",
    "GitHubRateLimitPolicy",
    "HTTPServiceError",
    "HttpClient",
    "HttpResult",
    "MemoryResponseCache",
    "Pause",
    "RateLimitPolicy",
    "RateLimitWait",
    "RateLimitWaits",
    "ResponseCache",
    "Retries",
    "WaitBudget",
    "backoff_delay",
    "cache_key",
    "clean_params",
    "follow_pages",
    "parse_links",
    "retry_after_seconds",
    "server_now",
    "user_agent",
]
