"""Services on servers stopped and started again through Ansible: ``service-power``'s
servers half (the shipped ``service-power`` playbook, or any playbook that takes the same
variables).

``stop`` keeps what it really stopped, per host (the loop items its stop task changed:
a service already stopped is not among them), in a Prefect Variable; ``start`` starts
only those on the hosts the record names, then drops the record. Without a record,
``start`` starts every listed service.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from prefect_stacks._internal.process import default_logger
from prefect_stacks._internal.variables import VariableRecord
from prefect_stacks.blocks.ansible.block import AnsiblePlaybook
from prefect_stacks.blocks.base import load_block

RECORD_PREFIX = "stacks-power-services-"
RECORD_TAG = "prefect-stacks:power"
STOP_TASK = "Stop the services"  # the task of the shipped playbook whose changes count
STATE_TASK = "Service state"  # and the one that says each service's state


def services_record(block_name: str, services: list[str], limit: str) -> VariableRecord:
    return VariableRecord(RECORD_PREFIX, RECORD_TAG, block_name, ",".join(sorted(services)), limit)


@task(cache_policy=NO_CACHE, task_run_name="services-{action}")
def power_services(block_name: str, action: str, services: list[str], limit: str = "") -> list[str]:
    """Run the playbook with ``power_action`` and ``services``; returns a line per host."""
    block = load_block(AnsiblePlaybook, block_name, create="create it (Blocks > Ansible Playbook)")
    record = services_record(block_name, services, limit)
    extra: dict[str, Any] = {"power_action": action, "services": services}
    recorded = record.load() if action == "start" else None
    if isinstance(recorded, dict):
        extra["power_start"] = recorded
    result = block.run(extra_vars=extra, limit=limit or None)
    if action == "stop":
        stopped = result.seen.items_changed(STOP_TASK)
        kept = record.load()
        before = kept if isinstance(kept, dict) else {}
        # stopping twice keeps what the first stop stopped
        merged = {h: sorted({*before.get(h, []), *stopped.get(h, [])}) for h in result.hosts}
        record.save(merged)
        return [
            f"{h}: stopped {', '.join(stopped.get(h, [])) or 'nothing (already stopped)'}"
            for h in result.hosts
        ]
    if action == "start":
        record.clear()
        if isinstance(recorded, dict):
            lines = [
                f"{h}: started {', '.join(recorded.get(h, services)) or 'nothing'}"
                for h in result.hosts
            ]
        else:
            lines = [f"{h}: started {', '.join(services)} (no stop recorded)" for h in result.hosts]
        default_logger().info("%s", "; ".join(lines))
        return lines
    said = result.seen.item_messages
    return [f"{h}: {'; '.join(said.get(h, {}).get(STATE_TASK, [])) or '?'}" for h in result.hosts]
