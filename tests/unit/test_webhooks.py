"""The webhook receiver in process (httpx ASGITransport), with WebhookSource blocks given
to ``create_app(sources=...)`` and a recording emitter: every verified delivery is exactly
the event the builders in :mod:`prefect_stacks.events` make, and every bad request is a
4xx that emits nothing. The receiver against real blocks and a real Prefect server is
covered in tests/integration/test_webhooks_server.py and test_webhooks_fuzz.py."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from prefect.events import Event
from prefect.settings import PREFECT_API_URL, temporary_settings
from pydantic import SecretStr, ValidationError
from typer.testing import CliRunner

from prefect_stacks import events
from prefect_stacks._cli import app as cli_app
from prefect_stacks.blocks.webhooks import WebhookSource
from prefect_stacks.events import EmitError
from prefect_stacks.webhooks import create_app, generic, github, registry
from prefect_stacks.webhooks.app import DeliveryLog
from tests.conftest import require_tool

SECRET = "s3cret-hmac-key-for-tests"
SHA1 = "1" * 40
SHA2 = "2" * 40
DIGEST = "sha256:" + "ab" * 32
REPO_URL = "https://github.com/Acme/Shop.git"
GITLAB_URL = "https://gitlab.example.com/acme/shop.git"

SOURCES = {
    "gh": WebhookSource(kind="github", secret=SecretStr(SECRET)),
    "gl": WebhookSource(kind="gitlab", secret=SecretStr(SECRET)),
    "reg": WebhookSource(
        kind="registry", secret=SecretStr(SECRET), registry="Registry.Example:5000"
    ),
    "reg-host": WebhookSource(kind="registry", secret=SecretStr(SECRET)),
    "gen": WebhookSource(kind="generic", secret=SecretStr(SECRET)),
    "tiny": WebhookSource(kind="github", secret=SecretStr(SECRET), max_body_bytes=1000),
}


class Recorder:
    """The emitter under test: records batches; can be told to fail."""

    def __init__(self) -> None:
        self.batches: list[list[Event]] = []
        self.fail_with: Exception | None = None
        self.delay = 0.0

    async def __call__(self, batch: list[Event]) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_with is not None:
            raise self.fail_with
        self.batches.append(list(batch))

    @property
    def events(self) -> list[Event]:
        return [e for batch in self.batches for e in batch]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def client(recorder: Recorder) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(emit=recorder, sources=SOURCES)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://hooks") as c:
        c.app = app  # type: ignore[attr-defined]
        yield c


def same_event(got: Event, want: Event) -> None:
    assert (got.id, got.event, dict(got.resource), got.payload) == (
        want.id,
        want.event,
        dict(want.resource),
        want.payload,
    )


# --------------------------------------------------------------------------- senders


def github_request(
    kind: str, payload: Any, *, delivery: str | None = None, secret: str = SECRET, form=False
) -> dict[str, Any]:
    if form:
        from urllib.parse import urlencode

        body = urlencode({"payload": json.dumps(payload)}).encode()
        content_type = "application/x-www-form-urlencoded"
    else:
        body = json.dumps(payload).encode()
        content_type = "application/json"
    return {
        "content": body,
        "headers": {
            "Content-Type": content_type,
            "X-GitHub-Event": kind,
            "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
            "X-Hub-Signature-256": github.signature(secret, body),
        },
    }


def gitlab_request(kind: str, payload: Any, *, key: str | None = None, token=SECRET):
    return {
        "content": json.dumps(payload).encode(),
        "headers": {
            "Content-Type": "application/json",
            "X-Gitlab-Event": kind,
            "X-Gitlab-Token": token,
            "X-Gitlab-Event-UUID": str(uuid.uuid4()),
            "Idempotency-Key": key or str(uuid.uuid4()),
        },
    }


def registry_request(items: list[dict[str, Any]], *, token: str = SECRET):
    return {
        "content": json.dumps({"events": items}, indent=3).encode(),
        "headers": {
            "Content-Type": registry.EVENTS_MEDIA_TYPE,
            "Authorization": f"Bearer {token}",
        },
    }


def generic_request(
    name: str,
    data: Any,
    *,
    delivery: str | None = None,
    timestamp: int | None = None,
    secret: str = SECRET,
):
    body = json.dumps({"event": name, "data": data}).encode()
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "content": body,
        "headers": {
            "Content-Type": "application/json",
            "X-Stacks-Timestamp": stamp,
            "X-Stacks-Delivery": delivery or str(uuid.uuid4()),
            "X-Stacks-Signature": generic.signature(secret, stamp, body),
        },
    }


def push_payload(**over: Any) -> dict[str, Any]:
    payload = {
        "ref": "refs/heads/feature/login",
        "before": SHA1,
        "after": SHA2,
        "created": False,
        "deleted": False,
        "repository": {"clone_url": REPO_URL, "full_name": "Acme/Shop"},
        "pusher": {"name": "alice"},
    }
    payload.update(over)
    return payload


def pr_payload(action: str, *, merged: bool = False) -> dict[str, Any]:
    return {
        "action": action,
        "number": 42,
        "pull_request": {
            "number": 42,
            "title": "Login page",
            "html_url": "https://github.com/Acme/Shop/pull/42",
            "user": {"login": "alice"},
            "merged": merged,
            "head": {"ref": "login", "sha": SHA2},
            "base": {"ref": "main", "sha": SHA1},
        },
        "repository": {"clone_url": REPO_URL},
    }


def mr_payload(action: str, *, oldrev: str | None = None) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "iid": 7,
        "title": "Login page",
        "source_branch": "login",
        "target_branch": "main",
        "url": "https://gitlab.example.com/acme/shop/-/merge_requests/7",
        "last_commit": {"id": SHA2},
        "action": action,
    }
    if oldrev:
        attrs["oldrev"] = oldrev
    return {
        "object_kind": "merge_request",
        "user": {"username": "bob"},
        "project": {"git_http_url": GITLAB_URL},
        "object_attributes": attrs,
    }


def registry_event(**over: Any) -> dict[str, Any]:
    item = {
        "id": str(uuid.uuid4()),
        "timestamp": "2024-01-01T00:00:00Z",
        "action": "push",
        "target": {
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "size": 708,
            "digest": DIGEST,
            "length": 708,
            "repository": "acme/shop",
            "url": "http://127.0.0.1:5000/v2/acme/shop/manifests/" + DIGEST,
            "tag": "1.4.0",
        },
        "request": {"id": "r", "addr": "127.0.0.1:4444", "host": "127.0.0.1:5000"},
        "actor": {},
        "source": {"addr": "registry:5000", "instanceID": "i"},
    }
    for key, value in over.items():
        if key in item["target"]:  # type: ignore[operator]
            item["target"][key] = value  # type: ignore[index]
        else:
            item[key] = value
    return item


# --------------------------------------------------------------------------- GitHub


async def test_github_push_is_the_watchers_commit_event(client, recorder):
    r = await client.post("/hooks/gh", **github_request("push", push_payload()))
    want = events.git_commit(REPO_URL, "feature/login", SHA2, SHA1)
    assert r.status_code == 202
    assert r.json() == {"status": "accepted", "events": [str(want.id)]}
    assert len(recorder.events) == 1
    same_event(recorder.events[0], want)
    assert recorder.events[0].resource.id == "stacks.git.github.com/acme/shop@feature/login"


async def test_github_form_encoded_push(client, recorder):
    r = await client.post("/hooks/gh", **github_request("push", push_payload(), form=True))
    assert r.status_code == 202
    same_event(recorder.events[0], events.git_commit(REPO_URL, "feature/login", SHA2, SHA1))


async def test_github_new_branch_has_no_before(client, recorder):
    r = await client.post("/hooks/gh", **github_request("push", push_payload(before="0" * 40)))
    assert r.status_code == 202
    assert recorder.events[0].payload["before"] is None


@pytest.mark.parametrize(
    "action, merged, ours",
    [
        ("opened", False, "opened"),
        ("reopened", False, "opened"),
        ("synchronize", False, "updated"),
        ("closed", True, "merged"),
        ("closed", False, "closed"),
    ],
)
async def test_github_pull_request_actions(client, recorder, action, merged, ours):
    r = await client.post(
        "/hooks/gh", **github_request("pull_request", pr_payload(action, merged=merged))
    )
    assert r.status_code == 202, r.text
    want = events.pull_request(
        ours,
        repository=REPO_URL,
        number=42,
        head_ref="login",
        head_sha=SHA2,
        base_ref="main",
        title="Login page",
        author="alice",
        url="https://github.com/Acme/Shop/pull/42",
    )
    same_event(recorder.events[0], want)


async def test_github_release_published(client, recorder):
    payload = {
        "action": "published",
        "release": {
            "tag_name": "v1.4.0",
            "name": None,
            "html_url": "https://github.com/Acme/Shop/releases/tag/v1.4.0",
            "prerelease": True,
        },
        "repository": {"clone_url": REPO_URL},
    }
    r = await client.post("/hooks/gh", **github_request("release", payload))
    assert r.status_code == 202
    want = events.release_published(
        REPO_URL, "v1.4.0", "", "https://github.com/Acme/Shop/releases/tag/v1.4.0", True
    )
    same_event(recorder.events[0], want)
    assert recorder.events[0].payload["name"] == "v1.4.0"  # the builder's default


async def test_github_ping_is_200_without_event(client, recorder):
    r = await client.post("/hooks/gh", **github_request("ping", {"zen": "Keep it simple."}))
    assert (r.status_code, r.json()) == (200, {"status": "pong"})
    assert recorder.batches == []


@pytest.mark.parametrize(
    "kind, payload, reason",
    [
        ("push", push_payload(ref="refs/tags/v1.0.0"), "tag push"),
        ("push", push_payload(deleted=True, after="0" * 40), "branch deleted"),
        ("pull_request", pr_payload("assigned"), "pull_request action 'assigned'"),
        ("release", {"action": "created", "release": {}}, "release action 'created'"),
        ("issues", {"action": "opened"}, "GitHub event 'issues'"),
    ],
)
async def test_github_ignored_deliveries(client, recorder, kind, payload, reason):
    r = await client.post("/hooks/gh", **github_request(kind, payload))
    assert (r.status_code, r.json()) == (202, {"status": "ignored", "reason": reason})
    assert recorder.batches == []


# --------------------------------------------------------------------------- GitLab


async def test_gitlab_push(client, recorder):
    payload = {
        "object_kind": "push",
        "ref": "refs/heads/main",
        "before": SHA1,
        "after": SHA2,
        "project": {"git_http_url": GITLAB_URL},
    }
    r = await client.post("/hooks/gl", **gitlab_request("Push Hook", payload))
    assert r.status_code == 202
    same_event(recorder.events[0], events.git_commit(GITLAB_URL, "main", SHA2, SHA1))


@pytest.mark.parametrize(
    "action, oldrev, ours",
    [
        ("open", None, "opened"),
        ("reopen", None, "opened"),
        ("update", SHA1, "updated"),
        ("close", None, "closed"),
        ("merge", None, "merged"),
    ],
)
async def test_gitlab_merge_request_actions(client, recorder, action, oldrev, ours):
    payload = mr_payload(action, oldrev=oldrev)
    r = await client.post("/hooks/gl", **gitlab_request("Merge Request Hook", payload))
    assert r.status_code == 202, r.text
    want = events.pull_request(
        ours,
        repository=GITLAB_URL,
        number=7,
        head_ref="login",
        head_sha=SHA2,
        base_ref="main",
        title="Login page",
        author="bob",
        url="https://gitlab.example.com/acme/shop/-/merge_requests/7",
    )
    same_event(recorder.events[0], want)


async def test_gitlab_release_and_ignored_hooks(client, recorder):
    release = {
        "object_kind": "release",
        "action": "create",
        "tag": "v2.0.0",
        "name": "Two",
        "url": "https://gitlab.example.com/acme/shop/-/releases/v2.0.0",
        "project": {"git_http_url": GITLAB_URL},
    }
    r = await client.post("/hooks/gl", **gitlab_request("Release Hook", release))
    assert r.status_code == 202
    want = events.release_published(
        GITLAB_URL, "v2.0.0", "Two", "https://gitlab.example.com/acme/shop/-/releases/v2.0.0"
    )
    same_event(recorder.events[0], want)

    for kind, payload in [
        ("Merge Request Hook", mr_payload("update")),  # no oldrev: no new commits
        ("Merge Request Hook", mr_payload("approved")),
        ("Tag Push Hook", {"ref": "refs/tags/v1"}),
        ("Release Hook", {**release, "action": "update"}),
        ("Note Hook", {}),
    ]:
        r = await client.post("/hooks/gl", **gitlab_request(kind, payload))
        assert r.status_code == 202 and r.json()["status"] == "ignored", (kind, r.text)
    assert len(recorder.events) == 1


async def test_gitlab_token_and_idempotency_key(client, recorder):
    payload = {
        "ref": "refs/heads/main",
        "before": SHA1,
        "after": SHA2,
        "project": {"git_http_url": GITLAB_URL},
    }
    for token in ("wrong", SECRET + "x", ""):
        r = await client.post("/hooks/gl", **gitlab_request("Push Hook", payload, token=token))
        assert r.status_code == 401
    request = gitlab_request("Push Hook", payload, key="retry-key-1")
    del request["headers"]["X-Gitlab-Token"]
    assert (await client.post("/hooks/gl", **request)).json() == {"error": "missing signature"}

    first = await client.post("/hooks/gl", **gitlab_request("Push Hook", payload, key="k-1"))
    # a GitLab retry keeps Idempotency-Key (its X-Gitlab-Event-UUID may differ)
    again = await client.post("/hooks/gl", **gitlab_request("Push Hook", payload, key="k-1"))
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json() == {"status": "duplicate"}
    assert len(recorder.events) == 1


# --------------------------------------------------------------------------- registry


async def test_registry_tagged_manifest_push(client, recorder):
    r = await client.post("/hooks/reg", **registry_request([registry_event()]))
    assert r.status_code == 202, r.text
    # the block's registry field names the registry, not target.url / request.host
    same_event(
        recorder.events[0],
        events.image_updated("registry.example:5000", "acme/shop", "1.4.0", DIGEST),
    )

    r = await client.post("/hooks/reg-host", **registry_request([registry_event()]))
    assert r.status_code == 202
    same_event(
        recorder.events[1], events.image_updated("127.0.0.1:5000", "acme/shop", "1.4.0", DIGEST)
    )


async def test_registry_index_push_and_ignored_events(client, recorder):
    index = registry_event(mediaType="application/vnd.oci.image.index.v1+json", tag="multi")
    r = await client.post("/hooks/reg", **registry_request([index]))
    assert r.status_code == 202
    assert recorder.events[0].resource["stacks.image.tag"] == "multi"

    ignored = [
        registry_event(mediaType="application/octet-stream"),  # a layer
        registry_event(tag=None),  # a push by digest
        registry_event(action="pull"),
        registry_event(action="delete"),
    ]
    r = await client.post("/hooks/reg", **registry_request(ignored))
    assert r.status_code == 202 and r.json()["status"] == "ignored"
    assert len(recorder.events) == 1


async def test_registry_events_are_deduplicated_by_their_id(client, recorder):
    a, b = registry_event(tag="a"), registry_event(tag="b")
    first = await client.post("/hooks/reg", **registry_request([a]))
    both = await client.post("/hooks/reg", **registry_request([a, b]))
    assert first.status_code == 202
    assert both.status_code == 202 and both.json()["duplicates"] == 1
    assert [e.resource["stacks.image.tag"] for e in recorder.events] == ["a", "b"]
    again = await client.post("/hooks/reg", **registry_request([b, a]))
    assert again.json() == {"status": "duplicate"}


async def test_registry_bearer_token(client, recorder):
    body = registry_request([registry_event()])
    for value in (f"Bearer {SECRET}x", f"Basic {SECRET}", SECRET, "Bearer "):
        r = await client.post(
            "/hooks/reg",
            content=body["content"],
            headers={**body["headers"], "Authorization": value},
        )
        assert r.status_code == 401, value
    headers = dict(body["headers"])
    del headers["Authorization"]
    assert (
        await client.post("/hooks/reg", content=body["content"], headers=headers)
    ).status_code == 401
    assert recorder.batches == []


# --------------------------------------------------------------------------- generic


@pytest.mark.parametrize(
    "name, data, want",
    [
        (
            "stacks.git.commit",
            {"repository": REPO_URL, "branch": "main", "sha": SHA2, "before": SHA1},
            lambda: events.git_commit(REPO_URL, "main", SHA2, SHA1),
        ),
        (
            "stacks.pull-request.merged",
            {
                "repository": REPO_URL,
                "number": 3,
                "head_ref": "x",
                "head_sha": SHA2,
                "base_ref": "main",
            },
            lambda: events.pull_request(
                "merged",
                repository=REPO_URL,
                number=3,
                head_ref="x",
                head_sha=SHA2,
                base_ref="main",
            ),
        ),
        (
            "stacks.image.updated",
            {
                "registry": "127.0.0.1:5000",
                "repository": "acme/shop",
                "tag": "1.0",
                "digest": DIGEST,
            },
            lambda: events.image_updated("127.0.0.1:5000", "acme/shop", "1.0", DIGEST),
        ),
        (
            "stacks.release.published",
            {"repository": REPO_URL, "tag": "v1", "prerelease": True},
            lambda: events.release_published(REPO_URL, "v1", prerelease=True),
        ),
    ],
)
async def test_generic_events_are_the_builders_events(client, recorder, name, data, want):
    r = await client.post("/hooks/gen", **generic_request(name, data))
    assert r.status_code == 202, r.text
    same_event(recorder.events[0], want())


@pytest.mark.parametrize(
    "name, data, message",
    [
        ("stacks.nope", {}, "event: 'stacks.nope' is not one of"),
        ("stacks.environment.created", {"name": "x"}, "cannot be sent"),
        ("stacks.git.commit", {"repository": REPO_URL, "branch": "main"}, "data.sha: missing"),
        (
            "stacks.git.commit",
            {"repository": REPO_URL, "branch": "main", "sha": "HEAD"},
            "data.sha: expected a full commit id",
        ),
        (
            "stacks.git.commit",
            {"repository": REPO_URL, "branch": "main", "sha": SHA1, "force": True},
            "data.force: unknown field",
        ),
        (
            "stacks.pull-request.opened",
            {
                "repository": REPO_URL,
                "number": "7",
                "head_ref": "x",
                "head_sha": SHA2,
                "base_ref": "m",
            },
            "data.number: expected a positive integer",
        ),
        (
            "stacks.image.updated",
            {"registry": "r", "repository": "Acme/Shop", "tag": "1", "digest": DIGEST},
            "data.repository: not a registry repository name",
        ),
        ("stacks.release.published", {"repository": "not a url", "tag": "v1"}, "data.repository"),
        ("stacks.release.published", [1, 2], "data: expected a JSON object"),
    ],
)
async def test_generic_bad_data_is_400_naming_the_field(client, recorder, name, data, message):
    r = await client.post("/hooks/gen", **generic_request(name, data))
    assert r.status_code == 400
    assert message in r.json()["error"]
    assert recorder.batches == []


async def test_generic_signature_timestamp_and_delivery(client, recorder):
    data = {"repository": REPO_URL, "branch": "main", "sha": SHA2}
    stale = generic_request("stacks.git.commit", data, timestamp=int(time.time()) - 301)
    r = await client.post("/hooks/gen", **stale)
    assert r.status_code == 401 and "replay window" in r.json()["error"]
    future = generic_request("stacks.git.commit", data, timestamp=int(time.time()) + 400)
    assert (await client.post("/hooks/gen", **future)).status_code == 401

    # the timestamp is signed: moving it into the window breaks the signature
    moved = dict(stale["headers"], **{"X-Stacks-Timestamp": str(int(time.time()))})
    r = await client.post("/hooks/gen", content=stale["content"], headers=moved)
    assert r.json() == {"error": "signature mismatch"}

    request = generic_request("stacks.git.commit", data)
    del request["headers"]["X-Stacks-Delivery"]
    r = await client.post("/hooks/gen", **request)
    assert r.status_code == 400 and "X-Stacks-Delivery" in r.json()["error"]
    assert recorder.batches == []
    assert (
        await client.post("/hooks/gen", **generic_request("stacks.git.commit", data))
    ).status_code == 202


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("source", ["gh", "gen"])
async def test_forged_and_missing_signatures_are_401_without_detail(client, recorder, source):
    if source == "gh":
        good = github_request("push", push_payload())
        header = "X-Hub-Signature-256"
        other = github_request("push", push_payload(after=SHA1))["headers"][header]
    else:
        data = {"repository": REPO_URL, "branch": "main", "sha": SHA2}
        good = generic_request("stacks.git.commit", data)
        header = "X-Stacks-Signature"
        other = generic_request("stacks.git.commit", {**data, "sha": SHA1})["headers"][header]
    body = good["content"]
    cases = {
        "another body's signature": (body, {header: other}),
        "wrong secret": (body, {header: "sha256=" + "0" * 64}),
        "sha1 algorithm": (body, {header: good["headers"][header].replace("sha256", "sha1")}),
        "garbage": (body, {header: b"sha256=\xff\xfe"}),
        "body changed": (body.replace(b"main", b"mainx").replace(b"login", b"logix"), {}),
    }
    for what, (content, change) in cases.items():
        r = await client.post(
            f"/hooks/{source}", content=content, headers={**good["headers"], **change}
        )
        assert (r.status_code, r.json()) == (401, {"error": "signature mismatch"}), what
    headers = {k: v for k, v in good["headers"].items() if k != header}
    r = await client.post(f"/hooks/{source}", content=body, headers=headers)
    assert (r.status_code, r.json()) == (401, {"error": "missing signature"})
    assert recorder.batches == []


async def test_signature_is_checked_before_the_body_is_parsed(client, recorder):
    r = await client.post(
        "/hooks/gh",
        content=b"{not json",
        headers={
            "X-GitHub-Event": "push",
            "Content-Type": "application/json",
            "X-Hub-Signature-256": "sha256=00",
        },
    )
    assert r.status_code == 401  # not 400: nothing about the body is told to a stranger


async def test_oversize_bodies_are_413(client, recorder):
    big = push_payload(padding="x" * 2000)
    request = github_request("push", big)
    r = await client.post("/hooks/tiny", **request)
    assert r.status_code == 413 and r.json()["error"] == "body larger than 1000 bytes"

    async def stream() -> AsyncIterator[bytes]:  # chunked: no Content-Length at all
        for i in range(0, len(request["content"]), 100):
            yield request["content"][i : i + 100]

    r = await client.post("/hooks/tiny", content=stream(), headers=request["headers"])
    assert r.status_code == 413

    # a Content-Length that lies (smaller than the body) does not get past the count
    lying = {**request["headers"], "Content-Length": "10"}
    r = await client.post("/hooks/tiny", content=stream(), headers=lying)
    assert r.status_code == 413

    r = await client.post(
        "/hooks/tiny", content=b"{}", headers={**request["headers"], "Content-Length": "abc"}
    )
    assert r.status_code == 400
    assert recorder.batches == []
    # within the limit, streamed without Content-Length, the delivery goes through
    small = github_request("push", push_payload())

    async def small_stream() -> AsyncIterator[bytes]:
        yield small["content"][:50]
        yield small["content"][50:]

    r = await client.post("/hooks/tiny", content=small_stream(), headers=small["headers"])
    assert r.status_code == 202


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[1, 2, 3]",
        b"null",
        b'"a string"',
        b"\xff\xfe\x00garbage",
        b'{"ref": null}',
        b'{"ref": "refs/heads/main", "after": 12345, "repository": {"clone_url": "https://x/y"}}',
        b'{"ref": "refs/heads/main", "after": "' + b"1" * 40 + b'", "repository": []}',
        b'{"ref": "refs/heads/main", "after": "'
        + b"1" * 40
        + b'", "repository": {"clone_url": "::"}}',
        b'{"ref": ["refs/heads/main"]}',
        b'{"ref": "refs/heads/\\u0000", "after": "' + b"1" * 40 + b'"}',
        b'{"ref": "refs/heads/\\ud800", "after": "' + b"1" * 40 + b'"}',
        b'{"a": ' + b"9" * 5000 + b"}",
        b'{"a": NaN}',
        b"[" * 100_000 + b"]" * 100_000,
        b"",
    ],
)
async def test_malformed_bodies_are_400(client, recorder, body):
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": "d",
        "X-Hub-Signature-256": github.signature(SECRET, body),
    }
    source = "gh"
    if len(body) > SOURCES["gh"].max_body_bytes:
        pytest.skip("larger than the limit")
    r = await client.post(f"/hooks/{source}", content=body, headers=headers)
    assert r.status_code == 400, r.text
    assert set(r.json()) == {"error"}
    assert recorder.batches == []


async def test_pull_request_number_bounds(client, recorder):
    for value in (0, -1, True, 2**63, 1.5, "42", None):
        payload = pr_payload("opened")
        payload["number"] = value
        payload["pull_request"]["number"] = value
        r = await client.post("/hooks/gh", **github_request("pull_request", payload))
        assert r.status_code == 400 and "number" in r.json()["error"], value
    assert recorder.batches == []


async def test_wrong_content_type_is_415(client, recorder):
    request = github_request("push", push_payload())
    for content_type in ("text/plain", "application/xml", ""):
        headers = {**request["headers"], "Content-Type": content_type}
        r = await client.post("/hooks/gh", content=request["content"], headers=headers)
        assert r.status_code == 415, content_type
    request = registry_request([registry_event()])
    r = await client.post(
        "/hooks/reg",
        content=request["content"],
        headers={**request["headers"], "Content-Type": "application/json"},
    )
    assert r.status_code == 202  # plain JSON is fine for the registry too


async def test_routes_unknown_sources_and_the_lookup_cache(recorder):
    calls: list[str] = []

    class Counting(dict):
        def get(self, name, default=None):
            calls.append(name)
            return super().get(name, default)

    app = create_app(emit=recorder, sources=Counting(SOURCES), source_ttl_seconds=0.3)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://h") as c:
        assert (await c.get("/healthz")).json() == {"status": "ok"}
        assert (await c.get("/hooks/gh")).status_code == 405
        assert (await c.post("/elsewhere")).json() == {"error": "not found"}
        results = await asyncio.gather(*(c.post("/hooks/nobody", content=b"{}") for _ in range(50)))
        assert {r.status_code for r in results} == {404}
        assert calls == ["nobody"]  # one lookup; the miss is cached
        for bad in ("UPPER", "a_b", "x" * 300, "%2e%2e"):
            assert (await c.post(f"/hooks/{bad}", content=b"{}")).status_code == 404
        assert calls == ["nobody"]  # impossible block names are not looked up
        await asyncio.sleep(0.35)
        await c.post("/hooks/nobody", content=b"{}")
        assert calls == ["nobody", "nobody"]  # looked up again after the TTL
    assert recorder.batches == []


# --------------------------------------------------------------------------- delivery


async def test_duplicate_delivery_emits_once(client, recorder):
    request = github_request("push", push_payload(), delivery="same-id")
    first = await client.post("/hooks/gh", **request)
    second = await client.post("/hooks/gh", **request)
    assert (first.status_code, second.status_code) == (202, 200)
    assert second.json() == {"status": "duplicate"}
    assert len(recorder.batches) == 1


async def test_concurrent_identical_deliveries_emit_once(client, recorder):
    recorder.delay = 0.2
    request = github_request("push", push_payload(), delivery="racing")
    answers = await asyncio.gather(*(client.post("/hooks/gh", **request) for _ in range(5)))
    assert sorted(r.status_code for r in answers) == [200, 200, 200, 200, 202]
    assert len(recorder.batches) == 1


async def test_server_unreachable_is_503_and_the_retry_is_accepted(client, recorder):
    request = github_request("push", push_payload(), delivery="retry-me")
    recorder.fail_with = EmitError("the Prefect server did not accept 1 event(s): ConnectError")
    r = await client.post("/hooks/gh", **request)
    assert r.status_code == 503
    assert int(r.headers["Retry-After"]) > 0
    assert "error" in r.json()
    assert recorder.batches == []
    recorder.fail_with = None
    r = await client.post("/hooks/gh", **request)  # the sender's retry, same delivery id
    assert r.status_code == 202
    assert len(recorder.batches) == 1


async def test_event_refused_as_invalid_is_400_not_503(client, recorder):
    response = httpx.Response(422, request=httpx.Request("POST", "http://x/api/events"))
    error = EmitError("refused")
    error.__cause__ = httpx.HTTPStatusError("422", request=response.request, response=response)
    recorder.fail_with = error
    r = await client.post("/hooks/gh", **github_request("push", push_payload()))
    assert r.status_code == 400


async def test_the_delivery_log_is_bounded():
    log = DeliveryLog(capacity=3)
    for key in "abcd":
        log.release(await log.claim([key], timeout=1), done=True)
    assert len(log) == 3 and "a" not in log and "d" in log
    # a failed attempt is not remembered, and frees the id for the next one
    claimed = await log.claim(["e"], timeout=1)
    log.release(claimed, done=False)
    assert "e" not in log and await log.claim(["e"], timeout=1) == ["e"]


async def test_one_log_line_per_request_without_secrets_or_bodies(client, recorder, caplog):
    caplog.set_level(logging.INFO, logger="prefect_stacks.webhooks")
    marker = "BODY-MARKER-" + uuid.uuid4().hex
    payload = push_payload(head_commit={"message": marker})
    await client.post("/hooks/gh", **github_request("push", payload, delivery="log-1"))
    forged = github_request("push", payload, secret="forged", delivery="log-2\nFAKE LINE")
    await client.post("/hooks/gh", **forged)
    lines = [r.getMessage() for r in caplog.records if r.name == "prefect_stacks.webhooks"]
    assert len(lines) == 2
    assert "202" in lines[0] and "delivery=log-1" in lines[0] and "stacks.git.commit" in lines[0]
    assert "401" in lines[1] and 'reason="signature mismatch"' in lines[1]
    assert "delivery=log-2?FAKE?LINE" in lines[1]  # no log injection
    text = "\n".join(lines) + caplog.text
    assert SECRET not in text and marker not in text


# --------------------------------------------------------------------------- block, CLI


def test_webhook_source_block_validation():
    with pytest.raises(ValidationError) as info:
        WebhookSource(kind="github", secret=SecretStr(""))
    assert "secret is empty" in str(info.value)
    with pytest.raises(ValidationError):
        WebhookSource(kind="bitbucket", secret=SecretStr("x"))
    with pytest.raises(ValidationError):
        WebhookSource(kind="github", secret=SecretStr("x"), max_body_bytes=0)
    block = WebhookSource(
        kind="registry", secret=SecretStr("x"), registry="https://Reg.Example:5000/"
    )
    assert block.registry == "reg.example:5000"
    with pytest.raises(ValidationError) as info:
        WebhookSource(kind="registry", secret=SecretStr("hunter2"), registry="a/b")
    assert "hunter2" not in str(info.value)


def test_serve_refuses_without_an_api_url_and_runs_uvicorn_with_one(monkeypatch):
    import uvicorn

    import prefect_stacks._cli.webhooks  # noqa: F401  (registers `webhooks`)

    runs: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: runs.append({"app": app, **kw}))
    runner = CliRunner()
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        result = runner.invoke(cli_app, ["webhooks", "serve"])
    assert result.exit_code == 1 and "PREFECT_API_URL is not set" in result.output
    assert runs == []
    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        result = runner.invoke(
            cli_app,
            ["webhooks", "serve", "--host", "0.0.0.0", "--port", "9999", "--log-level", "warning"],
        )
    assert result.exit_code == 0, result.output
    assert len(runs) == 1
    assert (runs[0]["host"], runs[0]["port"], runs[0]["log_level"]) == ("0.0.0.0", 9999, "warning")
    assert runs[0]["access_log"] is False
    result = runner.invoke(cli_app, ["webhooks", "serve", "--log-level", "loud"])
    assert result.exit_code != 0 and len(runs) == 1


async def test_without_a_delivery_id_the_body_is_the_delivery(client, recorder):
    request = github_request("push", push_payload())
    del request["headers"]["X-GitHub-Delivery"]
    first = await client.post("/hooks/gh", **request)
    again = await client.post("/hooks/gh", **request)
    assert (first.status_code, again.json()) == (202, {"status": "duplicate"})
    del request["headers"]["X-GitHub-Event"]
    r = await client.post("/hooks/gh", **request)
    assert (r.status_code, r.json()) == (400, {"error": "missing X-GitHub-Event header"})
    assert len(recorder.batches) == 1


async def test_the_documented_openssl_signature_is_accepted(client, recorder):
    # docs/webhooks.md: printf '%s.%s' "$ts" "$body" | openssl dgst -sha256 -hmac "$SECRET"
    openssl = require_tool("openssl")
    data = {"repository": REPO_URL, "tag": "v9"}
    body = json.dumps({"event": "stacks.release.published", "data": data}).encode()
    stamp = str(int(time.time()))
    out = subprocess.run(
        [openssl, "dgst", "-sha256", "-hmac", SECRET],
        input=stamp.encode() + b"." + body,
        capture_output=True,
        check=True,
    ).stdout.decode()
    signature = "sha256=" + out.split()[-1]
    assert signature == generic.signature(SECRET, stamp, body)
    headers = {
        "Content-Type": "application/json",
        "X-Stacks-Timestamp": stamp,
        "X-Stacks-Delivery": "ci-1",
        "X-Stacks-Signature": signature,
    }
    r = await client.post("/hooks/gen", content=body, headers=headers)
    assert r.status_code == 202
    same_event(recorder.events[0], events.release_published(REPO_URL, "v9"))


async def test_a_delivery_stuck_in_flight_makes_its_twin_retry_later(recorder):
    recorder.delay = 0.5
    app = create_app(emit=recorder, sources=SOURCES, in_flight_wait_seconds=0.05)
    request = github_request("push", push_payload(), delivery="slow")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://h") as c:
        answers = await asyncio.gather(
            c.post("/hooks/gh", **request), c.post("/hooks/gh", **request)
        )
    first, twin = sorted(answers, key=lambda r: r.status_code)
    assert first.status_code == 202
    assert twin.status_code == 503 and twin.headers["Retry-After"] == "5"
    assert len(recorder.batches) == 1


async def test_a_stalled_body_is_408_with_connection_close_and_emits_nothing(recorder):
    request = github_request("push", push_payload(), delivery="stalled")
    body = request["content"]

    async def stalls() -> AsyncIterator[bytes]:
        yield body[:10]
        await asyncio.sleep(3600)  # the rest never comes
        yield body[10:]

    app = create_app(emit=recorder, sources=SOURCES, body_timeout_seconds=0.3)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://h") as c:
        headers = {**request["headers"], "Content-Length": str(len(body))}
        r = await asyncio.wait_for(c.post("/hooks/gh", content=stalls(), headers=headers), 30)
        assert r.status_code == 408
        assert r.json() == {"error": "body not received within 0.3 s"}
        assert r.headers["connection"] == "close"
        assert recorder.batches == []
        again = await c.post("/hooks/gh", **request)  # the same delivery, sent whole
        assert again.status_code == 202, again.text
    assert len(recorder.batches) == 1


async def test_starlettes_own_answers_are_json_and_never_redirect(client, recorder):
    for method, path, status, error in [
        ("POST", "/hooks/gh/", 404, "not found; the path is /hooks/gh (no trailing slash)"),
        ("GET", "/healthz/", 404, "not found; the path is /healthz (no trailing slash)"),
        ("POST", "/hooks//", 404, "not found"),
        ("GET", "/", 404, "not found"),
        ("GET", "/hooks/gh", 405, "method not allowed; use POST"),
        ("DELETE", "/healthz", 405, "method not allowed; use GET or HEAD"),
    ]:
        r = await client.request(method, path, headers={"Host": "evil.example"})
        assert (r.status_code, r.json()) == (status, {"error": error}), (method, path)
        assert r.headers["content-type"] == "application/json"
        assert "location" not in r.headers
    assert (await client.get("/hooks/gh")).headers["allow"] == "POST"
    assert recorder.batches == []


def test_serve_passes_the_body_timeout_to_the_app(monkeypatch):
    import uvicorn

    import prefect_stacks._cli.webhooks  # noqa: F401  (registers `webhooks`)

    runs: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: runs.append(app))
    runner = CliRunner()
    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        assert runner.invoke(cli_app, ["webhooks", "serve"]).exit_code == 0
        result = runner.invoke(cli_app, ["webhooks", "serve", "--body-timeout", "2.5"])
        assert result.exit_code == 0, result.output
        refused = runner.invoke(cli_app, ["webhooks", "serve", "--body-timeout", "0"])
    assert [app.state.receiver.body_timeout for app in runs] == [10.0, 2.5]
    assert refused.exit_code != 0
