"""A container registry: the ``ContainerRegistry`` block (block.py), the client that reads
tags, digests and build times over the one HTTP helper (client.py), its authentication
(auth.py) and the tag policies a watcher follows (policies.py)."""

from prefect_stacks.blocks.registry.block import ContainerRegistry
from prefect_stacks.blocks.registry.client import MANIFEST_TYPES, RegistryClient
from prefect_stacks.blocks.registry.policies import (
    MutableTag,
    NewestBuildPolicy,
    RegexPolicy,
    Resolved,
    SemverPolicy,
    TagPolicy,
    resolve,
)

__all__ = [
    "MANIFEST_TYPES",
    "ContainerRegistry",
    "MutableTag",
    "NewestBuildPolicy",
    "RegexPolicy",
    "RegistryClient",
    "Resolved",
    "SemverPolicy",
    "TagPolicy",
    "resolve",
]
