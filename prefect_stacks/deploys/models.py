"""What a deploy is about: the :class:`Image` (repository, digest, tag) and the
:class:`MethodSpec` (how, and from which source), both recorded with each deploy."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field

from prefect_stacks.blocks.image_tags import is_tag
from prefect_stacks.blocks.kubernetes.manifests import image_repository
from prefect_stacks.exceptions import ConfigurationError

_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


def check_digest(value: str) -> str:
    if not _DIGEST_RE.match(value):
        raise ConfigurationError(f"{value!r} is not an image digest (sha256:<64 hex digits>)")
    return value


Method = Literal["kubectl", "terraform-kubernetes", "terraform-helm"]


@dataclass(frozen=True)
class Image:
    """An image being deployed: ``repository`` (with its registry host), a digest, and
    the tag it was pushed as (for people; the digest is what runs)."""

    repository: str
    digest: str
    tag: str | None = None

    @property
    def pinned(self) -> str:
        """``repo:tag@digest`` (or ``repo@digest``): what goes into the pod spec."""
        return f"{self.repository}:{self.tag}@{self.digest}" if self.tag else self.by_digest

    @property
    def by_digest(self) -> str:
        return f"{self.repository}@{self.digest}"

    @property
    def short(self) -> str:
        return f"{self.tag or '?'}@{self.digest[7:19]}"


def parse_image(reference: str, tag: str | None = None) -> Image:
    """``registry/repo[:tag]@sha256:...`` -> :class:`Image`; a reference without a digest
    is refused (a tag can move between the decision and the pull)."""
    name, at, digest = reference.strip().partition("@")
    if not at:
        raise ConfigurationError(
            f"image {reference!r} has no digest: deploy `repository@sha256:...` (the "
            "registry-watcher event's `image`, or the digest the image-builder returned)"
        )
    repository = image_repository(name)
    written_tag = name[len(repository) + 1 :] or None
    tag = tag or written_tag
    if tag is not None and not is_tag(tag):
        raise ConfigurationError(f"tag {tag!r} is not a valid image tag")
    if not repository or repository.endswith("/"):
        raise ConfigurationError(f"image {reference!r} has no repository")
    return Image(repository=repository, digest=check_digest(digest), tag=tag)


class MethodSpec(BaseModel):
    """The method and its source, as recorded with each deploy (a rollback redeploys the
    same way)."""

    method: Method = "kubectl"
    manifests: str | None = Field(default=None, description="kubectl: manifests on the worker.")
    stack: str | None = Field(default=None, description="terraform-*: TerraformStack block.")
    workspace: str | None = Field(
        default=None, description="terraform-*: workspace; the block's when empty."
    )

    def check(self) -> MethodSpec:
        if self.method == "kubectl" and not self.manifests:
            raise ConfigurationError(
                "method kubectl needs `manifests`: a directory, file or kustomization of "
                "the workload, on the worker"
            )
        if self.method != "kubectl" and not self.stack:
            raise ConfigurationError(
                f"method {self.method} needs `stack`: the name of a TerraformStack block"
            )
        return self
