"""Directories shipped with the package: the Terraform stacks, the Ansible playbooks and
the deployments.

Inside the wheel they are ``prefect_stacks/_stacks``, ``_playbooks`` and ``_deployments``
(pyproject's force-include); in a source checkout they are ``<repo>/stacks``,
``<repo>/playbooks`` and ``<repo>/deployments``.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent.parent


def _data_dir(name: str) -> Path:
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


def playbook_path(name: str) -> Path:
    """Path of a shipped playbook, e.g. ``playbook_path("maintenance-nginx")``."""
    directory = _data_dir("playbooks")
    path = directory / f"{name}.yml"
    if not path.is_file():
        available = sorted(p.stem for p in directory.glob("*.yml"))
        raise FileNotFoundError(
            f"no shipped playbook {name!r}; shipped: {', '.join(available)} (or give a path)"
        )
    return path


def deployments_dir() -> Path:
    """Directory holding ``prefect.yaml`` and ``automations/``."""
    return _data_dir("deployments")
