"""``service-power``: start, stop, or look at services on servers (Ansible) and workloads
on Kubernetes (scaled to 0 and back), for someone who is not technical.

Stop records what it changed (each workload's replicas; each host's services that were
running) on the server before changing it; start puts back exactly that, and waits for
the workloads' rollout. Status says what runs now and what a start would restore.
"""

from __future__ import annotations

from typing import Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from prefect_stacks._internal.failures import fails_cleanly
from prefect_stacks.blocks.ansible.power import power_services
from prefect_stacks.blocks.kubernetes.power import (
    check_scalable,
    start_workloads,
    stop_workloads,
    workload_status,
)
from prefect_stacks.blocks.slack import slack_channel
from prefect_stacks.exceptions import ConfigurationError


@flow(
    name="service-power",
    flow_run_name="power-{action}",
    description="Start, stop or look at services on servers (Ansible) and Kubernetes "
    "workloads (scaled to 0, then back to the replicas they had).",
)
@fails_cleanly
def service_power(
    action: Literal["start", "stop", "status"],
    cluster: str = "",
    namespace: str = "",
    workloads: list[str] | None = None,
    playbook: str = "",
    services: list[str] | None = None,
    limit: str = "",
    start_timeout_seconds: float = 300,
    slack: str = "",
) -> dict[str, list[str]]:
    """Start, stop or look at services and workloads.

    Args:
        action: `stop` records what runs and stops it; `start` puts back what the last
            stop stopped; `status` says what runs.
        cluster: The Kubernetes Cluster block of the workloads; empty: none.
        namespace: Their namespace (empty: the block's).
        workloads: `deployment/<name>` or `statefulset/<name>`.
        playbook: The Ansible Playbook block of the servers (the shipped `service-power`
            playbook and an inventory); empty: none.
        services: Service names on those servers, e.g. ["nginx", "php8.2-fpm"].
        limit: Only these servers (an Ansible pattern).
        start_timeout_seconds: How long a start waits for the workloads to be ready.
        slack: A Slack Channel block told what was done; empty: none.
    """
    checked = [check_scalable(w) for w in workloads or []]
    if checked and not cluster:
        raise ConfigurationError("workloads need the cluster (a Kubernetes Cluster block)")
    if services and not playbook:
        raise ConfigurationError("services need the playbook (an Ansible Playbook block)")
    if not checked and not services:
        raise ConfigurationError("nothing to do: give workloads (and a cluster) or services")
    channel = slack_channel(slack)
    done: dict[str, list[str]] = {}
    if services:  # servers stop after the workloads that use them, and start before
        if action != "stop":
            done["servers"] = power_services(playbook, action, services, limit)
    if checked:
        if action == "stop":
            done["kubernetes"] = stop_workloads(cluster, namespace, checked)
        elif action == "start":
            done["kubernetes"] = start_workloads(cluster, namespace, checked, start_timeout_seconds)
        else:
            done["kubernetes"] = [s.line for s in workload_status(cluster, namespace, checked)]
    if services and action == "stop":
        done["servers"] = power_services(playbook, action, services, limit)
    lines = [line for part in done.values() for line in part]
    text = f"service-power {action}:\n" + "\n".join(f"• {line}" for line in lines)
    get_run_logger().info("%s", text)
    create_markdown_artifact(text, key="service-power")
    if channel and action != "status":
        channel.post_or_warn(text)
    return done
