"""The Prefect API as the CLI reports it: its URL fit to print, a flow run's page in the
UI, and what the API answers turned into errors that say what to fix."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

import httpx
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
from prefect.settings import PREFECT_API_URL

from prefect_stacks._internal.prefect_api import flow_run_url
from prefect_stacks.exceptions import ConfigurationError


def without_credentials(url: str) -> str:
    """A URL fit to print: no user:password@ (a self-hosted API URL may carry one)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def api_url() -> str:
    return without_credentials(str(PREFECT_API_URL.value() or ""))


def run_url(flow_run_id: UUID) -> str:
    """The run's page in the UI (PREFECT_UI_URL, else derived from PREFECT_API_URL)."""
    url = flow_run_url(flow_run_id)
    return without_credentials(url) if url else "(no UI URL known: set PREFECT_UI_URL)"


def response_detail(exc: PrefectHTTPStatusError) -> str:
    """The `detail` of an error answer of the API, as text."""
    try:
        detail = exc.response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, (list, dict)):
        detail = json.dumps(detail)
    return str(detail or exc.response.text or exc.response.reason_phrase)


@contextmanager
def api_errors(doing: str) -> Iterator[None]:
    """Turn what the Prefect API answers into errors that say what to fix."""
    try:
        yield
    except httpx.TransportError as exc:
        raise ConfigurationError(
            f"cannot reach the Prefect API at {api_url()} while {doing} ({exc}): is the "
            "server up and PREFECT_API_URL right?"
        ) from None
    except ObjectNotFound as exc:
        raise ConfigurationError(
            f"the Prefect API at {api_url()} found nothing while {doing}: {exc}"
        ) from None
    except PrefectHTTPStatusError as exc:
        status = exc.response.status_code
        hint = ""
        if status in (401, 403):
            hint = (
                ": check PREFECT_API_KEY (Prefect Cloud) or PREFECT_API_AUTH_STRING "
                "(self-hosted server with basic auth)"
            )
        raise ConfigurationError(
            f"the Prefect API at {api_url()} answered {status} while {doing}: "
            f"{response_detail(exc)}{hint}"
        ) from None
