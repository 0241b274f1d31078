"""How a registry wants to be authenticated: the ``WWW-Authenticate`` challenge of its 401,
and the token flow of the Docker registry token specification (Docker Hub, GHCR, GitLab,
Harbor, Distribution with ``auth: token``).

``Basic realm=...``: send the credentials on every request. ``Bearer realm=...,
service=...,scope=...``: ask the realm (often another host) for a token for that scope,
with the credentials as basic auth (anonymous without them), and send
``Authorization: Bearer <token>`` until it expires.
"""

from __future__ import annotations

import base64
import re
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from prefect_stacks._internal.http import HttpClient
from prefect_stacks.exceptions import RegistryError

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def plain_http_off_machine(url: str) -> bool:
    """Whether ``url`` is plain http to another machine (credentials would travel in clear)."""
    parts = urlsplit(url)
    return parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS


_PARAM_RE = re.compile(r'([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


@dataclass(frozen=True)
class Challenge:
    scheme: str  # "basic" or "bearer", lower case
    params: dict[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")


def parse_challenge(header: str | None) -> Challenge | None:
    """``Bearer realm="https://auth.example/token",service="reg",scope="repository:a:pull"``."""
    if not header or not header.strip():
        return None
    scheme, _, rest = header.strip().partition(" ")
    params = {m[1].lower(): (m[2] if m[2] is not None else m[3]) for m in _PARAM_RE.finditer(rest)}
    return Challenge(scheme.lower(), params)


def basic_header(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


@dataclass
class Token:
    value: str
    expires_at: float


def fetch_token(
    challenge: Challenge,
    scopes: list[str],
    *,
    registry: str,
    username: str | None,
    password: str | None,
    timeout: float,
) -> Token:
    """One bearer token for every scope in ``scopes`` (the spec allows several ``scope``
    parameters), from the challenge's realm."""
    realm = challenge.realm
    parts = urlsplit(realm)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise RegistryError(
            f"registry {registry} asked for a token from {realm!r}, which is not an http(s) "
            "URL; check the block field `url`"
        )
    if plain_http_off_machine(realm):
        raise RegistryError(
            f"registry {registry} asked for a token from {realm} over plain http; the "
            "credentials would travel in clear, so prefect-stacks does not send them there"
        )
    headers = {}
    secrets = [s for s in (password,) if s]
    if username and password:
        headers["Authorization"] = basic_header(username, password)
        secrets.append(headers["Authorization"].split(" ", 1)[1])
    params: dict[str, str | list[str]] = {"scope": scopes}
    if challenge.params.get("service"):
        params["service"] = challenge.params["service"]
    with HttpClient(
        base_url=f"{parts.scheme}://{parts.netloc}",
        service=f"the token service of {registry}",
        headers=headers,
        secrets=secrets,
        timeout=timeout,
        max_retries=2,
        error_class=RegistryError,
    ) as client:
        answer = client.request("GET", realm, params=params, conditional=False)
    data = answer.data if isinstance(answer.data, dict) else {}
    token = data.get("token") or data.get("access_token")
    if not token:
        raise RegistryError(
            f"the token service of {registry} ({parts.netloc}) answered without a token; "
            "check the credentials of the block"
        )
    lifetime = data.get("expires_in") if isinstance(data.get("expires_in"), int) else 60
    # spec: at least 60 s; renew a little early
    return Token(str(token), time.monotonic() + max(lifetime, 60) - 10)
