"""The TerraformStack block against real terraform: the local-webapp lifecycle,
workspaces, git sources, secrets kept off argv, and the pg backend's shared state and
locking on a real PostgreSQL."""

from __future__ import annotations

import logging
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from pydantic import SecretStr

from prefect_stacks import stack_path
from prefect_stacks.blocks.terraform import TerraformStack
from prefect_stacks.exceptions import StateLockedError
from tests.conftest import require_tool, write_stack

pytestmark = pytest.mark.integration


def fetch(url: str, timeout: float = 3.0) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback only
        return resp.status, resp.read().decode()


def answers(url: str) -> bool:
    try:
        return fetch(url, timeout=1)[0] == 200
    except (urllib.error.URLError, ConnectionError, OSError):
        return False


def apply_stack(stack: TerraformStack, workspace: str):
    with stack.prepare(workspace) as wd:
        stack.init(wd)
        plan = stack.plan(wd)
        if plan.has_changes:
            stack.apply(wd, plan)
        return plan, stack.outputs(wd)


def destroy_stack(stack: TerraformStack, workspace: str, delete_workspace: bool = True):
    with stack.prepare(workspace) as wd:
        stack.init(wd, create_workspace=False)
        stack.destroy(wd)
        remaining = stack.state_list(wd)
        deleted = stack.delete_workspace(wd) if delete_workspace else None
    return remaining, deleted


@pytest.fixture
def webapp(tmp_path: Path, terraform_bin) -> TerraformStack:
    stack = TerraformStack(
        source=str(stack_path("local-webapp")),
        state_dir=str(tmp_path / "state"),
        variables={"app_version": "1.0.0"},
    )
    yield stack
    # last resort: never leave a server running
    for ws in ("it-a", "it-b"):
        try:
            destroy_stack(stack, ws)
        except Exception:
            pass


def test_local_webapp_lifecycle_through_the_block(webapp: TerraformStack, tmp_path: Path):
    plan, outputs = apply_stack(webapp, "it-a")
    assert (plan.add, plan.change, plan.destroy) == (1, 0, 0)
    url = outputs["url"]
    status, body = fetch(url)
    assert status == 200 and "it-a" in body and "1.0.0" in body
    # the package directory was never written to: state and .terraform live elsewhere
    assert not (stack_path("local-webapp") / ".terraform").exists()
    assert (tmp_path / "state" / "workspaces" / "it-a" / "terraform.tfstate").exists()

    # a second apply plans no changes
    plan2, _ = apply_stack(webapp, "it-a")
    assert not plan2.has_changes

    # a new version replaces the server
    webapp.variables = {"app_version": "2.0.0"}
    plan3, outputs3 = apply_stack(webapp, "it-a")
    assert (plan3.add, plan3.destroy) == (1, 1)
    assert "2.0.0" in fetch(outputs3["url"])[1]

    remaining, deleted = destroy_stack(webapp, "it-a")
    assert remaining == [] and deleted is True
    assert not answers(url)
    assert not (tmp_path / "state" / "workspaces" / "it-a").exists()
    # destroying again ("already gone") is success
    assert destroy_stack(webapp, "it-a") == ([], False)


def test_workspaces_are_isolated(webapp: TerraformStack):
    _, out_a = apply_stack(webapp, "it-a")
    _, out_b = apply_stack(webapp, "it-b")
    assert out_a["url"] != out_b["url"]
    assert "it-a" in fetch(out_a["url"])[1] and "it-b" in fetch(out_b["url"])[1]
    destroy_stack(webapp, "it-a")
    assert not answers(out_a["url"])
    assert answers(out_b["url"]), "destroying workspace a must not touch b"
    destroy_stack(webapp, "it-b")
    assert not answers(out_b["url"])


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


def test_git_source_at_a_ref_and_subdirectory(tmp_path: Path, terraform_bin):
    require_tool("git")
    repo = tmp_path / "repo"
    write_stack(
        repo / "infra",
        'variable "v" { default = "one" }\noutput "v" { value = var.v }\n',
    )
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "one")
    _git(repo, "tag", "v1")
    (repo / "infra" / "main.tf").write_text(
        'variable "v" { default = "two" }\noutput "v" { value = var.v }\n'
    )
    _git(repo, "commit", "-qam", "two")

    at_tag = TerraformStack(source=f"file://{repo}", git_ref="v1", subdirectory="infra")
    at_head = TerraformStack(source=f"file://{repo}", subdirectory="infra")
    assert apply_stack(at_tag, "g1")[1]["v"] == "one"
    assert apply_stack(at_head, "g2")[1]["v"] == "two"

    missing = TerraformStack(source=f"file://{repo}", git_ref="no-such-branch")
    with pytest.raises(Exception) as err:
        missing.prepare()
    assert "git_ref" in str(err.value) and "no-such-branch" in str(err.value)


def test_secrets_never_reach_argv_logs_or_outputs(tmp_path: Path, terraform_bin, caplog):
    secret = "Sup3r-S3cret-" + os.urandom(6).hex()
    src = write_stack(
        tmp_path / "src",
        """
variable "password" {
  type = string
}
resource "terraform_data" "uses_secret" {
  input = sha256(var.password)
  provisioner "local-exec" {
    command     = "sleep 2; echo using $PW"
    environment = { PW = var.password }
  }
}
output "digest" { value = terraform_data.uses_secret.output }
""",
    )
    stack = TerraformStack(source=str(src), secret_variables={"password": SecretStr(secret)})
    seen: set[str] = set()
    found_secret: list[str] = []
    stop = threading.Event()

    def scan_cmdlines():
        while not stop.is_set():
            for proc in Path("/proc").iterdir():
                if not proc.name.isdigit():
                    continue
                try:
                    cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
                except OSError:
                    continue
                if "terraform" in cmdline:
                    seen.add(cmdline.replace("\0", " ").strip())
                if secret in cmdline:
                    found_secret.append(cmdline)
            time.sleep(0.05)

    scanner = threading.Thread(target=scan_cmdlines, daemon=True)
    scanner.start()
    try:
        with caplog.at_level(logging.DEBUG):
            _, outputs = apply_stack(stack, "default")
            destroy_stack(stack, "default", delete_workspace=False)
    finally:
        stop.set()
        scanner.join()
    assert any(" apply " in c or c.endswith(" apply") or " apply -" in c for c in seen), seen
    assert found_secret == []
    assert secret not in caplog.text
    assert "terraform apply:" in caplog.text  # the logs were captured at all
    assert secret not in str(outputs.values)


# ------------------------------------------------------------------- pg backend

PG_STACK = """
terraform {
  backend "pg" {}
}
variable "n" { default = "1" }
variable "hold" { default = "0" }
resource "terraform_data" "slow" {
  input            = var.n
  triggers_replace = [var.n]
  provisioner "local-exec" {
    command = "sleep ${var.hold}"
  }
}
output "n" { value = terraform_data.slow.output }
"""


@pytest.fixture
def pg_stack(tmp_path: Path, postgres: str, terraform_bin):
    src = write_stack(tmp_path / "src", PG_STACK)
    schema = "tf_" + os.urandom(4).hex()

    def make(**kwargs) -> TerraformStack:
        return TerraformStack(
            source=str(src),
            backend_config={"schema_name": schema},
            secret_backend_config={"conn_str": SecretStr(postgres)},
            **kwargs,
        )

    make.schema = schema
    return make


def test_pg_backend_shares_state_between_checkouts(pg_stack, postgres):
    first = pg_stack(variables={"n": "1"})
    assert apply_stack(first, "shared")[1]["n"] == "1"
    # another checkout (another worker) sees the same state: no changes to make
    plan, outputs = apply_stack(pg_stack(variables={"n": "1"}), "shared")
    assert not plan.has_changes and outputs["n"] == "1"
    psql = require_tool("psql")
    rows = subprocess.run(
        [psql, postgres, "-At", "-c", f"select name from {pg_stack.schema}.states"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert "shared" in rows
    assert destroy_stack(first, "shared") == ([], True)


def test_pg_backend_second_apply_waits_for_the_lock(pg_stack):
    holder = pg_stack(variables={"n": "held", "hold": "5"}, lock_timeout=60)
    waiter = pg_stack(variables={"n": "2"}, lock_timeout=60)
    apply_stack(pg_stack(), "locks")  # create the workspace's state first
    times: dict[str, float] = {}
    errors: list[BaseException] = []

    def run(name: str, stack: TerraformStack, delay: float):
        time.sleep(delay)
        times[f"{name}_start"] = time.monotonic()
        try:
            apply_stack(stack, "locks")
        except BaseException as exc:
            errors.append(exc)
        times[f"{name}_end"] = time.monotonic()

    threads = [
        threading.Thread(target=run, args=("holder", holder, 0)),
        threading.Thread(target=run, args=("waiter", waiter, 2.5)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    # the waiter started while the holder was inside its 5 s apply and finished after it
    assert times["waiter_start"] < times["holder_end"]
    assert times["waiter_end"] > times["holder_end"]
    # and its changes landed on top of the holder's
    plan, outputs = apply_stack(pg_stack(variables={"n": "2"}), "locks")
    assert outputs["n"] == "2" and not plan.has_changes
    destroy_stack(pg_stack(), "locks")


def test_pg_backend_lock_timeout_zero_fails_clearly(pg_stack):
    holder = pg_stack(variables={"n": "held", "hold": "5"})
    impatient = pg_stack(variables={"n": "3"}, lock_timeout=0)
    t = threading.Thread(target=apply_stack, args=(holder, "impatient"))
    t.start()
    time.sleep(2.5)
    try:
        with pytest.raises(StateLockedError) as err:
            apply_stack(impatient, "impatient")
    finally:
        t.join()
    assert "force-unlock" in str(err.value)
    destroy_stack(pg_stack(), "impatient")
