"""The receiver with its production wiring on a real (throwaway) Prefect server: the
WebhookSource block is read from the server, the event goes through the default emitter
(``events.aemit``) and is read back from the server's event store with the id the
builder gives it."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import httpx
import pytest
from prefect import get_client
from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter
from prefect.settings import PREFECT_API_URL, temporary_settings
from pydantic import SecretStr

from prefect_stacks import events
from prefect_stacks.blocks.webhooks import WebhookSource
from prefect_stacks.webhooks import create_app, github
from tests.conftest import free_port

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
