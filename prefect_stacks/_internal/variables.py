"""Listing Prefect Variables by tag, the one way: the ledger and watcher state both keep
one Variable per item and must never act on a partial listing."""

from __future__ import annotations

from typing import Any

from prefect.client.orchestration import SyncPrefectClient

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
