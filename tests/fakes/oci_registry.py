"""A contract fake of a hosted registry's distribution API (GHCR, Docker Hub, GitLab):
what the real Distribution 2.8 on this machine does not do. Those registries paginate tag
lists, want bearer tokens from a token service on another host, and rate-limit.

* ``GET /v2/<name>/tags/list?n=&last=``: pages of ``n`` tags (default and cap 100), sorted, with
  ``Link: </v2/<name>/tags/list?last=<tag>&n=<n>>; rel="next"`` while more remain.
* ``HEAD`` / ``GET /v2/<name>/manifests/<tag|digest>``: needs an ``Accept`` naming the
  stored media type (``404 MANIFEST_UNKNOWN`` otherwise, as GHCR answers); sends
  ``Docker-Content-Digest`` and ``ETag``, and ``304`` for a matching ``If-None-Match``.
* Every ``/v2/`` request needs ``Authorization: Bearer <token>`` whose scope covers the
  repository, else ``401`` with ``WWW-Authenticate: Bearer realm="<token service>",
  service="<service>",scope="repository:<name>:pull"`` and an ``UNAUTHORIZED`` error body.
* The token service (its own server, so its own origin): ``GET /token?service=&scope=``
  (``scope`` repeated for several repositories, one token for all).
  Basic auth of a known user, or anonymous for a public repository. It answers
  ``{"token", "access_token", "expires_in"}``, or ``401`` for wrong credentials.
* :meth:`rate_limit`: the next N registry requests answer ``429`` with ``Retry-After``
  and a ``TOOMANYREQUESTS`` body.

Every request is recorded (method, path, time) for cost and pacing checks.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, quote, urlsplit

from tests.fakes._server import FakeServer

SERVICE = "fake-registry"


@dataclass
class Request:
    method: str
    path: str
    at: float
    status: int = 0


def _errors(code: str, message: str) -> bytes:
    return json.dumps({"errors": [{"code": code, "message": message, "detail": None}]}).encode()


class _TokenHandler(BaseHTTPRequestHandler):
    fake: FakeTokenService

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        fake = self.fake
        query = parse_qs(urlsplit(self.path).query)
        scopes = query.get("scope") or []
        user = None
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            name, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            if fake.registry.users.get(name) != password:
                body = json.dumps({"details": "incorrect username or password"}).encode()
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            user = name
        fake.requests.append(Request("GET", self.path, time.monotonic(), 200))
        token = secrets.token_urlsafe(16)
        fake.registry.grant(token, scopes, user)
        body = json.dumps({"token": token, "access_token": token, "expires_in": 300}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class FakeTokenService(FakeServer):
    handler = _TokenHandler

    def __init__(self, registry: FakeOCIRegistry) -> None:
        self.registry = registry
        self.requests: list[Request] = []
        self._init_server("127.0.0.1", 0)


class _RegistryHandler(BaseHTTPRequestHandler):
    fake: FakeOCIRegistry

    def log_message(self, *args) -> None:
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
        self.fake.requests[-1].status = status
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if body:
            self.send_header(
                "Content-Type", (headers or {}).get("Content-Type", "application/json")
            )
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self._handle()

    def do_GET(self) -> None:
        self._handle()

    def _handle(self) -> None:
        fake = self.fake
        parts = urlsplit(self.path)
        fake.requests.append(Request(self.command, self.path, time.monotonic()))
        with fake.lock:
            if fake._limited > 0:
                fake._limited -= 1
                return self._send(
                    429,
                    _errors("TOOMANYREQUESTS", "rate limit exceeded"),
                    {"Retry-After": str(fake.retry_after)},
                )
        path = parts.path
        if not path.startswith("/v2/"):
            return self._send(404, _errors("NOT_FOUND", "not found"))
        name, _, rest = path[4:].rpartition("/tags/")
        kind = "tags"
        if not name:
            name, _, rest = path[4:].rpartition("/manifests/")
            kind = "manifests"
        if not name:
            return self._send(404, _errors("NOT_FOUND", "not found"))
        if not fake.allowed(self.headers.get("Authorization", ""), name):
            challenge = (
                f'Bearer realm="{fake.tokens.base_url}/token",service="{SERVICE}",'
                f'scope="repository:{name}:pull"'
            )
            return self._send(
                401,
                _errors("UNAUTHORIZED", "authentication required"),
                {"WWW-Authenticate": challenge},
            )
        if name not in fake.repos:
            return self._send(404, _errors("NAME_UNKNOWN", "repository name not known"))
        if kind == "tags":
            return self._tags(name, parse_qs(parts.query))
        return self._manifest(name, rest)

    def _tags(self, name: str, query: dict) -> None:
        tags = sorted(self.fake.repos[name])
        n = min(int((query.get("n") or ["100"])[0]), self.fake.max_page)  # hosted caps
        last = (query.get("last") or [""])[0]
        remaining = [t for t in tags if t > last] if last else tags
        page = remaining[:n]
        headers = {}
        if len(remaining) > n:
            headers["Link"] = f'</v2/{name}/tags/list?last={quote(page[-1])}&n={n}>; rel="next"'
        self._send(200, json.dumps({"name": name, "tags": page}).encode(), headers)

    def _manifest(self, name: str, reference: str) -> None:
        stored = self.fake.repos[name].get(reference)
        if stored is None:
            stored = next((m for m in self.fake.repos[name].values() if m[2] == reference), None)
        accept = self.headers.get("Accept", "")
        if stored is None or stored[0] not in accept:
            return self._send(404, _errors("MANIFEST_UNKNOWN", "manifest unknown"))
        media, body, digest = stored
        headers = {"Content-Type": media, "Docker-Content-Digest": digest, "ETag": f'"{digest}"'}
        if self.headers.get("If-None-Match") == f'"{digest}"':
            return self._send(304, b"", headers)
        self._send(200, body, headers)


class FakeOCIRegistry(FakeServer):
    """Start with ``with FakeOCIRegistry(users={"ci": "pw"}) as fake:``; push with
    :meth:`push`; ``fake.requests`` records every registry request."""

    handler = _RegistryHandler

    def __init__(self, users: dict[str, str] | None = None, public: set[str] | None = None):
        self.users = dict(users or {})
        self.public = set(public or ())
        self.repos: dict[str, dict[str, tuple[str, bytes, str]]] = {}
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        self._grants: dict[str, tuple[list[str], str | None]] = {}
        self._limited = 0
        self.retry_after = 1
        self.max_page = 100
        self.tokens = FakeTokenService(self)
        self._init_server("127.0.0.1", 0)

    def start(self):
        self.tokens.start()
        return super().start()

    def stop(self) -> None:
        super().stop()
        self.tokens.stop()

    def push(self, name: str, tag: str, media_type: str, manifest: dict) -> str:
        body = json.dumps(manifest).encode()
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        self.repos.setdefault(name, {})[tag] = (media_type, body, digest)
        return digest

    def grant(self, token: str, scopes: list[str], user: str | None) -> None:
        self._grants[token] = (scopes, user)

    def allowed(self, authorization: str, name: str) -> bool:
        if not authorization.startswith("Bearer "):
            return False
        scopes, user = self._grants.get(authorization[7:], ([], None))
        if f"repository:{name}:pull" not in scopes:
            return False
        return user is not None or name in self.public

    def rate_limit(self, count: int, retry_after: int = 1) -> None:
        with self.lock:
            self._limited = count
            self.retry_after = retry_after
