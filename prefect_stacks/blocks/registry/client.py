"""``RegistryClient``: the calls prefect-stacks makes to a container registry (Distribution
/ OCI distribution API v2) through the one HTTP helper.

* **tags**: ``GET /v2/<name>/tags/list``, page by page through ``Link: rel="next"``,
  conditionally (ETag) where the registry offers it;
* **a tag's digest**: ``HEAD /v2/<name>/manifests/<tag>`` with an ``Accept`` list naming
  every manifest type (OCI index and manifest, Docker manifest list and v2 manifest).
  Without it Distribution answers the digest of a schema-1 conversion, not the one
  that was pushed, and a deploy by digest would pin an image nobody built;
* **a build's creation time** (for the newest-build policy): the manifest, then its
  config blob, cached by digest (immutable);
* **authentication** as the registry's 401 asks for it (:mod:`.auth`);
* **a request budget per registry**: requests to one registry are spaced by
  ``1 / requests_per_second``, across every client in the process, so a watcher of 500
  tags never bursts; a 429 is waited out as its ``Retry-After`` says (the helper's
  policy) and never retried at once.
"""

from __future__ import annotations

import re
import threading
import time
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from prefect_stacks._internal.http import (
    CacheEntry,
    HttpClient,
    HttpResult,
    MemoryResponseCache,
    ResponseCache,
    cache_key,
)
from prefect_stacks.blocks.registry.auth import (
    Challenge,
    Token,
    basic_header,
    fetch_token,
    parse_challenge,
)
from prefect_stacks.exceptions import RegistryError

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_TYPES = (OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
TAGS_PAGE_SIZE = 1000


class _Pacer:
    """Spaces requests to one registry by a minimum interval, process-wide."""

    _lock = threading.Lock()
    _next_slot: dict[str, float] = {}

    @classmethod
    def wait(cls, key: str, interval: float) -> None:
        with cls._lock:
            now = time.monotonic()
            slot = max(now, cls._next_slot.get(key, 0.0))
            cls._next_slot[key] = slot + interval
        if slot > now:
            time.sleep(slot - now)


def _describe(registry: str):
    def describe(result: HttpResult, what: str) -> Exception:
        errors = result.data.get("errors") if isinstance(result.data, dict) else None
        first = errors[0] if isinstance(errors, list) and errors else {}
        code = first.get("code") if isinstance(first, dict) else None
        detail = first.get("message") if isinstance(first, dict) else None
        hint = {
            401: "the registry wants credentials: set or fix the block field `credentials`",
            403: "the credentials are not allowed to read it: check their permissions",
            404: "no such repository or tag: check the image name and tag",
            429: "the registry kept rate-limiting: lower `requests_per_second`",
        }.get(result.status, "")
        said = f" ({code}: {detail})" if code or detail else ""
        return RegistryError(
            f"registry {registry}: {what} answered {result.status}{said}"
            + (f"; {hint}" if hint else ""),
            status=result.status,
            method=result.method,
            url=result.url,
            code=code,
            challenge=result.headers.get("www-authenticate"),
            service_message=detail,
            errors=errors if isinstance(errors, list) else None,
        )

    return describe


class RegistryClient:
    """Made by :meth:`ContainerRegistry.get_client`; use as a context manager."""

    def __init__(
        self,
        *,
        base_url: str,
        host: str,
        username: str | None,
        password: str | None,
        requests_per_second: float,
        timeout: float,
        cache: ResponseCache | None = None,
    ) -> None:
        """``cache`` keeps ETags between calls (a watcher passes one it persists); by
        default they live as long as this client."""
        self.host = host
        self.username = username
        self._password = password
        self.interval = 1.0 / requests_per_second
        self.timeout = timeout
        self.requests = 0  # every request sent, token requests included
        self.not_modified = 0  # digests answered 304 (unchanged since last asked)
        self._tokens: dict[str, Token] = {}
        self._planned: list[str] = []  # scopes to ask a token for together (will_read)
        self._bearer: Challenge | None = None  # the registry wants tokens from this realm
        self._sent_token: Token | None = None
        self._blob_cache: dict[str, Any] = {}
        self._tag_lists: dict[str, list[str]] = {}  # one listing per repository per client
        self._cache: ResponseCache = cache if cache is not None else MemoryResponseCache()
        self._http = HttpClient(
            base_url=base_url,
            service=f"registry {host}",
            headers={"Accept": ", ".join(MANIFEST_TYPES)},
            secrets=[password] if password else [],
            timeout=timeout,
            cache=self._cache,
            error_class=RegistryError,
            describe_error=_describe(host),
        )
        self._pace_key = base_url.rstrip("/").lower()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def __repr__(self) -> str:
        return f"RegistryClient({self.host})"

    # ------------------------------------------------------------------ plumbing
    def will_read(self, repositories: list[str]) -> None:
        """Say which repositories this client is about to read: a registry that wants
        bearer tokens then gets one token request for all of them, not one each."""
        for repository in repositories:
            scope = f"repository:{repository}:pull"
            if scope not in self._planned:
                self._planned.append(scope)

    def _send(self, method: str, path: str, scope: str, **kwargs: Any) -> HttpResult:
        """One request, paced. With a bearer challenge already seen, the token for
        ``scope`` is fetched before the request; a 401 challenge is answered once
        (basic credentials or a token), then the request is sent again."""
        if self._bearer is not None:
            self._use_token(self._bearer, scope)
        for attempt in (1, 2):
            _Pacer.wait(self._pace_key, self.interval)
            self.requests += 1
            try:
                return self._http.request(method, path, **kwargs)
            except RegistryError as exc:
                challenge = parse_challenge(exc.challenge) if exc.status == 401 else None
                if attempt == 2 or challenge is None or not self._answer(challenge, scope):
                    raise
        raise AssertionError("unreachable")

    def _answer(self, challenge: Challenge, scope: str) -> bool:
        """Set the credential the challenge asks for; False when there is none to give."""
        if challenge.scheme == "basic":
            if not (self.username and self._password):
                return False
            value = basic_header(self.username, self._password)
            self._http.set_credential("Authorization", value, value.split(" ", 1)[1])
            return True
        if challenge.scheme != "bearer":
            return False
        self._bearer = challenge
        self._use_token(challenge, challenge.params.get("scope") or scope, fresh=True)
        return True

    def _use_token(self, challenge: Challenge, scope: str, fresh: bool = False) -> None:
        """Send the token for ``scope``, fetching one (for it and every planned scope
        without a token) when there is none, it expired, or the registry refused it."""
        token = self._tokens.get(scope)
        if fresh or token is None or token.expires_at <= time.monotonic():
            now = time.monotonic()
            wanted = [scope] + [
                s
                for s in self._planned
                if s != scope and (s not in self._tokens or self._tokens[s].expires_at <= now)
            ]
            _Pacer.wait(self._pace_key, self.interval)
            self.requests += 1
            token = fetch_token(
                challenge,
                wanted,
                registry=self.host,
                username=self.username,
                password=self._password,
                timeout=self.timeout,
            )
            self._tokens.update(dict.fromkeys(wanted, token))
        if token is not self._sent_token:
            self._http.set_credential("Authorization", f"Bearer {token.value}", token.value)
            self._sent_token = token

    @staticmethod
    def _path(repository: str, *rest: str) -> str:
        return (
            "/v2/" + quote(repository, safe="/") + "/" + "/".join(quote(r, safe=":") for r in rest)
        )

    def _read(self, repository: str, kind: str, reference: str, what: str) -> HttpResult:
        """GET a manifest or blob (content-addressed or not: never conditional)."""
        return self._send(
            "GET",
            self._path(repository, kind, reference),
            f"repository:{repository}:pull",
            conditional=False,
            what=f"reading {what} of {repository}:{reference}",
        )

    # ------------------------------------------------------------------ API
    def tags(self, repository: str) -> list[str]:
        """Every tag of ``repository``, in the registry's order (all pages). Listed once
        per client: the policies of one poll that read one repository share its list
        (Distribution gives tag lists no ETag, so a listing cannot be conditional)."""
        if repository not in self._tag_lists:
            self._tag_lists[repository] = self._list_tags(repository)
        return list(self._tag_lists[repository])

    def _list_tags(self, repository: str) -> list[str]:
        scope = f"repository:{repository}:pull"
        found: list[str] = []
        url: str | None = self._path(repository, "tags", "list") + f"?n={TAGS_PAGE_SIZE}"
        seen: set[str] = set()
        while url:
            if url in seen or len(seen) > 200:
                raise RegistryError(f"registry {self.host}: the tag list of {repository} loops")
            seen.add(url)
            page = self._send(
                "GET",
                url,
                scope,
                reduce=lambda body: (body or {}).get("tags") or [],
                shape="tags",
                what=f"listing the tags of {repository}",
            )
            found += [t for t in page.data if isinstance(t, str)]
            url = page.next_url
        return found

    def digest(self, repository: str, reference: str) -> str | None:
        """The digest ``reference`` (a tag) points at, by ``HEAD``; None when the tag does
        not exist."""
        try:
            answer = self._send(
                "HEAD",
                self._path(repository, "manifests", reference),
                f"repository:{repository}:pull",
                conditional=True,  # an unchanged tag answers 304
                reduce=lambda headers: headers.get("docker-content-digest"),
                shape="digest",
                what=f"reading the digest of {repository}:{reference}",
            )
        except RegistryError as exc:
            if exc.status == 404:
                return None
            raise
        if answer.from_cache:
            self.not_modified += 1
        if not answer.data:  # some registries omit it on HEAD: read the manifest itself
            return self.manifest(repository, reference)[2]
        return str(answer.data)

    def remember_digest(self, repository: str, reference: str, digest: str) -> None:
        """Seed the conditional HEAD of ``repository:reference`` with a digest seen before
        (a watcher's state): Distribution, GHCR and Docker Hub use the quoted digest as
        the manifest's ETag, so an unmoved tag answers 304 from the first poll of a new
        process. Elsewhere the HEAD is simply answered in full."""
        url = self._http.url(self._path(repository, "manifests", reference))
        self._cache.put(cache_key("HEAD", url, "digest"), CacheEntry(f'"{digest}"', digest))

    def manifest(self, repository: str, reference: str) -> tuple[str, dict, str]:
        """(media type, manifest, digest) of a tag or digest."""
        answer = self._read(repository, "manifests", reference, "the manifest")
        body = answer.data
        if not isinstance(body, dict):
            raise RegistryError(
                f"registry {self.host}: the manifest of {repository}:{reference} is not JSON"
            )
        media = answer.headers.get("content-type", "").split(";")[0].strip()
        media = media or str(body.get("mediaType", ""))
        return media, body, answer.headers.get("docker-content-digest", "")

    def created(self, repository: str, digest: str) -> datetime | None:
        """When the image ``digest`` was built (its config's ``created``); for an index,
        its linux/amd64 image (or its first). Cached by digest: it never changes."""
        if digest in self._blob_cache:
            return self._blob_cache[digest]
        media, manifest, _ = self.manifest(repository, digest)
        if media in INDEX_TYPES or "manifests" in manifest:
            entries = [m for m in manifest.get("manifests") or [] if isinstance(m, dict)]
            chosen = next(
                (
                    m
                    for m in entries
                    if (m.get("platform") or {}).get("os") == "linux"
                    and (m.get("platform") or {}).get("architecture") == "amd64"
                ),
                entries[0] if entries else None,
            )
            result = self.created(repository, chosen["digest"]) if chosen else None
        else:
            config = (manifest.get("config") or {}).get("digest")
            result = None
            if config:
                blob = self._read(repository, "blobs", config, "the image config").data
                stamp = blob.get("created") if isinstance(blob, dict) else None
                result = _parse_time(stamp)
        self._blob_cache[digest] = result
        return result


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    text = value.replace("Z", "+00:00")
    if "." in text:  # Go writes nanoseconds; Python takes microseconds
        head, _, tail = text.partition(".")
        digits = re.match(r"\d*", tail)[0]
        zone = tail[len(digits) :]
        text = f"{head}.{digits[:6]}{zone}"
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)
