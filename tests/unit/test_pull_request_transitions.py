"""Pull request lifecycle transitions are distinct events; one transition seen twice is one.

The event id of ``opened``/``closed``/``merged`` is derived from the head commit and the
transition's time (``updated_at`` when it became open or eligible, ``closed_at``,
``merged_at``), so open -> close -> reopen -> close at one head commit is four events, a
redelivery of one of them (another delivery id, same payload) is the same event, and the
watcher's event built from the REST API's view of the pull request equals the webhook's.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from datetime import datetime, timezone

import httpx
import pytest
from pydantic import SecretStr

from prefect_stacks import events
from prefect_stacks.blocks.github import GitHubRepository, PullRequest
from prefect_stacks.flows.pull_requests import _event as watcher_event
from prefect_stacks.webhooks.app import create_app
from tests.unit.test_webhooks import (
    SHA2,
    SOURCES,
    Recorder,
    github_request,
    gitlab_request,
    mr_payload,
    pr_payload,
)


@pytest.fixture
def emitted() -> Recorder:
    return Recorder()


@pytest.fixture
async def hooks(emitted: Recorder) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(emit=emitted, sources=SOURCES)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://hooks") as c:
        yield c


T_OPEN, T_CLOSE, T_REOPEN, T_CLOSE2 = (
    "2026-12-01T10:00:00Z",
    "2026-12-01T10:05:00Z",
    "2026-12-01T10:09:00Z",
    "2026-12-01T10:15:00Z",
)


def delivery(action: str, *, state: str, updated: str, closed: str | None = None, **extra):
    payload = pr_payload(action)
    pr = payload["pull_request"]
    pr.update(state=state, created_at=T_OPEN, updated_at=updated, closed_at=closed, merged_at=None)
    payload.update(extra)
    return payload


LIFECYCLE = [
    ("opened", delivery("opened", state="open", updated=T_OPEN)),
    ("closed", delivery("closed", state="closed", updated=T_CLOSE, closed=T_CLOSE)),
    ("reopened", delivery("reopened", state="open", updated=T_REOPEN)),
    ("closed", delivery("closed", state="closed", updated=T_CLOSE2, closed=T_CLOSE2)),
]


async def test_open_close_reopen_close_are_four_events_and_redeliveries_are_not(hooks, emitted):
    ids = []
    for n, (_action, payload) in enumerate(LIFECYCLE):
        r = await hooks.post(
            "/hooks/gh", **github_request("pull_request", payload, delivery=f"d-{n}")
        )
        assert r.status_code == 202, r.text
        ids.append(r.json()["events"][0])
    assert len(set(ids)) == 4
    assert [e.event for e in emitted.events] == [
        "stacks.pull-request.opened",
        "stacks.pull-request.closed",
        "stacks.pull-request.opened",
        "stacks.pull-request.closed",
    ]
    # the reopen delivered again under another delivery id (a second receiver, a resend):
    # the receiver emits it, and it is the same event, which Prefect keeps once
    again = await hooks.post(
        "/hooks/gh", **github_request("pull_request", LIFECYCLE[2][1], delivery="d-other")
    )
    assert again.json()["events"] == [ids[2]]


@pytest.mark.parametrize(
    "action, extra",
    [
        ("ready_for_review", {}),
        ("labeled", {"label": {"name": "preview"}}),
        ("unlabeled", {"label": {"name": "wip"}}),
        ("edited", {"changes": {"base": {"ref": {"from": "develop"}}}}),
    ],
)
async def test_eligibility_changes_are_the_event_the_watcher_would_emit(
    hooks, emitted, action, extra
):
    payload = delivery(action, state="open", updated=T_REOPEN, **extra)
    r = await hooks.post("/hooks/gh", **github_request("pull_request", payload))
    assert r.status_code == 202, r.text
    got = emitted.events[0]
    # what pull-request-watcher emits when this pull request starts to match its filters
    api_view = copy.deepcopy(payload["pull_request"])
    api_view["base"]["repo"] = api_view["head"]["repo"] = {"full_name": "Acme/Shop"}
    block = GitHubRepository(owner="Acme", repo="Shop", token=SecretStr("t"))
    want = watcher_event("opened", block, PullRequest.from_api(api_view))
    assert (got.event, got.id, dict(got.resource)) == (want.event, want.id, dict(want.resource))


@pytest.mark.parametrize(
    "payload, reason",
    [
        (delivery("edited", state="open", updated=T_REOPEN), "the base is the same"),
        (
            delivery("labeled", state="closed", updated=T_CLOSE, closed=T_CLOSE),
            "on a closed pull request",
        ),
    ],
)
async def test_changes_that_cannot_make_a_pull_request_eligible_are_ignored(
    hooks, emitted, payload, reason
):
    r = await hooks.post("/hooks/gh", **github_request("pull_request", payload))
    assert r.status_code == 202 and r.json()["status"] == "ignored", r.text
    assert reason in r.json()["reason"]
    assert emitted.events == []


async def test_a_bad_transition_time_is_a_400_naming_the_field(hooks, emitted):
    payload = delivery("reopened", state="open", updated="yesterday")
    r = await hooks.post("/hooks/gh", **github_request("pull_request", payload))
    assert r.status_code == 400 and "pull_request.updated_at" in r.json()["error"]
    assert emitted.events == []


def test_one_instant_however_it_is_spelled():
    same = {
        events.transition_instant("2026-12-01T10:09:00Z"),
        events.transition_instant("2026-12-01T11:09:00+01:00"),
        events.transition_instant("2026-12-01 10:09:00 UTC"),  # GitLab's older spelling
        events.transition_instant(datetime(2026, 12, 1, 10, 9, tzinfo=timezone.utc)),
    }
    assert same == {"2026-12-01T10:09:00Z"}
    assert events.transition_instant(None) is None
    base = dict(repository="https://github.com/a/b.git", number=1, head_ref="x", base_ref="main")
    one = events.pull_request("opened", head_sha=SHA2, at=T_OPEN, **base)
    two = events.pull_request("opened", head_sha=SHA2, at=T_REOPEN, **base)
    assert one.id != two.id
    # `updated` is the new head commit, whatever time it carries
    up1 = events.pull_request("updated", head_sha=SHA2, at=T_OPEN, **base)
    up2 = events.pull_request("updated", head_sha=SHA2, at=T_REOPEN, **base)
    assert up1.id == up2.id


async def test_gitlab_reopen_and_eligibility_updates_are_new_opened_events(hooks, emitted):
    first = mr_payload("open")
    first["object_attributes"]["updated_at"] = "2026-12-01 10:00:00 UTC"
    reopen = mr_payload("reopen")
    reopen["object_attributes"]["updated_at"] = "2026-12-01T10:09:00Z"
    labels = mr_payload("update")
    labels["object_attributes"]["updated_at"] = "2026-12-01T10:11:00Z"
    labels["changes"] = {"labels": {"previous": [], "current": [{"title": "preview"}]}}
    title = mr_payload("update")
    title["changes"] = {"title": {"previous": "a", "current": "b"}}
    ids = []
    for n, payload in enumerate((first, reopen, labels)):
        r = await hooks.post(
            "/hooks/gl", **gitlab_request("Merge Request Hook", payload, key=f"k-{n}")
        )
        assert r.status_code == 202 and r.json()["status"] == "accepted", r.text
        ids.append(r.json()["events"][0])
    assert len(set(ids)) == 3
    assert {e.event for e in emitted.events} == {"stacks.pull-request.opened"}
    r = await hooks.post("/hooks/gl", **gitlab_request("Merge Request Hook", title, key="k-t"))
    assert r.json()["status"] == "ignored"
