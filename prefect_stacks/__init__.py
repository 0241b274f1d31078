"""prefect-stacks: platform-engineering jobs as Prefect flows built from reusable blocks.

Importing the package exposes every block class, so that
``prefect block register -m prefect_stacks`` registers them all.
"""

from __future__ import annotations

from pathlib import Path

from prefect_stacks.blocks.github import GitHubRepository, GitHubResponseCache
from prefect_stacks.blocks.slack import SlackChannel
from prefect_stacks.blocks.terraform import TerraformStack
from prefect_stacks.blocks.webhooks import WebhookSource

__version__ = "0.2.0"

_PACKAGE_DIR = Path(__file__).resolve().parent


def _data_dir(name: str) -> Path:
    """A directory shipped with the package: inside the wheel it is
    ``prefect_stacks/_<name>``; in a source checkout it is ``<repo>/<name>``."""
    for candidate in (_PACKAGE_DIR / f"_{name}", _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"prefect-stacks ships no {name!r} directory (looked beside the package)"
    )


def stacks_dir() -> Path:
    """Directory of the Terraform stacks shipped with prefect-stacks."""
    return _data_dir("stacks")


def stack_path(name: str) -> Path:
    """Path of a shipped stack, e.g. ``stack_path("local-webapp")``."""
    path = stacks_dir() / name
    if not path.is_dir():
        available = sorted(p.name for p in stacks_dir().iterdir() if p.is_dir())
        raise FileNotFoundError(f"no shipped stack {name!r}; available: {', '.join(available)}")
    return path


def deployments_dir() -> Path:
    """Directory holding ``prefect.yaml`` and ``automations/``."""
    return _data_dir("deployments")


__all__ = [
    "GitHubRepository",
    "GitHubResponseCache",
    "SlackChannel",
    "TerraformStack",
    "WebhookSource",
    "deployments_dir",
    "stack_path",
    "stacks_dir",
]
