"""A contract fake of Fastly's purge API, as a real HTTP server on 127.0.0.1::

    with FakeFastly(tokens={"tok": {"purge_all", "purge_select"}}, services=["svc"]) as f:
        FastlyService(service_id="svc", api_token="tok", api_url=f.base_url).purge(keys=["a"])
        assert f.purged_keys() == ["a"]

Endpoints (the public API; ``Fastly-Key: <token>`` on every call):

* ``POST /service/{id}/purge_all`` → ``{"status": "ok"}`` (needs the ``purge_all`` scope;
  never soft);
* ``POST /service/{id}/purge/{surrogate_key}`` → ``{"status": "ok", "id": ...}``
  (``purge_select``); ``Fastly-Soft-Purge: 1`` makes it soft;
* ``POST /service/{id}/purge`` with ``{"surrogate_keys": [...]}`` or a ``Surrogate-Key:
  k1 k2`` header → ``{"k1": id, "k2": id}``; at most 256 keys.

Errors: no or an unknown ``Fastly-Key`` → 401 ``{"msg": "Provided credentials are missing
or invalid"}``; a token without the scope → 403 (``{"msg": "Forbidden", "detail": ...}``,
the fake's wording); an unknown service → 404 ``{"msg": "Record not found", "detail":
"Cannot find service '<id>'"}``; more than 256 keys → 400.

Switches for the next N requests: :meth:`rate_limit` (429 + ``Retry-After``) and
:meth:`fail` (HTTP 500). Records: :attr:`purges`, :attr:`requests`.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import unquote, urlsplit

from tests.fakes._server import FakeServer

BATCH_LIMIT = 256
_PATH = re.compile(r"^/service/([^/]+)/(purge_all|purge)(?:/([^/]+))?$")


@dataclass
class FastlyPurge:
    service: str
    keys: list[str]  # empty: purge all
    soft: bool
    ids: dict[str, str]
    at: float = field(default_factory=time.monotonic)


@dataclass
class FastlyRequest:
    path: str
    status: int
    at: float = field(default_factory=time.monotonic)


class FakeFastly(FakeServer):
    """Args:
    tokens: API token -> its scopes (``purge_all``, ``purge_select``).
    services: the service ids that exist.
    """

    def __init__(
        self,
        *,
        tokens: Mapping[str, Iterable[str]],
        services: Iterable[str],
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._tokens = {t: set(s) for t, s in tokens.items()}
        self.services = set(services)
        self._init_server(host, port)
        self._lock = threading.Lock()
        self._faults: list[tuple[str, int]] = []
        self._ids = itertools.count(1)
        self.purges: list[FastlyPurge] = []
        self.requests: list[FastlyRequest] = []

    def rate_limit(self, count: int = 1, *, retry_after: int = 1) -> None:
        with self._lock:
            self._faults += [("429", retry_after)] * count

    def fail(self, count: int = 1, *, status: int = 500) -> None:
        with self._lock:
            self._faults += [("status", status)] * count

    def purged_keys(self) -> list[str]:
        with self._lock:
            return [k for p in self.purges for k in p.keys]

    def purged_all(self) -> int:
        with self._lock:
            return sum(1 for p in self.purges if not p.keys)

    # ------------------------------------------------------------------ answers
    def answer(self, path: str, headers: Any, raw: bytes) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            fault = self._faults.pop(0) if self._faults else None
        if fault is not None:
            kind, arg = fault
            if kind == "429":
                return 429, {"msg": "Too many requests"}, {"Retry-After": str(arg)}
            return arg, {"msg": "Internal Server Error"}, {}
        match = _PATH.match(path)
        if not match:
            return 404, {"msg": "Record not found", "detail": f"No route for {path}"}, {}
        service, action, key = match.group(1), match.group(2), match.group(3)
        scopes = self._tokens.get((headers.get("Fastly-Key") or "").strip())
        if scopes is None:
            return 401, {"msg": "Provided credentials are missing or invalid"}, {}
        if service not in self.services:
            return (
                404,
                {"msg": "Record not found", "detail": f"Cannot find service '{service}'"},
                {},
            )
        needed = "purge_all" if action == "purge_all" else "purge_select"
        if needed not in scopes:
            return 403, {"msg": "Forbidden", "detail": f"the token lacks the {needed} scope"}, {}
        soft = (headers.get("Fastly-Soft-Purge") or "").strip() == "1"
        if action == "purge_all":
            if key is not None:
                return 404, {"msg": "Record not found"}, {}
            self._record(service, [], False)
            return 200, {"status": "ok"}, {}
        if key is not None:
            ids = self._record(service, [unquote(key)], soft)
            return 200, {"status": "ok", "id": ids[unquote(key)]}, {}
        keys = (headers.get("Surrogate-Key") or "").split()
        if not keys and raw:
            try:
                body = json.loads(raw.decode())
            except (ValueError, UnicodeDecodeError):
                return 400, {"msg": "Bad request", "detail": "body is not JSON"}, {}
            keys = body.get("surrogate_keys") if isinstance(body, dict) else None
            if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
                return 400, {"msg": "Bad request", "detail": "surrogate_keys must be a list"}, {}
        if not keys:
            return 400, {"msg": "Bad request", "detail": "no surrogate keys given"}, {}
        if len(keys) > BATCH_LIMIT:
            detail = f"at most {BATCH_LIMIT} surrogate keys per batch purge"
            return 400, {"msg": "Bad request", "detail": detail}, {}
        return 200, self._record(service, keys, soft), {}

    def _record(self, service: str, keys: list[str], soft: bool) -> dict[str, str]:
        ids = {k: f"{next(self._ids)}-{int(time.time())}-fake" for k in keys}
        with self._lock:
            self.purges.append(FastlyPurge(service, list(keys), soft, ids))
        return ids


class _Handler(BaseHTTPRequestHandler):
    fake: FakeFastly
    server_version = "FakeFastly/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = urlsplit(self.path).path
        status, body, extra = self.fake.answer(path, self.headers, raw)
        with self.fake._lock:
            self.fake.requests.append(FastlyRequest(path, status))
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in extra.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)


FakeFastly.handler = _Handler
