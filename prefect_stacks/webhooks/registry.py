"""Docker Distribution (``registry:2``) notifications: ``Authorization: Bearer <secret>``
(set in the endpoint's ``headers`` in the registry's ``config.yml``), body
``{"events": [...]}`` as ``application/vnd.docker.distribution.events.v1+json``.

Each ``push`` of a manifest (or image index) by tag becomes ``stacks.image.updated`` for
``<registry>/<repository>:<tag>`` at the pushed digest; blob pushes, pushes by digest,
pulls, mounts and deletes are ignored. Every event in the envelope is its own delivery,
deduplicated by its ``id`` (Distribution retries an event with the same id until it is
answered 2xx/3xx).
"""

from __future__ import annotations

from starlette.datastructures import Headers

from prefect_stacks import events
from prefect_stacks.blocks.webhooks import WebhookSource
from prefect_stacks.exceptions import BadRequest, Unauthorized
from prefect_stacks.webhooks.common import (
    MISSING_SIGNATURE,
    Delivery,
    Translation,
    check_token,
    expect_json,
    get,
    header,
    image_digest,
    image_repository,
    image_tag,
    obj,
    parse_json,
    registry_host,
    text,
)

EVENTS_MEDIA_TYPE = "application/vnd.docker.distribution.events.v1+json"
# Image indexes are manifests too (a multi-platform tag points at one).
INDEX_MEDIA_TYPES = {"application/vnd.oci.image.index.v1+json"}
MAX_EVENTS = 1000
DELIVERY_HEADERS: tuple[str, ...] = ()  # the ids are in the body, one per event


def verify(source: WebhookSource, headers: Headers, body: bytes, now: float) -> None:
    value = header(headers, "authorization")
    if not value:
        raise Unauthorized(MISSING_SIGNATURE)
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise Unauthorized(MISSING_SIGNATURE)
    check_token(token.strip(), source.secret.get_secret_value())


def is_manifest(media_type: str) -> bool:
    kind = media_type.lower()
    return "manifest" in kind or kind in INDEX_MEDIA_TYPES


def translate(source: WebhookSource, headers: Headers, body: bytes) -> Translation:
    expect_json(headers, EVENTS_MEDIA_TYPE, "application/json")
    envelope = obj(parse_json(body), "body")
    items = get(envelope, "events")
    if not isinstance(items, list):
        raise BadRequest("events: expected a list")
    if len(items) > MAX_EVENTS:
        raise BadRequest(f"events: more than {MAX_EVENTS} in one notification")
    deliveries: list[Delivery] = []
    skipped: list[str] = []
    for index, item in enumerate(items):
        where = f"events[{index}]"
        event = obj(item, where)
        key = text(get(event, "id"), f"{where}.id", max_len=200)
        action = text(get(event, "action", required=False), f"{where}.action", optional=True)
        if action != "push":
            skipped.append(action or "no action")
            continue
        target = obj(get(event, "target"), f"{where}.target")
        media = text(
            get(target, "mediaType", required=False), f"{where}.target.mediaType", optional=True
        )
        tag = get(target, "tag", required=False)
        if not is_manifest(media):
            skipped.append("blob push")
            continue
        if not tag:
            skipped.append("push by digest")
            continue
        if source.registry:
            registry = source.registry
        else:
            registry = registry_host(get(event, "request.host"), f"{where}.request.host")
        image = events.image_updated(
            registry,
            image_repository(get(target, "repository"), f"{where}.target.repository"),
            image_tag(tag, f"{where}.target.tag"),
            image_digest(get(target, "digest"), f"{where}.target.digest"),
        )
        deliveries.append(Delivery(key, [image]))
    if not deliveries:
        reasons = ", ".join(sorted(set(skipped))) or "no events"
        return Translation(ignored=f"no tagged manifest push ({reasons[:200]})")
    return Translation(deliveries=deliveries)
