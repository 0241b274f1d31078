"""``Kubectl``: kubectl against one cluster (a private kubeconfig file, a context, a
default namespace), the object a ``KubernetesCluster`` block hands back to run work.

``apply`` is what the kubectl deploy method does:

1. The manifests are rendered (a kustomization through ``kubectl kustomize``) with the
   images pinned by digest.
2. They are sent with ``--dry-run=server``. A manifest the API server refuses (an unknown
   field, a wrong apiVersion, a bad value) stops everything here, with the API server's
   own message, and nothing has changed. A multi-document apply would otherwise apply the
   good documents and fail on the bad one.
3. They are server-side applied (field manager ``prefect-stacks``).
4. The report says which objects were created, configured or unchanged, by comparing each
   object's ``resourceVersion`` before and after.

``rollout`` waits for the workloads, within a deadline the caller owns.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from prefect_stacks._internal.process import ProcessResult, default_logger, run_process
from prefect_stacks.blocks.kubernetes.manifests import (
    dump,
    is_kustomization,
    load_documents,
    manifest_files,
    pin_images,
    workloads,
)
from prefect_stacks.exceptions import KubernetesError

FIELD_MANAGER = "prefect-stacks"


class ApplyReport(BaseModel):
    """What an apply changed, per object (``kind/name`` or ``kind/namespace/name``)."""

    created: list[str] = Field(default_factory=list)
    configured: list[str] = Field(default_factory=list)
    unchanged: list[str] = Field(default_factory=list)
    pinned: list[str] = Field(default_factory=list, description="Containers set to a digest.")
    workloads: list[str] = Field(default_factory=list, description="What a rollout waits for.")

    def headline(self) -> str:
        return (
            f"{len(self.created)} created, {len(self.configured)} configured, "
            f"{len(self.unchanged)} unchanged"
        )


def _object_key(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    kind = str(obj.get("kind", "?")).lower()
    namespace = meta.get("namespace")
    return f"{kind}/{namespace}/{meta.get('name')}" if namespace else f"{kind}/{meta.get('name')}"


def _items(result: ProcessResult) -> list[dict[str, Any]]:
    if not result.stdout.strip():
        return []
    data = json.loads(result.stdout)
    return data.get("items", []) if data.get("kind", "").endswith("List") else [data]


class Kubectl:
    def __init__(
        self,
        *,
        binary: str,
        kubeconfig: Path,
        context: str | None,
        namespace: str,
        cluster: str,
        request_timeout: int,
        secrets: list[str],
    ) -> None:
        self.binary = binary
        self.kubeconfig = kubeconfig
        self.context = context
        self.namespace = namespace
        self.cluster = cluster
        self.request_timeout = request_timeout
        self.secrets = secrets

    def __repr__(self) -> str:
        return f"Kubectl({self.cluster}, namespace={self.namespace})"

    # ------------------------------------------------------------------ running
    def run(
        self, *args: str, stdin: str | None = None, stream: bool = False, timeout: float = 300
    ) -> ProcessResult:
        argv = [self.binary, f"--kubeconfig={self.kubeconfig}"]
        if self.context:
            argv.append(f"--context={self.context}")
        argv += [f"--request-timeout={self.request_timeout}s", *args]
        return run_process(
            argv,
            secrets=self.secrets,
            stream=stream,
            prefix="kubectl: ",
            stdin_data=stdin.encode() if stdin is not None else None,
            timeout=timeout,
        )

    def check(self, *args: str, what: str, stdin: str | None = None, **kw: Any) -> ProcessResult:
        result = self.run(*args, stdin=stdin, **kw)
        if result.returncode != 0:
            said = (result.stderr or result.stdout).strip()
            raise KubernetesError(
                f"cluster {self.cluster}: {what} failed: {said[-1500:] or 'no output'}"
                f"{_hint(said)}",
                result=result,
            )
        return result

    # ------------------------------------------------------------------ reading
    def server_version(self) -> str:
        out = self.check("version", "-o", "json", what="asking the API server its version")
        return json.loads(out.stdout)["serverVersion"]["gitVersion"]

    def get_json(self, *args: str) -> dict[str, Any] | None:
        result = self.run("get", *args, "-o", "json")
        if result.returncode != 0:
            if "NotFound" in result.stderr:
                return None
            raise KubernetesError(
                f"cluster {self.cluster}: kubectl get {' '.join(args)} failed: "
                f"{result.stderr.strip()[-1500:]}",
                result=result,
            )
        return json.loads(result.stdout)

    # ------------------------------------------------------------------ applying
    def render(
        self, source: Path, images: dict[str, str]
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """The documents of ``source`` with ``images`` pinned: (documents, pinned)."""
        if is_kustomization(source):
            built = self.check("kustomize", str(source), what=f"kustomize {source}")
            docs = load_documents(built.stdout, f"kustomization {source}")
        else:
            docs = []
            for path in manifest_files(source):
                docs += load_documents(path.read_text(encoding="utf-8"), str(path))
        return docs, pin_images(docs, images)

    def apply(
        self, source: Path, images: dict[str, str] | None = None, namespace: str | None = None
    ) -> ApplyReport:
        """Render, check with the API server, server-side apply; what changed."""
        docs, pinned = self.render(source, images or {})
        return self.apply_documents(docs, pinned, namespace)

    def apply_documents(
        self, docs: list[dict[str, Any]], pinned: list[str], namespace: str | None = None
    ) -> ApplyReport:
        """Check rendered ``docs`` with the API server, then server-side apply them."""
        namespace = namespace or self.namespace
        with tempfile.TemporaryDirectory(prefix="prefect-stacks-kube-") as tmp:
            rendered = Path(tmp) / "rendered.yaml"
            rendered.write_text(dump(docs))
            common = ["-f", str(rendered), f"--namespace={namespace}"]
            self.check(
                "apply", "--server-side", f"--field-manager={FIELD_MANAGER}",
                "--dry-run=server", "--validate=strict", "-o", "name", *common,
                what="checking the manifests with the API server (nothing was applied)",
            )  # fmt: skip
            before = {
                _object_key(o): (o.get("metadata") or {}).get("resourceVersion")
                for o in _items(self.check("get", *common, "--ignore-not-found", "-o", "json",
                                           what="reading the objects before the apply"))
            }  # fmt: skip
            applied = self.check(
                "apply", "--server-side", f"--field-manager={FIELD_MANAGER}",
                "--force-conflicts", "-o", "json", *common,
                what="applying the manifests",
            )  # fmt: skip
        report = ApplyReport(
            pinned=pinned,
            workloads=[f"{k.lower()}/{n}" for k, n, _ in workloads(docs)],
        )
        for obj in _items(applied):
            key = _object_key(obj)
            version = (obj.get("metadata") or {}).get("resourceVersion")
            if key not in before:
                report.created.append(key)
            elif before[key] != version:
                report.configured.append(key)
            else:
                report.unchanged.append(key)
        default_logger().info("applied to %s: %s", self.cluster, report.headline())
        return report

    def rollout(self, workloads: list[str], namespace: str | None, deadline: float) -> None:
        """Wait for each workload's rollout to complete before ``deadline``
        (``time.monotonic()``); a KubernetesError naming the one that did not."""
        namespace = namespace or self.namespace
        for workload in workloads:
            left = int(deadline - time.monotonic())
            if left < 1:
                raise KubernetesError(
                    f"cluster {self.cluster}: the rollout deadline passed before "
                    f"{workload} was checked"
                )
            result = self.run(
                "rollout", "status", workload, f"--namespace={namespace}", f"--timeout={left}s",
                stream=True, timeout=left + 30,
            )  # fmt: skip
            if result.returncode != 0:
                raise KubernetesError(
                    f"cluster {self.cluster}: the rollout of {workload} in {namespace} did not "
                    f"complete within the deadline ({left} s left when waiting began): "
                    f"{(result.stderr or result.stdout).strip()[-800:]}; look at its pods "
                    f"(`kubectl -n {namespace} describe {workload}`)",
                    result=result,
                )


def _hint(said: str) -> str:
    if "field not declared in schema" in said or "unknown field" in said:
        return "; fix the field the API server names in the manifest"
    if "no matches for kind" in said:
        return "; fix the apiVersion/kind (the cluster does not serve it)"
    unreachable = ("Unable to connect to the server", "The connection to the server", "refused")
    if any(text in said for text in unreachable):
        return "; the cluster does not answer: check the block's kubeconfig and context"
    if "Forbidden" in said or "forbidden" in said:
        return "; the kubeconfig's user is not allowed to do this (RBAC)"
    return ""
