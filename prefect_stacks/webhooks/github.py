"""GitHub webhooks: ``X-Hub-Signature-256: sha256=<HMAC-SHA256 of the raw body>``,
``X-GitHub-Event``, ``X-GitHub-Delivery`` (kept by redeliveries), JSON or form-encoded
(``payload=``) bodies.

- ``ping``: no event (200);
- ``push`` to ``refs/heads/<branch>``: ``stacks.git.commit``;
- ``pull_request`` opened/reopened, synchronize, closed (merged or not):
  ``stacks.pull-request.opened``, ``updated``, ``merged``, ``closed``; the eligibility
  changes ready_for_review, labeled, unlabeled and edited with a new base (``changes.base``)
  on an open pull request: ``opened``, as the watcher emits when one starts to match;
- ``release`` published: ``stacks.release.published``.

Anything else (tag pushes, branch deletions, other actions and events) is ignored (202).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from starlette.datastructures import Headers

from prefect_stacks import events
from prefect_stacks.blocks.webhooks import WebhookSource
from prefect_stacks.exceptions import BadRequest, UnsupportedMediaType
from prefect_stacks.webhooks.common import (
    Delivery,
    Translation,
    body_digest,
    boolean,
    branch_of,
    check_signature,
    delivery_id,
    get,
    header,
    hmac_hex,
    instant,
    media_type,
    number,
    obj,
    parse_json,
    pushed_commit,
    repository_url,
    sha,
    text,
)

SIGNATURE_HEADER = "X-Hub-Signature-256"
EVENT_HEADER = "X-GitHub-Event"
DELIVERY_HEADER = "X-GitHub-Delivery"
DELIVERY_HEADERS = (DELIVERY_HEADER,)

# GitHub action -> our event. The eligibility changes (a draft marked ready, labels, a
# new base) are `opened`: what the watcher emits when a pull request starts to match its
# filters; the watcher decides, by its own filters, whether anything happens.
PR_ACTIONS = {
    "opened": "opened",
    "reopened": "opened",
    "ready_for_review": "opened",
    "labeled": "opened",
    "unlabeled": "opened",
    "edited": "opened",  # only when the base changed (changes.base)
    "synchronize": "updated",
}


def signature(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value GitHub sends for ``body``."""
    return "sha256=" + hmac_hex(secret, body)


def verify(source: WebhookSource, headers: Headers, body: bytes, now: float) -> None:
    expected = hmac_hex(source.secret.get_secret_value(), body)
    check_signature(header(headers, SIGNATURE_HEADER), expected)


def _payload(headers: Headers, body: bytes) -> dict[str, Any]:
    kind = media_type(headers)
    if kind == "application/json":
        data = parse_json(body)
    elif kind == "application/x-www-form-urlencoded":
        try:
            fields = parse_qs(
                body.decode("utf-8"), keep_blank_values=True, errors="strict", max_num_fields=20
            )
        except ValueError:  # bad UTF-8 (also percent-encoded), too many fields
            raise BadRequest("form body is not readable") from None
        values = fields.get("payload", [])
        if len(values) != 1:
            raise BadRequest("payload: expected one form field named payload")
        data = parse_json(values[0])
    else:
        raise UnsupportedMediaType(
            f"Content-Type {kind or '(none)'!r} is not accepted; send application/json "
            "or application/x-www-form-urlencoded"
        )
    return dict(obj(data, "body"))


def translate(source: WebhookSource, headers: Headers, body: bytes) -> Translation:
    kind = header(headers, EVENT_HEADER)
    if not kind:
        raise BadRequest(f"missing {EVENT_HEADER} header")
    raw_id = header(headers, DELIVERY_HEADER)
    key = delivery_id(raw_id, DELIVERY_HEADER) if raw_id is not None else body_digest(body)
    data = _payload(headers, body)
    if kind == "ping":
        return Translation(pong=True)
    if kind == "push":
        return _push(key, data)
    if kind == "pull_request":
        return _pull_request(key, data)
    if kind == "release":
        return _release(key, data)
    return Translation(ignored=f"GitHub event {text(kind, EVENT_HEADER, max_len=100)!r}")


def _push(key: str, data: dict[str, Any]) -> Translation:
    ref = text(get(data, "ref"), "ref")
    branch = branch_of(ref, "ref")
    if branch is None:
        what = "tag push" if ref.startswith("refs/tags/") else f"push to {ref[:100]!r}"
        return Translation(ignored=what)
    if boolean(get(data, "deleted", required=False), "deleted", default=False):
        return Translation(ignored="branch deleted")
    return pushed_commit(key, data, branch, "repository.clone_url")


def _pull_request(key: str, data: dict[str, Any]) -> Translation:
    action = text(get(data, "action"), "action", max_len=100)
    obj(get(data, "pull_request"), "pull_request")
    if action == "closed":
        merged = get(data, "pull_request.merged", required=False)
        ours = "merged" if boolean(merged, "pull_request.merged", default=False) else "closed"
    elif action == "edited" and get(data, "changes.base", required=False) is None:
        return Translation(ignored="pull_request edited (title or body; the base is the same)")
    elif action in PR_ACTIONS:
        ours = PR_ACTIONS[action]
    else:
        return Translation(ignored=f"pull_request action {action!r}")
    state = get(data, "pull_request.state", required=False)
    if ours in ("opened", "updated") and state == "closed":
        return Translation(ignored=f"pull_request {action!r} on a closed pull request")
    field = events.PR_TRANSITION_FIELDS.get(ours)  # when this transition happened
    raw_number = get(data, "number", required=False)
    if raw_number is None:
        raw_number = get(data, "pull_request.number")
    event = events.pull_request(
        ours,
        repository=repository_url(get(data, "repository.clone_url"), "repository.clone_url"),
        number=number(raw_number, "number"),
        head_ref=_field(data, "pull_request.head.ref"),
        head_sha=sha(get(data, "pull_request.head.sha"), "pull_request.head.sha"),  # type: ignore[arg-type]
        base_ref=_field(data, "pull_request.base.ref"),
        title=_field(data, "pull_request.title", optional=True),
        author=_field(data, "pull_request.user.login", optional=True),
        url=_field(data, "pull_request.html_url", optional=True),
        at=instant(data, f"pull_request.{field}" if field else None),
    )
    return Translation(deliveries=[Delivery(key, [event])])


def _field(data: dict[str, Any], path: str, *, optional: bool = False) -> str:
    return text(get(data, path, required=not optional), path, optional=optional)


def _release(key: str, data: dict[str, Any]) -> Translation:
    action = text(get(data, "action"), "action", max_len=100)
    if action != "published":
        return Translation(ignored=f"release action {action!r}")
    obj(get(data, "release"), "release")
    event = events.release_published(
        repository_url(get(data, "repository.clone_url"), "repository.clone_url"),
        tag=_field(data, "release.tag_name"),
        name=_field(data, "release.name", optional=True),
        url=_field(data, "release.html_url", optional=True),
        prerelease=boolean(
            get(data, "release.prerelease", required=False), "release.prerelease", default=False
        ),
    )
    return Translation(deliveries=[Delivery(key, [event])])
