"""Manifests as kubectl will apply them: read from a directory, a file or a kustomization
(through ``kubectl kustomize``), with the images of their pod templates pinned to the
digests being deployed.

An image is replaced when its repository (the reference without tag or digest) is one
of those being deployed. ``registry.example/acme/shop:1.4`` and
``registry.example/acme/shop@sha256:...`` are both ``registry.example/acme/shop``. Any
other image is left as written.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from prefect_stacks.exceptions import ConfigurationError

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")


def image_repository(reference: str) -> str:
    """``host/path`` of an image reference, without ``:tag`` or ``@digest``."""
    name = reference.split("@", 1)[0]
    head, slash, last = name.rpartition("/")
    if ":" in last:
        last = last.split(":", 1)[0]
    return f"{head}{slash}{last}"


def is_kustomization(source: Path) -> bool:
    return source.is_dir() and any((source / name).is_file() for name in KUSTOMIZATION_FILES)


def manifest_files(source: Path) -> list[Path]:
    """The manifest files of ``source`` (a file, or a directory read recursively, in name
    order); a ConfigurationError when there are none."""
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise ConfigurationError(f"manifests {str(source)!r} do not exist; fix the path")
    files = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix in MANIFEST_SUFFIXES)
    if not files:
        raise ConfigurationError(
            f"no manifests (*.yaml, *.yml, *.json) in {str(source)!r}; fix the path"
        )
    return files


def load_documents(text: str, where: str) -> list[dict[str, Any]]:
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{where} is not valid YAML: {exc}") from None
    for doc in docs:
        if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
            raise ConfigurationError(
                f"{where}: every document needs `apiVersion` and `kind`; fix the manifest"
            )
    expanded: list[dict[str, Any]] = []
    for doc in docs:  # a `kind: List` holds its objects in `items`
        expanded += doc.get("items") or [] if doc["kind"].endswith("List") else [doc]
    return expanded


def pod_specs(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    kind, spec = doc.get("kind"), doc.get("spec") or {}
    if kind == "Pod":
        yield spec
    elif kind == "CronJob":
        yield ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template", {}).get(
            "spec"
        ) or {}
    elif isinstance(spec.get("template"), dict):
        yield spec["template"].get("spec") or {}


def pin_images(docs: list[dict[str, Any]], images: dict[str, str]) -> list[str]:
    """Set every container whose image repository is a key of ``images`` to its value
    (a ``repo@digest`` reference); the ``kind/name container`` of each one changed."""
    wanted = {image_repository(k): v for k, v in images.items()}
    changed: list[str] = []
    for doc in docs:
        for spec in pod_specs(doc):
            for key in ("initContainers", "containers"):
                for container in spec.get(key) or []:
                    current = container.get("image")
                    if isinstance(current, str) and image_repository(current) in wanted:
                        container["image"] = wanted[image_repository(current)]
                        name = (doc.get("metadata") or {}).get("name", "?")
                        changed.append(f"{doc['kind']}/{name} {container.get('name', '?')}")
    return changed


def workloads(docs: list[dict[str, Any]]) -> list[tuple[str, str, str | None]]:
    """``(kind, name, namespace)`` of every Deployment, StatefulSet and DaemonSet: what a
    rollout is waited for."""
    found = []
    for doc in docs:
        if doc.get("kind") in WORKLOAD_KINDS:
            meta = doc.get("metadata") or {}
            found.append((doc["kind"], meta.get("name", ""), meta.get("namespace")))
    return found


def dump(docs: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False)
