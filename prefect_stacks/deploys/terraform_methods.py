"""The two Terraform deploy methods: a TerraformStack with the image as a variable.

* ``terraform-kubernetes`` (ship: ``stacks/k8s-app``): variables ``name``, ``namespace``
  and ``image`` (``repo[:tag]@digest``);
* ``terraform-helm`` (ship: ``stacks/helm-app``): variables ``name`` (the release),
  ``namespace``, ``image_repository``, ``image_digest`` and ``image_tag``.

The stack's providers get the cluster from the environment: ``KUBE_CONFIG_PATH`` (the
run's private copy of the KubernetesCluster block's kubeconfig) and ``KUBE_CTX`` (its
context), which both the kubernetes and the helm provider read. Each apply is planned
first, and the plan summary is the run's artifact, as for ``stack-apply``.

The stacks do not wait for the rollout (``wait_for_rollout = false``, ``wait = false``):
the flow waits, with its own deadline, the same way for every method.

A failed ``terraform apply`` is a :class:`DeployFailed` (rolled back, quarantined) only
if it changed the workload: its ``metadata.generation`` moved. An apply that failed
before touching it (a chart template error, a provider refusing a value) leaves the
running version as it was and is raised as it is, naming what to fix.

Before a helm apply, a release that an interrupted run left ``pending-install``,
``pending-upgrade`` or ``pending-rollback`` (Helm then refuses every operation: "another
operation is in progress") is recovered: its pending revision's storage Secret is
deleted, so the release is back at its last revision (or gone, for an install that never
finished), and the apply goes on.
"""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from prefect_stacks._internal.process import default_logger
from prefect_stacks.blocks.terraform import (
    terraform_apply,
    terraform_init,
    terraform_plan,
)
from prefect_stacks.blocks.terraform.tasks import load_stack
from prefect_stacks.deploys.methods import DeployMethod
from prefect_stacks.deploys.models import Image
from prefect_stacks.exceptions import DeployFailed, StackError

PENDING = ("pending-install", "pending-upgrade", "pending-rollback")


class TerraformMethod(DeployMethod):
    def variables(self, image: Image) -> dict[str, Any]:
        raise NotImplementedError

    @property
    def name(self) -> str:
        return self.target.workload.split("/", 1)[1]

    def generation(self) -> int | None:
        found = self.kubectl.get_json(self.target.workload, f"--namespace={self.target.namespace}")
        return (found or {}).get("metadata", {}).get("generation")

    def before_apply(self) -> None:
        """Anything to put right before the apply (nothing, by default)."""

    def apply(self, image: Image) -> dict:
        stack = load_stack(self.spec.stack or "", self.variables(image))
        env = {"KUBE_CONFIG_PATH": SecretStr(str(self.kubectl.kubeconfig))}
        if self.kubectl.context:
            env["KUBE_CTX"] = SecretStr(self.kubectl.context)
        stack.env = {**stack.env, **env}
        self.before_apply()
        before = self.generation()
        with terraform_init(stack, self.spec.workspace) as workdir:
            plan = terraform_plan(workdir)
            if plan.has_changes:
                try:
                    terraform_apply(workdir, plan)
                except StackError as exc:
                    if self.generation() != before:
                        raise DeployFailed(
                            f"terraform apply failed after changing {self.target.workload}: {exc}",
                            stage="terraform",
                        ) from None
                    raise StackError(
                        f"terraform apply failed before {self.target.workload} changed "
                        f"(it still runs what it ran): {exc}"
                    ) from None
        return {
            "method": self.spec.method,
            "plan": plan.headline(),
            "add": plan.add,
            "change": plan.change,
            "destroy": plan.destroy,
        }


class KubernetesProviderMethod(TerraformMethod):
    def variables(self, image: Image) -> dict[str, Any]:
        return {"name": self.name, "namespace": self.target.namespace, "image": image.pinned}


class HelmProviderMethod(TerraformMethod):
    def variables(self, image: Image) -> dict[str, Any]:
        return {
            "name": self.name,
            "namespace": self.target.namespace,
            "image_repository": image.repository,
            "image_digest": image.digest,
            "image_tag": image.tag or "",
        }

    def before_apply(self) -> None:
        recover_pending_release(self.kubectl, self.name, self.target.namespace)


def recover_pending_release(kubectl, release: str, namespace: str) -> str | None:
    """Delete the storage Secret of ``release``'s newest revision when an interrupted run
    left it pending; returns the status it recovered from (None: nothing to do)."""
    found = kubectl.get_json(
        "secrets", f"--namespace={namespace}", "-l", f"owner=helm,name={release}"
    )
    revisions = [
        s for s in (found or {}).get("items", []) if (s.get("metadata") or {}).get("labels")
    ]
    if not revisions:
        return None
    newest = max(revisions, key=lambda s: int(s["metadata"]["labels"].get("version", "0")))
    labels = newest["metadata"]["labels"]
    status = labels.get("status", "")
    if status not in PENDING:
        return None
    name = newest["metadata"]["name"]
    default_logger().warning(
        "helm release %s/%s: revision %s was left %s by an interrupted run; deleting %s so "
        "the release is back at its last finished revision",
        namespace, release, labels.get("version"), status, name,
    )  # fmt: skip
    kubectl.check(
        "delete", "secret", name, f"--namespace={namespace}", "--ignore-not-found",
        what=f"recovering helm release {release} from {status}",
    )  # fmt: skip
    return status
