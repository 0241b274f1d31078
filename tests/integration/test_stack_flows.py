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
from tests.conftest import write_stack

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

    messages = await _logs(state.state_details.flow_run_id)
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
