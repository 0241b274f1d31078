"""Tag policies: which image of a repository a watcher follows, and what each costs.

* ``tag``: a mutable tag's digest (``latest``, ``main``). One ``HEAD``; never a tag list.
* ``semver``: the highest tag a constraint allows (``^1.4``, ``>=1.9,<2``), prereleases
  when asked. The tag list, then one ``HEAD``.
* ``regex``: the highest tag matching a pattern, by a named group
  (``(?P<build>\\d+)``), numeric or alphabetical. The tag list, then one ``HEAD``.
* ``newest-build``: the tag (matching an optional pattern) whose image was built last.
  The tag list, a ``HEAD`` per candidate, and for each new digest its manifest and
  config (then cached: a digest never changes).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator

from prefect_stacks._internal.semver import Constraint, Version, newest
from prefect_stacks.blocks.registry.client import RegistryClient

MAX_NEWEST_BUILD_CANDIDATES = 100


class Resolved(BaseModel):
    """What a policy points at now."""

    repository: str
    tag: str
    digest: str


class MutableTag(BaseModel):
    kind: Literal["tag"] = "tag"
    tag: str = Field(description="The tag to follow, e.g. `latest` or `main`.")

    @property
    def label(self) -> str:
        return f"tag={self.tag}"


class SemverPolicy(BaseModel):
    kind: Literal["semver"] = "semver"
    constraint: str = Field(
        "*", description="A Masterminds/semver constraint, e.g. `^1.4`, `>=1.9,<2`, `1.2.x`."
    )
    include_prereleases: bool = Field(False, description="Also follow prereleases (`2.0.0-rc.1`).")

    @field_validator("constraint")
    @classmethod
    def _check(cls, value: str) -> str:
        Constraint.parse(value)
        return value

    @property
    def label(self) -> str:
        return f"semver={self.constraint}" + (" +prereleases" if self.include_prereleases else "")


class RegexPolicy(BaseModel):
    kind: Literal["regex"] = "regex"
    pattern: str = Field(description="Tags to consider, e.g. `^main-(?P<build>\\d+)-[0-9a-f]{7}$`.")
    sort_by: str = Field("", description="The named group to order by (empty: the whole tag).")
    order: Literal["numeric", "alphabetical"] = Field(
        "numeric", description="How the sort key compares; the highest wins."
    )

    @field_validator("pattern")
    @classmethod
    def _check_pattern(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"{value!r} is not a regular expression: {exc}") from None
        return value

    @property
    def label(self) -> str:
        return f"regex={self.pattern} by {self.sort_by or 'tag'} ({self.order})"

    def key(self, tag: str) -> tuple | None:
        match = re.search(self.pattern, tag)
        if not match:
            return None
        value = match[self.sort_by] if self.sort_by else match[0]
        if value is None:
            return None
        if self.order == "numeric":
            return (int(value),) if value.isdigit() else None
        return (value,)


class NewestBuildPolicy(BaseModel):
    kind: Literal["newest-build"] = "newest-build"
    pattern: str = Field("", description="Only tags matching this regular expression.")

    @property
    def label(self) -> str:
        return f"newest-build={self.pattern or '*'}"


TagPolicy = Annotated[
    MutableTag | SemverPolicy | RegexPolicy | NewestBuildPolicy,
    Field(discriminator="kind"),
]


def resolve(client: RegistryClient, repository: str, policy: TagPolicy) -> Resolved | None:
    """The tag and digest ``policy`` points at now, or None when no tag qualifies."""
    if isinstance(policy, MutableTag):
        tag: str | None = policy.tag
    elif isinstance(policy, SemverPolicy):
        versions = {t: v for t in client.tags(repository) if (v := Version.parse(t))}
        tag = newest(versions, Constraint.parse(policy.constraint), policy.include_prereleases)
    elif isinstance(policy, RegexPolicy):
        keyed = [(key, t) for t in client.tags(repository) if (key := policy.key(t))]
        tag = max(keyed)[1] if keyed else None
    else:
        return _newest_build(client, repository, policy)
    if tag is None:
        return None
    digest = client.digest(repository, tag)
    return Resolved(repository=repository, tag=tag, digest=digest) if digest else None


def _newest_build(
    client: RegistryClient, repository: str, policy: NewestBuildPolicy
) -> Resolved | None:
    tags = [
        t for t in client.tags(repository) if not policy.pattern or re.search(policy.pattern, t)
    ]
    best: tuple[datetime, str, str] | None = None
    for tag in tags[-MAX_NEWEST_BUILD_CANDIDATES:]:
        digest = client.digest(repository, tag)
        created = client.created(repository, digest) if digest else None
        if digest and created and (best is None or (created, tag) > best[:2]):
            best = (created, tag, digest)
    if best is None:
        return None
    return Resolved(repository=repository, tag=best[1], digest=best[2])
