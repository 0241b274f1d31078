"""Bad input gives one StackError/ConfigurationError that names what to fix, and a
failed apply reports what the state holds (never a silent half-applied stack).

These run the real terraform binary on tiny stacks (no providers, a second or two each).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from prefect_stacks.blocks.terraform import TerraformStack
from prefect_stacks.exceptions import ConfigurationError, StackError, StateLockedError
from tests.conftest import write_stack


def test_missing_source_directory(tmp_path: Path, terraform_bin):
    stack = TerraformStack(source=str(tmp_path / "nope"))
    with pytest.raises(ConfigurationError) as err:
        stack.prepare()
    assert "source directory" in str(err.value) and "`source`" in str(err.value)
    assert str(tmp_path / "nope") in str(err.value)


def test_directory_without_terraform_files(tmp_path: Path, terraform_bin):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigurationError, match=r"no \*\.tf files"):
        TerraformStack(source=str(tmp_path / "empty")).prepare()


def test_missing_subdirectory(tmp_path: Path, terraform_bin):
    write_stack(tmp_path / "src", 'resource "terraform_data" "a" {}\n')
    stack = TerraformStack(source=str(tmp_path / "src"), subdirectory="../../etc")
    with pytest.raises(ConfigurationError, match="`subdirectory`"):
        stack.prepare()


def test_invalid_hcl_names_file_and_line(tmp_path: Path, terraform_bin):
    src = write_stack(tmp_path / "src", 'resource "terraform_data" "a" {\n  input = \n')
    stack = TerraformStack(source=str(src))
    with stack.prepare("ws") as wd, pytest.raises(StackError) as err:
        stack.init(wd)
    message = str(err.value)
    assert "terraform init failed" in message
    assert "main.tf line" in message
    assert "stack 'src'" in message


def test_missing_terraform_binary(tmp_path: Path, monkeypatch):
    write_stack(tmp_path / "src", 'resource "terraform_data" "a" {}\n')
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigurationError) as err:
        TerraformStack(source=str(tmp_path / "src")).prepare()
    assert "terraform_path" in str(err.value) and "PATH" in str(err.value)
    with pytest.raises(ConfigurationError, match="terraform_path"):
        TerraformStack(source=str(tmp_path / "src"), terraform_path="/no/terraform").prepare()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("workspace", "a b"),
        ("workspace", "../x"),
        ("workspace", "-rf"),
        ("git_ref", "--upload-pack=touch /tmp/x"),
        ("git_ref", "main;rm -rf /"),
        ("variables", {"bad name": 1}),
        ("secret_variables", {"1abc": "x"}),
    ],
)
def test_bad_field_values_are_rejected_when_the_block_is_made(tmp_path, field, value):
    with pytest.raises((ValidationError, ConfigurationError)) as err:
        TerraformStack(source=str(tmp_path), **{field: value})
    assert field in str(err.value) or "workspace" in str(err.value)


def test_failing_apply_reports_what_the_state_holds(tmp_path: Path, terraform_bin):
    src = write_stack(
        tmp_path / "src",
        """
resource "terraform_data" "ok" {}
resource "terraform_data" "bad" {
  depends_on = [terraform_data.ok]
  provisioner "local-exec" {
    command = "echo provisioning failed on purpose >&2; exit 7"
  }
}
""",
    )
    stack = TerraformStack(source=str(src))
    with stack.prepare("ws") as wd:
        stack.init(wd)
        plan = stack.plan(wd)
        with pytest.raises(StackError) as err:
            stack.apply(wd, plan)
        message = str(err.value)
        assert "terraform apply failed" in message
        assert "terraform_data.ok" in message  # the half-applied part is named
        assert "provisioning failed on purpose" in message
        assert "safe" in message and "re-run" in message
        # and destroy afterwards cleans everything up
        stack.destroy(wd)
        assert stack.state_list(wd) == []


def test_locked_state_fails_with_the_lock_id_and_what_to_do(tmp_path: Path, terraform_bin):
    src = write_stack(
        tmp_path / "src",
        """
variable "n" { default = "1" }
resource "terraform_data" "slow" {
  input = var.n
  provisioner "local-exec" { command = "sleep 6" }
}
""",
    )
    holder = TerraformStack(source=str(src), state_dir=str(tmp_path / "state"))
    waiter = TerraformStack(
        source=str(src), state_dir=str(tmp_path / "state"), lock_timeout=0, variables={"n": "2"}
    )
    errors: list[BaseException] = []

    def hold_lock():
        try:
            with holder.prepare("ws") as wd:
                holder.init(wd)
                holder.apply(wd, None)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    with waiter.prepare("ws") as wd:
        waiter.init(wd)
        t = threading.Thread(target=hold_lock)
        t.start()
        time.sleep(3)  # the holder is inside its 6 s local-exec, holding the lock
        with pytest.raises(StateLockedError) as err:
            waiter.plan(wd)
        t.join()
    assert not errors, errors
    message = str(err.value)
    assert "state is locked" in message
    assert "lock_timeout" in message and "force-unlock" in message
    assert err.value.lock_id and err.value.lock_id in message


@pytest.mark.parametrize(
    ("raw", "suggested"),
    [("feature/login", "feature-login"), ("x; rm -rf /", "x-rm-rf"), ("-rf", "rf")],
)
def test_bad_workspace_suggests_a_valid_one(raw, suggested):
    from prefect_stacks.blocks.terraform import validate_workspace

    with pytest.raises(ConfigurationError) as err:
        validate_workspace(raw)
    assert f"e.g. {suggested!r}" in str(err.value)
    assert validate_workspace(suggested) == suggested
