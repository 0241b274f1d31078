"""The ``Alertmanager`` block: a Prometheus Alertmanager (API v2) and a client over the one
HTTP helper. A deploy's watch window asks it which alerts are firing (active, neither
silenced nor inhibited) with the labels it was given.

Matchers are Alertmanager's own ``filter`` syntax, one per label: ``severity="critical"``
(equal), ``alertname=~"Http5xx|Latency"`` (regex), ``!=`` and ``!~``. A plain
``{"severity": "critical"}`` mapping means equality.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from prefect_stacks._internal.http import HttpClient, HttpResult
from prefect_stacks.blocks.base import StacksBlock
from prefect_stacks.exceptions import AlertmanagerError, ConfigurationError

_MATCHER_RE = re.compile(r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"(.*)"\s*$')


def matchers_of(labels: dict[str, str] | list[str]) -> list[str]:
    """Alertmanager ``filter`` values: ``name="value"`` for a mapping, or matcher strings
    as given (checked)."""
    if isinstance(labels, dict):
        items = [f'{k}="{_quote(v)}"' for k, v in sorted(labels.items())]
    else:
        items = list(labels)
    for item in items:
        if not _MATCHER_RE.match(item):
            raise ConfigurationError(
                f'{item!r} is not an Alertmanager matcher: write name="value" '
                '(or =~, !=, !~), e.g. severity="critical"'
            )
    return items


def _quote(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"')


class Alertmanager(StacksBlock):
    """A Prometheus Alertmanager that prefect-stacks reads firing alerts from (a deploy's
    watch window) through its API v2.

    Example:
        ```python
        from prefect_stacks.blocks.alertmanager import Alertmanager

        alertmanager = Alertmanager.load("BLOCK_NAME")
        with alertmanager.get_client() as client:
            print(client.firing({"severity": "critical", "service": "shop"}))
        ```
    """

    _block_type_name = "Alertmanager"
    _block_type_slug = "alertmanager"
    _logo_url = "https://prometheus.io/assets/prometheus_logo_grey.svg"
    _documentation_url = "https://prometheus.io/docs/alerting/latest/clients/"
    _description = "A Prometheus Alertmanager (API v2): firing alerts to watch during a deploy."

    url: str = Field(
        default=...,
        description="Base URL of the Alertmanager, e.g. `http://alertmanager.monitoring:9093`.",
    )
    bearer_token: SecretStr | None = Field(
        default=None,
        description="Token sent as `Authorization: Bearer` (a proxy in front of it); empty: none.",
    )
    timeout: float = Field(default=10.0, gt=0, description="Seconds per request.")

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{value!r} is not an http(s) URL of an Alertmanager")
        return value

    def get_client(self) -> AlertmanagerClient:
        token = self.bearer_token.get_secret_value() if self.bearer_token else None
        return AlertmanagerClient(
            HttpClient(
                base_url=self.url,
                service=f"Alertmanager {self.url}",
                headers={"Authorization": f"Bearer {token}"} if token else None,
                secrets=[token] if token else [],
                timeout=self.timeout,
                max_retries=2,
                retry_backoff=0.5,
                error_class=AlertmanagerError,
                describe_error=_describe(self.url),
            )
        )


def _describe(url: str):
    def describe(result: HttpResult, what: str) -> Exception:
        said = result.data if isinstance(result.data, str) else result.service_message()
        hint = {
            400: "Alertmanager refused the request: check the matchers",
            401: "set the block's bearer_token",
            403: "the block's bearer_token is not allowed",
            404: "no API v2 there: the block's url should be the Alertmanager root",
        }.get(result.status, "")
        return AlertmanagerError(
            f"Alertmanager {url}: {what} answered {result.status}"
            + (f" ({str(said)[:300]})" if said else "")
            + (f"; {hint}" if hint else ""),
            status=result.status,
            method=result.method,
            url=result.url,
        )

    return describe


class AlertmanagerClient:
    def __init__(self, http: HttpClient) -> None:
        self.http = http

    def __enter__(self) -> AlertmanagerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def firing(self, labels: dict[str, str] | list[str]) -> list[dict[str, Any]]:
        """Alerts firing now (active, not silenced, not inhibited) matching ``labels``."""
        result = self.http.request(
            "GET",
            "/api/v2/alerts",
            params={
                "active": True,
                "silenced": False,
                "inhibited": False,
                "unprocessed": False,
                "filter": matchers_of(labels),
            },
            conditional=False,
            what="listing firing alerts",
        )
        alerts = result.data if isinstance(result.data, list) else []
        return [a for a in alerts if (a.get("status") or {}).get("state") == "active"]
