"""The ``CloudflareZone`` block, its client and the ``purge_cloudflare`` task."""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import quote

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import Field, SecretStr, field_validator

from prefect_stacks._internal.http import HttpClient
from prefect_stacks.blocks.cdn.report import (
    CLOUDFLARE_TOKEN_CODES,
    Batch,
    CdnBlock,
    CdnReport,
    batch_label,
    chunks,
    described,
    run_calls,
)
from prefect_stacks.exceptions import CdnError

CLOUDFLARE_KINDS = ("files", "tags", "hosts", "prefixes")


# ------------------------------------------------------------------ Cloudflare
def _cloudflare_said(data: Any) -> str:
    if not isinstance(data, dict):
        return str(data or "")[:300]
    errors = data.get("errors") or []
    parts = []
    for e in errors if isinstance(errors, list) else []:
        if isinstance(e, dict):
            chain = e.get("error_chain") or []
            inner = "; ".join(f"{c.get('code')}: {c.get('message')}" for c in chain if c)
            parts.append(f"{e.get('code')}: {e.get('message')}" + (f" [{inner}]" if inner else ""))
    return "; ".join(parts)[:500]


class CloudflareZone(CdnBlock):
    """A Cloudflare zone whose cache cache-flush purges (everything, URLs, tags, hosts or
    prefixes) with an API token that has the zone's Cache Purge permission.

    Example:
        ```python
        from prefect_stacks.blocks.cdn.cloudflare import CloudflareZone

        zone = CloudflareZone.load("BLOCK_NAME")
        report = zone.purge(files=["https://www.example.com/"])
        print(report.summary())
        ```
    """

    _block_type_name = "Cloudflare Zone"
    _block_type_slug = "cloudflare-zone"
    _logo_url = "https://upload.wikimedia.org/wikipedia/commons/9/94/Cloudflare_Logo.png"
    _documentation_url = "https://developers.cloudflare.com/cache/how-to/purge-cache/"
    _description = "A Cloudflare zone that cache-flush purges through the purge_cache API."

    zone_id: str = Field(
        default=..., description="The zone's id (Overview page of the domain, API section)."
    )
    api_token: SecretStr = Field(
        default=..., description="API token with the Zone > Cache Purge permission on the zone."
    )
    api_url: str = Field(
        default="https://api.cloudflare.com/client/v4",
        description="Cloudflare API root; change it only for a proxy or a test double.",
    )
    max_per_call: int = Field(
        default=30,
        ge=1,
        le=500,
        description="URLs (and tags, hosts, prefixes) per purge_cache call: 30 on most "
        "plans per the public docs; raise it if your plan allows more.",
    )
    timeout: float = Field(default=30.0, gt=0, description="Seconds per API request.")
    max_rate_limit_wait: float = Field(
        default=300.0,
        ge=0,
        description="Seconds of 429 Retry-After waits one purge may spend before it fails.",
    )

    @field_validator("zone_id")
    @classmethod
    def _check_zone(cls, value: str) -> str:
        value = value.strip()
        if not value or "/" in value:
            raise ValueError(f"{value!r} is not a Cloudflare zone id")
        return value

    def label(self, name: str | None = None) -> str:
        shown = name or getattr(self, "_block_document_name", None) or "(unsaved)"
        return f"Cloudflare zone {shown!r} ({self.zone_id})"

    def get_client(self, name: str | None = None) -> CloudflareClient:
        token = self.api_token.get_secret_value().strip()
        service = self.label(name)
        return CloudflareClient(
            HttpClient(
                base_url=self.api_url,
                service=service,
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                secrets=[token],
                timeout=self.timeout,
                max_retries=3,
                retry_backoff=1.0,
                max_rate_limit_wait=self.max_rate_limit_wait,
                error_class=CdnError,
                describe_error=described(service, self._hint, _cloudflare_said),
            ),
            self.zone_id,
        )

    def _hint(self, status: int, codes: set[int]) -> str:
        if codes & CLOUDFLARE_TOKEN_CODES or status in (401, 403):
            return (
                "the API token was refused: set the block's api_token to a token with the "
                f"Zone > Cache Purge permission on zone {self.zone_id}"
            )
        if codes & {7000, 7003} or status == 404:
            return "no such zone: check the block's zone_id"
        if status == 400:
            return (
                "Cloudflare refused what was asked: check the URLs (absolute, on the zone) "
                f"and the block's max_per_call ({self.max_per_call}) against your plan's limit"
            )
        return ""

    def purge(
        self,
        *,
        everything: bool = False,
        files: list[str] | None = None,
        tags: list[str] | None = None,
        hosts: list[str] | None = None,
        prefixes: list[str] | None = None,
        name: str | None = None,
    ) -> CdnReport:
        """Purge, chunked to ``max_per_call``; the report holds every call's outcome."""
        asked = {"files": files, "tags": tags, "hosts": hosts, "prefixes": prefixes}
        report = CdnReport(self.label(name))
        with self.get_client(name) as client:
            if everything:
                return run_calls(report, [("everything", [], lambda _: client.purge_everything())])
            batches: list[Batch] = []
            for kind in CLOUDFLARE_KINDS:
                items = [i.strip() for i in asked[kind] or [] if i and i.strip()]
                size = self.max_per_call
                for index, chunk in enumerate(chunks(items, size)):
                    what = batch_label(kind, index, chunk, len(items), size)
                    batches.append((what, chunk, functools.partial(client.purge, kind)))
            return run_calls(report, batches)


class CloudflareClient:
    def __init__(self, http: HttpClient, zone_id: str) -> None:
        self.http = http
        self.path = f"/zones/{quote(zone_id, safe='')}/purge_cache"

    def __enter__(self) -> CloudflareClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def _post(self, body: dict[str, Any], what: str) -> str:
        result = self.http.request("POST", self.path, json_body=body, idempotent=True, what=what)
        data = result.data if isinstance(result.data, dict) else {}
        if not data.get("success", False):
            said = _cloudflare_said(data) or "success is not true"
            raise CdnError(
                f"{self.http.service}: {what} was not accepted ({said})",
                status=result.status,
                service_message=said,
                errors=data.get("errors") if isinstance(data.get("errors"), list) else None,
            )
        return str((data.get("result") or {}).get("id") or "")

    def purge_everything(self) -> str:
        """Purge every cached file of the zone; the purge id."""
        return self._post({"purge_everything": True}, "purging everything")

    def purge(self, kind: str, items: list[str]) -> str:
        """Purge ``items`` of one kind (files, tags, hosts, prefixes) in one call."""
        if kind not in CLOUDFLARE_KINDS:
            raise ValueError(kind)
        return self._post({kind: items}, f"purging {len(items)} {kind}")


# ------------------------------------------------------------------ Fastly
@task(cache_policy=NO_CACHE, task_run_name="cloudflare-purge-{name}")
def purge_cloudflare(
    zone: CloudflareZone,
    name: str,
    everything: bool = False,
    files: list[str] | None = None,
    tags: list[str] | None = None,
    hosts: list[str] | None = None,
    prefixes: list[str] | None = None,
) -> CdnReport:
    """Purge a Cloudflare zone (everything, or files/tags/hosts/prefixes); the report of
    every call (failures are in it, never raised: the flow tries every target first)."""
    return zone.purge(
        everything=everything, files=files, tags=tags, hosts=hosts, prefixes=prefixes, name=name
    )
