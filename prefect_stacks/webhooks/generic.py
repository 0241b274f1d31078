"""The generic signed scheme, for senders without webhooks of their own (a CI job, a
script, another registry):

- ``X-Stacks-Timestamp``: unix seconds; refused when more than 300 s from the receiver's
  clock (the replay window);
- ``X-Stacks-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<raw body>">``;
- ``X-Stacks-Delivery``: an id, the same when the sender retries;
- body ``{"event": "<name>", "data": {...}}`` where ``data`` holds the keyword arguments of
  the event's builder in :mod:`prefect_stacks.events`.

Only change events can be sent (``stacks.git.commit``, ``stacks.pull-request.*``,
``stacks.image.updated``, ``stacks.release.published``); ``stacks.environment.*`` are
prefect-stacks' own and are refused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect.events import Event
from starlette.datastructures import Headers

from prefect_stacks import events
from prefect_stacks.blocks.webhooks import WebhookSource
from prefect_stacks.exceptions import BadRequest, Unauthorized
from prefect_stacks.webhooks.common import (
    MISSING_SIGNATURE,
    Delivery,
    Translation,
    boolean,
    check_signature,
    delivery_id,
    expect_json,
    header,
    hmac_hex,
    image_digest,
    image_repository,
    image_tag,
    number,
    obj,
    parse_json,
    registry_host,
    repository_url,
    sha,
    text,
)

SIGNATURE_HEADER = "X-Stacks-Signature"
TIMESTAMP_HEADER = "X-Stacks-Timestamp"
DELIVERY_HEADER = "X-Stacks-Delivery"
DELIVERY_HEADERS = (DELIVERY_HEADER,)
REPLAY_WINDOW_SECONDS = 300
PR_PREFIX = "stacks.pull-request."


def signature(secret: str, timestamp: str | int, body: bytes) -> str:
    """The ``X-Stacks-Signature`` value for ``body`` sent at ``timestamp``."""
    return "sha256=" + hmac_hex(secret, f"{timestamp}.".encode(), body)


def verify(source: WebhookSource, headers: Headers, body: bytes, now: float) -> None:
    timestamp = header(headers, TIMESTAMP_HEADER)
    given = header(headers, SIGNATURE_HEADER)
    if timestamp is None or given is None:
        raise Unauthorized(MISSING_SIGNATURE)
    expected = hmac_hex(source.secret.get_secret_value(), timestamp.encode("latin-1") + b".", body)
    check_signature(given, expected)
    # authentic from here: the sender may learn that its clock is off
    stamp = timestamp.strip()
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12):
        raise Unauthorized(f"{TIMESTAMP_HEADER}: expected unix seconds")
    if abs(now - int(stamp)) > REPLAY_WINDOW_SECONDS:
        raise Unauthorized(
            f"{TIMESTAMP_HEADER} is more than {REPLAY_WINDOW_SECONDS} s from the receiver's "
            "clock (replay window)"
        )


# --------------------------------------------------------------------------- builders

Check = Callable[[Any, str], Any]


def _opt_text(value: Any, path: str) -> str:
    return text(value, path, optional=True)


def _opt_sha(value: Any, path: str) -> str | None:
    return sha(value, path, optional=True)


def _opt_bool(value: Any, path: str) -> bool:
    return boolean(value, path, default=False)


# builder, {field: (check, required)}
_GIT: dict[str, tuple[Check, bool]] = {
    "repository": (repository_url, True),
    "branch": (text, True),
    "sha": (sha, True),
    "before": (_opt_sha, False),
}
_PR: dict[str, tuple[Check, bool]] = {
    "repository": (repository_url, True),
    "number": (number, True),
    "head_ref": (text, True),
    "head_sha": (sha, True),
    "base_ref": (text, True),
    "title": (_opt_text, False),
    "author": (_opt_text, False),
    "url": (_opt_text, False),
}
_IMAGE: dict[str, tuple[Check, bool]] = {
    "registry": (registry_host, True),
    "repository": (image_repository, True),
    "tag": (image_tag, True),
    "digest": (image_digest, True),
}
_RELEASE: dict[str, tuple[Check, bool]] = {
    "repository": (repository_url, True),
    "tag": (text, True),
    "name": (_opt_text, False),
    "url": (_opt_text, False),
    "prerelease": (_opt_bool, False),
}


def accepted_events() -> list[str]:
    """The event names the generic endpoint takes (from the vocabulary)."""
    names = {"stacks.git.commit", "stacks.image.updated", "stacks.release.published"}
    names |= {n for n in events.VOCABULARY if n.startswith(PR_PREFIX)}
    return sorted(n for n in names if n in events.VOCABULARY)


def _arguments(data: dict[str, Any], fields: dict[str, tuple[Check, bool]]) -> dict[str, Any]:
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise BadRequest(
            f"data.{str(unknown[0])[:100]}: unknown field; expected {', '.join(fields)}"
        )
    kwargs: dict[str, Any] = {}
    for name, (check, required) in fields.items():
        if name not in data:
            if required:
                raise BadRequest(f"data.{name}: missing")
            continue
        kwargs[name] = check(data[name], f"data.{name}")
    return kwargs


def build(name: str, data: dict[str, Any]) -> Event:
    if name == "stacks.git.commit":
        return events.git_commit(**_arguments(data, _GIT))
    if name.startswith(PR_PREFIX) and name in events.VOCABULARY:
        return events.pull_request(name.removeprefix(PR_PREFIX), **_arguments(data, _PR))
    if name == "stacks.image.updated":
        return events.image_updated(**_arguments(data, _IMAGE))
    if name == "stacks.release.published":
        return events.release_published(**_arguments(data, _RELEASE))
    if name.startswith("stacks.environment."):
        raise BadRequest(f"event: {name!r} is prefect-stacks' own and cannot be sent")
    raise BadRequest(f"event: {name[:100]!r} is not one of {', '.join(accepted_events())}")


def translate(source: WebhookSource, headers: Headers, body: bytes) -> Translation:
    key = delivery_id(header(headers, DELIVERY_HEADER), DELIVERY_HEADER)
    expect_json(headers, "application/json")
    message = obj(parse_json(body), "body")
    unknown = sorted(set(message) - {"event", "data"})
    if unknown:
        raise BadRequest(f"{str(unknown[0])[:100]}: unknown field; expected event and data")
    name = text(message.get("event"), "event", max_len=200)
    data = dict(obj(message.get("data"), "data"))
    return Translation(deliveries=[Delivery(key, [build(name, data)])])
