"""The one home for Prefect API calls that more than one module makes: deployment lookup,
deleting runs that have not started, run URLs, and posting events.

Everything goes through Prefect's public client (``get_client``, ``client.request``);
nothing here reaches for a private attribute.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.context import get_run_context
from prefect.exceptions import ObjectNotFound
from prefect.utilities.urls import url_for

# what delete_if_scheduled found
DELETED = "deleted"
GONE = "gone"
STARTED = "started"


def deployment_id(client: Any, full_name: str) -> UUID | None:
    """The id of deployment ``flow/deployment``, or None when the server has none."""
    try:
        return client.read_deployment_by_name(full_name).id
    except ObjectNotFound:
        return None


def read_flow_run(client: Any, flow_run_id: str | UUID) -> FlowRun | None:
    """The flow run, or None when the server has none with that id (or it is no id)."""
    try:
        return client.read_flow_run(UUID(str(flow_run_id)))
    except (ObjectNotFound, ValueError):
        return None


def delete_if_scheduled(client: Any, flow_run_id: str | UUID) -> str:
    """Delete a flow run that has not started. Returns DELETED, GONE (the server has no
    such run: already deleted counts as done) or STARTED (left alone: it is history, or
    it is running and checks for itself)."""
    run = read_flow_run(client, flow_run_id)
    if run is None:
        return GONE
    if run.state is not None and not run.state.is_scheduled():
        return STARTED
    try:
        client.delete_flow_run(run.id)
    except ObjectNotFound:
        return GONE
    return DELETED


def delete_scheduled_runs(client: Any, deployment: UUID | str) -> list[str]:
    """Delete the runs of a deployment that are still scheduled (not started, or waiting
    for the deployment's concurrency slot); returns their ids."""
    runs = client.read_flow_runs(
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[UUID(str(deployment))])),
        flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))
        ),
    )
    deleted = []
    for run in runs:
        try:
            client.delete_flow_run(run.id)
        except ObjectNotFound:
            pass
        deleted.append(str(run.id))
    return deleted


def current_flow_run_id() -> str | None:
    """The id of the flow run this code runs in, or None outside a flow run."""
    try:
        ctx = get_run_context()
    except Exception:  # noqa: BLE001 - no run context at all
        return None
    run = getattr(ctx, "flow_run", None)
    return str(run.id) if run else None


def current_flow_run_creator() -> str | None:
    """Who created the flow run this code runs in, as the server recorded it (Prefect
    Cloud: the user or service account; a self-hosted server records nobody: None)."""
    try:
        ctx = get_run_context()
    except Exception:  # noqa: BLE001 - no run context at all
        return None
    run = getattr(ctx, "flow_run", None)
    created_by = getattr(run, "created_by", None)
    return getattr(created_by, "display_value", None) or None


def flow_run_url(flow_run_id: str | UUID | None) -> str | None:
    """The run's page in the Prefect UI (PREFECT_UI_URL, which Prefect derives from
    PREFECT_API_URL when unset), or None when no UI is known."""
    if not flow_run_id:
        return None
    return url_for("flow-run", obj_id=str(flow_run_id)) or None


def current_flow_run_url() -> str | None:
    """The UI page of the flow run this code runs in, or None."""
    return flow_run_url(current_flow_run_id())


def post_events(client: Any, body: list[dict[str, Any]]) -> None:
    """``POST /api/events`` with a synchronous client; raises on a non-2xx answer."""
    client.request("POST", "/events", json=body).raise_for_status()


async def apost_events(client: Any, body: list[dict[str, Any]]) -> None:
    """``POST /api/events`` with an async client; raises on a non-2xx answer."""
    response = await client.request("POST", "/events", json=body)
    response.raise_for_status()
