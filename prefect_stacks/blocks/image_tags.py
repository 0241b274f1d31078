"""Docker's reference grammar, and the tag rules that name an image after its commit.

The grammar is distribution/reference's: a repository is lowercase path components with
an optional ``host[:port]/`` in front; a tag is ``[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}``.

A tag rule is a string; each gives at most one tag of a commit (a
:class:`~prefect_stacks._internal.git.Revision`):

* ``sha`` the full commit SHA; ``sha7`` its first 7 characters;
* ``describe`` ``git describe --tags --always`` (``v1.2.0-3-g1a2b3c4``);
* ``semver`` the semver tag at the commit as ``1.2.3`` (the ``v`` dropped, a prerelease
  kept, build metadata's ``+`` written ``_``); ``semver-minor`` ``1.2`` and
  ``semver-major`` ``1``, the moving aliases, for releases only (not a prerelease, and
  no ``0`` alias for 0.x);
* a template, anything with ``{``: ``{branch} {sha} {sha7} {tag} {describe} {date}``
  (``{date}``: the commit's date, UTC, ``YYYYMMDD``), e.g. ``{branch}-{sha7}``.

Every value put into a tag is made tag-safe first (``feature/x`` -> ``feature-x``; any
character outside ``[A-Za-z0-9_.-]`` becomes ``-``), so nothing a branch or tag name
holds reaches a command or the Docker API as typed. A rule whose value is missing (no
tag at the commit, a ref that is no branch) gives nothing and is skipped; a template
with an unknown placeholder, or a result that is no valid tag, is a
``ConfigurationError`` naming the rule.
"""

from __future__ import annotations

import logging
import re
import string
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timezone

from prefect_stacks._internal.git import Revision
from prefect_stacks._internal.semver import Version
from prefect_stacks.exceptions import ConfigurationError

HOST_RE = re.compile(r"^[A-Za-z0-9.-]+(?::[0-9]+)?$")
COMPONENT_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")

RULES = ("sha", "sha7", "describe", "semver", "semver-minor", "semver-major")
PLACEHOLDERS = ("branch", "sha", "sha7", "tag", "describe", "date")
DEFAULT_TAG_RULES = ("sha", "sha7")
_TAG_TEXT_RE = re.compile(r"^[A-Za-z0-9_.-]*$")


def is_repository(value: str) -> bool:
    """``value`` is an image repository Docker accepts (no tag, no digest)."""
    parts = value.split("/")
    first = parts[0]
    if len(parts) > 1 and ("." in first or ":" in first or first == "localhost"):
        if not HOST_RE.match(first):
            return False
        parts = parts[1:]
    return len(value) <= 255 and all(COMPONENT_RE.match(p) for p in parts)


def is_tag(value: str) -> bool:
    return bool(TAG_RE.match(value))


def tag_safe(value: str | None) -> str:
    """``value`` with every run of characters a tag cannot hold made one ``-``, and no
    ``-``/``.`` at either end (``feature/$(id)`` -> ``feature-id``); empty when nothing
    is left."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", value or "").strip("-.")


@dataclass(frozen=True)
class TagRule:
    """One parsed rule: a name from :data:`RULES`, or a template."""

    text: str
    placeholders: tuple[str, ...] = ()

    @property
    def is_template(self) -> bool:
        return "{" in self.text

    @property
    def needs_tags(self) -> bool:
        """The rule reads the tags at the commit."""
        return self.text.startswith("semver") or "tag" in self.placeholders

    @property
    def needs_describe(self) -> bool:
        return self.text == "describe" or "describe" in self.placeholders

    def apply(self, revision: Revision) -> tuple[str | None, str]:
        """``(tag, "")``, or ``(None, why)`` when the commit has no value for the rule."""
        if not self.is_template:
            return _named(self.text, revision)
        values = _values(revision)
        missing = [p for p in self.placeholders if not values[p]]
        if missing:
            return None, f"no {{{missing[0]}}}: {_WHY_MISSING[missing[0]]}"
        result = self.text.format(**values)
        if not is_tag(result):
            raise ConfigurationError(
                f"tag rule {self.text!r} gives {result!r}, not a valid Docker tag "
                "(letters, digits, '_', '.', '-'; not starting with '.' or '-'; at most "
                "128 characters)"
            )
        return result, ""


_WHY_MISSING = {
    "branch": "the ref is a tag or a commit, not a branch",
    "tag": "no tag points at the commit",
    "describe": "git describe gave nothing",
    "sha": "no commit",
    "sha7": "no commit",
    "date": "no commit date",
}


def parse_tag_rules(rules: Iterable[str]) -> list[TagRule]:
    """The rules, checked: each is a name from :data:`RULES` or a template of
    :data:`PLACEHOLDERS` and tag characters. Raises ``ConfigurationError`` naming the
    first rule that is neither."""
    parsed = [parse_tag_rule(rule) for rule in rules]
    if not parsed:
        raise ConfigurationError(
            f"tag_rules is empty: give at least one rule, e.g. {list(DEFAULT_TAG_RULES)}"
        )
    return parsed


def parse_tag_rule(rule: str) -> TagRule:
    text = str(rule).strip()
    if "{" not in text and "}" not in text:
        if text in RULES:
            return TagRule(text)
        raise ConfigurationError(
            f"unknown tag rule {text!r}: use one of {', '.join(RULES)}, or a template "
            f"with placeholders ({' '.join('{' + p + '}' for p in PLACEHOLDERS)}), e.g. "
            "'{branch}-{sha7}'"
        )
    try:
        pieces = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise ConfigurationError(f"tag rule {text!r} is not a template: {exc}") from exc
    used: list[str] = []
    for literal, name, spec, conversion in pieces:
        if not _TAG_TEXT_RE.match(literal):
            raise ConfigurationError(
                f"tag rule {text!r}: {literal!r} has characters a Docker tag cannot hold "
                "(letters, digits, '_', '.', '-' only)"
            )
        if name is None:
            continue
        if name not in PLACEHOLDERS:
            raise ConfigurationError(
                f"tag rule {text!r}: unknown placeholder {'{' + name + '}'} (placeholders: "
                f"{' '.join('{' + p + '}' for p in PLACEHOLDERS)})"
            )
        if spec or conversion:
            raise ConfigurationError(
                f"tag rule {text!r}: {'{' + name + '}'} takes no format or conversion "
                "(use {sha7} for a short SHA)"
            )
        used.append(name)
    if not used:
        raise ConfigurationError(f"tag rule {text!r} has no placeholder")
    return TagRule(text, tuple(used))


def image_tags(
    rules: Iterable[TagRule],
    revision: Revision,
    logger: logging.Logger | logging.LoggerAdapter | None = None,
) -> list[str]:
    """The tags ``rules`` give ``revision``, in the rules' order, each once; a rule that
    gives nothing is skipped with a log line. No tag at all is a ``ConfigurationError``."""
    rules = list(rules)
    tags: list[str] = []
    for rule in rules:
        tag, why = rule.apply(revision)
        if tag is None:
            if logger is not None:
                logger.info("tag rule %r skipped: %s", rule.text, why)
        elif tag not in tags:
            tags.append(tag)
    if not tags:
        raise ConfigurationError(
            f"no tag rule gave a tag for commit {revision.sha[:12]} "
            f"({', '.join(repr(r.text) for r in rules)}): add one that always applies, "
            "e.g. sha7"
        )
    return tags


def commit_semver(revision: Revision) -> Version | None:
    """The highest semver tag at the commit (``v1.2.3`` and ``1.2.3`` alike)."""
    versions = [v for v in (Version.parse(t) for t in revision.tags) if v is not None]
    return max(versions) if versions else None


def commit_tag(revision: Revision) -> str | None:
    """The tag ``{tag}`` stands for: the highest semver tag at the commit, else the
    first by name."""
    if not revision.tags:
        return None
    semver = [t for t in revision.tags if Version.parse(t) is not None]
    if semver:
        return max(semver, key=lambda t: Version.parse(t))  # type: ignore[arg-type, return-value]
    return sorted(revision.tags)[0]


def _named(rule: str, revision: Revision) -> tuple[str | None, str]:
    if rule == "sha":
        return revision.sha, ""
    if rule == "sha7":
        return revision.sha[:7], ""
    if rule == "describe":
        value = tag_safe(revision.describe)[:128]
        return (value, "") if value else (None, _WHY_MISSING["describe"])
    version = commit_semver(revision)
    if version is None:
        return None, "no semver tag points at the commit"
    if rule == "semver":
        return str(version).replace("+", "_")[:128], ""
    if version.is_prerelease:
        return None, f"{version} is a prerelease: the {rule} alias is for releases"
    if rule == "semver-minor":
        return f"{version.major}.{version.minor}", ""
    if version.major == 0:
        return None, f"{version} is 0.x: no major alias before 1.0.0"
    return str(version.major), ""


def _values(revision: Revision) -> dict[str, str]:
    return {
        "branch": tag_safe(revision.branch),
        "sha": revision.sha,
        "sha7": revision.sha[:7],
        "tag": tag_safe(commit_tag(revision)),
        "describe": tag_safe(revision.describe),
        "date": revision.committed_at.astimezone(timezone.utc).strftime("%Y%m%d"),
    }
