"""What ``up`` applies to the local server, each step an upsert: the process work pool,
the block types, the ``local-webapp`` TerraformStack block, the deployments of
``deployments/prefect.yaml`` and the automations beside it; and the home's ``env.sh``."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from prefect_stacks._internal import prefect_api
from prefect_stacks._internal.data import deployments_dir, stack_path
from prefect_stacks._internal.process import run_process
from prefect_stacks.exceptions import LocalPlatformError, PrefectStacksError
from prefect_stacks.local.config import (
    DEPLOY_TIMEOUT,
    LOCAL_WEBAPP,
    LocalConfig,
    api_settings,
)
from prefect_stacks.local.processes import prefect_argv


def ensure_work_pool(cfg: LocalConfig) -> bool:
    """Create the process work pool if it is missing; True when created."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
    from prefect.workers.process import ProcessWorker

    with api_settings(cfg.api_url), get_client(sync_client=True) as client:
        try:
            pool = client.read_work_pool(cfg.pool)
        except ObjectNotFound:
            pass
        else:
            if pool.type != "process":
                raise LocalPlatformError(
                    f"work pool {cfg.pool!r} exists with type {pool.type!r}, "
                    "not 'process'; choose another pool name with --pool"
                )
            return False
        try:
            client.create_work_pool(
                WorkPoolCreate(
                    name=cfg.pool,
                    type="process",
                    description="Local process worker started by `prefect-stacks up`.",
                    base_job_template=ProcessWorker.get_default_base_job_template(),
                )
            )
        except ObjectAlreadyExists:
            return False
        return True


def register_blocks(cfg: LocalConfig) -> list[str]:
    """Register every Block class exported from ``prefect_stacks`` (what
    ``prefect block register -m prefect_stacks`` does, in process)."""
    from prefect.blocks.core import InvalidBlockRegistration

    from prefect_stacks.blocks.base import package_blocks

    names: list[str] = []
    with api_settings(cfg.api_url):
        for cls in package_blocks():
            try:
                cls.register_type_and_schema(_sync=True)
            except InvalidBlockRegistration:
                continue
            names.append(cls.get_block_type_name())
    return names


def save_stack_block(
    cfg: LocalConfig,
    name: str = LOCAL_WEBAPP,
    *,
    stack: str | None = None,
    variables: Mapping[str, Any] | None = None,
    state_dir: Path | None = None,
) -> Any:
    """Create or overwrite the TerraformStack block document ``name`` for the
    shipped stack ``stack`` (default: the same name), state under the home."""
    from prefect_stacks.blocks.terraform import TerraformStack

    stack = stack or name
    block = TerraformStack(
        source=str(stack_path(stack)),
        state_dir=str(state_dir or cfg.state_dir(name)),
        variables=dict(variables or {}),
    )
    with api_settings(cfg.api_url):
        block.save(name, overwrite=True)
    return block


def apply_deployments(cfg: LocalConfig, prefect_file: Path | None = None) -> list[str]:
    """``prefect --no-prompt deploy --all`` of ``deployments/prefect.yaml`` (every
    deployment into the configured pool), then check each exists. Returns the
    deployment names as ``flow/deployment``."""
    source = Path(prefect_file or deployments_dir() / "prefect.yaml")
    try:
        spec = yaml.safe_load(source.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise LocalPlatformError(f"cannot read {source}: {exc}") from exc
    deployments = spec.get("deployments") or []
    if not deployments:
        raise LocalPlatformError(f"{source} declares no deployments")
    prefect_yaml = source
    if any((d.get("work_pool") or {}).get("name") != cfg.pool for d in deployments):
        prefect_yaml = _copy_for_pool(cfg, source, spec)
    result = run_process(
        prefect_argv("--no-prompt", "deploy", "--all", "--prefect-file", str(prefect_yaml)),
        cwd=cfg.home,
        env=cfg.child_env(),
        stream=False,
        timeout=DEPLOY_TIMEOUT,
    )
    if result.returncode != 0:
        raise LocalPlatformError(
            f"`prefect deploy` of {source} failed (exit code {result.returncode}):\n"
            + "\n".join((result.stdout + result.stderr).strip().splitlines()[-30:])
        )
    return check_deployments(cfg, deployments, source)


def _copy_for_pool(cfg: LocalConfig, source: Path, spec: dict[str, Any]) -> Path:
    """Another pool than the file names (`up --pool`): a copy of ``spec`` in the home
    with every deployment in ``cfg.pool`` (``spec``'s deployments are changed too)."""
    for item in spec["deployments"]:
        item["work_pool"] = {**(item.get("work_pool") or {}), "name": cfg.pool}
    spec.pop("definitions", None)
    prefect_yaml = cfg.home / f"prefect.{cfg.pool}.yaml"
    prefect_yaml.write_text(
        f"# Written by prefect-stacks from {source} for pool {cfg.pool!r}.\n"
        + yaml.safe_dump(spec, sort_keys=False)
    )
    return prefect_yaml


def check_deployments(
    cfg: LocalConfig, deployments: list[dict[str, Any]], source: Path
) -> list[str]:
    """``flow/deployment`` of each of ``deployments``; raise when one is not on the
    server."""
    from prefect.client.orchestration import get_client
    from prefect.flows import load_flow_from_entrypoint

    names = []
    with api_settings(cfg.api_url), get_client(sync_client=True) as client:
        for item in deployments:
            flow_name = load_flow_from_entrypoint(item["entrypoint"]).name
            full = f"{flow_name}/{item['name']}"
            if prefect_api.deployment_id(client, full) is None:
                raise LocalPlatformError(f"`prefect deploy` of {source} did not create {full!r}")
            names.append(full)
    return names


def apply_automations(cfg: LocalConfig, directory: Path | None = None) -> dict[str, list[str]]:
    """Create or update the automations of ``deployments/automations/*.yaml``
    (after the deployments they run exist); a rerun changes nothing."""
    from prefect_stacks.events import automations

    directory = directory or automations.automations_dir()
    if not directory.is_dir():
        return {"created": [], "updated": [], "unchanged": []}
    with api_settings(cfg.api_url):
        try:
            return automations.apply(directory)
        except PrefectStacksError as exc:
            raise LocalPlatformError(f"automations in {directory}: {exc}") from exc


def write_env_file(cfg: LocalConfig) -> Path:
    """``<home>/env.sh``: after ``. <home>/env.sh`` a shell's bare ``prefect`` and
    ``prefect-stacks`` are this virtualenv's, talking to this server."""
    path = cfg.env_file
    lines = [
        "# Source this file to point the prefect CLI at the local server:",
        f"#   . {shlex.quote(str(path))}",
        f"export PREFECT_API_URL={shlex.quote(cfg.api_url)}",
    ]
    # The directory of this interpreter, not resolved: a virtualenv's bin/ (its
    # python is a symlink to the system's), where `prefect` and `prefect-stacks` are.
    bin_dir = Path(sys.executable).parent
    if (bin_dir / "prefect").exists():
        lines.append(f'export PATH={shlex.quote(str(bin_dir))}:"$PATH"')
    path.write_text("\n".join(lines) + "\n")
    return path
