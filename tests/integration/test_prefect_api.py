"""The one home for shared Prefect API calls, on a real (test harness) server: deployment
lookup, deleting runs that have not started, run URLs, posting events."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from prefect import flow, get_client
from prefect.states import Completed, Scheduled

from prefect_stacks._internal import prefect_api
from prefect_stacks.environments import utcnow
from tests.conftest import read_events

pytestmark = pytest.mark.integration


@flow(name="prefect-api-probe")
def _probe() -> None:
    return None


def _deployment(client, name: str):
    flow_id = client.create_flow(_probe)
    return client.create_deployment(flow_id=flow_id, name=name)


def test_deployment_id_finds_one_and_answers_none_for_an_unknown_name(prefect_harness):
    name = f"d-{uuid.uuid4().hex[:6]}"
    with get_client(sync_client=True) as client:
        created = _deployment(client, name)
        assert prefect_api.deployment_id(client, f"prefect-api-probe/{name}") == created
        assert prefect_api.deployment_id(client, f"prefect-api-probe/{name}-nope") is None


def test_delete_if_scheduled_deletes_only_runs_that_have_not_started(prefect_harness):
    with get_client(sync_client=True) as client:
        deployment = _deployment(client, f"d-{uuid.uuid4().hex[:6]}")
        later = Scheduled(scheduled_time=utcnow() + timedelta(hours=1))
        scheduled = client.create_flow_run_from_deployment(deployment, state=later)
        finished = client.create_flow_run_from_deployment(deployment, state=Completed())

        assert prefect_api.delete_if_scheduled(client, scheduled.id) == prefect_api.DELETED
        assert prefect_api.delete_if_scheduled(client, scheduled.id) == prefect_api.GONE
        assert prefect_api.delete_if_scheduled(client, finished.id) == prefect_api.STARTED
        assert client.read_flow_run(finished.id).state.is_completed()


def test_delete_scheduled_runs_of_a_deployment_leaves_other_runs(prefect_harness):
    with get_client(sync_client=True) as client:
        deployment = _deployment(client, f"d-{uuid.uuid4().hex[:6]}")
        other = _deployment(client, f"d-{uuid.uuid4().hex[:6]}")
        later = Scheduled(scheduled_time=utcnow() + timedelta(hours=1))
        queued = [client.create_flow_run_from_deployment(deployment, state=later) for _ in "ab"]
        done = client.create_flow_run_from_deployment(deployment, state=Completed())
        elsewhere = client.create_flow_run_from_deployment(other, state=later)

        deleted = prefect_api.delete_scheduled_runs(client, deployment)

        assert sorted(deleted) == sorted(str(r.id) for r in queued)
        assert client.read_flow_run(done.id).state.is_completed()
        assert client.read_flow_run(elsewhere.id).state.is_scheduled()


def test_run_urls_come_from_the_ui_setting(monkeypatch):
    from prefect.settings import PREFECT_UI_URL, temporary_settings

    run_id = uuid.uuid4()
    with temporary_settings({PREFECT_UI_URL: "http://ui.example:4200"}):
        assert prefect_api.flow_run_url(run_id) == f"http://ui.example:4200/runs/flow-run/{run_id}"
    assert prefect_api.flow_run_url(None) is None
    assert prefect_api.current_flow_run_id() is None  # outside a flow run


def test_post_events_reaches_the_server(prefect_harness):
    resource = f"prefect-stacks.test.{uuid.uuid4().hex[:8]}"
    body = [
        {
            "id": str(uuid.uuid4()),
            "occurred": utcnow().isoformat(),
            "event": "stacks.test.posted",
            "resource": {"prefect.resource.id": resource},
            "payload": {},
        }
    ]
    with get_client(sync_client=True) as client:
        prefect_api.post_events(client, body)
    found = read_events("stacks.test.posted", resource)
    assert [e["resource"]["prefect.resource.id"] for e in found] == [resource]
