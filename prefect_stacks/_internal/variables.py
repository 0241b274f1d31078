"""Prefect Variables, the one way: listing them by tag (the ledger and watcher state both
keep one Variable per item and must never act on a partial listing), and writing one
whether or not it exists yet (:func:`upsert_variable`)."""

from __future__ import annotations

from typing import Any

import httpx
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.actions import VariableCreate, VariableUpdate

from prefect_stacks.exceptions import PartialListing

PAGE = 200


def tagged_variable_values(client: SyncPrefectClient, tag: str) -> list[Any]:
    """Values of every Variable tagged ``tag``, paged through ``POST /variables/filter``
    (sorted by name) and checked against ``POST /variables/count``: fewer than counted
    raises :class:`PartialListing` (HTTP errors propagate)."""
    body: dict[str, Any] = {"variables": {"tags": {"all_": [tag]}}}
    expected = client.request("POST", "/variables/count", json=body).json()
    values: list[Any] = []
    offset = 0
    while True:
        page = client.request(
            "POST",
            "/variables/filter",
            json={**body, "offset": offset, "limit": PAGE, "sort": "NAME_ASC"},
        ).json()
        values.extend(item["value"] for item in page)
        if len(page) < PAGE:
            break
        offset += PAGE
    if len(values) < expected:
        raise PartialListing(len(values), expected)
    return values


def upsert_variable(client: SyncPrefectClient, name: str, value: Any, tags: list[str]) -> None:
    """Create Variable ``name`` or replace its value and tags (a create that loses a race
    with another writer, 409, becomes an update)."""
    if client.read_variable_by_name(name) is None:
        try:
            client.create_variable(VariableCreate(name=name, value=value, tags=tags))
            return
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code != 409:
                raise
    client.update_variable(VariableUpdate(name=name, value=value, tags=tags))


class VariableRecord:
    """One Prefect Variable holding one JSON record about one thing: its name is
    ``prefix`` + a readable slug of ``parts`` + a digest of them (so two things never
    share a record, and the name stays within Prefect's rules), tagged ``tag``."""

    def __init__(self, prefix: str, tag: str, *parts: str) -> None:
        import hashlib
        import re

        slug = re.sub(r"[^a-z0-9_-]+", "-", "-".join(parts).lower()).strip("-")[:200]
        digest = hashlib.sha1("\n".join(parts).encode()).hexdigest()[:6]
        self.name = f"{prefix}{slug}-{digest}"
        self.tag = tag

    def load(self) -> Any:
        """The record's value, or None when there is none."""
        from prefect import get_client

        with get_client(sync_client=True) as client:
            variable = client.read_variable_by_name(self.name)
        return variable.value if variable is not None else None

    def save(self, value: Any) -> None:
        from prefect import get_client

        with get_client(sync_client=True) as client:
            upsert_variable(client, self.name, value, [self.tag])

    def clear(self) -> None:
        from prefect import get_client

        with get_client(sync_client=True) as client:
            if client.read_variable_by_name(self.name) is not None:
                client.delete_variable_by_name(self.name)
