"""Fuzzing the webhook receiver on a real Prefect server (``prefect_harness``), with real
WebhookSource blocks and the REAL emitter (``events.aemit``) behind a counting spy.

Phase 1 sends ``WEBHOOK_FUZZ_REQUESTS`` (default 5,000) random and mutated requests in
process (httpx ASGITransport): valid signed GitHub/GitLab/registry/generic deliveries and
mutations of them (flipped and truncated bodies, removed, repeated and garbage headers,
another body's signature, wrong content types, random JSON shapes and leaves, random
bytes, oversize and chunked bodies, replayed delivery ids, stale timestamps, unknown
sources and methods), then a concurrent burst of identical deliveries. Phase 2 sends a few
hundred raw, malformed HTTP requests over a socket to uvicorn in a thread.

Invariants: never a 5xx; no event for a request whose signature/token is not valid for its
exact body (an oracle written here, independent of the receiver's code); no 2xx for one
either; a delivery id emits at most once; an accepted answer lists exactly the events
the emitter passed to Prefect. The seed is printed (``WEBHOOK_FUZZ_SEED`` replays a run),
and so is a table of statuses per mutation.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import hashlib
import hmac
import json
import os
import random
import re
import socket
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from prefect.events import Event
from pydantic import SecretStr

from prefect_stacks import events
from prefect_stacks.blocks.webhooks import WebhookSource
from prefect_stacks.webhooks import create_app
from tests.conftest import free_port

pytestmark = pytest.mark.integration

SEED = int(os.environ.get("WEBHOOK_FUZZ_SEED") or random.SystemRandom().randrange(2**32))
REQUESTS = int(os.environ.get("WEBHOOK_FUZZ_REQUESTS", "5000"))
RAW_REQUESTS = 300
TINY_LIMIT = 2048

CURRENT: contextvars.ContextVar[int] = contextvars.ContextVar("fuzz_request", default=-1)


# --------------------------------------------------------------------------- fixtures


@dataclass
class Source:
    name: str
    kind: str
    secret: str
    registry: str | None = None
    limit: int = 1_048_576


@pytest.fixture(scope="module")
def sources(prefect_harness) -> dict[str, Source]:
    tag = uuid.uuid4().hex[:6]
    made = [
        Source(f"fz-gh-{tag}", "github", "gh-" + uuid.uuid4().hex),
        Source(f"fz-gl-{tag}", "gitlab", "gl-" + uuid.uuid4().hex),
        Source(f"fz-reg-{tag}", "registry", "rg-" + uuid.uuid4().hex, registry="fuzz.example:5000"),
        Source(f"fz-regh-{tag}", "registry", "rh-" + uuid.uuid4().hex),
        Source(f"fz-gen-{tag}", "generic", "ge-" + uuid.uuid4().hex),
        Source(f"fz-tiny-{tag}", "github", "ti-" + uuid.uuid4().hex, limit=TINY_LIMIT),
    ]
    for s in made:
        WebhookSource(
            kind=s.kind, secret=SecretStr(s.secret), registry=s.registry, max_body_bytes=s.limit
        ).save(s.name)
    return {s.name: s for s in made}


class Spy:
    """The real emitter, counted: which request (a context variable) emitted what."""

    def __init__(self) -> None:
        self.by_request: dict[int, list[Event]] = defaultdict(list)
        self.calls = 0
        self.seconds = 0.0

    async def __call__(self, batch: list[Event]) -> None:
        started = time.monotonic()
        await events.aemit(batch)
        self.seconds += time.monotonic() - started
        self.calls += 1
        self.by_request[CURRENT.get()].extend(batch)


# --------------------------------------------------------------------------- requests


@dataclass
class Req:
    category: str
    source: Source | None  # None: no such source
    path: str
    body: bytes
    headers: list[tuple[bytes, bytes]]
    method: str = "POST"
    stream: str | None = None  # "chunked" or "lying" (a Content-Length that is wrong)
    now: float = field(default_factory=time.time)

    def header(self, name: str) -> bytes | None:
        values = [v for k, v in self.headers if k.lower() == name.lower().encode()]
        return values[0] if len(values) == 1 else None

    def without(self, name: str) -> None:
        self.headers = [(k, v) for k, v in self.headers if k.lower() != name.lower().encode()]

    def set(self, name: str, value: bytes) -> None:
        self.without(name)
        self.headers.append((name.encode(), value))


def _mac(secret: str, *parts: bytes) -> str:
    mac = hmac.new(secret.encode(), digestmod=hashlib.sha256)
    for part in parts:
        mac.update(part)
    return mac.hexdigest()


SIG_HEADER = {"github": "X-Hub-Signature-256", "generic": "X-Stacks-Signature"}
TOKEN_HEADER = {"gitlab": "X-Gitlab-Token", "registry": "Authorization"}


def authentic(req: Req) -> bool:
    """The oracle: is the credential on this request valid for its exact body?"""
    src = req.source
    if src is None or req.method != "POST":
        return False
    if src.kind == "github":
        sig = req.header("X-Hub-Signature-256")
        return (
            sig is not None
            and sig.strip().lower() == f"sha256={_mac(src.secret, req.body)}".encode()
        )
    if src.kind == "generic":
        sig, stamp = req.header("X-Stacks-Signature"), req.header("X-Stacks-Timestamp")
        if sig is None or stamp is None:
            return False
        good = f"sha256={_mac(src.secret, stamp, b'.', req.body)}".encode()
        fresh = stamp.strip().isdigit() and abs(req.now - int(stamp.strip())) <= 300
        return sig.strip().lower() == good and fresh
    if src.kind == "gitlab":
        return req.header("X-Gitlab-Token") == src.secret.encode()
    value = req.header("Authorization")
    if value is None:
        return False
    scheme, _, token = value.strip().partition(b" ")
    return scheme.lower() == b"bearer" and token.strip() == src.secret.encode()


def delivery_keys(req: Req) -> list[str]:
    """The ids a delivery is deduplicated by (what the sender says is one delivery)."""
    src = req.source
    assert src is not None
    digest = "sha256:" + hashlib.sha256(req.body).hexdigest()
    names = {
        "github": ["X-GitHub-Delivery"],
        "gitlab": ["Idempotency-Key", "X-Gitlab-Event-UUID"],
        "generic": ["X-Stacks-Delivery"],
    }.get(src.kind)
    if names is None:  # registry: one per event in the body
        try:
            return [f"event:{e['id']}" for e in json.loads(req.body)["events"]]
        except Exception:
            return []
    for name in names:
        value = req.header(name)
        if value is not None:
            return [value.decode("latin-1").strip()]
    return [digest]


class Maker:
    """Valid deliveries with random content, and mutations of them."""

    def __init__(self, rng: random.Random, sources: dict[str, Source]) -> None:
        self.rng = rng
        self.by_kind: dict[str, list[Source]] = defaultdict(list)
        for s in sources.values():
            self.by_kind[s.kind].append(s)
        self.sent: list[Req] = []
        self.repos = [f"https://github.com/fuzz/r{i}.git" for i in range(5)]

    # ------------------------------------------------------------------ values
    def sha(self) -> str:
        return f"{self.rng.getrandbits(160):040x}"

    def digest(self) -> str:
        return f"sha256:{self.rng.getrandbits(256):064x}"

    def word(self) -> str:
        return (
            "".join(
                self.rng.choice("abcdefghijklmnopqrstuvwxyz0123456789-")
                for _ in range(self.rng.randint(1, 12))
            ).strip("-")
            or "x"
        )

    def delivery(self) -> str:
        if self.sent and self.rng.random() < 0.08:  # a repeated delivery id
            prev = self.rng.choice(self.sent)
            for name in ("X-GitHub-Delivery", "Idempotency-Key", "X-Stacks-Delivery"):
                if (value := prev.header(name)) is not None:
                    return value.decode("latin-1")
        return str(uuid.UUID(int=self.rng.getrandbits(128)))

    def random_json(self, depth: int = 0) -> Any:
        r = self.rng.random()
        if depth > 3 or r < 0.35:
            return self.rng.choice(
                [
                    None,
                    True,
                    False,
                    0,
                    -1,
                    2**64,
                    10**30,
                    1.5,
                    1e308,
                    "",
                    "x" * self.rng.randint(0, 3000),
                    "\u0000nul",
                    "\x1b[31m",
                    "ünïcödé",
                    self.sha(),
                    "refs/heads/" + self.word(),
                    self.rng.choice(self.repos),
                ]
            )
        if r < 0.65:
            return {
                self.rng.choice(
                    [
                        "ref",
                        "after",
                        "action",
                        "events",
                        "event",
                        "data",
                        "repository",
                        "project",
                        "object_attributes",
                        self.word(),
                    ]
                ): self.random_json(depth + 1)
                for _ in range(self.rng.randint(0, 5))
            }
        return [self.random_json(depth + 1) for _ in range(self.rng.randint(0, 4))]

    # ------------------------------------------------------------------ valid
    def github(self, src: Source) -> Req:
        repo = {"clone_url": self.rng.choice(self.repos)}
        kind = self.rng.choice(["push", "push", "pull_request", "release", "ping", "issues"])
        if kind == "push":
            ref = (
                self.rng.choice(["refs/heads/", "refs/heads/feature/", "refs/tags/v"]) + self.word()
            )
            payload: dict[str, Any] = {
                "ref": ref,
                "before": self.sha(),
                "after": self.sha(),
                "deleted": self.rng.random() < 0.05,
                "repository": repo,
            }
        elif kind == "pull_request":
            payload = {
                "action": self.rng.choice(
                    ["opened", "reopened", "synchronize", "closed", "labeled"]
                ),
                "number": self.rng.randint(1, 10_000),
                "pull_request": {
                    "title": self.word(),
                    "html_url": "https://github.com/fuzz/pr",
                    "user": {"login": self.word()},
                    "merged": self.rng.random() < 0.5,
                    "head": {"ref": self.word(), "sha": self.sha()},
                    "base": {"ref": "main", "sha": self.sha()},
                },
                "repository": repo,
            }
        elif kind == "release":
            payload = {
                "action": self.rng.choice(["published", "created"]),
                "release": {
                    "tag_name": "v" + self.word(),
                    "name": self.word(),
                    "html_url": "https://x/r",
                    "prerelease": False,
                },
                "repository": repo,
            }
        else:
            payload = {"zen": "fuzz", "hook_id": 1}
        body = json.dumps(payload).encode()
        headers = [
            (b"Content-Type", b"application/json"),
            (b"X-GitHub-Event", kind.encode()),
            (b"X-GitHub-Delivery", self.delivery().encode()),
            (b"X-Hub-Signature-256", f"sha256={_mac(src.secret, body)}".encode()),
        ]
        return Req("valid", src, f"/hooks/{src.name}", body, headers)

    def gitlab(self, src: Source) -> Req:
        project = {"git_http_url": "https://gitlab.example.com/fuzz/" + self.word() + ".git"}
        kind = self.rng.choice(
            ["Push Hook", "Merge Request Hook", "Release Hook", "Tag Push Hook", "Note Hook"]
        )
        if kind == "Push Hook":
            payload: dict[str, Any] = {
                "ref": "refs/heads/" + self.word(),
                "before": self.sha(),
                "after": self.sha(),
                "project": project,
            }
        elif kind == "Merge Request Hook":
            attrs = {
                "iid": self.rng.randint(1, 999),
                "title": self.word(),
                "source_branch": self.word(),
                "target_branch": "main",
                "url": "https://gitlab.example.com/mr",
                "last_commit": {"id": self.sha()},
                "action": self.rng.choice(
                    ["open", "reopen", "update", "close", "merge", "approved"]
                ),
            }
            if self.rng.random() < 0.5:
                attrs["oldrev"] = self.sha()
            payload = {
                "user": {"username": self.word()},
                "project": project,
                "object_attributes": attrs,
            }
        elif kind == "Release Hook":
            payload = {
                "action": self.rng.choice(["create", "update"]),
                "tag": "v" + self.word(),
                "name": self.word(),
                "url": "https://x/rel",
                "project": project,
            }
        else:
            payload = {"ref": "refs/tags/v1", "project": project}
        headers = [
            (b"Content-Type", b"application/json"),
            (b"X-Gitlab-Event", kind.encode()),
            (b"X-Gitlab-Token", src.secret.encode()),
            (b"Idempotency-Key", self.delivery().encode()),
            (b"X-Gitlab-Event-UUID", str(uuid.UUID(int=self.rng.getrandbits(128))).encode()),
        ]
        return Req("valid", src, f"/hooks/{src.name}", json.dumps(payload).encode(), headers)

    def registry(self, src: Source) -> Req:
        items = []
        for _ in range(self.rng.randint(1, 3)):
            if self.sent and self.rng.random() < 0.1:
                event_id = self.rng.choice(
                    [
                        k
                        for r in self.sent[-50:]
                        if r.source and r.source.kind == "registry"
                        for k in delivery_keys(r)
                    ]
                    or ["event:x"]
                ).removeprefix("event:")
            else:
                event_id = str(uuid.UUID(int=self.rng.getrandbits(128)))
            items.append(
                {
                    "id": event_id,
                    "action": self.rng.choice(["push", "push", "push", "pull", "delete"]),
                    "target": {
                        "mediaType": self.rng.choice(
                            [
                                "application/vnd.docker.distribution.manifest.v2+json",
                                "application/vnd.oci.image.index.v1+json",
                                "application/octet-stream",
                            ]
                        ),
                        "digest": self.digest(),
                        "repository": "fuzz/" + self.word(),
                        "tag": self.rng.choice(
                            [None, "latest", "1." + str(self.rng.randint(0, 99))]
                        ),
                    },
                    "request": {"host": "127.0.0.1:5000"},
                }
            )
        headers = [
            (b"Content-Type", b"application/vnd.docker.distribution.events.v1+json"),
            (b"Authorization", b"Bearer " + src.secret.encode()),
        ]
        return Req(
            "valid", src, f"/hooks/{src.name}", json.dumps({"events": items}).encode(), headers
        )

    def generic(self, src: Source) -> Req:
        repo = self.rng.choice(self.repos)
        name, data = self.rng.choice(
            [
                (
                    "stacks.git.commit",
                    {"repository": repo, "branch": self.word(), "sha": self.sha()},
                ),
                (
                    "stacks.pull-request.opened",
                    {
                        "repository": repo,
                        "number": self.rng.randint(1, 99),
                        "head_ref": self.word(),
                        "head_sha": self.sha(),
                        "base_ref": "main",
                    },
                ),
                (
                    "stacks.image.updated",
                    {
                        "registry": "127.0.0.1:5000",
                        "repository": "fuzz/app",
                        "tag": self.word(),
                        "digest": self.digest(),
                    },
                ),
                ("stacks.release.published", {"repository": repo, "tag": "v" + self.word()}),
                ("stacks.environment.created", {"name": "x"}),
                ("stacks.nope", {}),
            ]
        )
        body = json.dumps({"event": name, "data": data}).encode()
        stamp = str(int(time.time()) + self.rng.choice([0, 0, 0, -100, 250, -299]))
        headers = [
            (b"Content-Type", b"application/json"),
            (b"X-Stacks-Timestamp", stamp.encode()),
            (b"X-Stacks-Delivery", self.delivery().encode()),
            (
                b"X-Stacks-Signature",
                f"sha256={_mac(src.secret, stamp.encode(), b'.', body)}".encode(),
            ),
        ]
        return Req("valid", src, f"/hooks/{src.name}", body, headers)

    def valid(self) -> Req:
        kind = self.rng.choice(["github", "gitlab", "registry", "generic"])
        src = self.rng.choice(
            [s for s in self.by_kind[kind] if s.limit > TINY_LIMIT] or self.by_kind[kind]
        )
        return getattr(self, kind)(src)

    # ------------------------------------------------------------------ mutations
    def resign(self, req: Req) -> None:
        """Make the credential valid for the (new) body, as an authentic sender would."""
        src = req.source
        assert src is not None
        if src.kind == "github":
            req.set("X-Hub-Signature-256", f"sha256={_mac(src.secret, req.body)}".encode())
        elif src.kind == "generic":
            stamp = req.header("X-Stacks-Timestamp") or str(int(time.time())).encode()
            req.set("X-Stacks-Timestamp", stamp)
            req.set(
                "X-Stacks-Signature", f"sha256={_mac(src.secret, stamp, b'.', req.body)}".encode()
            )

    def credential_header(self, req: Req) -> str:
        assert req.source is not None
        return SIG_HEADER.get(req.source.kind) or TOKEN_HEADER[req.source.kind]

    def mutate(self, req: Req) -> Req:
        rng = self.rng
        m = rng.choice(MUTATIONS)
        req.category = m
        if m == "valid":
            pass
        elif m == "replay" and self.sent:
            prev = rng.choice(self.sent[-200:])
            req = dataclasses.replace(prev, category="replay", headers=list(prev.headers))
            if prev.source and prev.source.kind == "generic":  # replay within the window
                req.now = time.time()
        elif m == "flip":
            body = bytearray(req.body)
            for _ in range(rng.randint(1, 3)):
                i = rng.randrange(len(body))
                body[i] ^= 1 << rng.randrange(8)
            req.body = bytes(body)
        elif m == "truncate":
            req.body = req.body[: rng.randrange(len(req.body))]
        elif m == "drop-credential":
            req.without(self.credential_header(req))
            if rng.random() < 0.3:
                req.without("X-Stacks-Timestamp")
        elif m == "drop-header":
            if req.headers:
                req.headers.pop(rng.randrange(len(req.headers)))
        elif m == "duplicate-credential":
            name = self.credential_header(req)
            value = req.header(name) or b"x"
            req.headers.append((name.encode(), value))
        elif m == "other-body-credential":
            other = self.valid()
            if (
                other.source is not None
                and req.source is not None
                and other.source.kind == req.source.kind
            ):
                name = self.credential_header(req)
                req.set(name, other.header(name) or b"")
                if req.source.kind == "generic":
                    req.set("X-Stacks-Timestamp", other.header("X-Stacks-Timestamp") or b"0")
            else:
                req.set(self.credential_header(req), b"sha256=" + _mac("wrong", req.body).encode())
        elif m == "garbage-credential":
            req.set(
                self.credential_header(req),
                bytes(rng.randrange(32, 256) for _ in range(rng.randint(0, 90))).replace(
                    b"\x7f", b"?"
                ),
            )
        elif m == "content-type":
            req.set(
                "Content-Type",
                rng.choice(
                    [
                        b"text/plain",
                        b"application/xml",
                        b"",
                        b"application/json; charset=latin-1",
                        b"multipart/form-data",
                        b"\xff\xfe",
                    ]
                ),
            )
        elif m == "json-shape":
            req.body = json.dumps(self.random_json()).encode()
            self.resign(req)
        elif m == "leaf":
            try:
                doc = json.loads(req.body)
                self._replace_leaf(doc)
                req.body = json.dumps(doc).encode()
            except Exception:
                pass
            self.resign(req)
        elif m == "random-bytes":
            req.body = rng.randbytes(rng.randint(0, 3000))
            if rng.random() < 0.5:
                self.resign(req)
        elif m == "oversize":
            if rng.random() < 0.9:
                tiny = [s for s in self.by_kind["github"] if s.limit == TINY_LIMIT][0]
                base = self.github(tiny)
                base.body = (
                    base.body[:-1]
                    + b', "pad": "'
                    + b"x" * rng.randint(TINY_LIMIT, 4 * TINY_LIMIT)
                    + b'"}'
                )
                self.resign(base)
                base.category = "oversize"
                req = base
            else:
                assert req.source is not None
                req.body = b"x" * (req.source.limit + rng.randint(1, 1000))
                self.resign(req)
            req.stream = rng.choice([None, "chunked", "lying"])
        elif m == "chunked":
            req.stream = "chunked"
        elif m == "lying-length":
            req.stream = "lying"
        elif m == "stale-timestamp" and req.source is not None and req.source.kind == "generic":
            stamp = str(int(time.time()) + rng.choice([-1, 1]) * rng.randint(301, 10**6)).encode()
            req.set("X-Stacks-Timestamp", stamp)
            self.resign(req)
        elif m == "bad-timestamp" and req.source is not None and req.source.kind == "generic":
            req.set(
                "X-Stacks-Timestamp", rng.choice([b"", b"abc", b"-5", b"1e9", b"9" * 40, b" 12 "])
            )
            self.resign(req)
        elif m == "header-values":
            for name in (
                "X-GitHub-Event",
                "X-Gitlab-Event",
                "X-GitHub-Delivery",
                "Idempotency-Key",
                "X-Stacks-Delivery",
            ):
                if req.header(name) is not None and rng.random() < 0.5:
                    req.set(
                        name,
                        rng.choice(
                            [b"", b"\xff\xfe", b"a" * 500, b"push\x01", b"Push Hook ", b"ping"]
                        ),
                    )
        elif m == "unknown-source":
            req.source = None
            req.path = "/hooks/" + rng.choice(
                [
                    self.word(),
                    "nope-" + self.word(),
                    "UPPER",
                    "a_b",
                    "%2e%2e",
                    "x" * 300,
                    "caf%C3%A9",
                ]
            )
        elif m == "method":
            req.method = rng.choice(["GET", "PUT", "DELETE", "PATCH", "OPTIONS"])
            if rng.random() < 0.3:
                req.path = rng.choice(
                    ["/", "/hooks", "/hooks/", "/healthz/x", "/api/events", "/hooks/a/b"]
                )
                req.method = "POST"
                req.source = None
        return req

    def _replace_leaf(self, doc: Any) -> None:
        node = doc
        for _ in range(6):
            if isinstance(node, dict) and node:
                key = self.rng.choice(list(node))
                if self.rng.random() < 0.4 or not isinstance(node[key], (dict, list)):
                    node[key] = self.random_json(2)
                    return
                node = node[key]
            elif isinstance(node, list) and node:
                i = self.rng.randrange(len(node))
                if self.rng.random() < 0.4 or not isinstance(node[i], (dict, list)):
                    node[i] = self.random_json(2)
                    return
                node = node[i]
            else:
                return


MUTATIONS = [
    "valid", "valid", "valid", "replay", "flip", "truncate", "drop-credential", "drop-header",
    "duplicate-credential", "other-body-credential", "garbage-credential", "content-type",
    "json-shape", "leaf", "leaf", "random-bytes", "oversize", "chunked", "lying-length",
    "stale-timestamp", "bad-timestamp", "header-values", "unknown-source", "method",
]  # fmt: skip


async def send(client: httpx.AsyncClient, req: Req) -> httpx.Response:
    headers = list(req.headers)
    content: Any = req.body
    if req.stream is not None:
        body = req.body

        async def chunks() -> AsyncIterator[bytes]:
            for i in range(0, len(body), 700):
                yield body[i : i + 700]

        content = chunks()
        if req.stream == "lying":
            headers.append((b"Content-Length", str(max(0, len(body) // 2)).encode()))
    return await client.request(req.method, req.path, content=content, headers=headers)


def table(
    counts: dict[str, Counter[int]], title: str, mean_ms: dict[str, float] | None = None
) -> str:
    """Requests per status and row (and, given, the mean time of a row's requests)."""
    statuses = sorted({s for c in counts.values() for s in c})
    width = max(len(k) for k in counts) + 2
    head = "".ljust(width) + "".join(f"{s:>7}" for s in statuses) + "   total"
    lines = [title, head + ("  mean ms" if mean_ms else "")]
    total: Counter[int] = Counter()
    for name in sorted(counts):
        c = counts[name]
        total.update(c)
        mean = f"{mean_ms[name]:>9.1f}" if mean_ms else ""
        lines.append(
            name.ljust(width)
            + "".join(f"{c.get(s, 0):>7}" for s in statuses)
            + f"{sum(c.values()):>8}"
            + mean
        )
    lines.append(
        "total".ljust(width)
        + "".join(f"{total.get(s, 0):>7}" for s in statuses)
        + f"{sum(total.values()):>8}"
    )
    return "\n".join(lines)


# --------------------------------------------------------------------------- phase 1


async def test_fuzz_in_process(sources, capsys):
    rng = random.Random(SEED)
    maker = Maker(rng, sources)
    spy = Spy()
    app = create_app(emit=spy)
    counts: dict[str, Counter[int]] = defaultdict(Counter)
    failures: list[str] = []
    accepted_keys: dict[tuple[str, str], int] = {}
    started = time.monotonic()

    def check(index: int, req: Req, r: httpx.Response) -> None:
        emitted = spy.by_request.get(index, [])
        ok = authentic(req)
        kind = req.source.kind if req.source else "-"
        where = f"#{index} {req.category} {kind} -> {r.status_code} {r.text[:160]!r}"
        if r.status_code >= 500:
            failures.append(f"5xx: {where}")
        if not ok and (emitted or 200 <= r.status_code < 300):
            failures.append(f"unauthentic request answered/emitted: {where} events={len(emitted)}")
        body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
        if body.get("status") == "accepted":
            if body["events"] != [str(e.id) for e in emitted]:
                failures.append(f"answer lists other events than emitted: {where}")
        elif emitted:
            failures.append(f"emitted without an accepted answer: {where}")
        if emitted and req.source is not None and req.source.kind != "registry":
            for key in delivery_keys(req):
                mark = (req.source.name, key)
                if mark in accepted_keys:
                    failures.append(
                        f"delivery {key!r} emitted twice (#{accepted_keys[mark]}): {where}"
                    )
                accepted_keys[mark] = index
        for event in emitted:
            if event.event not in events.VOCABULARY or event.event.startswith(
                "stacks.environment."
            ):
                failures.append(f"foreign event {event.event}: {where}")

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url="http://fuzz", timeout=60
    ) as client:
        for index in range(REQUESTS):
            req = maker.mutate(maker.valid())
            token = CURRENT.set(index)
            try:
                r = await send(client, req)
            finally:
                CURRENT.reset(token)
            counts[req.category][r.status_code] += 1
            check(index, req, r)
            maker.sent.append(req)

        # a burst: identical deliveries at the same time emit once
        burst_base = REQUESTS
        for round_ in range(30):
            req = maker.valid()
            copies = [
                Req("burst", req.source, req.path, req.body, list(req.headers), now=req.now)
                for _ in range(rng.randint(2, 8))
            ]

            async def one(i: int, copy: Req) -> tuple[int, Req, httpx.Response]:
                CURRENT.set(i)  # each task has its own context
                return i, copy, await send(client, copy)

            results = await asyncio.gather(
                *(one(burst_base + round_ * 10 + i, c) for i, c in enumerate(copies))
            )
            emitting = 0
            for i, copy, r in results:
                counts["burst"][r.status_code] += 1
                check(i, copy, r)
                emitting += bool(spy.by_request.get(i))
            if emitting > 1:
                failures.append(f"burst round {round_}: {emitting} identical deliveries emitted")

    elapsed = time.monotonic() - started
    total = sum(sum(c.values()) for c in counts.values())
    with capsys.disabled():
        print(f"\n\nwebhook fuzz: seed {SEED} (WEBHOOK_FUZZ_SEED={SEED} replays it)")
        print(
            table(
                counts,
                f"{total} requests in {elapsed:.1f} s; {spy.calls} emits "
                f"({sum(len(v) for v in spy.by_request.values())} events, "
                f"{spy.seconds:.1f} s in events.aemit)",
            )
        )
    assert not failures, f"seed {SEED}: {len(failures)} failures, first ones:\n" + "\n".join(
        failures[:20]
    )
    assert total >= REQUESTS
    assert counts["valid"][202] > 0 and spy.calls > 0  # the fuzz did reach Prefect
    assert sum(c[401] for c in counts.values()) > 0 and sum(c[413] for c in counts.values()) > 0


# --------------------------------------------------------------------------- phase 2


@pytest.fixture
def live_server(sources) -> tuple[str, int, Spy]:
    spy = Spy()
    port = free_port()
    config = uvicorn.Config(
        create_app(emit=spy), host="127.0.0.1", port=port, log_level="critical", access_log=False
    )
    server = uvicorn.Server(config)
    # the harness's settings (PREFECT_API_URL) live in a context variable: carry them over
    context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(server.run,), daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield "127.0.0.1", port, spy
    server.should_exit = True
    thread.join(10)


def raw_requests(rng: random.Random, sources: dict[str, Source]) -> list[tuple[str, bytes, bool]]:
    """(category, bytes to send, whether to half-close after sending)."""
    gh = next(s for s in sources.values() if s.kind == "github" and s.limit > TINY_LIMIT)
    body = json.dumps(
        {
            "ref": "refs/heads/main",
            "after": "a" * 40,
            "before": "b" * 40,
            "repository": {"clone_url": "https://github.com/fuzz/raw.git"},
        }
    ).encode()
    sig = f"sha256={_mac(gh.secret, body)}".encode()

    def post(
        headers: bytes, payload: bytes = body, path: bytes = b"/hooks/" + gh.name.encode()
    ) -> bytes:
        return (
            b"POST "
            + path
            + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            + headers
            + b"\r\n"
            + payload
        )

    good_headers = (
        b"Content-Type: application/json\r\nX-GitHub-Event: push\r\nX-Hub-Signature-256: "
        + sig
        + b"\r\n"
    )
    templates: list[tuple[str, Callable[[], bytes], bool]] = [
        ("garbage request line", lambda: rng.randbytes(rng.randint(1, 200)) + b"\r\n\r\n", False),
        (
            "bad method/version",
            lambda: (
                rng.choice([b"P0ST", b"GET", b"\x00"])
                + b" /hooks/x HTTP/"
                + rng.choice([b"9.9", b"1", b"x"])
                + b"\r\nHost: x\r\nConnection: close\r\n\r\n"
            ),
            False,
        ),
        (
            "no Host",
            lambda: (
                b"POST /hooks/" + gh.name.encode() + b" HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"
            ),
            False,
        ),
        (
            "bad Content-Length",
            lambda: post(
                good_headers
                + b"Content-Length: "
                + rng.choice([b"abc", b"-1", b"1e3", b"99999999999999999999999", b" ", b"0x10"])
                + b"\r\n"
            ),
            False,
        ),
        (
            "two Content-Lengths",
            lambda: post(good_headers + b"Content-Length: %d\r\nContent-Length: 3\r\n" % len(body)),
            False,
        ),
        (
            "CL and chunked",
            lambda: post(
                good_headers + b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n" % len(body)
            ),
            True,  # the body is not chunked: h11 would wait for a chunk-size line
        ),
        (
            "bad chunk",
            lambda: post(
                good_headers + b"Transfer-Encoding: chunked\r\n",
                rng.choice(
                    [
                        b"zz\r\nab\r\n0\r\n\r\n",
                        b"5\r\nabc\r\n0\r\n\r\n",
                        b"-1\r\n\r\n",
                        b"ffffffffffffffffff\r\n",
                    ]
                ),
            ),
            True,  # an incomplete chunk would be waited for
        ),
        (
            "bad transfer-encoding",
            lambda: post(good_headers + b"Transfer-Encoding: gzip, identity\r\n"),
            False,
        ),
        (
            "header without colon",
            lambda: post(good_headers + b"Content-Length: %d\r\nNoColonHere\r\n" % len(body)),
            False,
        ),
        (
            "binary header",
            lambda: post(
                good_headers
                + b"Content-Length: %d\r\nX-Junk: " % len(body)
                + rng.randbytes(20).replace(b"\r", b"").replace(b"\n", b"")
                + b"\r\n"
            ),
            False,
        ),
        (
            "huge header",
            lambda: post(
                good_headers
                + b"Content-Length: %d\r\nX-Big: " % len(body)
                + b"a" * rng.choice([20_000, 70_000])
                + b"\r\n"
            ),
            False,
        ),
        (
            "long path",
            lambda: post(
                good_headers + b"Content-Length: 2\r\n",
                b"{}",
                b"/hooks/" + b"a" * rng.choice([300, 10_000]),
            ),
            False,
        ),
        (
            "truncated body",
            lambda: post(good_headers + b"Content-Length: %d\r\n" % (len(body) + 50)),
            True,
        ),
        (
            "oversize declared",
            lambda: post(good_headers + b"Content-Length: 5000000\r\n", b"x" * 1000),
            True,
        ),
        (
            "pipelined",
            lambda: (
                b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                + post(good_headers + b"Content-Length: %d\r\n" % len(body))
            ),
            False,
        ),
        (
            "valid over the socket",
            lambda: post(
                good_headers
                + b"X-GitHub-Delivery: raw-%d\r\nContent-Length: %d\r\n"
                % (rng.randrange(10**9), len(body))
            ),
            False,
        ),
        (
            "forged over the socket",
            lambda: post(
                good_headers.replace(sig, b"sha256=" + b"0" * 64)
                + b"Content-Length: %d\r\n" % len(body)
            ),
            False,
        ),
        ("null bytes", lambda: b"POST /hooks/\x00 HTTP/1.1\r\nHost: x\r\n\r\n", False),
    ]
    out = []
    for _ in range(RAW_REQUESTS):
        name, make, half_close = rng.choice(templates)
        out.append((name, make(), half_close))
    return out


def exchange(host: str, port: int, data: bytes, half_close: bool) -> bytes:
    with socket.create_connection((host, port), timeout=3) as s:
        try:
            s.sendall(data)
            if half_close:
                s.shutdown(socket.SHUT_WR)
        except OSError:  # the server may answer and close before reading everything
            pass
        received = b""
        try:
            while chunk := s.recv(65536):
                received += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        return received


def test_raw_malformed_http_over_a_socket(live_server, sources, capsys):
    host, port, spy = live_server
    rng = random.Random(SEED + 1)
    counts: dict[str, Counter[int]] = defaultdict(Counter)
    started = time.monotonic()
    bad: list[str] = []
    seconds: dict[str, list[float]] = defaultdict(list)
    for name, data, half_close in raw_requests(rng, sources):
        t0 = time.monotonic()
        answer = exchange(host, port, data, half_close)
        seconds[name].append(time.monotonic() - t0)
        statuses = [int(s) for s in re.findall(rb"HTTP/1\.[01] (\d{3})", answer)]
        for status in statuses or [0]:  # 0: the server closed without answering
            counts[name][status] += 1
            if status >= 500:
                bad.append(f"{name}: {answer[:200]!r}")
        if name == "forged over the socket" and any(200 <= s < 300 for s in statuses):
            bad.append(f"forged request accepted: {answer[:200]!r}")
    elapsed = time.monotonic() - started
    with capsys.disabled():
        print(f"\n\nraw HTTP fuzz: seed {SEED + 1}")
        print(
            table(
                counts,
                f"{RAW_REQUESTS} connections in {elapsed:.1f} s (0 = closed without an answer)",
                {name: 1000 * sum(t) / len(t) for name, t in seconds.items()},
            )
        )
    assert not bad, "\n".join(bad[:20])
    assert (
        counts["valid over the socket"].get(202, 0) + counts["valid over the socket"].get(200, 0)
        > 0
    )
    assert sum(c[400] for c in counts.values()) > 0
