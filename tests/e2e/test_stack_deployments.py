"""End to end: the stack deployments of ``deployments/prefect.yaml`` run by a real
process worker against a real Prefect server, applying and destroying the real
``local-webapp`` Terraform stack; and ``prefect-stacks up`` / ``down`` themselves."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import httpx
import pytest
from prefect.client.schemas.objects import StateType

from prefect_stacks._internal.process import run_process
from prefect_stacks.events.automations import automations_dir
from prefect_stacks.events.automations import load_files as load_automation_files
from prefect_stacks.local import (
    LOCAL_WEBAPP,
    LocalConfig,
    api_settings,
    down,
    free_port,
    is_alive,
)

if TYPE_CHECKING:
    from tests.e2e.conftest import E2E

pytestmark = pytest.mark.e2e

APPLY = f"stack-apply/{LOCAL_WEBAPP}"
DESTROY = f"stack-destroy/{LOCAL_WEBAPP}"
PLAN = f"stack-plan/{LOCAL_WEBAPP}"


def declared_deployments() -> list[str]:
    """``flow/deployment`` of every deployment in deployments/prefect.yaml (the unit test
    of prefect.yaml says which flows those are)."""
    import yaml
    from prefect.flows import load_flow_from_entrypoint

    from prefect_stacks import deployments_dir

    spec = yaml.safe_load((deployments_dir() / "prefect.yaml").read_text())
    return sorted(
        f"{load_flow_from_entrypoint(item['entrypoint']).name}/{item['name']}"
        for item in spec["deployments"]
    )


def http_get(url: str, timeout: float = 3.0) -> httpx.Response | None:
    """GET ``url``; None when nothing answers."""
    try:
        return httpx.get(url, timeout=timeout, trust_env=False)
    except httpx.HTTPError:
        return None


def wait_unreachable(url: str, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if http_get(url, timeout=1.0) is None:
            return True
        time.sleep(0.2)
    return False


@pytest.mark.timeout(300)
def test_up_twice_reuses_everything_then_down(tmp_path, prefect_stacks_cli):
    """`up --detach` starts server and worker; a second `up` reuses both (same pids)
    and duplicates nothing; `down` stops both."""

    def cli(*args: str, timeout: float = 180):
        return run_process([*prefect_stacks_cli, *args], stream=False, timeout=timeout)

    config = LocalConfig(home=tmp_path / "home", port=free_port())
    args = ("--home", str(config.home), "--port", str(config.port))
    try:
        first = cli("up", "--detach", *args)
        assert first.returncode == 0, first.stdout + first.stderr
        server_pid = json.loads(config.server_pid_file.read_text())["pid"]
        worker_pid = json.loads(config.worker_pid_file.read_text())["pid"]
        assert is_alive(server_pid) and is_alive(worker_pid)
        assert "Press Ctrl-C" not in first.stdout and "prefect-stacks down" in first.stdout

        second = cli("up", "--detach", *args)
        assert second.returncode == 0, second.stdout + second.stderr
        assert f"server: reusing {config.base_url} (pid {server_pid})" in second.stdout
        assert f"worker: reusing pid {worker_pid}" in second.stdout
        assert json.loads(config.server_pid_file.read_text())["pid"] == server_pid
        assert json.loads(config.worker_pid_file.read_text())["pid"] == worker_pid

        from prefect.client.orchestration import get_client

        with api_settings(config.api_url), get_client(sync_client=True) as client:
            blocks = client.read_block_documents_by_type("terraform-stack")
            deployments = client.read_deployments()
            flows = {f.id: f.name for f in client.read_flows()}
            automations = client.read_automations()
        # automations as code: the second `up` found them unchanged, no duplicates
        shipped = sorted(
            a["name"] for f in load_automation_files(automations_dir()) for a in f.automations
        )
        assert sorted(a.name for a in automations) == shipped and shipped
        assert f"automations: 0 created, {len(shipped)} unchanged" in second.stdout
        assert f"automations: {len(shipped)} created" in first.stdout
        assert [b.name for b in blocks] == [LOCAL_WEBAPP]
        assert blocks[0].data["state_dir"] == str(config.state_dir(LOCAL_WEBAPP))
        names = sorted(f"{flows[d.flow_id]}/{d.name}" for d in deployments)
        assert names == declared_deployments()  # every one in prefect.yaml, once
        assert {d.work_pool_name for d in deployments} == {"local"}
        watcher = next(d for d in deployments if flows[d.flow_id] == "pull-request-watcher")
        assert watcher.global_concurrency_limit is not None
        assert watcher.global_concurrency_limit.limit == 1
        assert all("project:prefect-stacks" in d.tags for d in deployments)

        stopped = cli("down", "--home", str(config.home), timeout=60)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert not is_alive(server_pid) and not is_alive(worker_pid)
        assert not config.server_pid_file.exists() and not config.worker_pid_file.exists()
    finally:
        down(config)


@pytest.mark.timeout(300)
def test_apply_serves_the_page_and_destroy_stops_it(e2e: E2E):
    applied = e2e.run(APPLY, {"stack": LOCAL_WEBAPP, "workspace": "default"})
    assert applied.state.type == StateType.COMPLETED, e2e.explain(applied)

    url = e2e.url_of(applied.id, "default")
    assert url == f"http://127.0.0.1:{e2e.webapp_variables('default')['port']}/"
    page = http_get(url)
    assert page is not None and page.status_code == 200, f"{url} does not answer"
    assert "<h1>default</h1>" in page.text

    # The plan was published too.
    assert e2e.artifacts(applied.id, f"plan-{LOCAL_WEBAPP}-default")

    destroyed = e2e.run(DESTROY, {"stack": LOCAL_WEBAPP, "workspace": "default"})
    assert destroyed.state.type == StateType.COMPLETED, e2e.explain(destroyed)
    assert wait_unreachable(url), f"{url} still answers after stack-destroy"


@pytest.mark.timeout(400)
def test_apply_waits_for_approval(e2e: E2E):
    from prefect.flow_runs import resume_flow_run

    workspace = "approve-test"
    params = {
        "stack": LOCAL_WEBAPP,
        "workspace": workspace,
        "variables": e2e.webapp_variables(workspace),
        "require_approval": True,
        "approval_timeout": 300,
    }
    url = f"http://127.0.0.1:{params['variables']['port']}/"

    # Rejected: the run ends Cancelled and nothing is applied.
    rejected = e2e.submit(APPLY, params)
    paused = e2e.wait(rejected.id, lambda s: s.is_paused())
    assert paused.state.is_paused(), e2e.explain(paused)
    resume_flow_run(
        rejected.id, run_input={"decision": "reject", "approver": "bob", "comment": "not now"}
    )
    rejected = e2e.wait(rejected.id, lambda s: s.is_final())
    assert rejected.state.type == StateType.CANCELLED, e2e.explain(rejected)
    assert "rejected by bob" in (rejected.state.message or "")
    assert http_get(url, timeout=1) is None, "a rejected apply started the web server"
    assert not e2e.artifacts(rejected.id, f"url-{LOCAL_WEBAPP}-{workspace}")

    # Approved: applied, the page answers, the approver is on record.
    approved = e2e.submit(APPLY, params)
    paused = e2e.wait(approved.id, lambda s: s.is_paused())
    assert paused.state.is_paused(), e2e.explain(paused)
    resume_flow_run(
        approved.id, run_input={"decision": "approve", "approver": "alice", "comment": "ok"}
    )
    approved = e2e.wait(approved.id, lambda s: s.is_final())
    assert approved.state.type == StateType.COMPLETED, e2e.explain(approved)
    assert e2e.url_of(approved.id, workspace) == url
    page = http_get(url)
    assert page is not None and page.status_code == 200, f"{url} does not answer"
    assert f"<h1>{workspace}</h1>" in page.text
    records = e2e.artifacts(approved.id, f"approval-{LOCAL_WEBAPP}-{workspace}")
    assert records, "no approval artifact"
    assert "alice" in str(records[-1].data) and "approve" in str(records[-1].data)

    destroyed = e2e.run(
        DESTROY,
        {
            "stack": LOCAL_WEBAPP,
            "workspace": workspace,
            "variables": params["variables"],
            "delete_workspace": True,
        },
    )
    assert destroyed.state.type == StateType.COMPLETED, e2e.explain(destroyed)
    assert wait_unreachable(url), f"{url} still answers after stack-destroy"
