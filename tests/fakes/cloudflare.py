"""A contract fake of Cloudflare's cache purge API (``POST
/client/v4/zones/{zone_id}/purge_cache``), as a real HTTP server on 127.0.0.1::

    with FakeCloudflare(tokens={"tok": ["zone1"]}) as cf:
        zone = CloudflareZone(zone_id="zone1", api_token="tok", api_url=cf.api_url)
        zone.purge(files=["https://www.example.com/"])
        assert cf.purged("files") == ["https://www.example.com/"]

It follows the public contract: the body is one of ``{"purge_everything": true}``,
``{"files": [...]}``, ``{"tags"|"hosts"|"prefixes": [...]}``; every answer is the
envelope ``{"success", "errors": [{"code", "message"}], "messages", "result"}`` with
``result: {"id": ...}`` on success.

* ``Authorization: Bearer <token>``: missing, not a bearer token, or a token with other
  characters than letters, digits, ``-`` and ``_`` → 400, code 6003
  ("Invalid request headers") with an ``error_chain`` 6111 ("Invalid format for
  Authorization header"); a token the fake does not know, or one without the zone → 403,
  code 10000 ("Authentication error");
* an unknown zone id → 400, code 7003 ("Could not route to ..., perhaps your object
  identifier is invalid?");
* more than ``max_per_call`` files (tags, hosts, prefixes) → 400 ("You may only purge up
  to N files per API call"; the code, 1016, is the fake's own choice: clients must not
  rely on it), a list that is not a list of strings → 400, code 1014; ``purge_everything``
  with anything else → 400.

Switches for the next N requests: :meth:`rate_limit` (429 + ``Retry-After``, code 971)
and :meth:`fail` (HTTP 500). Records: :attr:`purges` (each accepted purge) and
:attr:`requests` (every request with its status and time).
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
from urllib.parse import urlsplit

from tests.fakes._server import FakeServer

KINDS = ("files", "tags", "hosts", "prefixes")
_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")
_PATH = re.compile(r"^/client/v4/zones/([^/]+)/purge_cache$")


@dataclass
class Purge:
    zone: str
    kind: str  # "everything" or one of KINDS
    items: list[str]
    id: str
    at: float = field(default_factory=time.monotonic)


@dataclass
class Request:
    path: str
    status: int
    body: Any
    at: float = field(default_factory=time.monotonic)


def envelope(success: bool, errors: list[dict] | None = None, result: Any = None) -> dict:
    return {"success": success, "errors": errors or [], "messages": [], "result": result}


class FakeCloudflare(FakeServer):
    """Args:
    tokens: API token -> the zone ids it may purge.
    zones: zone ids that exist (default: every zone some token names).
    max_per_call: the per-call limit of files (and tags, hosts, prefixes).
    """

    def __init__(
        self,
        *,
        tokens: Mapping[str, Iterable[str]],
        zones: Iterable[str] | None = None,
        max_per_call: int = 30,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._tokens = {t: set(z) for t, z in tokens.items()}
        self.zones = set(zones) if zones is not None else set().union(*self._tokens.values())
        self.max_per_call = max_per_call
        self._init_server(host, port)
        self._lock = threading.Lock()
        self._faults: list[tuple[str, int]] = []
        self._ids = itertools.count(1)
        self.purges: list[Purge] = []
        self.requests: list[Request] = []

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/client/v4"

    def rate_limit(self, count: int = 1, *, retry_after: int = 1) -> None:
        """Answer the next ``count`` requests 429 with ``Retry-After: retry_after``."""
        with self._lock:
            self._faults += [("429", retry_after)] * count

    def fail(self, count: int = 1, *, status: int = 500) -> None:
        with self._lock:
            self._faults += [("status", status)] * count

    def purged(self, kind: str) -> list[str]:
        """Every item purged of one kind, in order (``everything``: one "*" per purge)."""
        with self._lock:
            return [i for p in self.purges if p.kind == kind for i in (p.items or ["*"])]

    # ------------------------------------------------------------------ answers
    def _next_fault(self) -> tuple[str, int] | None:
        with self._lock:
            return self._faults.pop(0) if self._faults else None

    def answer(self, path: str, auth: str, raw: bytes) -> tuple[int, dict, dict[str, str]]:
        """(status, body, extra headers) of one POST."""
        fault = self._next_fault()
        if fault is not None:
            kind, arg = fault
            if kind == "429":
                return (
                    429,
                    envelope(
                        False,
                        [
                            {
                                "code": 971,
                                "message": "Please wait and consider throttling your request speed",
                            }
                        ],
                    ),
                    {"Retry-After": str(arg)},
                )
            return arg, envelope(False, [{"code": 10001, "message": "Internal error"}]), {}
        match = _PATH.match(path)
        if not match:
            return 404, envelope(False, [{"code": 7000, "message": "No route for that URI"}]), {}
        zone = match.group(1)
        if not auth.startswith("Bearer ") or not _TOKEN.match(auth[7:].strip()):
            return (
                400,
                envelope(
                    False,
                    [
                        {
                            "code": 6003,
                            "message": "Invalid request headers",
                            "error_chain": [
                                {"code": 6111, "message": "Invalid format for Authorization header"}
                            ],
                        }
                    ],
                ),
                {},
            )
        if zone not in self.zones:
            message = (
                f"Could not route to /client/v4/zones/{zone}/purge_cache, perhaps your object "
                "identifier is invalid?"
            )
            return 400, envelope(False, [{"code": 7003, "message": message}]), {}
        if zone not in self._tokens.get(auth[7:].strip(), set()):
            return 403, envelope(False, [{"code": 10000, "message": "Authentication error"}]), {}
        try:
            body = json.loads(raw.decode() or "null")
        except (ValueError, UnicodeDecodeError):
            return 400, envelope(False, [{"code": 1012, "message": "Request must be JSON"}]), {}
        return self._purge(zone, body)

    def _purge(self, zone: str, body: Any) -> tuple[int, dict, dict[str, str]]:
        def bad(code: int, message: str) -> tuple[int, dict, dict[str, str]]:
            return 400, envelope(False, [{"code": code, "message": message}]), {}

        if not isinstance(body, dict) or not body:
            return bad(
                1015, "Purge request must name purge_everything, files, tags, hosts or prefixes"
            )
        if "purge_everything" in body:
            if body["purge_everything"] is not True or len(body) > 1:
                return bad(1015, "purge_everything must be true and cannot be combined")
            return self._accept(zone, "everything", [])
        kinds = [k for k in body if k in KINDS]
        if len(kinds) != 1 or len(body) != 1:
            return bad(1015, "Only one of files, tags, hosts or prefixes per request")
        kind = kinds[0]
        items = body[kind]
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            return bad(1014, '"files", "tags", or "hosts" must be an array')
        if not items:
            return bad(1015, f"{kind} must not be empty")
        if len(items) > self.max_per_call:
            return bad(1016, f"You may only purge up to {self.max_per_call} {kind} per API call")
        if kind == "files" and not all(urlsplit(i).scheme in ("http", "https") for i in items):
            return bad(1017, "files must be absolute URLs")
        return self._accept(zone, kind, items)

    def _accept(self, zone: str, kind: str, items: list[str]) -> tuple[int, dict, dict[str, str]]:
        purge_id = f"{next(self._ids):032x}"
        with self._lock:
            self.purges.append(Purge(zone, kind, list(items), purge_id))
        return 200, envelope(True, result={"id": purge_id}), {}


class _Handler(BaseHTTPRequestHandler):
    fake: FakeCloudflare
    server_version = "FakeCloudflare/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = urlsplit(self.path).path
        status, body, headers = self.fake.answer(path, self.headers.get("Authorization") or "", raw)
        try:
            parsed = json.loads(raw.decode() or "null")
        except (ValueError, UnicodeDecodeError):
            parsed = None
        with self.fake._lock:
            self.fake.requests.append(Request(path, status, parsed))
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)


FakeCloudflare.handler = _Handler
