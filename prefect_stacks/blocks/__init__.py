"""Blocks: one module per external system; the Block and its @task functions."""

from prefect_stacks.blocks.alertmanager import Alertmanager
from prefect_stacks.blocks.ansible import AnsiblePlaybook
from prefect_stacks.blocks.cdn import CloudflareZone, FastlyService
from prefect_stacks.blocks.github import GitHubRepository, GitHubResponseCache
from prefect_stacks.blocks.kubernetes import KubernetesCluster
from prefect_stacks.blocks.postgres import PostgresDatabase
from prefect_stacks.blocks.registry import ContainerRegistry
from prefect_stacks.blocks.slack import SlackChannel
from prefect_stacks.blocks.terraform import TerraformStack
from prefect_stacks.blocks.varnish import VarnishPool
from prefect_stacks.blocks.webhooks import WebhookSource

__all__ = [
    "Alertmanager",
    "AnsiblePlaybook",
    "CloudflareZone",
    "ContainerRegistry",
    "FastlyService",
    "GitHubRepository",
    "GitHubResponseCache",
    "KubernetesCluster",
    "PostgresDatabase",
    "SlackChannel",
    "TerraformStack",
    "VarnishPool",
    "WebhookSource",
]
