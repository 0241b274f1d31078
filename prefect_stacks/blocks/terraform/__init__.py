"""Terraform stacks: the ``TerraformStack`` block (``block.py``: configuration, checks,
``prepare()``), the ``TerraformWorkdir`` it hands back that runs terraform
(``workdir.py``), what a plan will do (``plan.py``), and the tasks flows compose
(``tasks.py``). The public names of all four are importable from here."""

from prefect_stacks.blocks.terraform.block import (
    TerraformStack,
    validate_workspace,
    workspace_slug,
)
from prefect_stacks.blocks.terraform.plan import (
    AttributeChange,
    PlanSummary,
    ResourceChange,
    summarize_plan_json,
)
from prefect_stacks.blocks.terraform.requirements import (
    Requirements,
    provider_address,
    read_requirements,
)
from prefect_stacks.blocks.terraform.tasks import (
    artifact_key,
    load_stack,
    terraform_apply,
    terraform_delete_workspace,
    terraform_destroy,
    terraform_init,
    terraform_outputs,
    terraform_plan,
)
from prefect_stacks.blocks.terraform.workdir import StackOutputs, TerraformWorkdir

__all__ = [
    "AttributeChange",
    "Requirements",
    "provider_address",
    "read_requirements",
    "PlanSummary",
    "ResourceChange",
    "StackOutputs",
    "TerraformStack",
    "TerraformWorkdir",
    "artifact_key",
    "load_stack",
    "summarize_plan_json",
    "terraform_apply",
    "terraform_delete_workspace",
    "terraform_destroy",
    "terraform_init",
    "terraform_outputs",
    "terraform_plan",
    "validate_workspace",
    "workspace_slug",
]
