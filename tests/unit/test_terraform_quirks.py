"""Each python-terraform 0.10.1 quirk (DESIGN.md) is handled inside the block.

A stand-in terraform binary records every call (argv, env, var files), so these tests
see exactly what the block asks python-terraform to run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import SecretStr

from prefect_stacks.blocks.terraform import TerraformStack
from prefect_stacks.exceptions import StackError
from tests.conftest import write_stack

PLAN_JSON = json.dumps(
    {
        "resource_changes": [
            {"address": "terraform_data.a", "mode": "managed", "change": {"actions": ["create"]}}
        ]
    }
)


@pytest.fixture
def stack(tmp_path: Path, fake_terraform) -> TerraformStack:
    binary, _, _ = fake_terraform
    src = write_stack(tmp_path / "src", 'resource "terraform_data" "a" {}\n')
    return TerraformStack(
        source=str(src),
        terraform_path=str(binary),
        variables={"region": "eu-west-1", "tags": {"team": "platform"}},
        secret_variables={"db_password": SecretStr("s3cr3t-value")},
        env={"MY_CRED": SecretStr("cred-value")},
    )


def _subcommand_calls(calls, name):
    return [c for c in calls() if c["argv"][0] == name]


def _positional(argv: list[str]) -> list[str]:
    return [a for a in argv[1:] if not a.startswith("-")]


def test_destroy_uses_auto_approve_not_force(stack, fake_terraform):
    _, calls, _ = fake_terraform
    with stack.prepare("ws") as wd:
        stack.destroy(wd)
    (call,) = _subcommand_calls(calls, "destroy")
    assert "-auto-approve" in call["argv"]
    assert not any(a.startswith("-force") for a in call["argv"])


def test_apply_of_saved_plan_passes_the_plan_file_and_no_variables(stack, fake_terraform):
    _, calls, script = fake_terraform
    script({"plan": {"rc": 2}, "show": {"stdout": PLAN_JSON}})
    with stack.prepare("ws") as wd:
        plan = stack.plan(wd)
        stack.apply(wd, plan)
    (call,) = _subcommand_calls(calls, "apply")
    assert call["argv"][-1] == plan.plan_file
    assert not any(a.startswith(("-var-file", "-var=")) for a in call["argv"])
    # a saved plan never prompts; -auto-approve=false is harmless, a bare prompt is not
    assert "-input=false" in call["argv"]


def test_apply_without_plan_needs_skip_plan_for_auto_approve(stack, fake_terraform):
    _, calls, _ = fake_terraform
    with stack.prepare("ws") as wd:
        stack.apply(wd, None)
    (call,) = _subcommand_calls(calls, "apply")
    assert "-auto-approve=true" in call["argv"] or "-auto-approve" in call["argv"]


def test_parallelism_reaches_apply_and_destroy_only_when_set(stack, fake_terraform):
    _, calls, script = fake_terraform
    script({"plan": {"rc": 2}, "show": {"stdout": PLAN_JSON}})
    with stack.prepare("ws") as wd:
        stack.apply(wd, stack.plan(wd))
        stack.destroy(wd)
    assert not any("-parallelism" in a for c in calls() for a in c["argv"])
    before = len(calls())
    serial = stack.model_copy(update={"parallelism": 1})
    with serial.prepare("ws") as wd:
        serial.apply(wd, serial.plan(wd))
        serial.destroy(wd)
    later = calls()[before:]
    for name in ("apply", "destroy"):
        (call,) = [c for c in later if c["argv"][0] == name]
        assert "-parallelism=1" in call["argv"], call["argv"]


def test_no_positional_directory_arguments(stack, fake_terraform):
    _, calls, script = fake_terraform
    script({"plan": {"rc": 0}, "show": {"stdout": "{}"}})
    with stack.prepare("ws") as wd:
        stack.init(wd)
        stack.plan(wd)
        stack.destroy(wd)
        workdir = str(wd.path)
    for name in ("init", "plan", "destroy"):
        (call,) = _subcommand_calls(calls, name)
        assert _positional(call["argv"]) == [], call["argv"]
        assert call["cwd"] == workdir


@pytest.mark.parametrize(("rc", "changes"), [(0, False), (2, True)])
def test_plan_detailed_exit_code_0_and_2_are_success(stack, fake_terraform, rc, changes):
    _, calls, script = fake_terraform
    script({"plan": {"rc": rc}, "show": {"stdout": PLAN_JSON if changes else "{}"}})
    with stack.prepare("ws") as wd:
        summary = stack.plan(wd)
    (call,) = _subcommand_calls(calls, "plan")
    assert "-detailed-exitcode" in call["argv"]
    assert summary.has_changes is changes


def test_plan_exit_code_1_is_an_error_with_stderr_tail(stack, fake_terraform):
    _, _, script = fake_terraform
    script({"plan": {"rc": 1, "stderr": "Error: Unsupported argument\n  on main.tf line 3\n"}})
    with stack.prepare("ws") as wd, pytest.raises(StackError) as err:
        stack.plan(wd)
    message = str(err.value)
    assert "terraform plan failed" in message
    assert "on main.tf line 3" in message
    assert "'ws'" in message and "exit code 1" in message


def test_outputs_reads_all_outputs_with_full_value_not_by_name(stack, fake_terraform):
    _, calls, script = fake_terraform
    script(
        {
            "output": {
                "stdout": json.dumps(
                    {
                        "url": {"value": "http://x", "type": "string", "sensitive": False},
                        "token": {"value": "tok-123", "type": "string", "sensitive": True},
                    }
                )
            }
        }
    )
    with stack.prepare("ws") as wd:
        outputs = stack.outputs(wd)
    (call,) = _subcommand_calls(calls, "output")
    assert "-json" in call["argv"] and _positional(call["argv"]) == []
    assert outputs["url"] == "http://x"
    assert outputs.sensitive["token"].get_secret_value() == "tok-123"
    assert "tok-123" not in repr(outputs) and "tok-123" not in outputs.model_dump_json()


def test_outputs_failure_is_an_error_not_none(stack, fake_terraform):
    _, _, script = fake_terraform
    script({"output": {"rc": 1, "stderr": "Error: No outputs found\n"}})
    with stack.prepare("ws") as wd, pytest.raises(StackError, match="terraform output failed"):
        stack.outputs(wd)


def test_variables_go_through_a_0600_tfvars_file_and_secrets_through_env(stack, fake_terraform):
    _, calls, script = fake_terraform
    script({"plan": {"rc": 0}, "show": {"stdout": "{}"}})
    with stack.prepare("ws") as wd:
        stack.plan(wd)
    (call,) = _subcommand_calls(calls, "plan")
    assert not any(a.startswith("-var=") for a in call["argv"])
    (var_file,) = call["var_files"].values()
    assert var_file["mode"] == "0o600"
    assert var_file["content"] == {"region": "eu-west-1", "tags": {"team": "platform"}}
    # secrets: TF_VAR_* in the environment only; never argv, never the var file
    assert call["tf_vars"] == {"TF_VAR_db_password": "s3cr3t-value"}
    assert call["env"]["MY_CRED"] == "cred-value"
    assert call["env"]["TF_IN_AUTOMATION"] == "1"
    assert "s3cr3t-value" not in json.dumps(call["argv"])
    assert "s3cr3t-value" not in json.dumps(call["var_files"])
    # and the temporary var file is removed after the command
    assert not any(Path(p).exists() for p in call["var_files"])


def test_secret_backend_config_is_a_0600_file_not_argv(tmp_path, fake_terraform):
    binary, calls, _ = fake_terraform
    src = write_stack(tmp_path / "src", 'terraform {\n  backend "pg" {}\n}\n')
    stack = TerraformStack(
        source=str(src),
        terraform_path=str(binary),
        backend_config={"schema_name": "app"},
        secret_backend_config={"conn_str": SecretStr("postgres://u:pw-xyz@db/tf")},
    )
    with stack.prepare("ws") as wd:
        stack.init(wd)
        backend_file = wd.root / "backend.secret.tfbackend"
        assert oct(backend_file.stat().st_mode & 0o777) == "0o600"
        assert 'conn_str = "postgres://u:pw-xyz@db/tf"' in backend_file.read_text()
    (call,) = _subcommand_calls(calls, "init")
    assert "-backend-config=schema_name=app" in call["argv"]
    assert f"-backend-config={backend_file}" in call["argv"]
    assert "pw-xyz" not in json.dumps(call["argv"])
    # the declared pg backend is kept: no local backend override is written
    assert not (wd.path / "zz_prefect_stacks_backend_override.tf").exists()


def test_workspace_is_created_on_demand(stack, fake_terraform):
    _, calls, _ = fake_terraform
    with stack.prepare("demo-7f3a") as wd:
        stack.init(wd)
    ws = [c for c in calls() if c["argv"][:2] == ["workspace", "select"]]
    assert ws and "-or-create=true" in ws[0]["argv"] and ws[0]["argv"][-1] == "demo-7f3a"


def test_python_terraform_never_reads_a_local_state_file(stack, fake_terraform, tmp_path):
    # python-terraform parses ./terraform.tfstate after each successful command; a corrupt
    # or absent file there must not matter (state lives in the backend).
    with stack.prepare("ws") as wd:
        (wd.path / "terraform.tfstate").write_text("{not json")
        stack.destroy(wd)
        assert wd.terraform().tfstate is None
