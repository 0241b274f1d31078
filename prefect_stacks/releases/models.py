"""What the release watcher follows (:class:`WatchedRepository`: a GitHub repository and
its filters), what it remembers of each (:func:`seen_tags` / :func:`remembered`: the tags
of the last listing) and what is new (:func:`new_releases`, each with its kind)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from prefect_stacks._internal.semver import Constraint, Version
from prefect_stacks.blocks.github.models import Release
from prefect_stacks.exceptions import ConfigurationError

_REPOSITORY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}/[A-Za-z0-9._-]{1,100}$")
STATE_LIMIT = 4500  # characters of remembered tags per repository (a Variable holds 5000)

Kind = Literal["major", "minor", "patch", "prerelease", "release"]


class WatchedRepository(BaseModel):
    """One GitHub repository to follow, and which of its releases to announce."""

    repository: str = Field(description="`owner/name` on GitHub, e.g. `hashicorp/terraform`.")
    source: Literal["releases", "tags"] = Field(
        default="releases",
        description="`releases` (GitHub releases), or `tags` for a project that publishes none.",
    )
    prereleases: bool = Field(
        default=False, description="Announce prereleases too (drafts are never announced)."
    )
    constraint: str | None = Field(
        default=None,
        description="Only versions in this semver range, e.g. `>=1.9,<2` or `^2` (empty: any).",
    )
    include: str | None = Field(
        default=None, description="Only tags matching this regular expression (searched)."
    )
    exclude: str | None = Field(
        default=None, description="Never tags matching this regular expression (searched)."
    )
    terraform: str | None = Field(
        default=None,
        description=(
            "For the impact line: `terraform` for Terraform itself, or the provider's "
            "address (`hashicorp/kubernetes`). Empty: derived from the name "
            "(`hashicorp/terraform`; `OWNER/terraform-provider-NAME` is `OWNER/NAME`); "
            "`none`: no impact line."
        ),
    )

    @field_validator("repository")
    @classmethod
    def _check_repository(cls, value: str) -> str:
        value = value.strip().removeprefix("https://github.com/").removesuffix(".git")
        if not _REPOSITORY_RE.match(value):
            raise ConfigurationError(
                f"watched repository {value!r} is not `owner/name` (e.g. `hashicorp/terraform`)"
            )
        return value

    @field_validator("constraint")
    @classmethod
    def _check_constraint(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        try:
            Constraint.parse(value)
        except ValueError as exc:
            raise ConfigurationError(f"constraint {value!r}: {exc}") from exc
        return value.strip()

    @field_validator("include", "exclude")
    @classmethod
    def _check_regex(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or not value:
            return None
        try:
            re.compile(value)
        except re.error as exc:
            raise ConfigurationError(
                f"{info.field_name} {value!r} is not a regular expression: {exc}"
            ) from exc
        return value

    @property
    def key(self) -> str:
        return self.repository.lower()

    @property
    def component(self) -> str | None:
        """``terraform``, a provider address, or None: what the impact line is about."""
        if self.terraform:
            return None if self.terraform.lower() == "none" else self.terraform.lower()
        owner, _, name = self.key.partition("/")
        if self.key == "hashicorp/terraform":
            return "terraform"
        if name.startswith("terraform-provider-") and len(name) > len("terraform-provider-"):
            return f"{owner}/{name.removeprefix('terraform-provider-')}"
        return None

    def admits(self, release: Release) -> bool:
        """Whether a release passes the filters (drafts never do)."""
        tag = release.tag_name
        if release.draft or not tag:
            return False
        version = Version.parse(tag)
        prerelease = release.prerelease or (version is not None and version.is_prerelease)
        if prerelease and not self.prereleases:
            return False
        if self.constraint is not None and (
            version is None or not Constraint.parse(self.constraint).allows(version, True)
        ):
            return False
        if self.include is not None and not re.search(self.include, tag):
            return False
        return self.exclude is None or not re.search(self.exclude, tag)


@dataclass(frozen=True)
class NewRelease:
    """A release the watcher announces."""

    watched: WatchedRepository
    repository: str  # owner/name where it lives now (a moved repository's new name)
    release: Release
    kind: Kind

    @property
    def title(self) -> str:
        name = (self.release.name or "").strip()
        tag = self.release.tag_name
        return tag if not name or name == tag else f"{tag} ({name})"


def seen_tags(releases: list[Release]) -> str:
    """The state kept for a repository: the tags of its listing (drafts left out), newest
    first, as JSON, cut to fit a Prefect Variable."""
    tags = [r.tag_name for r in releases if r.tag_name and not r.draft]
    while tags and len(json.dumps(tags)) > STATE_LIMIT:
        tags.pop()
    return json.dumps(tags)


def remembered(state: str | None) -> list[str] | None:
    """The tags :func:`seen_tags` stored, or None for a repository never listed."""
    if state is None:
        return None
    try:
        tags = json.loads(state)
    except ValueError:
        return []
    return [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []


def kind_of(tag: str, prerelease: bool, known: list[str]) -> Kind:
    """How a new version moves against those seen before: a prerelease, or the part that
    grew over the highest earlier release below it (a backport 1.8.6 after 1.9.0 is a
    patch of 1.8.5); ``release`` for a tag that is not a version."""
    version = Version.parse(tag)
    if prerelease or (version is not None and version.is_prerelease):
        return "prerelease"
    if version is None:
        return "release"
    earlier = [
        v
        for t in known
        if (v := Version.parse(t)) is not None and not v.is_prerelease and v < version
    ]
    if not earlier:
        return "major"
    below = max(earlier)
    if version.major > below.major:
        return "major"
    return "minor" if version.minor > below.minor else "patch"


def new_releases(
    watched: WatchedRepository, repository: str, releases: list[Release], before: list[str]
) -> list[NewRelease]:
    """The releases of a listing that were not in the previous one and pass the filters,
    oldest first (the order they are told in)."""
    known = set(before)
    fresh = [r for r in releases if r.tag_name not in known and watched.admits(r)]
    # the kind is against every version known, old or new in this listing (two new
    # releases at once: 1.9.1 is a patch of 1.9.0)
    every = sorted(known | {r.tag_name for r in releases})
    return [
        NewRelease(watched, repository, r, kind_of(r.tag_name, r.prerelease, every))
        for r in reversed(fresh)
    ]


__all__ = [
    "Kind",
    "NewRelease",
    "WatchedRepository",
    "kind_of",
    "new_releases",
    "remembered",
    "seen_tags",
]
