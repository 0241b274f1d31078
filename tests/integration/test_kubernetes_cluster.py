"""The KubernetesCluster block and its Kubectl against the test bed's real control plane:
render with images pinned by digest, the API server's dry run before anything changes,
server-side apply reporting created / configured / unchanged, rollouts within a
deadline, and a kubeconfig that stays a secret."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from prefect_stacks.blocks.kubernetes import KubernetesCluster, image_repository
from prefect_stacks.exceptions import KubernetesError

pytestmark = pytest.mark.integration

APP = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: registry.example/acme/web:latest
        - name: sidecar
          image: registry.example/acme/proxy:1.0
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports: [{port: 80}]
"""
DIGEST_1 = "sha256:" + "1" * 64
DIGEST_2 = "sha256:" + "2" * 64


@pytest.fixture
def cluster(kube_cluster: Path, kubectl: str) -> KubernetesCluster:
    namespace = f"kc-{uuid.uuid4().hex[:8]}"
    block = KubernetesCluster(
        kubeconfig=SecretStr(kube_cluster.read_text()), namespace=namespace, kubectl_path=kubectl
    )
    with block.kubectl() as k:
        k.check("create", "namespace", namespace, what="creating the test namespace")
    return block


@pytest.fixture
def manifests(tmp_path: Path) -> Path:
    (tmp_path / "k8s").mkdir()
    (tmp_path / "k8s" / "app.yaml").write_text(APP)
    return tmp_path / "k8s"


def pods(k, namespace: str) -> list[dict]:
    return k.get_json("pods", f"--namespace={namespace}", "-l", "app=web")["items"]


def test_apply_pins_the_digest_rolls_out_and_reports_what_changed(cluster, manifests):
    web = "registry.example/acme/web"
    with cluster.kubectl() as k:
        first = k.apply(manifests, images={web: f"{web}@{DIGEST_1}"})
        assert sorted(first.created) == [
            f"deployment/{cluster.namespace}/web",
            f"service/{cluster.namespace}/web",
        ]
        assert first.pinned == ["Deployment/web web"]  # the sidecar is not ours
        k.rollout(first.workloads, None, time.monotonic() + 90)
        images = {c["image"] for p in pods(k, cluster.namespace) for c in p["spec"]["containers"]}
        assert images == {f"{web}@{DIGEST_1}", "registry.example/acme/proxy:1.0"}

        again = k.apply(manifests, images={web: f"{web}@{DIGEST_1}"})
        assert again.created == [] and again.configured == []
        assert len(again.unchanged) == 2

        moved = k.apply(manifests, images={web: f"{web}@{DIGEST_2}"})
        assert moved.configured == [f"deployment/{cluster.namespace}/web"]
        assert moved.unchanged == [f"service/{cluster.namespace}/web"]
        k.rollout(moved.workloads, None, time.monotonic() + 90)
        deployment = k.get_json("deployment", "web", f"--namespace={cluster.namespace}")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == f"{web}@{DIGEST_2}"
    assert deployment["status"]["updatedReplicas"] == 2


def test_a_manifest_the_api_server_refuses_changes_nothing(cluster, manifests, tmp_path):
    web = "registry.example/acme/web"
    with cluster.kubectl() as k:
        k.apply(manifests, images={web: f"{web}@{DIGEST_1}"})
        bad = tmp_path / "bad"
        bad.mkdir()
        # a good Service change and a Deployment with an unknown field, in one apply
        (bad / "app.yaml").write_text(
            APP.replace("  replicas: 2", "  replicaz: 2").replace("port: 80", "port: 8080")
        )
        with pytest.raises(KubernetesError) as exc:
            k.apply(bad, images={web: f"{web}@{DIGEST_2}"})
        service = k.get_json("service", "web", f"--namespace={cluster.namespace}")
        deployment = k.get_json("deployment", "web", f"--namespace={cluster.namespace}")
    message = str(exc.value)
    assert "field not declared in schema" in message and "nothing was applied" in message
    assert "fix the field" in message
    assert service["spec"]["ports"][0]["port"] == 80  # the good document was not applied
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == f"{web}@{DIGEST_1}"


def test_a_rollout_that_cannot_complete_fails_at_the_deadline(cluster, manifests, tmp_path):
    stuck = tmp_path / "stuck"
    stuck.mkdir()
    (stuck / "app.yaml").write_text(
        APP.replace(
            "    spec:\n      containers:",
            "    spec:\n      nodeSelector: {pool: none}\n      containers:",
        )  # noqa: E501
    )
    with cluster.kubectl() as k:
        report = k.apply(stuck)
        started = time.monotonic()
        with pytest.raises(KubernetesError) as exc:
            k.rollout(report.workloads, None, time.monotonic() + 5)
    assert time.monotonic() - started < 60
    assert "deployment/web" in str(exc.value) and "did not complete" in str(exc.value)


def test_a_kustomization_is_built_by_kubectl(cluster, manifests):
    (manifests / "kustomization.yaml").write_text(
        "resources: [app.yaml]\ncommonLabels: {team: platform}\n"
    )
    with cluster.kubectl() as k:
        report = k.apply(manifests)
        service = k.get_json("service", "web", f"--namespace={cluster.namespace}")
    assert len(report.created) == 2
    assert service["metadata"]["labels"]["team"] == "platform"


def test_the_kubeconfig_is_a_secret_and_bad_ones_are_named(kube_cluster: Path):
    text = kube_cluster.read_text()
    block = KubernetesCluster(kubeconfig=SecretStr(text))
    assert text not in repr(block) and "**" in repr(block.kubeconfig)
    with pytest.raises(ValidationError) as not_yaml:
        KubernetesCluster(kubeconfig=SecretStr("{not: [yaml"))
    assert "not valid YAML" in str(not_yaml.value) and "{not" not in str(not_yaml.value)
    with pytest.raises(ValidationError, match="its contexts are"):
        KubernetesCluster(kubeconfig=SecretStr(text), context="no-such-context")


def test_a_cluster_that_does_not_answer_says_so(kube_cluster: Path, kubectl: str):
    import yaml

    data = yaml.safe_load(kube_cluster.read_text())
    for cluster in data["clusters"]:
        cluster["cluster"]["server"] = "https://127.0.0.1:1"
    block = KubernetesCluster(
        kubeconfig=SecretStr(json.dumps(data)), kubectl_path=kubectl, request_timeout=3
    )
    with block.kubectl() as k, pytest.raises(KubernetesError) as exc:
        k.server_version()
    assert "does not answer" in str(exc.value)


def test_image_repository():
    assert (
        image_repository("registry.example:5000/acme/web:1.4") == "registry.example:5000/acme/web"
    )
    assert image_repository("acme/web@sha256:" + "a" * 64) == "acme/web"
    assert image_repository("nginx") == "nginx"
