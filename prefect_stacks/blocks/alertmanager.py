"""The ``Alertmanager`` block: a Prometheus Alertmanager (API v2) and a client over the one
HTTP helper. A deploy's watch window asks it which alerts are firing (active, neither
silenced nor inhibited) with the labels it was given; ``monitoring-silence`` creates and
expires silences.

Matchers are Alertmanager's own ``filter`` syntax, one per label: ``severity="critical"``
(equal), ``alertname=~"Http5xx|Latency"`` (regex), ``!=`` and ``!~``. A plain
``{"severity": "critical"}`` mapping means equality.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from prefect import task
from pydantic import Field, SecretStr, field_validator

from prefect_stacks._internal.http import HttpClient, HttpResult
from prefect_stacks._internal.process import default_logger
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


def silence_matchers(labels: dict[str, str] | list[str]) -> list[dict[str, Any]]:
    """The API v2 form of a silence's matchers (``name``, ``value``, ``isRegex``,
    ``isEqual``), from the same mapping or matcher strings :func:`matchers_of` takes."""
    found = []
    for item in matchers_of(labels):
        name, op, quoted = _MATCHER_RE.match(item).groups()  # type: ignore[union-attr]
        value = re.sub(r"\\(.)", r"\1", quoted)
        found.append(
            {"name": name, "value": value, "isRegex": "~" in op, "isEqual": not op.startswith("!")}
        )
    return found


def _quote(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"')


class Alertmanager(StacksBlock):
    """A Prometheus Alertmanager that prefect-stacks reads firing alerts from (a deploy's
    watch window) and sets silences in (``monitoring-silence``), through its API v2.

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
    _description = (
        "A Prometheus Alertmanager (API v2): firing alerts to watch during a deploy, and "
        "silences to set around one."
    )

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

    def firing(
        self, labels: dict[str, str] | list[str], *, include_silenced: bool = False
    ) -> list[dict[str, Any]]:
        """Alerts firing now (active, not inhibited, and not silenced unless
        ``include_silenced``: a deploy that silenced the pager still watches) matching
        ``labels``."""
        result = self.http.request(
            "GET",
            "/api/v2/alerts",
            params={
                "active": True,
                "silenced": include_silenced,
                "inhibited": False,
                "unprocessed": False,
                "filter": matchers_of(labels),
            },
            conditional=False,
            what="listing firing alerts",
        )
        alerts = result.data if isinstance(result.data, list) else []
        states = ("active", "suppressed") if include_silenced else ("active",)
        return [a for a in alerts if (a.get("status") or {}).get("state") in states]

    def silences(self, labels: dict[str, str] | list[str]) -> list[dict[str, Any]]:
        """Every silence (active, pending and expired) with matchers that include these."""
        result = self.http.request(
            "GET",
            "/api/v2/silences",
            params={"filter": matchers_of(labels)},
            conditional=False,
            what="listing silences",
        )
        return result.data if isinstance(result.data, list) else []

    def active_silences(self, labels: dict[str, str] | list[str]) -> list[dict[str, Any]]:
        """The active or pending silences with exactly these matchers (no more, no less)."""
        wanted = silence_matchers(labels)
        return [
            s
            for s in self.silences(labels)
            if (s.get("status") or {}).get("state") in ("active", "pending")
            and _same_matchers(s.get("matchers") or [], wanted)
        ]

    def silence(self, silence_id: str) -> dict[str, Any] | None:
        """The silence ``silence_id``, or None when Alertmanager does not know it."""
        try:
            result = self.http.request(
                "GET", f"/api/v2/silence/{silence_id}", conditional=False, what="reading a silence"
            )
        except AlertmanagerError as exc:
            if exc.status == 404:
                return None
            raise
        return result.data if isinstance(result.data, dict) else None

    def put_silence(self, silence: dict[str, Any]) -> str:
        """Create a silence (or, with its ``id``, update that one); returns its id."""
        result = self.http.request(
            "POST", "/api/v2/silences", json_body=silence, what="creating a silence"
        )
        return str((result.data or {}).get("silenceID", ""))

    def expire_silence(self, silence_id: str) -> bool:
        """Expire the silence; False when it was already expired or is unknown (done
        already is success). Alertmanager answers 500 for an unknown id, so it is read
        first."""
        found = self.silence(silence_id)
        if found is None or (found.get("status") or {}).get("state") == "expired":
            return False
        self.http.request("DELETE", f"/api/v2/silence/{silence_id}", what="expiring a silence")
        return True


def _same_matchers(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    def key(m: dict[str, Any]) -> tuple:
        return (m.get("name"), m.get("value"), bool(m.get("isRegex")), m.get("isEqual", True))

    return sorted(map(key, a)) == sorted(map(key, b))


def _load(block_name: str) -> Alertmanager:
    from prefect_stacks.blocks.base import load_block

    return load_block(Alertmanager, block_name, create="create it (Blocks > Alertmanager)")


@task(name="create-silence", task_run_name="silence {labels}")
def create_silence(
    block_name: str,
    labels: dict[str, str] | list[str],
    duration_minutes: float,
    author: str,
    comment: str,
) -> dict[str, Any]:
    """Silence the alerts matching ``labels`` for ``duration_minutes`` from now. An active
    silence with exactly these matchers by the same author is extended rather than
    doubled (a retried run sets one silence). Returns ``{"id", "ends_at", "url"}``."""
    from datetime import datetime, timedelta, timezone

    if not comment.strip():
        raise ConfigurationError("a silence needs a comment: say why (Alertmanager requires one)")
    matchers = silence_matchers(labels)
    if not matchers:
        raise ConfigurationError('a silence needs at least one matcher, e.g. service="shop"')
    block = _load(block_name)
    now = datetime.now(timezone.utc)
    ends = now + timedelta(minutes=duration_minutes)
    silence: dict[str, Any] = {
        "matchers": matchers,
        "startsAt": now.isoformat(),
        "endsAt": ends.isoformat(),
        "createdBy": author,
        "comment": comment,
    }
    log = default_logger()
    with block.get_client() as client:
        for existing in client.active_silences(labels):
            if existing.get("createdBy") == author:
                silence["id"] = existing["id"]
                silence["startsAt"] = existing.get("startsAt") or silence["startsAt"]
                log.info("extending silence %s (same matchers, same author)", existing["id"])
                break
        silence_id = client.put_silence(silence)
    log.info("silenced %s until %s (silence %s)", matchers_of(labels), ends.isoformat(), silence_id)
    return {
        "id": silence_id,
        "ends_at": ends.isoformat(),
        "url": f"{block.url}/#/silences/{silence_id}",
    }


@task(name="expire-silence", task_run_name="expire silence {silence_id}")
def expire_silence(block_name: str, silence_id: str) -> bool:
    """Expire the silence; True when it was active, False when already expired or
    unknown (expiring is idempotent)."""
    with _load(block_name).get_client() as client:
        expired = client.expire_silence(silence_id)
    default_logger().info(
        "silence %s %s", silence_id, "expired" if expired else "was already expired or unknown"
    )
    return expired
