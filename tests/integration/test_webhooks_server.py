"""The receiver with its production wiring on a real (throwaway) Prefect server: the
WebhookSource block is read from the server, the event goes through the default emitter
(``events.aemit``) and is read back from the server's event store with the id the
builder gives it."""

from __future__ import annotations

import asyncio
import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from prefect import get_client
from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter
from prefect.settings import PREFECT_API_URL, temporary_settings
from pydantic import SecretStr

from prefect_stacks import events
from prefect_stacks.blocks.webhooks import WebhookSource
from prefect_stacks.webhooks import create_app, github
from tests.conftest import free_port, stop, wait_for

pytestmark = pytest.mark.integration

REPO_DOWN = f"https://github.com/acme/down-{uuid.uuid4().hex[:6]}.git"


async def read_back(name: str, resource_id: str, timeout: float = 15.0) -> list:
    """Events are persisted asynchronously: poll the server's event store."""
    deadline = time.monotonic() + timeout
    async with get_client() as client:
        while True:
            page = await client.read_events(
                filter=EventFilter(
                    event=EventNameFilter(name=[name]),
                    resource=EventResourceFilter(id=[resource_id]),
                ),
                limit=50,  # the client's default (100) is above the server's maximum (50)
            )
            if page.events or time.monotonic() > deadline:
                return page.events
            await asyncio.sleep(0.25)


async def test_signed_github_push_reaches_the_prefect_server(prefect_harness):
    secret = uuid.uuid4().hex
    name = "gh-" + uuid.uuid4().hex[:8]
    await WebhookSource(kind="github", secret=SecretStr(secret)).asave(name)
    repo = f"https://github.com/acme/hooked-{uuid.uuid4().hex[:6]}.git"
    sha = uuid.uuid4().hex + uuid.uuid4().hex[:8]
    body = json.dumps(
        {
            "ref": "refs/heads/main",
            "before": "0" * 40,
            "after": sha,
            "deleted": False,
            "repository": {"clone_url": repo},
        }
    ).encode()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": github.signature(secret, body),
    }
    want = events.git_commit(repo, "main", sha, None)

    app = create_app()  # production wiring: blocks from the server, events.aemit
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://h") as c:
        r = await c.post(f"/hooks/{name}", content=body, headers=headers)
        assert r.status_code == 202, r.text
        assert r.json() == {"status": "accepted", "events": [str(want.id)]}
        again = await c.post(f"/hooks/{name}", content=body, headers=headers)
        assert again.json() == {"status": "duplicate"}
        assert (await c.post("/hooks/no-such-source", content=body)).status_code == 404
        forged = {**headers, "X-Hub-Signature-256": github.signature("not-it", body)}
        assert (await c.post(f"/hooks/{name}", content=body, headers=forged)).status_code == 401

    stored = await read_back("stacks.git.commit", want.resource.id)
    assert [e.id for e in stored] == [want.id]  # once, with the builder's id
    assert stored[0].payload == want.payload
    assert dict(stored[0].resource) == dict(want.resource)


async def test_prefect_server_down_is_503_and_the_retry_is_accepted(prefect_harness):
    """The real emitter against a closed port: its bounded retries end in EmitError, the
    sender gets 503 + Retry-After, and its retry (same delivery id) goes through once the
    server is back."""
    secret = uuid.uuid4().hex
    sources = {"gh": WebhookSource(kind="github", secret=SecretStr(secret))}
    sha = uuid.uuid4().hex + uuid.uuid4().hex[:8]
    body = json.dumps(
        {"ref": "refs/heads/main", "after": sha, "repository": {"clone_url": REPO_DOWN}}
    ).encode()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": "down-then-up",
        "X-Hub-Signature-256": github.signature(secret, body),
    }
    app = create_app(sources=sources)  # the default emitter: events.aemit
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://h") as c:
        with temporary_settings({PREFECT_API_URL: f"http://127.0.0.1:{free_port()}/api"}):
            started = time.monotonic()
            down = await c.post("/hooks/gh", content=body, headers=headers)
            waited = time.monotonic() - started
        assert down.status_code == 503, down.text
        assert int(down.headers["Retry-After"]) > 0
        assert waited < 15  # aemit's retries are bounded
        up = await c.post("/hooks/gh", content=body, headers=headers)
        assert up.status_code == 202, up.text
    want = events.git_commit(REPO_DOWN, "main", sha)
    assert up.json()["events"] == [str(want.id)]
    assert [e.id for e in await read_back("stacks.git.commit", want.resource.id)] == [want.id]


# --------------------------------------------------------------------------- over a socket

SHORT_DEADLINE = 1.0  # seconds; the default (10 s) would slow the suite down


class Recorder:
    def __init__(self) -> None:
        self.batches: list[list] = []

    async def __call__(self, batch: list) -> None:
        self.batches.append(list(batch))


def signed_push(secret: str, delivery: str) -> tuple[bytes, bytes]:
    """(headers block without Content-Length, body) of a signed GitHub push."""
    sha = uuid.uuid4().hex + uuid.uuid4().hex[:8]
    body = json.dumps(
        {
            "ref": "refs/heads/main",
            "after": sha,
            "repository": {"clone_url": f"https://github.com/acme/s-{delivery}.git"},
        }
    ).encode()
    headers = (
        "Host: 127.0.0.1\r\nContent-Type: application/json\r\nX-GitHub-Event: push\r\n"
        f"X-GitHub-Delivery: {delivery}\r\n"
        f"X-Hub-Signature-256: {github.signature(secret, body)}\r\n"
    ).encode()
    return headers, body


def read_answer(sock: socket.socket) -> tuple[bytes, bool]:
    """Everything the server sends, and whether it then closed the connection (EOF or
    reset) rather than leaving it open until the socket's timeout."""
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        return received, False
    return received, True


def parse(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    assert answer, "the server closed the connection without an answer"
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


@pytest.fixture
def served() -> Iterator[tuple[int, Recorder, str]]:
    """uvicorn in a thread on a free loopback port, with a recording emitter."""
    secret = uuid.uuid4().hex
    recorder = Recorder()
    app = create_app(
        emit=recorder,
        sources={"gh": WebhookSource(kind="github", secret=SecretStr(secret))},
        body_timeout_seconds=SHORT_DEADLINE,
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for("uvicorn to start", lambda: server.started, timeout=15, interval=0.02)
    yield port, recorder, secret
    server.should_exit = True
    thread.join(10)


def post_raw(port: int, data: bytes, *, timeout: float = 10.0) -> tuple[bytes, bool, float]:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        answer, closed = read_answer(sock)
    return answer, closed, time.monotonic() - started


def assert_timed_out(answer: bytes, closed: bool) -> None:
    status, headers, body = parse(answer)
    assert status == 408, answer
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert json.loads(body) == {"error": f"body not received within {SHORT_DEADLINE:g} s"}
    assert closed, "the connection was left open after the 408"


def test_a_body_shorter_than_its_content_length_is_408_and_closed(served):
    port, recorder, secret = served
    headers, body = signed_push(secret, "short-body")
    request = b"POST /hooks/gh HTTP/1.1\r\n" + headers + b"Content-Length: 100\r\n\r\n" + body[:10]
    answer, closed, seconds = post_raw(port, request)
    assert_timed_out(answer, closed)
    assert SHORT_DEADLINE * 0.9 <= seconds < 8  # the deadline answered, not the socket
    assert recorder.batches == []
    # the whole delivery (same id) is then accepted: the short one was not remembered
    full = b"POST /hooks/gh HTTP/1.1\r\n" + headers + b"Content-Length: %d\r\n" % len(body)
    full += b"Connection: close\r\n\r\n" + body
    status, _, reply = parse(post_raw(port, full)[0])
    assert status == 202, reply
    assert len(recorder.batches) == 1


def test_a_trickled_body_is_408_at_the_deadline(served):
    """One byte every 50 ms would take ~20 s: the deadline is for the whole body, so
    each byte does not extend it."""
    port, recorder, secret = served
    headers, body = signed_push(secret, "trickle")
    body += b" " * max(0, 400 - len(body))
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /hooks/gh HTTP/1.1\r\n" + headers + b"Content-Length: %d\r\n\r\n" % len(body)
        )
        for byte in body:
            if select.select([sock], [], [], 0.05)[0]:
                break  # the server has answered
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
        else:
            pytest.fail("the whole body was trickled in without an answer")
        answer, closed = read_answer(sock)
    assert_timed_out(answer, closed)
    assert time.monotonic() - started < 8
    assert recorder.batches == []


@pytest.mark.parametrize(
    ("method", "path", "status", "error"),
    [
        ("POST", "/hooks/gh/", 404, "not found; the path is /hooks/gh (no trailing slash)"),
        ("GET", "/healthz/", 404, "not found; the path is /healthz (no trailing slash)"),
        ("POST", "/nowhere", 404, "not found"),
        ("GET", "/hooks/gh", 405, "method not allowed; use POST"),
        ("POST", "/hooks/UPPER", 404, "unknown source"),
    ],
)
def test_the_receivers_own_answers_are_json_without_redirects(served, method, path, status, error):
    port, recorder, _ = served
    request = (
        f"{method} {path} HTTP/1.1\r\nHost: evil.example\r\nContent-Length: 2\r\n"
        "Connection: close\r\n\r\n{}"
    ).encode()
    answer, closed, _ = post_raw(port, request)
    got, headers, body = parse(answer)
    assert got == status, answer
    assert headers["content-type"] == "application/json"
    assert "location" not in headers
    assert json.loads(body) == {"error": error}
    assert closed
    assert recorder.batches == []


def test_serve_answers_a_short_body_408_and_the_full_one_reaches_prefect(prefect_harness, tmp_path):
    """The real `prefect-stacks webhooks serve --body-timeout` process against the
    harness's Prefect server."""
    script = Path(sys.executable).parent / "prefect-stacks"
    assert script.exists(), "the prefect-stacks console script is not installed"
    secret = uuid.uuid4().hex
    name = "gh-" + uuid.uuid4().hex[:8]
    WebhookSource(kind="github", secret=SecretStr(secret)).save(name)
    port = free_port()
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [str(script), "webhooks", "serve", "--port", str(port), "--body-timeout", "1"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()},
        )
    try:

        def healthy() -> bool:
            assert proc.poll() is None, log_path.read_text()
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).is_success
            except httpx.HTTPError:
                return False

        wait_for("the receiver to answer /healthz", healthy, timeout=60, interval=0.2)
        delivery = uuid.uuid4().hex
        headers, body = signed_push(secret, delivery)
        head = b"POST /hooks/" + name.encode() + b" HTTP/1.1\r\n" + headers
        short = head + b"Content-Length: %d\r\n\r\n" % len(body) + body[:10]
        answer, closed, seconds = post_raw(port, short)
        assert_timed_out(answer, closed)
        assert seconds < 8
        full = head + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body
        status, _, reply = parse(post_raw(port, full)[0])
        assert status == 202, reply  # not "duplicate": the 408 delivery was not remembered
        (event_id,) = json.loads(reply)["events"]
    finally:
        stop(proc)
    repo = f"https://github.com/acme/s-{delivery}.git"
    sha = json.loads(body)["after"]
    want = events.git_commit(repo, "main", sha)
    assert str(want.id) == event_id
    stored = asyncio.run(read_back("stacks.git.commit", want.resource.id))
    assert [e.id for e in stored] == [want.id]  # once: nothing came of the short body
