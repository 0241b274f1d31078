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
