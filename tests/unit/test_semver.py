"""Versions and constraints as Flux / Image Updater / Helm (Masterminds/semver) read
them: precedence, partial versions, ^ ~ x ranges, hyphen ranges, || alternatives, and
prereleases only when asked for."""

from __future__ import annotations

import pytest

from prefect_stacks._internal.semver import Constraint, Version, newest

V = Version.parse


@pytest.mark.parametrize(
    "text, expected",
    [
        ("v1.4.2", (1, 4, 2, ())),
        ("1.5.0-rc.1", (1, 5, 0, ("rc", "1"))),
        ("v1.4", (1, 4, 0, ())),
        ("2", (2, 0, 0, ())),
        ("2.0.0+build.7", (2, 0, 0, ())),
    ],
)
def test_parse(text, expected):
    v = V(text)
    assert v is not None
    assert (v.major, v.minor, v.patch, v.prerelease) == expected


@pytest.mark.parametrize("text", ["latest", "main", "1.2.3.4", "01.2.3", "v", "sha-abc123", ""])
def test_not_versions(text):
    assert V(text) is None


def test_semver_precedence():
    ordered = [
        "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
        "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.10.0", "2.0.0",
    ]  # fmt: skip
    versions = [V(t) for t in ordered]
    assert sorted(reversed(versions)) == versions
    assert V("1.0.0+a") == V("1.0.0+b")  # build metadata does not count


@pytest.mark.parametrize(
    "constraint, yes, no",
    [
        (">=1.9,<2", ["1.9.0", "1.12.3"], ["1.8.9", "2.0.0"]),
        (">=1.9 <2", ["1.9.0"], ["2.0.0"]),
        ("^1.2.3", ["1.2.3", "1.9.0"], ["1.2.2", "2.0.0"]),
        ("^0.2.3", ["0.2.3", "0.2.9"], ["0.3.0"]),
        ("^0.0.3", ["0.0.3"], ["0.0.4"]),
        ("~1.2.3", ["1.2.3", "1.2.9"], ["1.3.0"]),
        ("~>1.2", ["1.2.0", "1.2.7"], ["1.3.0"]),
        ("~1", ["1.0.0", "1.9.9"], ["2.0.0"]),
        ("1.2.x", ["1.2.0", "1.2.99"], ["1.3.0", "1.1.9"]),
        ("1.*", ["1.0.0", "1.99.0"], ["2.0.0"]),
        ("*", ["0.0.1", "9.9.9"], []),
        ("1.2", ["1.2.0", "1.2.5"], ["1.3.0"]),
        ("=1.2.3", ["1.2.3"], ["1.2.4"]),
        ("!=1.2.3", ["1.2.4"], ["1.2.3"]),
        ("!=1.2", ["1.3.0", "1.1.0"], ["1.2.5"]),
        (">1.2", ["1.3.0"], ["1.2.9"]),
        ("<=1.2", ["1.2.9"], ["1.3.0"]),
        ("1.2 - 1.4.5", ["1.2.0", "1.4.5"], ["1.4.6", "1.1.0"]),
        ("1.2 - 1.4", ["1.4.9"], ["1.5.0"]),
        ("<1 || >=3", ["0.9.0", "3.1.0"], ["1.0.0", "2.9.9"]),
    ],
)
def test_constraints(constraint, yes, no):
    c = Constraint.parse(constraint)
    for text in yes:
        assert c.allows(V(text)), f"{constraint} should allow {text}"
    for text in no:
        assert not c.allows(V(text)), f"{constraint} should not allow {text}"


def test_prereleases_only_when_asked_for():
    c = Constraint.parse(">=1.0")
    assert not c.allows(V("2.0.0-rc.1"))
    assert c.allows(V("2.0.0-rc.1"), include_prereleases=True)
    assert not Constraint.parse(">=2.0.0").allows(V("2.0.0-rc.1"), include_prereleases=True)


@pytest.mark.parametrize("bad", ["", ">=", "1.2.3.4", "||", ">=1 ||", "^1.x-rc.1", "banana"])
def test_bad_constraints_say_so(bad):
    with pytest.raises(ValueError):
        Constraint.parse(bad)


def test_newest_picks_the_highest_allowed_tag():
    tags = {t: V(t) for t in ["v1.2.0", "v1.10.0", "v1.9.3", "v2.0.0-rc.1", "v2.1.0"]}
    assert newest(tags, Constraint.parse("<2"), include_prereleases=False) == "v1.10.0"
    assert newest(tags, Constraint.parse("^2.0.0-rc.1"), include_prereleases=True) == "v2.1.0"
    assert newest(tags, None, include_prereleases=False) == "v2.1.0"
    assert newest(tags, Constraint.parse(">=3"), include_prereleases=True) is None
