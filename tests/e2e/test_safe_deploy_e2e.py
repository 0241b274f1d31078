"""safe-deploy through the real worker, against a real Alertmanager and real nginx hosts
put in maintenance by real Ansible: whichever way the run ends (an alert firing in the
watch window, the run's process killed mid-deploy, the run cancelled mid-watch), the
silence is expired and maintenance is off afterwards, asserted against the services."""

from __future__ import annotations

import os
import signal
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from prefect import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterParentFlowRunId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.states import Cancelling

from prefect_stacks.blocks.alertmanager import Alertmanager
from prefect_stacks.blocks.ansible import AnsiblePlaybook
from prefect_stacks.blocks.terraform import TerraformStack
from prefect_stacks.compensations import Compensations
from tests.conftest import wait_for, write_stack
from tests.e2e.conftest import _flow_run_id
from tests.nginx import nginx_hosts

if TYPE_CHECKING:
    from tests.e2e.conftest import E2E

pytestmark = pytest.mark.e2e

APPLY = "stack-apply/local-webapp"


@pytest.fixture(scope="module")
def hosts(tmp_path_factory):
    with nginx_hosts(tmp_path_factory.mktemp("safe-nginx"), ["shop-1", "shop-2"]) as found:
        yield found


@pytest.fixture
def blocks(e2e: E2E, alertmanager, hosts, tmp_path: Path) -> dict[str, str]:
    tag = uuid.uuid4().hex[:6]
    inventory = "[web]\n" + "".join(
        f"{h.name} ansible_connection=local maintenance_dir={h.maintenance_dir}\n" for h in hosts
    )
    inventory += f"[all:vars]\nansible_python_interpreter={sys.executable}\n"
    AnsiblePlaybook(playbook="maintenance-nginx", inventory=inventory).save(f"maint-{tag}")
    Alertmanager(url=alertmanager).save(f"am-{tag}")
    stacks = {}
    for kind, body in {
        "fast": 'resource "terraform_data" "app" {\n  input = terraform.workspace\n}\n',
        "slow": (
            'resource "terraform_data" "app" {\n  input = terraform.workspace\n'
            '  provisioner "local-exec" {\n    command = "sleep 25"\n  }\n}\n'
        ),
    }.items():
        source = write_stack(tmp_path / kind, body)
        TerraformStack(source=str(source), state_dir=str(tmp_path / f"{kind}-state")).save(
            f"{kind}-{tag}"
        )
        stacks[kind] = f"{kind}-{tag}"
    return {
        "playbook": f"maint-{tag}",
        "alertmanager": f"am-{tag}",
        "service": f"shop-{tag}",
        **stacks,
    }


def silences(url: str, service: str) -> list[dict]:
    found = httpx.get(
        f"{url}/api/v2/silences", params={"filter": f'service="{service}"'}, timeout=5
    )
    return found.json()


def active_silences(url: str, service: str) -> list[str]:
    return [s["id"] for s in silences(url, service) if s["status"]["state"] == "active"]


def pages(hosts) -> set[int]:
    return {h.get().status_code for h in hosts}


def parameters(blocks: dict, stack: str, **extra) -> dict:
    return {
        "deployment": APPLY,
        "parameters": {"stack": blocks[stack], "workspace": "w" + uuid.uuid4().hex[:6]},
        "silence": {"service": blocks["service"]},
        "silence_minutes": 30,
        "alertmanager": blocks["alertmanager"],
        "maintenance": blocks["playbook"],
        **extra,
    }


def children(flow_run_id) -> list:
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id])
            )
        )


def logged(flow_run_id, needle: str) -> bool:
    with get_client(sync_client=True) as client:
        logs = client.read_logs(
            LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])), limit=200
        )
    return any(needle in log.message for log in logs)


def fire(url: str, service: str) -> None:
    now = datetime.now(timezone.utc)
    alert = {
        "labels": {"alertname": "Http5xx", "service": service},
        "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(minutes=10)).isoformat(),
    }
    httpx.post(f"{url}/api/v2/alerts", json=[alert], timeout=5).raise_for_status()


def test_an_alert_in_the_watch_window_rolls_back_and_undoes_silence_and_maintenance(
    e2e: E2E, blocks, alertmanager, hosts
):
    fire(alertmanager, blocks["service"])  # it fires through the silence: the watch sees it
    params = parameters(
        blocks,
        "fast",
        checks=[{"kind": "http", "url": hosts[0].url, "expect_status": 200, "within_seconds": 20}],
        watch={"service": blocks["service"]},
        watch_seconds=5,
        watch_poll_seconds=1,
    )
    params["rollback_deployment"] = "stack-destroy/local-webapp"
    params["rollback_parameters"] = dict(params["parameters"])
    run = e2e.run("safe-deploy/default", params, timeout=240)
    assert run.state.is_failed(), e2e.explain(run)
    assert "alert(s) firing in the watch window: Http5xx" in run.state.message
    assert "rolled back by stack-destroy/local-webapp" in run.state.message
    runs = children(run.id)  # the deploy, then the rollback
    assert len(runs) == 2 and all(c.state.is_completed() for c in runs), runs
    assert active_silences(alertmanager, blocks["service"]) == []
    assert silences(alertmanager, blocks["service"]), "no silence was ever set"
    assert pages(hosts) == {200}
    assert Compensations(str(run.id)).owed() == []


def _flow_run_process(e2e: E2E, flow_run_id) -> int | None:
    """The process running the flow run itself (not its child runs or their tools)."""
    mine = [pid for pid in e2e.worker_processes() if _flow_run_id(pid) == str(flow_run_id)]
    return min(mine) if mine else None  # the first one started; the rest are its tools


def test_killed_mid_deploy_the_worker_undoes_silence_and_maintenance(
    e2e: E2E, blocks, alertmanager, hosts
):
    run = e2e.submit("safe-deploy/default", parameters(blocks, "slow"))
    try:
        wait_for("maintenance on", lambda: pages(hosts) == {503}, 120)
        wait_for(
            "the deploy child run to be running",
            lambda: any(c.state and c.state.is_running() for c in children(run.id)),
            90,
        )
        assert active_silences(alertmanager, blocks["service"])
        pid = wait_for("the run's process", lambda: _flow_run_process(e2e, run.id), 30)
        os.kill(pid, signal.SIGKILL)  # mid-deploy: the child apply is still sleeping
        ended = e2e.wait(run.id, lambda s: s.is_final(), timeout=120)
        assert ended.state.is_crashed(), e2e.explain(ended)
        wait_for("maintenance off", lambda: pages(hosts) == {200}, 120)
        wait_for(
            "the silence to be expired",
            lambda: active_silences(alertmanager, blocks["service"]) == [],
            60,
        )
        wait_for("nothing owed", lambda: Compensations(str(run.id)).owed() == [], 30)
    finally:
        e2e.ensure_worker()


def test_cancelled_mid_watch_the_silence_is_expired_and_maintenance_is_off(
    e2e: E2E, blocks, alertmanager, hosts
):
    params = parameters(
        blocks,
        "fast",
        watch={"service": "quiet-" + blocks["service"]},
        watch_seconds=300,
        watch_poll_seconds=1,
    )
    run = e2e.submit("safe-deploy/default", params)
    wait_for("the watch to start", lambda: logged(run.id, "watching"), 180)
    assert pages(hosts) == {200}  # maintenance ended with the deploy
    assert active_silences(alertmanager, blocks["service"])  # the silence lasts the watch
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(run.id, Cancelling(), force=True)
    ended = e2e.wait(run.id, lambda s: s.is_final(), timeout=120)
    assert ended.state.is_cancelled(), e2e.explain(ended)
    wait_for(
        "the silence to be expired",
        lambda: active_silences(alertmanager, blocks["service"]) == [],
        60,
    )
    assert pages(hosts) == {200}
    wait_for("nothing owed", lambda: Compensations(str(run.id)).owed() == [], 30)
