"""The ``KubernetesCluster`` block: a kubeconfig kept as a secret, the context to use, the
default namespace, and :meth:`KubernetesCluster.kubectl`, which writes the kubeconfig to a
private file for one piece of work and hands back the :class:`Kubectl` that runs it.

Why not prefect-kubernetes' ``KubernetesClusterConfig``: it keeps the whole kubeconfig
in a plain ``config: Dict`` field. A kubeconfig holds credentials (client keys, tokens),
and a plain field is shown in clear by the UI, ``prefect block inspect`` and the REST
API. Here the kubeconfig is a ``SecretStr``: it is masked everywhere, unwrapped only
into a 0600 file that lives as long as the work.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml
from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from prefect_stacks._internal.process import write_private_file
from prefect_stacks.blocks.base import StacksBlock
from prefect_stacks.blocks.kubernetes.kubectl import Kubectl
from prefect_stacks.exceptions import ConfigurationError


def _contexts(kubeconfig: str) -> tuple[list[str], str | None]:
    """(context names, current context) of a kubeconfig; ValueError when it is none."""
    try:
        data = yaml.safe_load(kubeconfig)
    except yaml.YAMLError:
        raise ValueError("the kubeconfig is not valid YAML") from None
    if not isinstance(data, dict) or not isinstance(data.get("contexts"), list):
        raise ValueError(
            "the kubeconfig has no `contexts` list: paste a whole kubeconfig file "
            "(`kubectl config view --raw --minify`)"
        )
    names = [c.get("name") for c in data["contexts"] if isinstance(c, dict) and c.get("name")]
    return names, data.get("current-context")


class KubernetesCluster(StacksBlock):
    """A Kubernetes cluster that prefect-stacks deploys to: its kubeconfig (a secret), the
    context and the default namespace.

    Example:
        Apply a directory of manifests with the image pinned by digest:
        ```python
        from pathlib import Path
        from prefect_stacks.blocks.kubernetes import KubernetesCluster

        cluster = KubernetesCluster.load("BLOCK_NAME")
        with cluster.kubectl() as kubectl:
            report = kubectl.apply(Path("k8s/"), images={"ghcr.io/acme/shop": "ghcr.io/acme/shop@sha256:..."})
            print(report.headline())
        ```
    """  # noqa: E501

    # pydantic would echo the raw input (the kubeconfig!) in a ValidationError otherwise
    model_config = ConfigDict(hide_input_in_errors=True)

    _block_type_name = "Kubernetes Cluster"
    _block_type_slug = "kubernetes-cluster"
    _logo_url = "https://cdn.sanity.io/images/3ugk85nk/production/2d0b896006ad463b49c28aaac14f31e00e32cfab-250x250.png"  # noqa: E501
    _documentation_url = (
        "https://kubernetes.io/docs/concepts/configuration/organize-cluster-access-kubeconfig/"  # noqa: E501
    )
    _description = (
        "A Kubernetes cluster prefect-stacks deploys to: a kubeconfig (kept as a secret), "
        "the context to use and the default namespace."
    )

    kubeconfig: SecretStr = Field(
        default=...,
        description=(
            "The whole kubeconfig file (YAML), e.g. `kubectl config view --raw --minify`; "
            "kept as a secret, written to a 0600 file only while kubectl runs."
        ),
    )
    context: str | None = Field(
        default=None, description="Context of the kubeconfig to use; empty: its current one."
    )
    namespace: str = Field(
        default="default", description="Namespace for objects whose manifest names none."
    )
    kubectl_path: str | None = Field(
        default=None, description="Path of the kubectl binary; found on PATH when empty."
    )
    request_timeout: int = Field(
        default=30, ge=1, le=600, description="Seconds kubectl waits for one API request."
    )

    @field_validator("kubeconfig")
    @classmethod
    def _check_kubeconfig(cls, value: SecretStr) -> SecretStr:
        _contexts(value.get_secret_value())
        return value

    @model_validator(mode="after")
    def _check_context(self) -> KubernetesCluster:
        names, current = _contexts(self.kubeconfig.get_secret_value())
        wanted = self.context or current
        if wanted is None or wanted not in names:
            which = f"context {wanted!r}" if wanted else "no context (and no current-context)"
            raise ValueError(f"the kubeconfig has {which}; its contexts are {names}: set `context`")
        return self

    @property
    def display_name(self) -> str:
        return getattr(self, "_block_document_name", None) or (
            self.context or _contexts(self.kubeconfig.get_secret_value())[1] or "cluster"
        )

    def kubectl_binary(self) -> str:
        found = shutil.which(self.kubectl_path or "kubectl")
        if not found:
            raise ConfigurationError(
                f"KubernetesCluster {self.display_name!r}: no kubectl "
                f"({self.kubectl_path or 'on PATH'}); install kubectl or set `kubectl_path`"
            )
        return found

    @contextmanager
    def kubectl(self) -> Iterator[Kubectl]:
        """A :class:`Kubectl` for this cluster; its kubeconfig file is removed after."""
        binary = self.kubectl_binary()
        secret = self.kubeconfig.get_secret_value()
        directory = Path(tempfile.mkdtemp(prefix="prefect-stacks-kubeconfig-"))
        try:
            path = write_private_file(directory / "kubeconfig", secret)
            yield Kubectl(
                binary=binary,
                kubeconfig=path,
                context=self.context,
                namespace=self.namespace,
                cluster=self.display_name,
                request_timeout=self.request_timeout,
                secrets=_secret_lines(secret),
            )
        finally:
            shutil.rmtree(directory, ignore_errors=True)


def _secret_lines(kubeconfig: str) -> list[str]:
    """The credential values of a kubeconfig, masked in every kubectl line logged."""
    try:
        data = yaml.safe_load(kubeconfig) or {}
    except yaml.YAMLError:
        return []
    found = []
    for user in data.get("users") or []:
        for key, value in ((user or {}).get("user") or {}).items():
            if key in ("token", "client-key-data", "password", "client-certificate-data"):
                if isinstance(value, str) and len(value) >= 8:
                    found.append(value)
    return found
