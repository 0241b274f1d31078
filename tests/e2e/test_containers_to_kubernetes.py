"""Containers to Kubernetes, end to end, for each deploy method at once: the real Prefect
server and process worker, dockerd, a Distribution registry whose notifications go to
the webhook receiver, and the test bed's control plane (kwok nodes).

One image repository, three targets (one namespace per method: kubectl, Terraform's
kubernetes provider, Helm through Terraform), three automations on
``stacks.image.updated``, one per target:

1. v1 is built by ``image-builder`` and pushed while the receiver is down: a
   ``registry-watcher`` run sees it and each target is deployed (by digest, rollout
   complete);
2. the receiver is up: v2's push reaches it as the registry's own notification, and each
   target is deployed with no watcher run;
3. v3 is tagged ``*-unready``: kwok keeps its pods unready (tests/testbed/kwok-stages.yaml),
   the rollouts miss their deadline, each target is rolled back to v2, v3 is quarantined
   and Slack (the fake) is told; a watcher run and a re-sent notification redeploy
   nothing;
4. v3' passes its rollout but fails the functional check (a command the test controls:
   it fails for a tag containing ``badcheck``): rolled back to v2, quarantined;
5. v4 is deployed;
6. the GitLab CI job's documented trigger command (docs/examples/gitlab-ci.yml) deploys
   a digest to a `kubernetes-deploy/web` deployment and exits 0.
"""

from __future__ import annotations

import re
import secrets
import shlex
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
import yaml
from prefect import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect_docker import DockerHost
from pydantic import SecretStr

from prefect_stacks._internal.data import stack_path
from prefect_stacks._internal.process import run_process
from prefect_stacks.blocks.kubernetes import KubernetesCluster
from prefect_stacks.blocks.registry import ContainerRegistry
from prefect_stacks.blocks.slack import SlackChannel
from prefect_stacks.blocks.terraform import TerraformStack
from prefect_stacks.blocks.webhooks import WebhookSource
from prefect_stacks.deploys.targets import DeployRecords, Target
from prefect_stacks.events import automations
from tests.conftest import GitRepo, free_port, git, require_provider, start_registry, stop
from tests.e2e.conftest import running_receiver
from tests.fakes.slack import FakeSlack

if TYPE_CHECKING:
    from tests.e2e.conftest import E2E

pytestmark = pytest.mark.e2e

DEPLOY = "kubernetes-deploy/default"
METHODS = {"kubectl": "kc", "terraform-kubernetes": "tfk", "terraform-helm": "helm"}
DOCS = Path(__file__).resolve().parents[2] / "docs" / "examples" / "gitlab-ci.yml"
MANIFEST = (Path(__file__).parents[1] / "data" / "manifests" / "web.yaml").read_text()
CHECK = "import sys; sys.exit(1 if 'badcheck' in sys.argv[1] else 0)"


class Scenario:
    def __init__(self, e2e: E2E, registry: str, tmp_path: Path, cluster: str, kube) -> None:
        self.e2e = e2e
        self.registry = registry
        self.id = uuid.uuid4().hex[:6]
        self.path = f"e2e/web-{self.id}"
        self.repository = f"{registry}/{self.path}"
        self.cluster = cluster
        self.kube = kube
        (tmp_path / "git").mkdir()
        self.repo = GitRepo(tmp_path / "git", name="app")
        self.targets = {
            method: Target(
                cluster=cluster, namespace=f"c2k-{short}-{self.id}", workload="deployment/web"
            )
            for method, short in METHODS.items()
        }

    def commit(self, version: str) -> None:
        work = self.repo.work
        (work / "Dockerfile").write_text("FROM scratch\nCOPY version.txt /version.txt\n")
        (work / "version.txt").write_text(f"{version} {uuid.uuid4()}\n")
        git("add", "Dockerfile", "version.txt", cwd=work)
        git("commit", "-q", "-m", version, cwd=work)
        git("tag", f"v{version}", cwd=work)
        git("push", "-q", "origin", "main", f"v{version}", cwd=work)

    def build(self, version: str, docker_host: str) -> dict:
        self.commit(version)
        run = self.e2e.run(
            "image-builder/default",
            {
                "image": self.repository, "url": str(self.repo.bare), "ref": f"v{version}",
                "docker_host": docker_host, "tag_rules": ["semver"], "pull": False,
            },
        )  # fmt: skip
        assert run.state.is_completed(), self.e2e.explain(run)
        # a deployment's run keeps no result on the server: ask the registry, as a user would
        with ContainerRegistry(url=f"http://{self.registry}").get_client() as client:
            digest = client.digest(self.path, version)
        assert digest, f"{self.path}:{version} is not in the registry"
        return {"digest": digest, "tags": [version]}

    def deploy_runs(self, digest: str) -> dict[str, list]:
        """Runs of kubernetes-deploy/default for ``digest``, by method."""
        with get_client(sync_client=True) as client:
            deployment = client.read_deployment_by_name(DEPLOY)
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id]))
            )
        found: dict[str, list] = {m: [] for m in METHODS}
        for run in runs:
            params = run.parameters or {}
            if digest in str(params.get("image", "")) and params.get("method") in found:
                found[params["method"]].append(run)
        return found

    def wait_for_deploys(self, digest: str, timeout: float = 240) -> dict[str, object]:
        """One final run per method for ``digest``; returns them."""
        deadline = time.monotonic() + timeout
        while True:
            runs = self.deploy_runs(digest)
            if all(runs.values()):
                final = {m: self.e2e.wait(r[0].id, lambda s: s.is_final(), timeout=timeout)
                         for m, r in runs.items()}  # fmt: skip
                if all(f.state.is_final() for f in final.values()):
                    return final
            assert time.monotonic() < deadline, f"deploy runs for {digest}: {runs}"
            time.sleep(1)

    def running(self, method: str) -> tuple[str, dict]:
        with self.kube.kubectl() as k:
            dep = k.get_json("deployment/web", f"--namespace={self.targets[method].namespace}")
        return dep["spec"]["template"]["spec"]["containers"][0]["image"], dep["status"]

    def assert_running(self, tag: str, digest: str) -> None:
        for method in METHODS:
            image, status = self.running(method)
            assert image == f"{self.repository}:{tag}@{digest}", (method, image)
            assert status.get("updatedReplicas") == 2 and status.get("readyReplicas") == 2, (
                method, status,
            )  # fmt: skip


@pytest.fixture
def setup(e2e, kube_cluster, kubectl, dockerd, terraform_mirror, tmp_path, prefect_stacks_cli):
    for provider in ("kubernetes", "helm"):
        require_provider(provider)
    token, source = secrets.token_hex(16), f"registry-{uuid.uuid4().hex[:6]}"
    WebhookSource(kind="registry", secret=SecretStr(token)).save(source)
    port = free_port()
    proc, address, _ = start_registry(
        tmp_path / "registry", notify=(f"http://127.0.0.1:{port}/hooks/{source}", token)
    )
    with FakeSlack(tokens=["xoxb-c2k"], channels=["deploys"]) as slack:
        try:
            slack_block = f"slack-{uuid.uuid4().hex[:6]}"
            SlackChannel(bot_token="xoxb-c2k", channel="#deploys", api_url=slack.api_url).save(
                slack_block
            )
            s = _prepare(
                e2e, address, tmp_path, kube_cluster, kubectl, dockerd, terraform_mirror,
                slack_block,
            )  # fmt: skip
            s.slack, s.port, s.source, s.token, s.cli = (
                slack, port, source, token, prefect_stacks_cli,
            )  # fmt: skip
            yield s
        finally:
            stop(proc)


def _prepare(
    e2e, address, tmp_path, kube_cluster, kubectl, dockerd, mirror, slack_block
) -> Scenario:
    cluster = f"kube-{uuid.uuid4().hex[:6]}"
    kube = KubernetesCluster(kubeconfig=SecretStr(kube_cluster.read_text()), kubectl_path=kubectl)
    kube.save(cluster)
    s = Scenario(e2e, address, tmp_path, cluster, kube)
    s.docker = f"docker-{s.id}"
    DockerHost(base_url=dockerd).save(s.docker)
    s.registry_block = f"registry-{s.id}"
    ContainerRegistry(url=f"http://{address}").save(s.registry_block)
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "web.yaml").write_text(MANIFEST.replace("REPOSITORY", s.repository))
    s.manifests = str(manifests)
    with kube.kubectl() as k:
        for target in s.targets.values():
            k.check("create", "namespace", target.namespace, what="creating a namespace")
    stacks = {}
    for method, stack in (("terraform-kubernetes", "k8s-app"), ("terraform-helm", "helm-app")):
        stacks[method] = f"{stack}-{s.id}"
        TerraformStack(
            source=str(stack_path(stack)), provider_mirror=str(mirror),
            state_dir=str(tmp_path / f"state-{stack}"),
        ).save(stacks[method])  # fmt: skip
    directory = tmp_path / "automations"
    directory.mkdir()
    items = []
    for method, target in s.targets.items():
        params = {
            "image": "{{ event.payload.image }}", "tag": "{{ event.payload.tag }}",
            "cluster": cluster, "namespace": target.namespace, "workload": target.workload,
            "method": method, "rollout_timeout_seconds": 20, "slack": slack_block,
            "checks": [{"kind": "command", "command": [sys.executable, "-c", CHECK, "{tag}"],
                        "within_seconds": 30}],
        }  # fmt: skip
        if method == "kubectl":
            params["manifests"] = s.manifests
        else:
            params["stack"] = stacks[method]
        items.append({
            "name": f"e2e-deploy-{METHODS[method]}-{s.id}",
            "trigger": {"expect": ["stacks.image.updated"],
                        "match": {"stacks.image.repository": s.path}},
            "actions": [{"type": "run-deployment", "deployment": DEPLOY, "parameters": params}],
        })  # fmt: skip
    (directory / "c2k.yaml").write_text(yaml.safe_dump({"automations": items}))
    assert len(automations.apply(directory)["created"]) == 3
    s.automations_dir = directory
    return s


def watch_once(s: Scenario) -> None:
    run = s.e2e.run(
        "registry-watcher/default",
        {
            "registry": s.registry_block, "watcher": f"c2k-{s.id}",
            "images": [{"repository": s.path, "policy": {"kind": "newest-build"}}],
            "baseline_on_first_run": False,
        },
    )  # fmt: skip
    assert run.state.is_completed(), s.e2e.explain(run)


@pytest.mark.timeout(1200)
def test_build_watch_notify_deploy_roll_back_and_quarantine_for_each_method(
    setup: Scenario, tmp_path
):
    s = setup
    # 1. v1, seen by polling (the receiver is not up yet)
    v1 = s.build("1.0.0", s.docker)
    watch_once(s)
    runs = s.wait_for_deploys(v1["digest"])
    for method, run in runs.items():
        assert run.state.is_completed(), (method, s.e2e.explain(run))
    s.assert_running("1.0.0", v1["digest"])

    with running_receiver(s.e2e, s.cli, tmp_path / "receiver.log", port=s.port) as receiver:
        # 2. v2 through the registry's own notification, no watcher run
        sent = time.monotonic()
        v2 = s.build("2.0.0", s.docker)
        runs = s.wait_for_deploys(v2["digest"])
        for method, run in runs.items():
            assert run.state.is_completed(), (method, s.e2e.explain(run))
        s.assert_running("2.0.0", v2["digest"])
        print(f"\n[c2k] push v2 -> deployed by notification in {time.monotonic() - sent:.1f} s")

        # 3. v3's pods never become Ready: rolled back to v2, quarantined
        v3 = s.build("3.0.0-unready", s.docker)
        runs = s.wait_for_deploys(v3["digest"])
        for method, run in runs.items():
            assert run.state.is_failed(), (method, s.e2e.explain(run))
            assert "rolled back to 2.0.0@" in run.state.message, (method, run.state.message)
        s.assert_running("2.0.0", v2["digest"])
        for target in s.targets.values():
            record = DeployRecords().load(target)
            assert record.quarantine_of(v3["digest"]) is not None
            assert record.known_good.digest == v2["digest"]
        assert len(s.slack.find("rolled back to")) >= 3

        # ... and neither a watcher run nor a re-sent notification deploys it again
        watch_once(s)
        resend = httpx.post(
            f"{receiver}/hooks/{s.source}",
            headers={"Authorization": f"Bearer {s.token}",
                     "Content-Type": "application/vnd.docker.distribution.events.v1+json"},
            json={"events": [notification(s, "3.0.0-unready", v3["digest"])]},
            timeout=10,
        )  # fmt: skip
        assert resend.status_code in (200, 202), resend.text
        time.sleep(5)
        assert all(len(r) == 1 for r in s.deploy_runs(v3["digest"]).values())
        s.assert_running("2.0.0", v2["digest"])

        # 4. v3' rolls out but fails its functional check: rolled back, quarantined
        bad = s.build("3.0.1-badcheck", s.docker)
        runs = s.wait_for_deploys(bad["digest"])
        for method, run in runs.items():
            assert run.state.is_failed() and "(check)" in run.state.message, (method, run)
        s.assert_running("2.0.0", v2["digest"])

        # 5. v4 goes through
        v4 = s.build("4.0.0", s.docker)
        runs = s.wait_for_deploys(v4["digest"])
        for method, run in runs.items():
            assert run.state.is_completed(), (method, s.e2e.explain(run))
        s.assert_running("4.0.0", v4["digest"])

    # 6. GitLab CI's documented deploy job, against a kubernetes-deploy/web deployment
    gitlab_deploy_job(s, v2)


def notification(s: Scenario, tag: str, digest: str) -> dict:
    return {
        "id": str(uuid.uuid4()),
        "timestamp": "2026-12-02T00:00:00Z",
        "action": "push",
        "target": {
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "digest": digest, "repository": s.path, "tag": tag,
        },
        "request": {"host": s.registry},
    }  # fmt: skip


def gitlab_deploy_job(s: Scenario, image: dict) -> None:
    from prefect.deployments.runner import EntrypointType

    from prefect_stacks.flows.kubernetes import kubernetes_deploy

    target = s.targets["kubectl"]
    kubernetes_deploy.to_deployment(
        name="web",
        parameters={"cluster": s.cluster, "namespace": target.namespace,
                    "workload": target.workload, "manifests": s.manifests},
        work_pool_name=s.e2e.config.pool, entrypoint_type=EntrypointType.MODULE_PATH,
    ).apply()  # fmt: skip
    job = yaml.safe_load(DOCS.read_text())["deploy-kubernetes"]
    script = job["script"][0]
    values = {
        "CI_REGISTRY_IMAGE": s.repository, "IMAGE_DIGEST": image["digest"],
        "CI_COMMIT_SHA": "2.0.0", "CI_PROJECT_PATH": "acme/web", "CI_PIPELINE_ID": "7",
        "CI_JOB_NAME": "deploy-kubernetes", "CI_COMMIT_SHORT_SHA": "2.0.0",
    }  # fmt: skip
    expanded = re.sub(r"\$(\w+)", lambda m: values[m.group(1)], script.replace("\\\n", " "))
    argv = shlex.split(expanded)
    assert argv[:3] == ["prefect-stacks", "trigger", "kubernetes-deploy/web"], argv
    result = run_process(
        [*s.cli, *argv[1:]], env={"PREFECT_API_URL": s.e2e.api_url}, stream=False, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    image_now, _ = s.running("kubectl")
    assert image_now == f"{s.repository}:2.0.0@{image['digest']}"
