"""safe-deploy's approval gate in-process, against a real Alertmanager: a production
deploy waits for an answer before anything is done; rejected or unanswered, nothing is
done (no silence set, nothing owed). The deploy itself runs as a child flow run, so the
rest of safe-deploy is tested through the real worker (tests/e2e/test_safe_deploy_e2e.py)."""

from __future__ import annotations

import threading
import uuid

import httpx
import pytest
from prefect import get_client
from prefect.flow_engine import run_flow
from prefect.flow_runs import resume_flow_run

from prefect_stacks.blocks.alertmanager import Alertmanager
from prefect_stacks.compensations import Compensations
from prefect_stacks.flows.day2.safe_deploy import safe_deploy
from tests.conftest import wait_for

pytestmark = pytest.mark.integration


def start(parameters: dict):
    with get_client(sync_client=True) as client:
        created = client.create_flow_run(safe_deploy, parameters=parameters)
    thread = threading.Thread(
        target=lambda: run_flow(safe_deploy, flow_run=created, return_type="state"), daemon=True
    )
    thread.start()
    return created.id, thread


def state_of(run_id):
    with get_client(sync_client=True) as client:
        return client.read_flow_run(run_id).state


@pytest.fixture
def asked(prefect_harness, alertmanager) -> dict:
    block = "am-" + uuid.uuid4().hex[:6]
    Alertmanager(url=alertmanager).save(block)
    service = "shop-" + uuid.uuid4().hex[:6]
    return {
        "deployment": "kubernetes-deploy/default",
        "parameters": {"image": "registry.example/acme/shop@sha256:" + "a" * 64},
        "silence": {"service": service},
        "alertmanager": block,
        "require_approval": True,
    }


def silences(url: str, service: str) -> list:
    return httpx.get(
        f"{url}/api/v2/silences", params={"filter": f'service="{service}"'}, timeout=5
    ).json()


def test_rejected_or_unanswered_nothing_is_done(asked: dict, alertmanager):
    run_id, thread = start(asked)
    wait_for("safe-deploy to wait for approval", lambda: state_of(run_id).is_paused(), 60)
    resume_flow_run(run_id, run_input={"decision": "reject", "approver": "carol"})
    thread.join(60)
    ended = state_of(run_id)
    assert ended.is_cancelled() and "rejected by carol" in ended.message
    assert silences(alertmanager, asked["silence"]["service"]) == []
    assert Compensations(str(run_id)).owed() == []

    run_id, thread = start({**asked, "approval_timeout": 2})
    thread.join(60)
    ended = state_of(run_id)
    assert ended.is_failed() and "nobody approved or rejected" in ended.message
    assert silences(alertmanager, asked["silence"]["service"]) == []


def test_a_missing_block_is_refused_before_anything_is_done(asked: dict, alertmanager):
    state = safe_deploy(
        **{**asked, "require_approval": False, "maintenance": "no-such-playbook"},
        return_state=True,
    )
    assert state.is_failed() and "no AnsiblePlaybook block named 'no-such-playbook'" in (
        state.message or ""
    )
    assert silences(alertmanager, asked["silence"]["service"]) == []
