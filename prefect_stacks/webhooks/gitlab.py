"""GitLab webhooks: ``X-Gitlab-Token`` (the secret token, compared in constant time),
``X-Gitlab-Event``, JSON bodies. The delivery id is ``Idempotency-Key`` (GitLab keeps it
across retries of one delivery), else ``X-Gitlab-Event-UUID``, else the body's digest.

- ``Push Hook`` to ``refs/heads/<branch>``: ``stacks.git.commit``;
- ``Merge Request Hook`` open/reopen, update with new commits (``oldrev``), close, merge:
  ``stacks.pull-request.opened``, ``updated``, ``closed``, ``merged`` (an update that
  changes draft, labels or the target branch: ``opened``);
- ``Release Hook`` create: ``stacks.release.published``.

Anything else (``Tag Push Hook``, branch deletions, other actions and hooks) is ignored.
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import Headers

from prefect_stacks import events
from prefect_stacks.blocks.webhooks import WebhookSource
from prefect_stacks.exceptions import BadRequest
from prefect_stacks.webhooks.common import (
    Delivery,
    Translation,
    body_digest,
    branch_of,
    check_token,
    delivery_id,
    expect_json,
    get,
    header,
    instant,
    number,
    obj,
    parse_json,
    pushed_commit,
    repository_url,
    sha,
    text,
)

TOKEN_HEADER = "X-Gitlab-Token"
EVENT_HEADER = "X-Gitlab-Event"
DELIVERY_HEADERS = ("Idempotency-Key", "X-Gitlab-Event-UUID")

MR_ACTIONS = {"open": "opened", "reopen": "opened", "close": "closed", "merge": "merged"}
# An update that changes one of these may change whether a merge request is wanted.
_ELIGIBILITY = frozenset({"draft", "work_in_progress", "labels", "target_branch"})


def verify(source: WebhookSource, headers: Headers, body: bytes, now: float) -> None:
    check_token(header(headers, TOKEN_HEADER), source.secret.get_secret_value())


def translate(source: WebhookSource, headers: Headers, body: bytes) -> Translation:
    kind = header(headers, EVENT_HEADER)
    if not kind:
        raise BadRequest(f"missing {EVENT_HEADER} header")
    key = body_digest(body)
    for name in DELIVERY_HEADERS:
        raw = header(headers, name)
        if raw is not None:
            key = delivery_id(raw, name)
            break
    expect_json(headers, "application/json")
    data = dict(obj(parse_json(body), "body"))
    if kind == "Push Hook":
        return _push(key, data)
    if kind == "Merge Request Hook":
        return _merge_request(key, data)
    if kind == "Release Hook":
        return _release(key, data)
    return Translation(ignored=f"GitLab event {text(kind, EVENT_HEADER, max_len=100)!r}")


def _field(data: dict[str, Any], path: str, *, optional: bool = False) -> str:
    return text(get(data, path, required=not optional), path, optional=optional)


def _push(key: str, data: dict[str, Any]) -> Translation:
    ref = _field(data, "ref")
    branch = branch_of(ref, "ref")
    if branch is None:
        return Translation(ignored=f"push to {ref[:100]!r}")
    return pushed_commit(key, data, branch, "project.git_http_url")


def _merge_request(key: str, data: dict[str, Any]) -> Translation:
    attrs = obj(get(data, "object_attributes"), "object_attributes")
    action = text(
        get(data, "object_attributes.action", required=False),
        "object_attributes.action",
        optional=True,
        max_len=100,
    )
    if action == "update":
        if attrs.get("oldrev"):
            ours = "updated"
        elif set(obj(get(data, "changes", required=False) or {}, "changes")) & _ELIGIBILITY:
            ours = "opened"  # draft, labels or target changed: as the watcher would see it
        else:
            return Translation(ignored="merge request update without new commits")
    elif action in MR_ACTIONS:
        ours = MR_ACTIONS[action]
    else:
        return Translation(ignored=f"merge request action {action!r}")
    event = events.pull_request(
        ours,
        repository=repository_url(get(data, "project.git_http_url"), "project.git_http_url"),
        number=number(get(data, "object_attributes.iid"), "object_attributes.iid"),
        head_ref=_field(data, "object_attributes.source_branch"),
        head_sha=sha(  # type: ignore[arg-type]
            get(data, "object_attributes.last_commit.id"), "object_attributes.last_commit.id"
        ),
        base_ref=_field(data, "object_attributes.target_branch"),
        title=_field(data, "object_attributes.title", optional=True),
        author=_field(data, "user.username", optional=True),
        url=_field(data, "object_attributes.url", optional=True),
        # GitLab updates `updated_at` on each transition
        at=None if ours == "updated" else instant(data, "object_attributes.updated_at"),
    )
    return Translation(deliveries=[Delivery(key, [event])])


def _release(key: str, data: dict[str, Any]) -> Translation:
    action = get(data, "action", required=False)
    if action is None:
        action = get(data, "object_attributes.action", required=False)
    action = text(action, "action", optional=True, max_len=100)
    if action != "create":
        return Translation(ignored=f"release action {action!r}")
    event = events.release_published(
        repository_url(get(data, "project.git_http_url"), "project.git_http_url"),
        tag=_field(data, "tag"),
        name=_field(data, "name", optional=True),
        url=_field(data, "url", optional=True),
    )
    return Translation(deliveries=[Delivery(key, [event])])
