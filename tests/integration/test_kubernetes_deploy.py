"""kubernetes-deploy, kubernetes-rollback and kubernetes-unpin on the test bed's real
control plane (kwok nodes), with the kubectl method: the record of each target, rollbacks
after a rollout that never completes, a failing functional check and a firing alert (a
real Alertmanager), quarantine, pins, and bad input that leaves the running version alone.

kwok runs no containers; a pod is Ready when kwok's stage says so. The test cluster's
stages (tests/testbed/kwok-stages.yaml) keep the pods of an image whose tag contains
"unready" Running but never Ready, so that rollout really fails in the API server. The
functional checks are commands the test controls: they fail for the digest it chooses.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from prefect_stacks.blocks.kubernetes import KubernetesCluster
from prefect_stacks.blocks.slack import SlackChannel
from prefect_stacks.deploys.targets import DeployRecords, Target
from prefect_stacks.exceptions import ConfigurationError, KubernetesError
from prefect_stacks.flows.kubernetes import (
    kubernetes_deploy,
    kubernetes_rollback,
    kubernetes_unpin,
)
from tests.conftest import read_events, require_provider, wait_for
from tests.fakes.slack import FakeSlack

pytestmark = pytest.mark.integration

REPO = "registry.example/acme/web"
APP = (
    (Path(__file__).parents[1] / "data" / "manifests" / "web.yaml")
    .read_text()
    .replace("REPOSITORY", REPO)
)


def digest(name: str) -> str:
    return "sha256:" + hashlib.sha256(f"{name}-{uuid.uuid4()}".encode()).hexdigest()


@pytest.fixture(scope="module")
def slack():
    with FakeSlack(tokens=["xoxb-deploy"], channels=["deploys"]) as fake:
        yield fake


@pytest.fixture
def env(kube_cluster: Path, kubectl: str, prefect_harness, tmp_path: Path, slack):
    namespace = f"kd-{uuid.uuid4().hex[:8]}"
    name = f"kube-{uuid.uuid4().hex[:6]}"
    block = KubernetesCluster(
        kubeconfig=SecretStr(kube_cluster.read_text()), namespace=namespace, kubectl_path=kubectl
    )
    block.save(name)
    with block.kubectl() as k:
        k.check("create", "namespace", namespace, what="creating the test namespace")
    manifests = tmp_path / "k8s"
    manifests.mkdir()
    (manifests / "app.yaml").write_text(APP)
    slack_block = f"slack-{uuid.uuid4().hex[:6]}"
    SlackChannel(bot_token="xoxb-deploy", channel="#deploys", api_url=slack.api_url).save(
        slack_block
    )
    return {
        "block": block,
        "name": name,
        "namespace": namespace,
        "manifests": str(manifests),
        "slack": slack_block,
        "target": Target(cluster=name, namespace=namespace, workload="deployment/web"),
    }


SHIPPED = {
    "terraform-kubernetes": ("k8s-app", "kubernetes"),
    "terraform-helm": ("helm-app", "helm"),
}


def use_method(env, method: str, tmp_path: Path, mirror: Path | None = None) -> None:
    """Point ``env``'s deploys at ``method``: the manifests, or a TerraformStack block of
    the shipped stack (providers from the test bed's mirror, state in ``tmp_path``)."""
    env["method"] = method
    if method == "kubectl":
        return
    from prefect_stacks._internal.data import stack_path
    from prefect_stacks.blocks.terraform import TerraformStack

    stack, provider = SHIPPED[method]
    require_provider(provider)
    name = f"{stack}-{uuid.uuid4().hex[:6]}"
    TerraformStack(
        source=str(stack_path(stack)), provider_mirror=str(mirror),
        state_dir=str(tmp_path / "state"),
    ).save(name)  # fmt: skip
    env["stack"] = name


def deploy(env, tag: str, dig: str, **kw):
    method = env.get("method", "kubectl")
    return kubernetes_deploy(
        image=f"{REPO}:{tag}@{dig}",
        cluster=env["name"],
        workload="deployment/web",
        method=method,
        manifests=env["manifests"] if method == "kubectl" else None,
        stack=env.get("stack"),
        slack=env["slack"],
        rollout_timeout_seconds=kw.pop("timeout", 60),
        return_state=True,
        **kw,
    )


def running(env) -> tuple[str, dict]:
    with env["block"].kubectl() as k:
        dep = k.get_json("deployment/web", f"--namespace={env['namespace']}")
    return dep["spec"]["template"]["spec"]["containers"][0]["image"], dep["status"]


def record(env):
    return DeployRecords().load(env["target"])


# kubectl here; the same for the Terraform methods, end to end through the worker:
# tests/e2e/test_containers_to_kubernetes.py
@pytest.mark.parametrize("method", ["kubectl"])
def test_deploy_records_known_good_and_a_failed_rollout_rolls_back_and_quarantines(
    env, slack, method, tmp_path, request
):
    mirror = request.getfixturevalue("terraform_mirror") if method != "kubectl" else None
    use_method(env, method, tmp_path, mirror)
    d1, d2, d3 = digest("v1"), digest("v2"), digest("v3")
    first = deploy(env, "1.0.0", d1)
    assert first.is_completed(), first.message
    result = first.result()
    assert result["outcome"] == "deployed"
    if method == "kubectl":
        assert f"deployment/{env['namespace']}/web" in result["created"]
    else:
        assert result["add"] >= 1 and result["method"] == method
    image, status = running(env)
    assert image == f"{REPO}:1.0.0@{d1}"
    assert status.get("readyReplicas") == 2 and status.get("updatedReplicas") == 2

    assert deploy(env, "2.0.0", d2).is_completed()
    rec = record(env)
    assert rec.known_good.digest == d2 and rec.deployed.digest == d2
    assert [r.digest for r in rec.history] == [d1]

    # v3's pods run but never become Ready: the rollout misses its deadline
    state = deploy(env, "3.0.0-unready", d3, timeout=15)
    assert state.is_failed()
    assert "rolled back to 2.0.0@" in state.message and "quarantined" in state.message
    image, status = running(env)
    assert image == f"{REPO}:2.0.0@{d2}"
    assert status.get("readyReplicas") == 2
    rec = record(env)
    assert rec.deployed.digest == d2 and rec.known_good.digest == d2
    assert rec.quarantine_of(d3) is not None and "rollout" in rec.quarantine_of(d3).reason

    # the same digest again (a re-sent notification, a watcher): not deployed
    again = deploy(env, "3.0.0-unready", d3)
    assert again.is_completed() and again.result()["outcome"] == "skipped"
    assert "quarantined" in again.result()["reason"]
    assert running(env)[0] == f"{REPO}:2.0.0@{d2}"

    events = read_events("stacks.deploy.rolled-back", f"stacks.deploy.{env['target'].key}")
    assert events and events[0]["payload"]["failed_digest"] == d3
    assert events[0]["payload"]["stage"] == "rollout"
    assert slack.find("rolled back to") and slack.find(d3[:19])

    # a newer image goes through
    d4 = digest("v4")
    assert deploy(env, "4.0.0", d4).is_completed()
    assert running(env)[0] == f"{REPO}:4.0.0@{d4}"


def test_a_failing_functional_check_rolls_back(env, tmp_path):
    good, bad = digest("good"), digest("bad")
    script = tmp_path / "check.py"
    script.write_text(
        f"import os, sys\nsys.exit(1 if os.environ['DEPLOY_DIGEST'] == {bad!r} else 0)\n"
    )
    check = {"kind": "command", "command": [sys.executable, str(script), "{digest}"]}
    assert deploy(env, "1.0.0", good, checks=[check]).is_completed()
    state = deploy(env, "1.0.1", bad, checks=[check])
    assert state.is_failed() and "(check)" in state.message
    assert running(env)[0] == f"{REPO}:1.0.0@{good}"
    assert record(env).quarantine_of(bad) is not None


def test_an_alert_firing_in_the_watch_window_rolls_back(env, alertmanager, prefect_harness):
    from prefect_stacks.blocks.alertmanager import Alertmanager

    am = f"am-{uuid.uuid4().hex[:6]}"
    Alertmanager(url=alertmanager).save(am)
    service = f"web-{uuid.uuid4().hex[:6]}"
    watch = {"alertmanager": am, "labels": {"service": service}, "window_seconds": 3,
             "poll_seconds": 1}  # fmt: skip
    good, bad = digest("good"), digest("bad")
    assert deploy(env, "1.0.0", good, alerts=watch).is_completed()
    response = httpx.post(
        f"{alertmanager}/api/v2/alerts",
        json=[{"labels": {"alertname": "Http5xx", "service": service, "severity": "critical"}}],
        timeout=10,
    )
    assert response.status_code == 200, response.text
    state = deploy(env, "1.0.1", bad, alerts=watch)
    assert state.is_failed() and "Http5xx" in state.message
    assert running(env)[0] == f"{REPO}:1.0.0@{good}"


def test_a_manual_rollback_pins_the_target_until_unpinned(env):
    d1, d2, d3 = digest("v1"), digest("v2"), digest("v3")
    for tag, dig in (("1", d1), ("2", d2)):
        assert deploy(env, tag, dig).is_completed()
    back = kubernetes_rollback(
        cluster=env["name"], workload="deployment/web", reason="bad release", return_state=True
    )
    assert back.is_completed(), back.message
    assert running(env)[0] == f"{REPO}:1@{d1}"
    assert record(env).pinned.digest == d1
    skipped = deploy(env, "3", d3)
    assert skipped.result()["outcome"] == "skipped" and "pinned" in skipped.result()["reason"]
    assert running(env)[0] == f"{REPO}:1@{d1}"
    events = read_events("stacks.deploy.rolled-back", f"stacks.deploy.{env['target'].key}")
    assert any(e["payload"]["stage"] == "manual" and e["payload"]["pinned"] for e in events)

    assert kubernetes_unpin(cluster=env["name"], workload="deployment/web")["outcome"] == (
        "unpinned"
    )
    assert deploy(env, "3", d3).is_completed()
    assert running(env)[0] == f"{REPO}:3@{d3}"


def test_a_manifest_the_api_server_refuses_leaves_the_running_version(env, tmp_path):
    good = digest("good")
    assert deploy(env, "1", good).is_completed()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "app.yaml").write_text(APP.replace("replicas: 2", "replicas: 2\n  replicaz: 3"))
    with pytest.raises(KubernetesError, match="replicaz"):
        kubernetes_deploy(
            image=f"{REPO}:2@{digest('x')}", cluster=env["name"], workload="deployment/web",
            manifests=str(bad),
        )  # fmt: skip
    assert running(env)[0] == f"{REPO}:1@{good}"
    assert record(env).deployed.digest == good and not record(env).quarantined


def test_bad_parameters_are_clear_errors(env):
    base = dict(cluster=env["name"], workload="deployment/web", manifests=env["manifests"])
    with pytest.raises(ConfigurationError, match="has no digest"):
        kubernetes_deploy(image=f"{REPO}:latest", **base)
    with pytest.raises(ConfigurationError, match="uses the image repository"):
        kubernetes_deploy(image=f"other.example/x@{digest('o')}", **base)
    with pytest.raises(ConfigurationError, match="define no deployment/api"):
        kubernetes_deploy(image=f"{REPO}@{digest('a')}", **{**base, "workload": "deployment/api"})
    with pytest.raises(ConfigurationError, match="no block named|not found|create it"):
        kubernetes_deploy(image=f"{REPO}@{digest('a')}", **{**base, "cluster": "no-such-cluster"})


def test_a_cluster_that_does_not_answer_is_a_clear_error(env, prefect_harness, kubectl):
    dead = env["block"].kubeconfig.get_secret_value()
    import re

    dead = re.sub(r"server: https://[^\s]+", "server: https://127.0.0.1:1", dead)
    name = f"dead-{uuid.uuid4().hex[:6]}"
    KubernetesCluster(
        kubeconfig=SecretStr(dead), namespace="default", kubectl_path=kubectl, request_timeout=3
    ).save(name)
    started = time.monotonic()
    with pytest.raises(KubernetesError, match="does not answer"):
        kubernetes_deploy(
            image=f"{REPO}@{digest('a')}", cluster=name, workload="deployment/web",
            manifests=env["manifests"],
        )  # fmt: skip
    assert time.monotonic() - started < 60


# --------------------------------------------------------------------------- helm
def helm_revisions(env) -> list[tuple[int, str]]:
    with env["block"].kubectl() as k:
        found = k.get_json(
            "secrets", f"--namespace={env['namespace']}", "-l", "owner=helm,name=web"
        )
    return sorted(
        (int(s["metadata"]["labels"]["version"]), s["metadata"]["labels"]["status"])
        for s in found["items"]
    )


def test_helm_recovers_a_release_an_interrupted_run_left_pending(
    env, tmp_path, terraform_mirror, helm_bin, kube_cluster
):
    from prefect_stacks._internal.data import stack_path

    use_method(env, "terraform-helm", tmp_path, terraform_mirror)
    d1, d2 = digest("v1"), digest("v2")
    assert deploy(env, "1.0.0", d1).is_completed()
    # a run that dies while Helm waits: the release stays pending-upgrade
    interrupted = subprocess.Popen(
        [
            helm_bin, "upgrade", "web", str(stack_path("helm-app") / "chart"),
            f"--namespace={env['namespace']}", f"--kubeconfig={kube_cluster}",
            "--reuse-values", "--set", "image.tag=1.0.1-unready", "--wait", "--timeout=300s",
        ],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(
            "helm to mark the release pending-upgrade",
            lambda: helm_revisions(env)[-1][1] == "pending-upgrade",
            timeout=60,
        )
    finally:
        interrupted.kill()
        interrupted.wait()
    state = deploy(env, "2.0.0", d2)
    assert state.is_completed(), state.message
    assert running(env)[0] == f"{REPO}:2.0.0@{d2}"
    assert helm_revisions(env)[-1][1] == "deployed"
    assert all(status != "pending-upgrade" for _, status in helm_revisions(env))


def test_a_chart_template_error_leaves_the_running_version(env, tmp_path, terraform_mirror):
    from prefect_stacks._internal.data import stack_path
    from prefect_stacks.blocks.terraform import TerraformStack

    use_method(env, "terraform-helm", tmp_path, terraform_mirror)
    good = digest("good")
    assert deploy(env, "1", good).is_completed()
    broken = tmp_path / "broken-chart"
    shutil.copytree(stack_path("helm-app") / "chart", broken)
    (broken / "templates" / "broken.yaml").write_text("data: {{ .Values.missing.key }}\n")
    block = TerraformStack.load(env["stack"])
    block.variables = {"chart": str(broken)}
    block.save(env["stack"], overwrite=True)
    state = deploy(env, "2", digest("two"))
    assert state.is_failed()
    assert "broken.yaml" in state.message and "nil pointer" in state.message
    assert running(env)[0] == f"{REPO}:1@{good}"
    assert not record(env).quarantined and record(env).deployed.digest == good


# --------------------------------------------------------------------------- images
def test_an_image_missing_from_the_registry_or_behind_a_login_deploys_nothing(
    env, registry, registry_with_login
):
    from prefect_stacks.blocks.registry import ContainerRegistry
    from tests.oci import Pusher

    good = digest("good")
    assert deploy(env, "1", good).is_completed()
    name = f"reg-{uuid.uuid4().hex[:6]}"
    ContainerRegistry(url=f"http://{registry}").save(name)
    pushed = Pusher(registry).image("acme/web", "1.0")
    base = dict(cluster=env["name"], workload="deployment/web", manifests=env["manifests"])
    with pytest.raises(ConfigurationError, match="does not exist in"):
        kubernetes_deploy(image=f"{registry}/acme/web@{digest('never-pushed')}",
                          registry=name, **base)  # fmt: skip
    with pytest.raises(ConfigurationError, match="is not in registry"):
        kubernetes_deploy(image=f"{REPO}@{pushed}", registry=name, **base)
    locked, _, _ = registry_with_login
    ContainerRegistry(url=f"http://{locked}").save(f"{name}-login")
    with pytest.raises(ConfigurationError, match="wants credentials.*`credentials`"):
        kubernetes_deploy(image=f"{locked}/acme/web@{digest('x')}", registry=f"{name}-login",
                          **base)  # fmt: skip
    assert running(env)[0] == f"{REPO}:1@{good}"
    assert not record(env).quarantined


def test_http_checks_pass_on_the_expected_answer_and_fail_with_what_was_seen():
    import http.server
    import threading

    from prefect_stacks.deploys.checks import HttpCheck, run_checks
    from prefect_stacks.exceptions import DeployFailed

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            ok = "bad" not in self.path
            self.send_response(200 if ok else 503)
            self.end_headers()
            self.wfile.write(b"shop is up" if ok else b"down")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    values = dict(image="r/x@" + digest("a"), digest=digest("a"), tag="good", namespace="n",
                  workload="deployment/web")  # fmt: skip
    try:
        run_checks([HttpCheck(url=url + "/health?tag={tag}", expect_text="up")], **values)
        with pytest.raises(DeployFailed, match="HTTP 503") as failed:
            run_checks([HttpCheck(url=url + "/health?tag={tag}", within_seconds=2)],
                       **{**values, "tag": "bad"})  # fmt: skip
        assert failed.value.stage == "check"
    finally:
        server.shutdown()


def test_a_rollback_that_fails_by_terraform_is_reported_not_raised(prefect_harness):
    from prefect import flow

    from prefect_stacks.deploys.methods import DeployMethod
    from prefect_stacks.deploys.models import Image, MethodSpec
    from prefect_stacks.deploys.targets import Release
    from prefect_stacks.exceptions import DeployFailed, StackError
    from prefect_stacks.flows.kubernetes import roll_back

    target = Target(cluster=f"c-{uuid.uuid4().hex[:6]}", namespace="n", workload="deployment/web")
    records = DeployRecords()
    spec = MethodSpec(method="terraform-kubernetes", stack="s")
    good, bad = Release(digest=digest("good"), tag="1"), digest("bad")
    records.update(target, lambda r: r.record_good(good, REPO, spec))

    class BrokenTerraform(DeployMethod):
        def deploy(self, image, timeout_seconds):
            raise StackError("terraform apply failed: provider refused the value")

    @flow
    def run():
        return roll_back(
            DeployFailed("rollout missed its deadline", stage="rollout"),
            records=records, deployer=BrokenTerraform(spec, None, target),
            failed=Image(REPO, bad, "2"), rollback=True, timeout_seconds=5,
            slack=None,
        )  # fmt: skip

    error = run()
    assert "the rollback to 1@" in str(error) and "provider refused" in str(error)
    record = records.load(target)
    assert record.quarantine_of(bad) is not None
    assert record.deployed.digest == good.digest  # not recorded as rolled back
