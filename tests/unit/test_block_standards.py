"""Prefect's standard block checks over every block prefect-stacks exports."""

from __future__ import annotations

import pytest
from prefect.testing.standard_test_suites import BlockStandardTestSuite

import prefect_stacks
from prefect_stacks.blocks.base import package_blocks

BLOCKS = package_blocks()


def test_every_block_is_exported_for_registration():
    # `prefect block register -m prefect_stacks` registers what the package exposes
    assert prefect_stacks.TerraformStack in BLOCKS
    assert prefect_stacks.WebhookSource in BLOCKS
    assert prefect_stacks.GitHubRepository in BLOCKS
    assert prefect_stacks.GitHubResponseCache in BLOCKS
    from prefect_stacks import blocks

    day2 = {"AnsiblePlaybook", "CloudflareZone", "FastlyService", "PostgresDatabase", "VarnishPool"}
    assert day2 <= {b.__name__ for b in BLOCKS} and day2 <= set(blocks.__all__)


@pytest.mark.parametrize("block", BLOCKS, indirect=True)
class TestAllBlocksAdhereToStandards(BlockStandardTestSuite):
    @pytest.fixture
    def block(self, request):
        return request.param

    def test_secret_fields_are_secret_types(self, block):
        # house rule: credentials are SecretStr/SecretDict, unwrapped only at the point of use
        schema = block.model_json_schema()
        for name in block.model_fields:
            if any(word in name for word in ("secret", "token", "password", "env")):
                assert name in schema.get("secret_fields", []) or any(
                    f.startswith(f"{name}.") for f in schema.get("secret_fields", [])
                ), f"{block.__name__}.{name} should be a secret field"


def test_the_shared_base_block_is_not_a_block_type_of_its_own():
    from prefect.blocks.core import Block
    from prefect.utilities.dispatch import get_registry_for_type

    from prefect_stacks.blocks.base import StacksBlock, package_blocks

    registered = set((get_registry_for_type(Block) or {}).values())
    assert StacksBlock not in registered
    assert set(package_blocks()) <= registered
