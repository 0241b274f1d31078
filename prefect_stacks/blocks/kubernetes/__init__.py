"""A Kubernetes cluster: the ``KubernetesCluster`` block (block.py, the kubeconfig as a
secret), the ``Kubectl`` it hands back to run work (kubectl.py: render, check with the
API server, server-side apply, report, rollout) and the manifests it applies
(manifests.py: files or a kustomization, images pinned by digest)."""

from prefect_stacks.blocks.kubernetes.block import KubernetesCluster
from prefect_stacks.blocks.kubernetes.kubectl import FIELD_MANAGER, ApplyReport, Kubectl
from prefect_stacks.blocks.kubernetes.manifests import image_repository, pin_images

__all__ = [
    "FIELD_MANAGER",
    "ApplyReport",
    "Kubectl",
    "KubernetesCluster",
    "image_repository",
    "pin_images",
]
