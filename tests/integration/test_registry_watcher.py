"""The registry watcher on a throwaway Prefect server: against the real Distribution
registry (baseline, a moved tag, a new semver tag, one event each, with the id the
receiver gives the same push), and against the hosted-registry fake for what an idle
poll costs (one HEAD per watched tag, answered 304, no tag list)."""

from __future__ import annotations

import json
import uuid

import pytest
from prefect.states import State
from starlette.datastructures import Headers

from prefect_stacks.blocks.registry import ContainerRegistry, MutableTag, SemverPolicy
from prefect_stacks.blocks.webhooks import WebhookSource
from prefect_stacks.flows.watchers import WatchedImage, registry_watcher
from prefect_stacks.webhooks import registry as registry_webhook
from tests.conftest import read_events
from tests.fakes.oci_registry import FakeOCIRegistry
from tests.oci import DOCKER_MANIFEST, Pusher

pytestmark = pytest.mark.integration


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def saved_registry(url: str) -> str:
    block_name = name("reg")
    ContainerRegistry(url=url, requests_per_second=50).save(block_name)
    return block_name


def test_baseline_then_one_event_per_moved_tag_or_new_version(prefect_harness, registry):
    repo = name("team/shop")
    push = Pusher(registry)
    push.image(repo, "main", label="a")
    push.image(repo, "v1.0.0")
    images = [
        WatchedImage(repository=repo, policy=MutableTag(tag="main")),
        WatchedImage(repository=repo, policy=SemverPolicy(constraint="^1")),
    ]
    block, watcher = saved_registry(f"http://{registry}"), name("reg")

    first = registry_watcher(registry=block, images=images, watcher=watcher)
    assert len(first["baseline"]) == 2 and first["emitted"] == []

    moved = push.image(repo, "main", label="b")
    newer = push.image(repo, "v1.1.0")
    push.image(repo, "v2.0.0")  # outside ^1
    second = registry_watcher(registry=block, images=images, watcher=watcher)
    assert sorted(second["emitted"]) == sorted(image.key for image in images)

    main = read_events("stacks.image.updated", f"stacks.image.{registry}/{repo}:main")
    assert [e["payload"]["digest"] for e in main] == [moved]
    assert main[0]["payload"]["image"] == f"{registry}/{repo}@{moved}"
    semver = read_events("stacks.image.updated", f"stacks.image.{registry}/{repo}:v1.1.0")
    assert [e["payload"]["digest"] for e in semver] == [newer]

    # the same push, as Distribution's notification reaches the receiver: the same id
    notification = {
        "events": [
            {
                "id": str(uuid.uuid4()),
                "action": "push",
                "target": {
                    "mediaType": DOCKER_MANIFEST,
                    "repository": repo,
                    "tag": "main",
                    "digest": moved,
                },
                "request": {"host": registry},
            }
        ]
    }
    source = WebhookSource(kind="registry", secret="x" * 32)
    received = registry_webhook.translate(
        source,
        Headers({"content-type": registry_webhook.EVENTS_MEDIA_TYPE}),
        json.dumps(notification).encode(),
    )
    assert str(received.deliveries[0].events[0].id) == main[0]["id"]

    third = registry_watcher(registry=block, images=images, watcher=watcher)
    assert third["emitted"] == []


def test_an_idle_poll_costs_one_head_per_tag_answered_304(prefect_harness):
    with FakeOCIRegistry(public={f"library/app{i}" for i in range(5)}) as fake:
        for i in range(5):
            fake.push(f"library/app{i}", "latest", DOCKER_MANIFEST, {"schemaVersion": 2, "i": i})
        images = [
            WatchedImage(repository=f"library/app{i}", policy=MutableTag(tag="latest"))
            for i in range(5)
        ]
        block, watcher = saved_registry(fake.base_url), name("idle")
        registry_watcher(registry=block, images=images, watcher=watcher)  # baseline
        before, tokens_before = len(fake.requests), len(fake.tokens.requests)
        report = registry_watcher(registry=block, images=images, watcher=watcher)
        idle = fake.requests[before:]
        tokens = fake.tokens.requests[tokens_before:]
    assert report["emitted"] == []
    # a new process each poll: one challenge and one token for all five repositories,
    # then one conditional HEAD per watched tag, each 304; no tag list
    assert [(r.method, r.status) for r in idle] == [("HEAD", 401)] + [("HEAD", 304)] * 5
    assert len(tokens) == 1 and tokens[0].path.count("scope=") == 5


def test_an_image_that_cannot_be_read_fails_the_run_but_not_the_others(prefect_harness, registry):
    repo = name("team/ok")
    push = Pusher(registry)
    push.image(repo, "main", label="a")
    images = [
        WatchedImage(repository=repo, policy=MutableTag(tag="main")),
        WatchedImage(repository="team/missing", policy=SemverPolicy(constraint="*")),
    ]
    block, watcher = saved_registry(f"http://{registry}"), name("part")
    baseline = registry_watcher(registry=block, images=images, watcher=watcher, return_state=True)
    assert isinstance(baseline, State) and baseline.is_failed()
    assert "team/missing" in baseline.message and "NAME_UNKNOWN" in baseline.message

    moved = push.image(repo, "main", label="b")
    state = registry_watcher(registry=block, images=images, watcher=watcher, return_state=True)
    assert state.is_failed()
    found = read_events("stacks.image.updated", f"stacks.image.{registry}/{repo}:main")
    assert [e["payload"]["digest"] for e in found] == [moved]
