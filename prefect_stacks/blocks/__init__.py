"""Blocks: one module per external system; the Block and its @task functions."""

from prefect_stacks.blocks.alertmanager import Alertmanager
from prefect_stacks.blocks.github import GitHubRepository, GitHubResponseCache
from prefect_stacks.blocks.kubernetes import KubernetesCluster
from prefect_stacks.blocks.registry import ContainerRegistry
from prefect_stacks.blocks.slack import SlackChannel
from prefect_stacks.blocks.terraform import TerraformStack
from prefect_stacks.blocks.webhooks import WebhookSource

__all__ = [
    "Alertmanager",
    "ContainerRegistry",
    "GitHubRepository",
    "GitHubResponseCache",
    "KubernetesCluster",
    "SlackChannel",
    "TerraformStack",
    "WebhookSource",
]
