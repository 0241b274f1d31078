"""The Terraform tasks flows compose (the "operators"; the block is the "hook"), and
:func:`load_stack`, which loads a stack block for a run::

    from prefect_stacks.blocks.terraform import (
        TerraformStack, terraform_init, terraform_plan, terraform_apply,
    )

    stack = TerraformStack.load("local-webapp")
    with terraform_init(stack, workspace="demo-1") as workdir:
        plan = terraform_plan(workdir)
        if plan.has_changes:
            terraform_apply(workdir, plan)
"""

from __future__ import annotations

import re
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from prefect_stacks._internal.process import default_logger
from prefect_stacks.blocks.base import load_block
from prefect_stacks.blocks.terraform.block import TerraformStack, invalid_variable_names
from prefect_stacks.blocks.terraform.plan import PlanSummary
from prefect_stacks.blocks.terraform.workdir import StackOutputs, TerraformWorkdir
from prefect_stacks.exceptions import ConfigurationError


@task(cache_policy=NO_CACHE, task_run_name="terraform-init-{workspace}")
def terraform_init(
    stack: TerraformStack, workspace: str | None = None, create_workspace: bool = True
) -> TerraformWorkdir:
    """Check the stack out, ``terraform init`` it and select the workspace (created on
    demand unless ``create_workspace=False``, for destroy: a missing workspace is then
    "already gone"). Returns a :class:`TerraformWorkdir`; use it in a ``with`` block."""
    workdir = stack.prepare(workspace)
    try:
        workdir.init(create_workspace=create_workspace)
    except BaseException:
        workdir.cleanup()
        raise
    return workdir


@task(cache_policy=NO_CACHE)
def terraform_plan(
    workdir: TerraformWorkdir, destroy: bool = False, artifact: bool = True
) -> PlanSummary:
    """Plan into a saved plan file; return its :class:`PlanSummary` and publish it as a
    markdown artifact (key ``plan-<stack>-<workspace>``)."""
    summary = workdir.plan(destroy=destroy)
    log = default_logger()
    log.info(summary.headline())
    if artifact:
        create_markdown_artifact(
            key=artifact_key("plan", summary.stack, summary.workspace),
            markdown=summary.to_markdown(),
            description=summary.headline(),
        )
    return summary


@task(cache_policy=NO_CACHE)
def terraform_apply(workdir: TerraformWorkdir, plan: PlanSummary | None = None) -> None:
    """Apply the saved plan (or, without one, the configuration with -auto-approve)."""
    workdir.apply(plan)


@task(cache_policy=NO_CACHE)
def terraform_destroy(workdir: TerraformWorkdir) -> None:
    """Destroy everything in the workspace's state; an empty state is success."""
    workdir.destroy()


@task(cache_policy=NO_CACHE)
def terraform_outputs(workdir: TerraformWorkdir) -> StackOutputs:
    """Read root-module outputs; sensitive ones come back as ``SecretStr``."""
    outputs = workdir.outputs()
    default_logger().info(
        "outputs: %s", ", ".join(f"{k}={v!r}" for k, v in outputs.values.items()) or "(none)"
    )
    return outputs


@task(cache_policy=NO_CACHE)
def terraform_delete_workspace(workdir: TerraformWorkdir) -> bool:
    """Delete the (destroyed) workspace; False when it was already gone."""
    return workdir.delete_workspace()


def artifact_key(*parts: str) -> str:
    """An artifact key from free text: lowercase letters, digits and dashes only."""
    key = "-".join(parts).lower()
    key = re.sub(r"[^a-z0-9-]+", "-", key)
    return re.sub(r"-{2,}", "-", key).strip("-")[:120] or "stack"


def load_stack(name: str, variables: dict[str, Any] | None = None) -> TerraformStack:
    """Load a TerraformStack block document by name, with ``variables`` for this run merged
    over the block's, and an error that says how to make one (and which exist) when it
    does not exist."""
    stack = load_block(
        TerraformStack,
        name,
        create="create it in the Prefect UI (Blocks > Terraform Stack) or in Python with "
        f"TerraformStack(source=...).save({name!r}), then run again.",
    )
    if variables:
        bad = sorted(invalid_variable_names(variables))
        if bad:
            raise ConfigurationError(
                f"variables: {', '.join(map(repr, bad))} not valid Terraform variable "
                "name(s) (letters, digits, '_' and '-', not starting with a digit)."
            )
        stack.variables = {**stack.variables, **variables}
    return stack
