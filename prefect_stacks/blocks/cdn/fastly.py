"""The ``FastlyService`` block, its client and the ``purge_fastly`` task."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import Field, SecretStr, field_validator

from prefect_stacks._internal.http import HttpClient
from prefect_stacks.blocks.cdn.report import (
    Batch,
    CdnBlock,
    CdnReport,
    batch_label,
    chunks,
    described,
    run_calls,
)
from prefect_stacks.exceptions import CdnError

FASTLY_BATCH_LIMIT = 256


def _fastly_said(data: Any) -> str:
    if isinstance(data, dict):
        parts = [str(data[k]) for k in ("msg", "detail") if data.get(k)]
        return ": ".join(parts)[:500]
    return str(data or "")[:300]


def _fastly_hint(status: int, codes: set[int]) -> str:
    return {
        401: "set the block's api_token to a valid Fastly API token",
        403: "the block's api_token lacks the scope: purge_all for purge all, purge_select "
        "for surrogate keys",
        404: "no such service: check the block's service_id",
    }.get(status, "")


class FastlyService(CdnBlock):
    """A Fastly service whose cache cache-flush purges (all, or by surrogate key) with an
    API token that has the purge_all / purge_select scope.

    Example:
        ```python
        from prefect_stacks.blocks.cdn.fastly import FastlyService

        service = FastlyService.load("BLOCK_NAME")
        report = service.purge(keys=["product-42"])
        print(report.summary())
        ```
    """

    _block_type_name = "Fastly Service"
    _block_type_slug = "fastly-service"
    _logo_url = "https://upload.wikimedia.org/wikipedia/commons/2/29/Fastly_logo.png"
    _documentation_url = "https://www.fastly.com/documentation/reference/api/purging/"
    _description = "A Fastly service that cache-flush purges (all, or by surrogate key)."

    service_id: str = Field(default=..., description="The Fastly service id.")
    api_token: SecretStr = Field(
        default=...,
        description="API token with the purge_select scope (and purge_all to purge all).",
    )
    api_url: str = Field(
        default="https://api.fastly.com",
        description="Fastly API root; change it only for a proxy or a test double.",
    )
    soft_purge: bool = Field(
        default=False,
        description="Soft purge surrogate keys (mark stale, serve while revalidating); "
        "purge all is always hard.",
    )
    timeout: float = Field(default=30.0, gt=0, description="Seconds per API request.")
    max_rate_limit_wait: float = Field(
        default=300.0,
        ge=0,
        description="Seconds of 429 Retry-After waits one purge may spend before it fails.",
    )

    @field_validator("service_id")
    @classmethod
    def _check_service(cls, value: str) -> str:
        value = value.strip()
        if not value or "/" in value:
            raise ValueError(f"{value!r} is not a Fastly service id")
        return value

    def label(self, name: str | None = None) -> str:
        shown = name or getattr(self, "_block_document_name", None) or "(unsaved)"
        return f"Fastly service {shown!r} ({self.service_id})"

    def get_client(self, name: str | None = None, *, soft: bool | None = None) -> FastlyClient:
        token = self.api_token.get_secret_value().strip()
        service = self.label(name)
        headers = {"Fastly-Key": token, "Accept": "application/json"}
        if self.soft_purge if soft is None else soft:
            headers["Fastly-Soft-Purge"] = "1"
        return FastlyClient(
            HttpClient(
                base_url=self.api_url,
                service=service,
                headers=headers,
                secrets=[token],
                timeout=self.timeout,
                max_retries=3,
                retry_backoff=1.0,
                max_rate_limit_wait=self.max_rate_limit_wait,
                error_class=CdnError,
                describe_error=described(service, _fastly_hint, _fastly_said),
            ),
            self.service_id,
        )

    def purge(
        self, *, purge_all: bool = False, keys: list[str] | None = None, name: str | None = None
    ) -> CdnReport:
        """Purge all, or the surrogate keys (batches of 256); every call in the report."""
        report = CdnReport(self.label(name))
        if purge_all:
            with self.get_client(name, soft=False) as client:
                return run_calls(report, [("everything", [], lambda _: client.purge_all())])
        items = [k.strip() for k in keys or [] if k and k.strip()]
        groups = chunks(items, FASTLY_BATCH_LIMIT)
        with self.get_client(name) as client:
            batches: list[Batch] = [
                (
                    batch_label("surrogate keys", i, c, len(items), FASTLY_BATCH_LIMIT),
                    c,
                    client.purge_keys,
                )
                for i, c in enumerate(groups)
            ]
            return run_calls(report, batches)


class FastlyClient:
    def __init__(self, http: HttpClient, service_id: str) -> None:
        self.http = http
        self.base = f"/service/{quote(service_id, safe='')}"

    def __enter__(self) -> FastlyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def purge_all(self) -> str:
        result = self.http.request(
            "POST", f"{self.base}/purge_all", idempotent=True, what="purging all"
        )
        return _fastly_id(result.data)

    def purge_keys(self, keys: list[str]) -> str:
        """Purge surrogate keys: one key by its own endpoint, several in one batch call;
        the purge id (ids, for a batch: ``key=id`` pairs)."""
        if len(keys) == 1:
            result = self.http.request(
                "POST",
                f"{self.base}/purge/{quote(keys[0], safe='')}",
                idempotent=True,
                what=f"purging surrogate key {keys[0]}",
            )
            return _fastly_id(result.data)
        result = self.http.request(
            "POST",
            f"{self.base}/purge",
            json_body={"surrogate_keys": keys},
            idempotent=True,
            what=f"purging {len(keys)} surrogate keys",
        )
        data = result.data if isinstance(result.data, dict) else {}
        missing = [k for k in keys if k not in data]
        if missing:
            raise CdnError(
                f"{self.http.service}: the batch purge answered no purge id for "
                f"{', '.join(missing)}; purge them again",
                status=result.status,
            )
        return ", ".join(f"{k}={data[k]}" for k in keys)


def _fastly_id(data: Any) -> str:
    if isinstance(data, dict) and data.get("status") == "ok":
        return str(data.get("id") or "ok")
    raise CdnError(f"Fastly answered {str(data)[:200]!r} instead of status ok")


# ------------------------------------------------------------------ tasks
@task(cache_policy=NO_CACHE, task_run_name="fastly-purge-{name}")
def purge_fastly(service: FastlyService, name: str, purge_all: bool, keys: list[str]) -> CdnReport:
    """Purge a Fastly service (all, or surrogate keys); the report of every call."""
    return service.purge(purge_all=purge_all, keys=keys, name=name)
