"""What a Terraform configuration requires of Terraform and of its providers: the
``required_version`` and ``required_providers`` of its ``terraform`` blocks, read with
python-hcl2 (never by running terraform: no binary, no init, no network).

The release watcher asks this of every shipped and configured stack when Terraform or a
provider publishes a release: would the new version be allowed?
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect_stacks.exceptions import StackError

DEFAULT_REGISTRY = "registry.terraform.io/"


@dataclass(frozen=True)
class Requirements:
    """``terraform``: the ``required_version`` constraints (one per ``terraform`` block
    that sets one, all of which must hold); ``providers``: provider address
    (``hashicorp/kubernetes``; a host is kept only when it is not the public registry)
    -> its version constraints (empty: any version)."""

    terraform: tuple[str, ...] = ()
    providers: dict[str, tuple[str, ...]] = field(default_factory=dict)


def provider_address(source: str) -> str:
    """``registry.terraform.io/HashiCorp/Kubernetes`` -> ``hashicorp/kubernetes``."""
    source = source.strip().lower()
    return source.removeprefix(DEFAULT_REGISTRY)


def _text(value: Any) -> str | None:
    """An HCL string as python-hcl2 hands it back (quotes kept since 7.x) -> the string."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            return json.loads(value)
        except ValueError:
            return value[1:-1]
    return value


def _blocks(value: Any) -> list[dict[str, Any]]:
    items = value if isinstance(value, list) else [value]
    return [item for item in items if isinstance(item, dict)]


def read_requirements(directory: Path, *, name: str | None = None) -> Requirements:
    """The requirements declared by the ``*.tf`` files of ``directory`` (the root module;
    child modules are not followed). Raises StackError naming the file it cannot read."""
    import hcl2  # 0.14 s of import, for the few runs that read requirements

    versions: list[str] = []
    providers: dict[str, list[str]] = {}
    for path in sorted(directory.glob("*.tf")):
        try:
            with path.open(encoding="utf-8") as handle:
                document = hcl2.load(handle)
        except Exception as exc:  # lark raises several kinds; all mean "fix this file"
            raise StackError(
                f"stack {name or directory.name!r}: cannot read {path.name}: {exc}",
                stack=name or directory.name,
            ) from exc
        for block in _blocks(document.get("terraform", [])):
            if (version := _text(block.get("required_version"))) is not None:
                versions.append(version)
            for entries in _blocks(block.get("required_providers", [])):
                for local_name, spec in entries.items():
                    if local_name.startswith("__"):  # python-hcl2's markers
                        continue
                    _add_provider(providers, local_name, spec)
    return Requirements(tuple(versions), {k: tuple(v) for k, v in sorted(providers.items())})


def _add_provider(providers: dict[str, list[str]], local_name: str, spec: Any) -> None:
    if isinstance(spec, dict):
        source = _text(spec.get("source")) or f"hashicorp/{local_name}"
        version = _text(spec.get("version"))
    else:  # the pre-0.13 shorthand: `kubernetes = "~> 2.0"`
        source, version = f"hashicorp/{local_name}", _text(spec)
    constraints = providers.setdefault(provider_address(source), [])
    if version:
        constraints.append(version)


__all__ = ["Requirements", "provider_address", "read_requirements"]
