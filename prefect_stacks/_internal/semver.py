"""Semantic versions and version constraints, as the tools of the field write them.

Image tags and release tags are semver with an optional ``v`` (``v1.4.2``, ``1.5.0-rc.1``,
``2.0.0+build.7``); a missing minor or patch counts as 0 (``v1.4`` is 1.4.0), as Flux and
Argo CD Image Updater read them. Precedence is semver 2.0's (build metadata ignored,
prerelease identifiers compared numerically or lexically, a release above its
prereleases).

A constraint is the syntax of Masterminds/semver, which Flux, Image Updater and Helm use:

* comparisons ``=``, ``!=``, ``>``, ``<``, ``>=``, ``<=`` of a (partial) version;
* ``^1.2.3`` (same major; ``^0.2.3``: same minor; ``^0.0.3``: that patch),
  ``~1.2.3`` / ``~>1.2.3`` (same minor), wildcards ``1.2.x``, ``1.*``, ``*``;
* a hyphen range ``1.2 - 1.4.5``;
* terms joined by ``,`` or spaces must all hold; groups joined by ``||``: any.

Prereleases match only when asked for (``include_prereleases``), so ``>=1.0`` never picks
``2.0.0-rc.1`` by surprise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

_VERSION_RE = re.compile(
    r"^[vV]?(?P<major>0|[1-9]\d*)(?:\.(?P<minor>0|[1-9]\d*))?(?:\.(?P<patch>0|[1-9]\d*))?"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+(?P<build>[0-9A-Za-z.-]+))?$"
)
_PARTIAL_RE = re.compile(
    r"^[vV]?(?P<major>\d+|[xX*])(?:\.(?P<minor>\d+|[xX*]))?(?:\.(?P<patch>\d+|[xX*]))?"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z.-]+)?$"
)
_TERM_RE = re.compile(r"^(?P<op>!=|>=|<=|=>|=<|~>|[=<>~^])?\s*(?P<version>\S+)$")
_WILDCARD = {"x", "X", "*"}


@total_ordering
@dataclass(frozen=True)
class Version:
    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()
    build: str = ""

    @classmethod
    def parse(cls, text: str) -> Version | None:
        """The version ``text`` spells, or None when it is not one (``latest``, ``main``)."""
        match = _VERSION_RE.match(text.strip())
        if not match:
            return None
        pre = match["pre"]
        return cls(
            int(match["major"]),
            int(match["minor"] or 0),
            int(match["patch"] or 0),
            tuple(pre.split(".")) if pre else (),
            match["build"] or "",
        )

    @property
    def is_prerelease(self) -> bool:
        return bool(self.prerelease)

    @property
    def core(self) -> tuple[int, int, int]:
        return (self.major, self.minor, self.patch)

    def _key(self) -> tuple:
        # a release sorts above its prereleases; numeric identifiers below alphanumeric
        pre = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in self.prerelease)
        return (self.core, not self.prerelease, pre)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() < other._key()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(self.prerelease)
        return text + (f"+{self.build}" if self.build else "")

    def bump(self, part: str) -> Version:
        """The lowest release above every version sharing this one's ``part`` prefix."""
        if part == "major":
            return Version(self.major + 1, 0, 0)
        if part == "minor":
            return Version(self.major, self.minor + 1, 0)
        return Version(self.major, self.minor, self.patch + 1)


# (operator, bound, upper): "outside" is != of a partial version, i.e. not in [bound, upper)
_Comparator = tuple[str, Version, "Version | None"]
_NOTHING: list[_Comparator] = [("<", Version(0, 0, 0), None)]


def _partial(text: str, where: str) -> tuple[Version, int]:
    """A possibly partial version and how many of its parts were given (x counts as not
    given): ``1.2`` -> (1.2.0, 2), ``1.x`` -> (1.0.0, 1), ``*`` -> (0.0.0, 0)."""
    match = _PARTIAL_RE.match(text)
    if not match:
        raise ValueError(f"{where}: {text!r} is not a version")
    numbers = []
    for name in ("major", "minor", "patch"):
        value = match[name]
        if value is None or value in _WILDCARD:
            break
        numbers.append(int(value))
    given = len(numbers)
    pre = match["pre"]
    if pre and given < 3:
        raise ValueError(f"{where}: {text!r}: a prerelease needs a full version")
    numbers += [0] * (3 - given)
    return Version(*numbers, tuple(pre.split(".")) if pre else ()), given


def _upper(version: Version, given: int) -> Version:
    """The lowest version above everything a partial version covers (1.2 -> 1.3.0)."""
    return version.bump("major" if given <= 1 else "minor" if given == 2 else "patch")


def _term(op: str, text: str, where: str) -> list[_Comparator]:
    version, given = _partial(text, where)
    op = {"=>": ">=", "=<": "<=", "~>": "~"}.get(op, op)
    if given == 0:  # *, x: every version, or none
        return [] if op in ("", "=", ">=", "<=", "~", "^") else _NOTHING
    partial = given < 3
    if op in ("", "="):
        if not partial:
            return [("=", version, None)]
        return [(">=", version, None), ("<", _upper(version, given), None)]
    if op == "!=":
        if not partial:
            return [("!=", version, None)]
        return [("outside", version, _upper(version, given))]
    if op == "^":
        if version.major > 0 or given == 1:
            top = version.bump("major")
        elif version.minor > 0 or given == 2:
            top = version.bump("minor")
        else:
            top = version.bump("patch")
        return [(">=", version, None), ("<", top, None)]
    if op == "~":
        top = version.bump("minor") if given >= 2 else version.bump("major")
        return [(">=", version, None), ("<", top, None)]
    if op == ">" and partial:
        return [(">=", _upper(version, given), None)]
    if op == "<=" and partial:
        return [("<", _upper(version, given), None)]
    return [(op, version, None)]  # >, >=, <, <= of a full version; < of a partial one


def _holds(comparator: _Comparator, version: Version) -> bool:
    op, bound, upper = comparator
    if op == "outside":
        assert upper is not None
        return not (bound <= version < upper)
    return {
        "=": version == bound,
        "!=": version != bound,
        ">": version > bound,
        ">=": version >= bound,
        "<": version < bound,
        "<=": version <= bound,
    }[op]


@dataclass(frozen=True)
class Constraint:
    """A parsed constraint (see the module docstring); ``str()`` gives it back as written."""

    text: str
    groups: tuple[tuple[_Comparator, ...], ...]

    @classmethod
    def parse(cls, text: str) -> Constraint:
        source = text.strip()
        if not source:
            raise ValueError("empty version constraint")
        groups = []
        for raw_group in source.split("||"):
            group_text = raw_group.strip()
            if not group_text:
                raise ValueError(f"{source!r}: an empty alternative around '||'")
            comparators: list[_Comparator] = []
            hyphen = re.match(r"^(\S+)\s+-\s+(\S+)$", group_text)
            if hyphen:
                low, _ = _partial(hyphen[1], source)
                high, high_given = _partial(hyphen[2], source)
                comparators.append((">=", low, None))
                if high_given == 3:
                    comparators.append(("<=", high, None))
                else:
                    comparators.append(("<", _upper(high, high_given), None))
            else:
                # "> = 1.2" is not a thing; ">= 1.2" is: glue an operator to its version
                tokens = re.findall(r"(?:!=|>=|<=|=>|=<|~>|[=<>~^])?\s*[^\s,]+", group_text)
                if not tokens:
                    raise ValueError(f"{source!r}: no version in {group_text!r}")
                for token in tokens:
                    match = _TERM_RE.match(token.strip())
                    if not match:
                        raise ValueError(f"{source!r}: cannot read {token.strip()!r}")
                    comparators += _term(match["op"] or "", match["version"], source)
            groups.append(tuple(comparators))
        return cls(source, tuple(groups))

    def allows(self, version: Version, include_prereleases: bool = False) -> bool:
        if version.is_prerelease and not include_prereleases:
            return False
        return any(all(_holds(c, version) for c in group) for group in self.groups)

    def __str__(self) -> str:
        return self.text


def newest(
    candidates: dict[str, Version], constraint: Constraint | None, include_prereleases: bool
) -> str | None:
    """The name (tag) of the highest version the constraint allows, or None."""
    allowed = [
        (version, name)
        for name, version in candidates.items()
        if (constraint is None and (include_prereleases or not version.is_prerelease))
        or (constraint is not None and constraint.allows(version, include_prereleases))
    ]
    if not allowed:
        return None
    return max(allowed, key=lambda pair: (pair[0], pair[1]))[1]


_TERRAFORM_TERM_RE = re.compile(r"^(?P<op>!=|>=|<=|~>|[=<>])?\s*(?P<version>\S+)$")


def terraform_allows(constraint: str, version: Version) -> bool:
    """Whether a Terraform version constraint (``required_version``, a provider's
    ``version``) admits ``version``, in Terraform's own dialect, which is not
    Masterminds': terms joined by ``,`` all hold; no operator means ``=``; ``~>`` lets
    only the rightmost given part grow (``~> 1.5`` is ``>= 1.5, < 2.0``, ``~> 1.5.2`` is
    ``>= 1.5.2, < 1.6.0``, ``~> 1`` is ``>= 1``); a prerelease is admitted only by an
    exact ``=`` term naming it. Raises ValueError for a constraint it cannot read."""
    terms = [term.strip() for term in constraint.split(",")]
    if not constraint.strip() or not all(terms):
        raise ValueError(f"{constraint!r} is not a Terraform version constraint")
    named_exactly = False
    for term in terms:
        match = _TERRAFORM_TERM_RE.match(term)
        if not match:
            raise ValueError(f"{constraint!r}: cannot read {term!r}")
        op = match["op"] or "="
        bound, given = _partial(match["version"], constraint)
        if given == 0:
            raise ValueError(f"{constraint!r}: {term!r} has no version number")
        if op == "~>":
            top = None if given == 1 else bound.bump("major" if given == 2 else "minor")
            holds = version >= bound and (top is None or version < top)
        else:
            holds = _holds((op, bound, None), version)
        if not holds:
            return False
        named_exactly = named_exactly or (op == "=" and version.prerelease == bound.prerelease)
    return not version.is_prerelease or named_exactly
