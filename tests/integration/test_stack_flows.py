"""The stack flows on a real (throwaway) Prefect server: artifacts, returned outputs,
run logs without secrets, clear errors for a missing block."""

from __future__ import annotations

import inspect
import os
import uuid
from pathlib import Path

import pytest
from prefect import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, LogFilter
from prefect.logging.handlers import APILogWorker
from pydantic import SecretStr

from prefect_stacks.blocks.terraform import TerraformStack
from prefect_stacks.exceptions import ConfigurationError
from prefect_stacks.flows.stacks import stack_apply, stack_destroy, stack_plan
from tests.conftest import read_events, write_stack

pytestmark = pytest.mark.integration

STACK = """
variable "greeting" { default = "hello" }
variable "password" {
  type      = string
  sensitive = true
}
resource "terraform_data" "a" {
  input = var.greeting
  provisioner "local-exec" {
    command     = "echo greeting=$G pw=$PW"
    environment = { G = var.greeting, PW = nonsensitive(var.password) }
  }
}
resource "terraform_data" "b" { input = sha256(var.password) }
output "greeting" { value = terraform_data.a.output }
output "url" { value = "http://127.0.0.1:9/${terraform.workspace}" }
output "password" {
  value     = var.password
  sensitive = true
}
"""


@pytest.fixture
def block_name(tmp_path: Path, prefect_harness, terraform_bin) -> tuple[str, str]:
    secret = "pw-" + uuid.uuid4().hex
    src = write_stack(tmp_path / "src", STACK)
    name = "flow-test-" + uuid.uuid4().hex[:8]
    TerraformStack(
        source=str(src),
        state_dir=str(tmp_path / "state"),
        secret_variables={"password": SecretStr(secret)},
    ).save(name)
    return name, secret


async def _artifacts(key: str):
    async with get_client() as client:
        return await client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
        )


async def _logs(flow_run_id) -> list[str]:
    drained = APILogWorker.drain_all()
    if inspect.isawaitable(drained):
        await drained
    async with get_client() as client:
        logs = await client.read_logs(LogFilter(flow_run_id={"any_": [flow_run_id]}))
    return [log.message for log in logs]


async def test_plan_apply_destroy_flows(block_name, tmp_path: Path):
    name, secret = block_name
    plan = stack_plan(stack=name, workspace="flows", variables={"greeting": "hi"})
    assert (plan.add, plan.change, plan.destroy) == (2, 0, 0)
    (artifact,) = await _artifacts(f"plan-{name}-flows")
    assert "| 2 | 0 | 0 |" in artifact.data and "`terraform_data.a`" in artifact.data

    state = stack_apply(
        stack=name, workspace="flows", variables={"greeting": "hi"}, return_state=True
    )
    assert state.is_completed()
    outputs = await state.result()
    assert outputs == {"greeting": "hi", "url": "http://127.0.0.1:9/flows"}  # no sensitive
    (link,) = await _artifacts(f"url-{name}-flows")
    assert link.type == "markdown" and "(http://127.0.0.1:9/flows)" in link.data

    # the run's own event feed (what `prefect deployment run --watch` prints) names the page
    run_id = state.state_details.flow_run_id
    (applied,) = read_events("stacks.stack.applied", resource_id=f"stacks.stack.{name}/flows")
    assert applied["resource"]["prefect.resource.name"] == f"{name}/flows http://127.0.0.1:9/flows"
    assert applied["payload"]["url"] == "http://127.0.0.1:9/flows"
    assert (applied["payload"]["add"], applied["payload"]["destroy"]) == (2, 0)
    assert f"prefect.flow-run.{run_id}" in [r["prefect.resource.id"] for r in applied["related"]]
    assert secret not in str(applied)

    messages = await _logs(run_id)
    assert any("terraform apply:" in m for m in messages), "terraform output streamed"
    assert any("Apply complete!" in m for m in messages)
    everything = "\n".join(messages)
    assert secret not in everything
    async with get_client() as client:
        arts = await client.read_artifacts()
    assert all(secret not in str(a.data) for a in arts)

    state = stack_destroy(stack=name, workspace="flows", delete_workspace=True, return_state=True)
    assert state.is_completed()
    assert not (tmp_path / "state" / "workspaces" / "flows").exists()


async def test_destroy_of_a_workspace_that_never_existed_is_success(block_name, tmp_path):
    name, _ = block_name
    state = stack_destroy(stack=name, workspace="never-was", return_state=True)
    assert state.is_completed()
    assert not (tmp_path / "state" / "workspaces" / "never-was").exists()


def test_unknown_block_is_a_clear_error(prefect_harness):
    with pytest.raises(ConfigurationError) as err:
        stack_plan(stack="no-such-stack-block")
    assert "no TerraformStack block named 'no-such-stack-block'" in str(err.value)


def test_bad_workspace_parameter_changes_nothing(block_name, tmp_path):
    name, _ = block_name
    with pytest.raises(ConfigurationError, match="not a valid Terraform workspace name"):
        stack_apply(stack=name, workspace="x; rm -rf /")
    assert not (tmp_path / "state").exists() or not any((tmp_path / "state").rglob("*.tfstate"))
    assert os.path.exists(tmp_path / "src" / "main.tf")


# ------------------------------------------------------------------ how runs end
def _as_deployment_run(flow, parameters: dict):
    """Run ``flow`` the way a worker's process does (``prefect.engine``): from a flow run
    made on the server, with the run logger as the engine's error logger. Returns the
    final flow run (a Failed/Cancelled run raises out of ``run_flow``, as on a worker)."""
    from prefect.client.orchestration import get_client as sync_client
    from prefect.flow_engine import flow_run_logger, run_flow

    with sync_client(sync_client=True) as client:
        created = client.create_flow_run(flow, parameters=parameters)
        try:
            run_flow(flow, flow_run=created, error_logger=flow_run_logger(flow_run=created))
        except Exception:
            pass
        return client.read_flow_run(created.id)


async def _log_records(flow_run_id):
    drained = APILogWorker.drain_all()
    if inspect.isawaitable(drained):
        await drained
    async with get_client() as client:
        return await client.read_logs(LogFilter(flow_run_id={"any_": [flow_run_id]}))


def _no_traceback(logs) -> None:
    text = "\n".join(log.message for log in logs)
    assert "Traceback" not in text and "Engine execution exited" not in text, text
    assert "Encountered exception" not in text, text


async def test_unknown_block_lists_the_existing_ones_and_fails_in_one_line(block_name):
    name, _ = block_name
    await TerraformStack(source="/nowhere").asave("aaa-first-" + name)
    with pytest.raises(ConfigurationError) as err:
        stack_plan(stack="nope")
    message = str(err.value)
    assert "no TerraformStack block named 'nope'" in message
    assert "TerraformStack(source=...).save('nope')" in message
    listed = message.split("existing: ", 1)[1].split(")", 1)[0].split(", ")
    assert listed == sorted(listed) and {name, "aaa-first-" + name} <= set(listed)

    run = _as_deployment_run(stack_plan, {"stack": "nope"})
    assert run.state.is_failed() and run.state.message == message
    logs = await _log_records(run.id)
    _no_traceback(logs)
    errors = [log for log in logs if log.level >= 40]
    assert [log.message for log in errors] == [message]


async def test_bad_workspace_fails_cleanly_and_the_run_name_is_a_slug(block_name):
    name, _ = block_name
    run = _as_deployment_run(stack_apply, {"stack": name, "workspace": "feature/x;touch /tmp/p"})
    assert run.name == f"apply-{name}-feature-x-touch-tmp-p"
    assert run.state.is_failed()
    assert "e.g. 'feature-x-touch-tmp-p'" in run.state.message
    _no_traceback(await _log_records(run.id))


def _run_paused(parameters: dict):
    """Start stack-apply (as a worker would) in a thread; return (flow run id, thread,
    holder of the final run) once it waits for approval."""
    import threading

    from prefect.client.orchestration import get_client as sync_client
    from prefect.flow_engine import flow_run_logger, run_flow

    from tests.conftest import wait_for

    with sync_client(sync_client=True) as client:
        created = client.create_flow_run(stack_apply, parameters=parameters)

    def go():
        try:
            run_flow(stack_apply, flow_run=created, error_logger=flow_run_logger(flow_run=created))
        except Exception:
            pass

    thread = threading.Thread(target=go, daemon=True)
    thread.start()

    def paused():
        with sync_client(sync_client=True) as client:
            run = client.read_flow_run(created.id)
        return run.state and run.state.is_paused()

    wait_for("the apply to wait for approval", paused, timeout=120)
    return created.id, thread


async def test_rejected_apply_ends_cancelled_with_one_line(block_name, tmp_path):
    from prefect.flow_runs import resume_flow_run

    name, _ = block_name
    run_id, thread = _run_paused({"stack": name, "workspace": "rej", "require_approval": True})
    await resume_flow_run(
        run_id, run_input={"decision": "reject", "approver": "bob", "comment": "not now"}
    )
    thread.join(120)
    async with get_client() as client:
        run = await client.read_flow_run(run_id)
    assert run.state.is_cancelled(), run.state
    assert "rejected by bob" in run.state.message and "nothing was applied" in run.state.message
    logs = await _log_records(run_id)
    _no_traceback(logs)
    said = [
        log
        for log in logs
        if "rejected by bob" in log.message and not log.message.startswith("Finished in state")
    ]
    assert len(said) == 1 and said[0].level in (20, 30)
    (approval,) = await _artifacts(f"approval-{name}-rej")
    assert "Apply rejected" in approval.data and "rejectd" not in approval.data
    assert not any((tmp_path / "state").rglob("*.tfstate")) or not await _artifacts(
        f"url-{name}-rej"
    )


async def test_approval_timeout_says_nothing_was_applied(block_name):
    name, _ = block_name
    params = {"stack": name, "workspace": "late", "require_approval": True, "approval_timeout": 3}
    run_id, thread = _run_paused(params)
    thread.join(120)
    async with get_client() as client:
        run = await client.read_flow_run(run_id)
    assert run.state.is_failed(), run.state
    message = run.state.message
    assert "nothing was applied" in message and "3 s" in message, message
    assert "approval_timeout" in message and "again" in message
    _no_traceback(await _log_records(run_id))
    assert not await _artifacts(f"url-{name}-late")


async def test_approved_apply_says_the_url_last(block_name):
    from prefect.flow_runs import resume_flow_run

    name, _ = block_name
    run_id, thread = _run_paused({"stack": name, "workspace": "ok", "require_approval": True})
    await resume_flow_run(run_id, run_input={"decision": "approve", "approver": "alice"})
    thread.join(120)
    async with get_client() as client:
        run = await client.read_flow_run(run_id)
    assert run.state.is_completed(), run.state
    assert run.state.message == "applied: url=http://127.0.0.1:9/ok"
    logs = sorted(await _log_records(run_id), key=lambda log: log.timestamp)
    # the run's last log line (the UI's log tab, `trigger --wait`)
    assert logs[-1].message == "Finished in state Completed('applied: url=http://127.0.0.1:9/ok')"
    (approval,) = await _artifacts(f"approval-{name}-ok")
    assert "Apply approved" in approval.data
    stack_destroy(stack=name, workspace="ok", delete_workspace=True)
