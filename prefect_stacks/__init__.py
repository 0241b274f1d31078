"""prefect-stacks: platform-engineering jobs as Prefect flows built from reusable blocks.

Importing the package exposes every block class, so that
``prefect block register -m prefect_stacks`` registers them all.
"""

from __future__ import annotations

from prefect_stacks._internal.data import deployments_dir, stack_path, stacks_dir
from prefect_stacks._version import __version__
from prefect_stacks.blocks import (
    ContainerRegistry,
    GitHubRepository,
    GitHubResponseCache,
    KubernetesCluster,
    SlackChannel,
    TerraformStack,
    WebhookSource,
)

__all__ = [
    "__version__",
    "ContainerRegistry",
    "GitHubRepository",
    "GitHubResponseCache",
    "KubernetesCluster",
    "SlackChannel",
    "TerraformStack",
    "WebhookSource",
    "deployments_dir",
    "stack_path",
    "stacks_dir",
]
