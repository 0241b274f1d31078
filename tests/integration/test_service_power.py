"""service-power on the test bed's real Kubernetes control plane (kwok nodes) and on this
machine's own init-script services through real Ansible: stop records the replicas and
scales to 0, start restores exactly the recorded counts and waits for the rollout; the
services that a stop stopped are started again, and one that was already stopped is
left so."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from pydantic import SecretStr

from prefect_stacks.blocks.ansible import AnsiblePlaybook
from prefect_stacks.blocks.kubernetes import KubernetesCluster
from prefect_stacks.exceptions import ConfigurationError
from prefect_stacks.flows.day2.power import service_power
from tests.conftest import require

pytestmark = pytest.mark.integration

APP = """
apiVersion: apps/v1
kind: {kind}
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  {extra}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers: [{{name: app, image: registry.example/acme/{name}:1}}]
"""


@pytest.fixture
def cluster(kube_cluster: Path, kubectl: str, prefect_harness) -> dict:
    namespace = f"pw-{uuid.uuid4().hex[:8]}"
    name = f"kube-{uuid.uuid4().hex[:6]}"
    block = KubernetesCluster(
        kubeconfig=SecretStr(kube_cluster.read_text()), namespace=namespace, kubectl_path=kubectl
    )
    block.save(name)
    with block.kubectl() as k:
        k.check("create", "namespace", namespace, what="creating the test namespace")
        for kind, app, replicas, extra in (
            ("Deployment", "web", 3, ""),
            ("Deployment", "worker", 2, ""),
            ("StatefulSet", "db", 1, "serviceName: db"),
        ):
            manifest = APP.format(kind=kind, name=app, replicas=replicas, extra=extra)
            k.check("apply", "-f", "-", f"--namespace={namespace}", stdin=manifest, what="apply")
        k.rollout(
            ["deployment/web", "deployment/worker", "statefulset/db"],
            namespace,
            time.monotonic() + 120,
        )
    return {"name": name, "namespace": namespace, "block": block}


def replicas(cluster: dict) -> dict[str, tuple[int, int]]:
    with cluster["block"].kubectl() as k:
        found = {}
        for workload in ("deployment/web", "deployment/worker", "statefulset/db"):
            obj = k.get_json(workload, f"--namespace={cluster['namespace']}")
            found[workload] = (obj["spec"]["replicas"], obj["status"].get("readyReplicas") or 0)
    return found


def test_stop_then_start_restores_the_recorded_replicas(cluster: dict):
    params = {
        "cluster": cluster["name"],
        "workloads": ["deployment/web", "deployment/worker", "statefulset/db"],
    }
    stopped = service_power(action="stop", **params)
    assert replicas(cluster) == {w: (0, 0) for w in params["workloads"]}
    assert "deployment/web: stopped (was 3 replicas)" in stopped["kubernetes"]
    # stopping again keeps the record (it does not record 0)
    again = service_power(action="stop", **params)
    assert "deployment/web: already stopped (3 recorded)" in again["kubernetes"]
    status = service_power(action="status", **params)
    assert "deployment/worker: stopped, 2 recorded to start with" in status["kubernetes"]

    started = service_power(action="start", **params)
    assert replicas(cluster) == {
        "deployment/web": (3, 3),
        "deployment/worker": (2, 2),
        "statefulset/db": (1, 1),
    }
    assert "deployment/web: started (3 replicas ready)" in started["kubernetes"]
    # the record is gone: a workload scaled to 0 by hand is not guessed at
    with cluster["block"].kubectl() as k:
        k.check("scale", "deployment/worker", "--replicas=0", f"--namespace={cluster['namespace']}",
                what="scale by hand")  # fmt: skip
    with pytest.raises(ConfigurationError, match="deployment/worker .*no stop of service-power"):
        service_power(action="start", **params)


def test_bad_workloads_and_missing_pieces_are_named(cluster: dict):
    with pytest.raises(ConfigurationError, match="daemonset has no replica count"):
        service_power(action="stop", cluster=cluster["name"], workloads=["daemonset/agent"])
    with pytest.raises(ConfigurationError, match="does not exist in namespace"):
        service_power(action="stop", cluster=cluster["name"], workloads=["deployment/nope"])
    with pytest.raises(ConfigurationError, match="nothing to do"):
        service_power(action="stop")


def _service(name: str, verb: str) -> int:
    return subprocess.run(["service", name, verb], capture_output=True).returncode


@pytest.fixture
def init_services(prefect_harness):
    """This machine's nginx and varnish init scripts (Debian packages): real services an
    init system starts and stops, on one host reached by Ansible's local connection."""
    require(shutil.which("service") is not None, "the `service` command (init-system-helpers)")
    for name in ("nginx", "varnish"):
        require(Path(f"/etc/init.d/{name}").exists(), f"/etc/init.d/{name} (Debian package {name})")
    _service("varnish", "stop")
    assert _service("nginx", "start") == 0, "the nginx init script could not start nginx"
    block = f"power-{uuid.uuid4().hex[:6]}"
    AnsiblePlaybook(
        playbook="service-power",
        inventory="[servers]\nweb-1 ansible_connection=local "
        f"ansible_python_interpreter={sys.executable}\n",
    ).save(block)
    try:
        yield block
    finally:
        _service("nginx", "stop")
        _service("varnish", "stop")


def test_start_restarts_what_stop_stopped_and_leaves_what_was_already_stopped(init_services):
    params = {"playbook": init_services, "services": ["nginx", "varnish"]}
    status = service_power(action="status", **params)
    assert status["servers"] == ["web-1: nginx: running; varnish: stopped"]
    stopped = service_power(action="stop", **params)
    assert stopped["servers"] == ["web-1: stopped nginx"]
    assert _service("nginx", "status") != 0
    started = service_power(action="start", **params)
    assert started["servers"] == ["web-1: started nginx"]
    assert _service("nginx", "status") == 0 and _service("varnish", "status") != 0
