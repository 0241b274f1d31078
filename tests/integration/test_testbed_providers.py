"""Real Terraform providers from the test bed's mirror, through the TerraformStack block
and its ``provider_mirror`` field: kubernetes and helm against the real control plane,
postgresql against the real PostgreSQL, github installed offline.

kubernetes, helm and postgresql are built from source vendored in tests/testbed/vendor/
(the Go module proxy refuses them; docs/testing.md, "Vendored providers"). Should a
module one of them needs ever be refused by the proxy, its stack is checked by
``terraform fmt -check`` only and the test says so in its skip reason."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest

from prefect_stacks.blocks.terraform import TerraformStack
from tests.conftest import require_provider

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parent.parent / "data"


def stack_source(name: str, terraform_bin: str) -> str:
    """The test stack's directory, after `terraform fmt -check` (the check that still
    runs when its provider cannot be built)."""
    source = DATA / "stacks" / name
    fmt = subprocess.run(
        [terraform_bin, "fmt", "-check", "-diff", str(source)], capture_output=True, text=True
    )
    assert fmt.returncode == 0, f"terraform fmt -check {source}:\n{fmt.stdout}{fmt.stderr}"
    return str(source)


def make_stack(name: str, tmp_path: Path, terraform_bin: str, mirror: Path, **variables):
    source = stack_source(name, terraform_bin)
    return TerraformStack(
        source=source,
        provider_mirror=str(mirror),
        state_dir=str(tmp_path / "state"),
        variables=variables,
    )


def apply(stack: TerraformStack):
    with stack.prepare() as wd:
        wd.init()
        plan = wd.plan()
        if plan.has_changes:
            wd.apply(plan)
        return plan


def plan_only(stack: TerraformStack):
    with stack.prepare() as wd:
        wd.init()
        return wd.plan()


def destroy(stack: TerraformStack) -> list[str]:
    with stack.prepare() as wd:
        wd.init(create_workspace=False)
        wd.destroy()
        return wd.state_list()


def kubectl_json(kubectl: str, kubeconfig: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [kubectl, f"--kubeconfig={kubeconfig}", *args, "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_kubernetes_provider_plans_applies_updates_in_place_and_destroys(
    tmp_path, terraform_bin, terraform_mirror, kube_cluster, kubectl
):
    stack_source("k8s-app", terraform_bin)
    require_provider("kubernetes")
    namespace = f"tf-{uuid.uuid4().hex[:8]}"
    common = dict(kubeconfig=str(kube_cluster), namespace=namespace)
    stack = make_stack(
        "k8s-app", tmp_path, terraform_bin, terraform_mirror, image="registry.invalid/a:1", **common
    )
    plan = apply(stack)
    assert (plan.add, plan.change, plan.destroy) == (2, 0, 0)
    assert {r.address for r in plan.resources} == {
        "kubernetes_namespace_v1.app",
        "kubernetes_deployment_v1.web",
    }
    found = kubectl_json(kubectl, kube_cluster, "get", "deployment", "web", "-n", namespace)
    assert found.returncode == 0, found.stderr
    spec = json.loads(found.stdout)["spec"]["template"]["spec"]
    assert spec["containers"][0]["image"] == "registry.invalid/a:1"

    changed = make_stack(
        "k8s-app", tmp_path, terraform_bin, terraform_mirror, image="registry.invalid/a:2", **common
    )
    update = plan_only(changed)
    assert (update.add, update.change, update.destroy) == (0, 1, 0)
    assert [r.address for r in update.resources] == ["kubernetes_deployment_v1.web"]

    assert destroy(changed) == []
    gone = kubectl_json(kubectl, kube_cluster, "get", "namespace", namespace)
    assert gone.returncode != 0 and "NotFound" in gone.stderr


def test_helm_provider_installs_upgrades_and_uninstalls_a_local_chart(
    tmp_path, terraform_bin, terraform_mirror, kube_cluster, kubectl, helm_bin
):
    stack_source("helm-release", terraform_bin)
    require_provider("helm")
    namespace = f"helm-{uuid.uuid4().hex[:8]}"
    common = dict(
        kubeconfig=str(kube_cluster), namespace=namespace, chart=str(DATA / "charts" / "hello")
    )
    helm_env = ["--kubeconfig", str(kube_cluster), "-n", namespace]

    def greeting() -> str:
        found = kubectl_json(kubectl, kube_cluster, "get", "cm", "hello-greeting", "-n", namespace)
        assert found.returncode == 0, found.stderr
        return json.loads(found.stdout)["data"]["greeting"]

    first = make_stack(
        "helm-release", tmp_path, terraform_bin, terraform_mirror, greeting="hi", **common
    )
    assert apply(first).add == 1
    assert greeting() == "hi"
    status = subprocess.run(
        [helm_bin, "status", "hello", *helm_env, "-o", "json"], capture_output=True, text=True
    )
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["info"]["status"] == "deployed"

    second = make_stack(
        "helm-release", tmp_path, terraform_bin, terraform_mirror, greeting="hello again", **common
    )
    upgrade = apply(second)
    assert (upgrade.add, upgrade.change, upgrade.destroy) == (0, 1, 0)
    assert greeting() == "hello again"
    history = subprocess.run(
        [helm_bin, "history", "hello", *helm_env, "-o", "json"], capture_output=True, text=True
    )
    assert [r["revision"] for r in json.loads(history.stdout)] == [1, 2]

    assert destroy(second) == []
    listed = subprocess.run(
        [helm_bin, "list", "-a", *helm_env, "-o", "json"], capture_output=True, text=True
    )
    assert json.loads(listed.stdout) == []


def test_postgresql_provider_creates_a_role_and_a_grant(
    tmp_path, terraform_bin, terraform_mirror, postgres
):
    stack_source("pg-access", terraform_bin)
    require_provider("postgresql")
    port = int(postgres.rsplit(":", 1)[1].split("/", 1)[0])
    stack = make_stack("pg-access", tmp_path, terraform_bin, terraform_mirror, port=port)
    assert apply(stack).add == 2

    def psql(sql: str) -> str:
        return subprocess.run(
            ["psql", postgres, "-tAc", sql], capture_output=True, text=True, check=True
        ).stdout.strip()

    assert psql("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'stacks_reader'") == "t"
    assert psql("SELECT has_database_privilege('stacks_reader', 'postgres', 'CONNECT')") == "t"
    assert destroy(stack) == []
    assert psql("SELECT count(*) FROM pg_roles WHERE rolname = 'stacks_reader'") == "0"


def test_github_provider_installs_from_the_mirror_offline(
    tmp_path, terraform_bin, terraform_mirror
):
    stack = make_stack("github-team", tmp_path, terraform_bin, terraform_mirror)
    require_provider("github")
    with stack.prepare() as wd:
        wd.init()
        lock = (wd.path / ".terraform.lock.hcl").read_text()
    from tests import testbed

    version = testbed.components()["provider-github"].version
    assert 'provider "registry.terraform.io/integrations/github"' in lock
    assert f'version = "{version}"' in lock


def test_a_provider_missing_from_the_mirror_fails_init_without_asking_a_registry(
    tmp_path, terraform_bin, terraform_mirror
):
    from prefect_stacks.exceptions import StackError
    from tests.conftest import write_stack

    source = write_stack(
        tmp_path / "src",
        'terraform {\n  required_providers {\n    random = { source = "hashicorp/random" }\n'
        '  }\n}\nresource "random_id" "a" {\n  byte_length = 4\n}\n',
    )
    stack = TerraformStack(
        source=str(source), provider_mirror=str(terraform_mirror), state_dir=str(tmp_path / "s")
    )
    with stack.prepare() as wd, pytest.raises(StackError) as exc:
        wd.init()
    message = str(exc.value)
    assert "hashicorp/random" in message
    assert str(terraform_mirror) in message  # terraform's own list of where it looked
    assert "add it to the mirror" in message and "provider_mirror" in message
    assert "registry.terraform.io/v1/providers" not in message  # the registry was never asked
