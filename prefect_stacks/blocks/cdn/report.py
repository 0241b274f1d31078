"""What both CDN blocks share: the base block (api_url, api_token checks), the report of a
purge (per URL, tag or key) and the error description."""

from __future__ import annotations

from abc import ABC
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr, field_validator

from prefect_stacks._internal.http import HttpResult
from prefect_stacks.blocks.base import StacksBlock
from prefect_stacks.exceptions import CdnError

# Cloudflare's codes for a missing, malformed or refused credential
CLOUDFLARE_TOKEN_CODES = {1000, 6003, 6100, 6101, 6102, 6103, 6111, 9106, 9109, 10000}


# ------------------------------------------------------------------ the report
@dataclass
class PurgeCall:
    """One purge API call: what it purged (``items``), and how it went."""

    what: str  # "everything", "files 1-30 of 45", "surrogate keys 1-2 of 2"
    items: list[str] = field(default_factory=list)
    purge_id: str | None = None
    error: str | None = None
    tried: bool = True

    @property
    def ok(self) -> bool:
        return self.tried and self.error is None


@dataclass
class CdnReport:
    """What one CDN target purged and what failed, call by call (and so item by item)."""

    target: str  # e.g. "Cloudflare zone 'prod' (023e105f…)"
    calls: list[PurgeCall] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.calls)

    def failures(self) -> list[str]:
        out = [
            f"{self.target}: {c.what}: {c.error.removeprefix(self.target + ': ')}"
            for c in self.calls
            if c.error
        ]
        skipped = [c.what for c in self.calls if not c.tried]
        if skipped:
            out.append(f"{self.target}: not tried after that: {', '.join(skipped)}")
        return out

    def summary(self) -> str:
        done = sum(1 for c in self.calls if c.ok)
        return f"{self.target}: {done} of {len(self.calls)} purge calls done"

    def markdown(self) -> str:
        """One row per URL, tag, host, prefix or key (or "everything"); each error once."""
        lines = [f"### {self.target}", "", "| purged | result |", "|---|---|"]
        for call in self.calls:
            if not call.tried:
                result = "not tried (stopped after a refusal)"
            elif call.error:
                result = f"❌ failed ({cell(call.what)}, below)"
            else:
                result = f"✅ purge id `{cell(call.purge_id or '-')}`"
            lines += [f"| `{cell(item)}` | {result} |" for item in call.items or [call.what]]
        failed = [c for c in self.calls if c.error]
        if failed:
            lines += ["", "**Failed:**", ""] + [f"- {c.what}: {c.error}" for c in failed]
        return "\n".join(lines) + "\n"


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("`", "'").replace("\n", " ")


def chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


Batch = tuple[str, list[str], Callable[[list[str]], str]]  # what, items, send


def run_calls(report: CdnReport, batches: list[Batch]) -> CdnReport:
    """Send each batch; a refusal the next calls would meet too (credentials, the zone or
    service id, a rate limit outlasting the budget) stops them, reported as not tried."""
    stopped = False
    for what, items, send in batches:
        if stopped:
            report.calls.append(PurgeCall(what, items, tried=False))
            continue
        try:
            report.calls.append(PurgeCall(what, items, purge_id=send(items)))
        except CdnError as exc:
            report.calls.append(PurgeCall(what, items, error=str(exc)))
            stopped = exc.status in (401, 403, 404) or exc.rate_limited or _fatal(exc)
    return report


def _fatal(exc: CdnError) -> bool:
    """A refusal every further call would meet too: the credential or the zone."""
    codes = {e.get("code") for e in exc.errors if isinstance(e, dict)}
    return bool(codes & (CLOUDFLARE_TOKEN_CODES | {7000, 7003}))


def described(
    service: str, hint: Callable[[int, set[int]], str], said: Callable[[Any], str]
) -> Callable[[HttpResult, str], Exception]:
    """The describe_error of a CDN: the service's own words, and what to fix (``hint`` of
    the status and the service's error codes)."""

    def describe(result: HttpResult, what: str) -> Exception:
        detail = said(result.data)
        errors = result.data.get("errors") if isinstance(result.data, dict) else None
        codes = {e.get("code") for e in errors or [] if isinstance(e, dict)}
        fix = hint(result.status, codes)
        return CdnError(
            f"{service}: {what} answered HTTP {result.status}"
            + (f" ({detail})" if detail else "")
            + (f"; {fix}" if fix else ""),
            status=result.status,
            method=result.method,
            url=result.url,
            service_message=detail or None,
            errors=errors if isinstance(errors, list) else None,
        )

    return describe


def check_token(value: SecretStr) -> SecretStr:
    token = value.get_secret_value().strip()
    if not token or any(c.isspace() for c in token):
        raise ValueError("api_token is empty or holds whitespace: paste the token alone")
    return SecretStr(token)


def check_api_url(value: str) -> str:
    value = value.strip().rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{value!r} is not an http(s) URL")
    return value


def batch_label(kind: str, index: int, chunk: list[str], total: int, size: int) -> str:
    if total <= size:
        return kind
    first = index * size + 1
    return f"{kind} {first}-{first + len(chunk) - 1} of {total}"


class CdnBlock(StacksBlock, ABC):
    """What the CDN blocks share: their ``api_url`` and ``api_token`` are checked the
    same way. Abstract (``ABC`` among its own bases): not a block type of its own."""

    @field_validator("api_url", check_fields=False)
    @classmethod
    def _api_url(cls, value: str) -> str:
        return check_api_url(value)

    @field_validator("api_token", check_fields=False)
    @classmethod
    def _api_token(cls, value: SecretStr) -> SecretStr:
        return check_token(value)
