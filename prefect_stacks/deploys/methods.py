"""How an image gets onto a Kubernetes target: a :class:`DeployMethod` applies one image
and waits for the workload's rollout within a deadline the flow owns.

* ``kubectl``: the manifests (a directory, a file or a kustomization on the worker) with
  the image pinned by digest, checked by the API server's dry run, server-side applied;
* ``terraform-kubernetes`` and ``terraform-helm``: a TerraformStack with the image as
  variables, planned and applied (:mod:`.terraform_methods`).

Whatever the method, the rollout is waited for by kubectl against the target workload,
so every method fails the same way when pods never become Ready: :class:`DeployFailed`
with stage ``rollout``. An error before anything reached the cluster (a manifest the API
server refuses, a missing block) is a ``ConfigurationError`` or ``KubernetesError``, and
the running version is untouched.
"""

from __future__ import annotations

import time
from pathlib import Path

from prefect_stacks._internal.process import default_logger
from prefect_stacks.blocks.kubernetes import Kubectl
from prefect_stacks.deploys.models import Image, MethodSpec
from prefect_stacks.deploys.targets import Target
from prefect_stacks.exceptions import ConfigurationError, DeployFailed, KubernetesError


class DeployMethod:
    """Apply an image to a target and wait for the rollout; one per method."""

    def __init__(self, spec: MethodSpec, kubectl: Kubectl, target: Target) -> None:
        self.spec = spec
        self.kubectl = kubectl
        self.target = target

    def apply(self, image: Image) -> dict:
        """Put ``image`` into the workload; a summary of what changed."""
        raise NotImplementedError

    def deploy(self, image: Image, timeout_seconds: float) -> dict:
        """Apply ``image`` and wait for the target's rollout, all within
        ``timeout_seconds``; a summary of what changed."""
        deadline = time.monotonic() + timeout_seconds
        summary = self.apply(image)
        try:
            self.kubectl.rollout([self.target.workload], self.target.namespace, deadline)
        except KubernetesError as exc:
            raise DeployFailed(str(exc), stage="rollout") from None
        default_logger().info("%s rolled out %s", self.target.key, image.short)
        return summary


class KubectlMethod(DeployMethod):
    def source(self) -> Path:
        path = Path(self.spec.manifests or "").expanduser()
        if not path.exists():
            raise ConfigurationError(
                f"manifests {self.spec.manifests!r} do not exist on this worker; fix the "
                "`manifests` parameter (a directory, a file or a kustomization)"
            )
        return path

    def apply(self, image: Image) -> dict:
        source = self.source()
        docs, pinned = self.kubectl.render(source, {image.repository: image.pinned})
        found = {f"{d['kind'].lower()}/{(d.get('metadata') or {}).get('name')}" for d in docs}
        if self.target.workload not in found:
            raise ConfigurationError(
                f"the manifests in {source} define no {self.target.workload} (they have "
                f"{', '.join(sorted(found)) or 'nothing'}); fix `workload` or the manifests"
            )
        if not pinned:
            raise ConfigurationError(
                f"no container in {source} uses the image repository {image.repository}; "
                "write it in the manifest (any tag) so the deploy can pin its digest"
            )
        report = self.kubectl.apply_documents(docs, pinned, self.target.namespace)
        return {"method": "kubectl", **report.model_dump()}


def method_for(spec: MethodSpec, kubectl: Kubectl, target: Target) -> DeployMethod:
    from prefect_stacks.deploys.terraform_methods import (
        HelmProviderMethod,
        KubernetesProviderMethod,
    )

    spec.check()
    methods: dict[str, type[DeployMethod]] = {
        "kubectl": KubectlMethod,
        "terraform-kubernetes": KubernetesProviderMethod,
        "terraform-helm": HelmProviderMethod,
    }
    return methods[spec.method](spec, kubectl, target)
