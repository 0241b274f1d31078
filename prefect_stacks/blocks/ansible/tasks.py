"""The tasks of the Ansible block: :func:`run_playbook`."""

from __future__ import annotations

import re
from typing import Any

from prefect import task

from prefect_stacks.blocks.ansible.block import AnsiblePlaybook
from prefect_stacks.blocks.ansible.run import PlaybookResult
from prefect_stacks.blocks.base import load_block
from prefect_stacks.exceptions import AnsibleError


@task(name="run-playbook", task_run_name="ansible {block_name}")
def run_playbook(
    block_name: str,
    extra_vars: dict[str, Any] | None = None,
    limit: str | None = None,
    check_mode: bool | None = None,
) -> PlaybookResult:
    """Run the playbook of the ``AnsiblePlaybook`` block ``block_name``; its recap table
    is the run's artifact either way."""
    from prefect.artifacts import create_markdown_artifact

    block = load_block(AnsiblePlaybook, block_name, create="create it (Blocks > Ansible Playbook)")
    run = block.prepare(extra_vars=extra_vars, limit=limit, check_mode=check_mode)
    title = f"{run.playbook.name} on {block_name}"
    try:
        result = run.run()
    except AnsibleError as exc:
        failed = PlaybookResult(exc.recap, "failed", 1, run.check_mode)
        create_markdown_artifact(failed.to_markdown(title) + f"\n\n{exc}", key=_key(block_name))
        raise
    create_markdown_artifact(result.to_markdown(title), key=_key(block_name))
    return result


def _key(block_name: str) -> str:
    return "ansible-" + re.sub(r"[^a-z0-9-]+", "-", block_name.lower()).strip("-")
