"""The test bed's control plane is a real Kubernetes: kubectl against the API server
started by the ``kube_cluster`` fixture (etcd, kube-apiserver, controller-manager,
scheduler and a kwok node). Nothing here is mocked: rollouts are the Deployment and
ReplicaSet controllers' work, scheduling the scheduler's, readiness kwok's, refusals the
API server's own."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

APP = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {namespace}
spec:
  replicas: 2
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
        - name: web
          image: {image}
          ports: [{{containerPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: {namespace}
spec:
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
"""


class Kubectl:
    def __init__(self, binary: str, kubeconfig: Path) -> None:
        self.binary = binary
        self.kubeconfig = kubeconfig

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [self.binary, f"--kubeconfig={self.kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=180,
        )

    def ok(self, *args: str, stdin: str | None = None) -> str:
        proc = self.run(*args, stdin=stdin)
        assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr}"
        return proc.stdout

    def json(self, *args: str) -> dict:
        return json.loads(self.ok(*args, "-o", "json"))


@pytest.fixture
def k(kubectl: str, kube_cluster: Path) -> Kubectl:
    return Kubectl(kubectl, kube_cluster)


@pytest.fixture
def namespace(k: Kubectl):
    name = f"smoke-{uuid.uuid4().hex[:8]}"
    k.ok("create", "namespace", name)
    yield name
    k.run("delete", "namespace", name, "--wait=false")


def test_the_server_is_the_pinned_kubernetes(k: Kubectl):
    from tests import testbed

    version = k.json("version")
    assert version["serverVersion"]["gitVersion"] == testbed.kube_version()
    nodes = k.json("get", "nodes")["items"]
    assert nodes, "the fixture should have made a kwok node"
    ready = {c["type"]: c["status"] for c in nodes[0]["status"]["conditions"]}
    assert ready["Ready"] == "True"


def test_apply_rolls_out_on_the_kwok_node_and_a_new_image_rolls_out_again(
    k: Kubectl, namespace: str
):
    applied = k.ok(
        "apply", "--server-side", "--field-manager=smoke", "-f", "-",
        stdin=APP.format(namespace=namespace, image="registry.invalid/web:1"),
    )  # fmt: skip
    assert "deployment.apps/web serverside-applied" in applied
    assert "service/web serverside-applied" in applied
    k.ok("rollout", "status", "deployment/web", "-n", namespace, "--timeout=90s")

    nodes = {n["metadata"]["name"] for n in k.json("get", "nodes")["items"]}
    pods = k.json("get", "pods", "-n", namespace, "-l", "app=web")["items"]
    assert len(pods) == 2
    for pod in pods:
        assert pod["spec"]["nodeName"] in nodes
        conditions = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
        assert conditions["Ready"] == "True", pod["status"]
        assert pod["spec"]["containers"][0]["image"] == "registry.invalid/web:1"
    service = k.json("get", "service", "web", "-n", namespace)
    assert service["spec"]["clusterIP"]  # allocated by the API server

    k.ok(
        "apply", "--server-side", "--field-manager=smoke", "-f", "-",
        stdin=APP.format(namespace=namespace, image="registry.invalid/web:2"),
    )  # fmt: skip
    k.ok("rollout", "status", "deployment/web", "-n", namespace, "--timeout=90s")
    deployment = k.json("get", "deployment", "web", "-n", namespace)
    assert deployment["metadata"]["generation"] == 2
    assert deployment["status"]["updatedReplicas"] == 2
    assert deployment["status"]["availableReplicas"] == 2
    replica_sets = k.json("get", "replicasets", "-n", namespace, "-l", "app=web")["items"]
    images = sorted(rs["spec"]["template"]["spec"]["containers"][0]["image"] for rs in replica_sets)
    assert images == ["registry.invalid/web:1", "registry.invalid/web:2"]
    live = k.json("get", "pods", "-n", namespace, "-l", "app=web")["items"]
    assert {p["spec"]["containers"][0]["image"] for p in live if not p["metadata"].get(
        "deletionTimestamp"
    )} == {"registry.invalid/web:2"}  # fmt: skip


def test_an_unknown_field_is_refused_by_the_api_server(k: Kubectl, namespace: str):
    bad = APP.format(namespace=namespace, image="registry.invalid/web:1").replace(
        "  replicas: 2", "  replicaz: 2", 1
    )
    proc = k.run("apply", "--server-side", "--validate=strict", "-f", "-", stdin=bad)
    assert proc.returncode != 0
    assert ".spec.replicaz: field not declared in schema" in proc.stderr
    missing = k.run("get", "deployment", "web", "-n", namespace)
    assert missing.returncode != 0 and "NotFound" in missing.stderr


def test_a_wrong_api_version_is_refused(k: Kubectl, namespace: str):
    bad = APP.format(namespace=namespace, image="registry.invalid/web:1").replace(
        "apiVersion: apps/v1", "apiVersion: apps/v1beta1", 1
    )
    proc = k.run("apply", "--server-side", "-f", "-", stdin=bad)
    assert proc.returncode != 0
    assert 'no matches for kind "Deployment" in version "apps/v1beta1"' in proc.stderr
    assert k.run("get", "deployment", "web", "-n", namespace).returncode != 0
