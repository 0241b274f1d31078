"""The release watcher's pure parts: Terraform's constraint dialect, reading a stack's
requirements, the filters, the kind of a new version, the remembered tags, and the
impact line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prefect_stacks._internal.semver import Version, terraform_allows
from prefect_stacks.blocks.github.models import Release
from prefect_stacks.blocks.terraform.requirements import Requirements, read_requirements
from prefect_stacks.exceptions import ConfigurationError, StackError
from prefect_stacks.releases.impact import StackCatalog
from prefect_stacks.releases.models import (
    STATE_LIMIT,
    WatchedRepository,
    kind_of,
    new_releases,
    remembered,
    seen_tags,
)


@pytest.mark.parametrize(
    ("constraint", "version", "allowed"),
    [
        (">= 1.4", "1.10.0", True),
        ("~> 1.5", "1.9.3", True),
        ("~> 1.5", "2.0.0", False),  # Terraform's ~> on two parts: same major
        ("~> 1.5.2", "1.5.9", True),
        ("~> 1.5.2", "1.6.0", False),  # on three parts: same minor
        ("~> 1", "3.0.0", True),  # on one part: a lower bound only
        (">= 2.23, < 4.0", "3.9.9", True),
        (">= 2.23, < 4.0", "4.0.0", False),
        ("1.9.0", "1.9.0", True),  # no operator is =
        ("1.9.0", "1.9.1", False),
        ("!= 1.9.0, >= 1.8", "1.9.0", False),
        (">= 1.4", "1.10.0-alpha20240606", False),  # a prerelease only by name
        ("= 1.10.0-alpha20240606", "1.10.0-alpha20240606", True),
        (">= 1.4, = 1.10.0-rc1", "1.10.0-rc1", True),
    ],
)
def test_terraform_constraints(constraint: str, version: str, allowed: bool):
    parsed = Version.parse(version)
    assert parsed is not None
    assert terraform_allows(constraint, parsed) is allowed


@pytest.mark.parametrize("bad", ["", ">= 1.4,", "=> 1.4", ">= latest", "~> *"])
def test_an_unreadable_terraform_constraint_is_a_value_error(bad: str):
    with pytest.raises(ValueError):
        terraform_allows(bad, Version(1, 0, 0))


def test_requirements_from_every_terraform_block_of_the_root_module(tmp_path: Path):
    (tmp_path / "versions.tf").write_text(
        """
terraform {
  required_version = ">= 1.5, < 2.0"
  required_providers {
    kubernetes = {
      source  = "registry.terraform.io/HashiCorp/kubernetes"
      version = "~> 2.30"
    }
    random = {}
    pg = {
      source = "cyrilgdn/postgresql"
    }
  }
}
"""
    )
    (tmp_path / "main.tf").write_text(
        'terraform {\n  required_version = "!= 1.9.1"\n}\nresource "terraform_data" "x" {}\n'
    )
    (tmp_path / "modules").mkdir()
    (tmp_path / "modules" / "child.tf").write_text('terraform { required_version = "= 0.1" }\n')
    assert read_requirements(tmp_path) == Requirements(
        terraform=("!= 1.9.1", ">= 1.5, < 2.0"),
        providers={
            "cyrilgdn/postgresql": (),
            "hashicorp/kubernetes": ("~> 2.30",),
            "hashicorp/random": (),
        },
    )


def test_an_unreadable_stack_file_is_named(tmp_path: Path):
    (tmp_path / "broken.tf").write_text("terraform {\n  required_version = \n")
    with pytest.raises(StackError, match=r"broken\.tf"):
        read_requirements(tmp_path, name="broken-stack")


def test_the_component_a_repository_releases():
    def component(repository: str, terraform: str | None = None) -> str | None:
        return WatchedRepository(repository=repository, terraform=terraform).component

    assert component("hashicorp/terraform") == "terraform"
    assert component("hashicorp/terraform-provider-kubernetes") == "hashicorp/kubernetes"
    assert component("integrations/terraform-provider-github") == "integrations/github"
    assert component("prefecthq/prefect") is None
    assert component("acme/pg-fork", terraform="cyrilgdn/postgresql") == "cyrilgdn/postgresql"
    assert component("hashicorp/terraform", terraform="none") is None


def release(tag: str, **kw) -> Release:
    return Release(tag_name=tag, html_url=f"https://github.com/a/b/releases/tag/{tag}", **kw)


def test_filters_drafts_prereleases_constraint_and_regexes():
    plain = WatchedRepository(repository="a/b")
    assert plain.admits(release("v1.0.0"))
    assert not plain.admits(release("v1.1.0", draft=True))
    assert not plain.admits(release("v1.1.0", prerelease=True))  # GitHub's flag
    assert not plain.admits(release("v1.1.0-rc1"))  # or the version's
    assert WatchedRepository(repository="a/b", prereleases=True).admits(release("v1.1.0-rc1"))
    assert not WatchedRepository(repository="a/b", prereleases=True).admits(
        release("v2", draft=True)
    )
    ranged = WatchedRepository(repository="a/b", constraint=">=1.9,<2")
    assert [ranged.admits(release(t)) for t in ("v1.8.9", "v1.9.0", "v1.12.1", "v2.0.0")] == [
        False,
        True,
        True,
        False,
    ]
    assert not ranged.admits(release("nightly"))  # not a version: outside any range
    regexes = WatchedRepository(repository="a/b", include=r"^v\d", exclude=r"\.0$")
    assert [regexes.admits(release(t)) for t in ("v1.2.1", "v1.3.0", "x1.2.1")] == [
        True,
        False,
        False,
    ]


@pytest.mark.parametrize(
    ("field", "value"), [("constraint", ">= one"), ("include", "("), ("repository", "terraform")]
)
def test_bad_filters_name_what_to_fix(field: str, value: str):
    with pytest.raises(ConfigurationError, match=field if field != "repository" else "owner/name"):
        WatchedRepository(**{"repository": "a/b", field: value})


@pytest.mark.parametrize(
    ("tag", "known", "kind"),
    [
        ("v1.10.0", ["v1.9.3", "v1.9.2"], "minor"),
        ("v2.0.0", ["v1.9.3"], "major"),
        ("v1.9.4", ["v1.9.3"], "patch"),
        ("v1.8.6", ["v1.9.0", "v1.8.5"], "patch"),  # a backport: against 1.8.5
        ("v1.11.0-rc1", ["v1.10.0"], "prerelease"),
        ("nightly-2024", ["v1.0.0"], "release"),
        ("v1.0.0", [], "major"),
    ],
)
def test_kind_of_a_new_version(tag: str, known: list[str], kind: str):
    assert kind_of(tag, False, known) == kind


def test_new_releases_are_those_not_listed_before_oldest_first():
    listing = [release("v1.3.0"), release("v1.2.1-rc1"), release("v1.2.0"), release("v1.1.0")]
    found = new_releases(WatchedRepository(repository="a/b"), "a/b", listing, ["v1.1.0"])
    assert [(n.release.tag_name, n.kind) for n in found] == [
        ("v1.2.0", "minor"),
        ("v1.3.0", "minor"),
    ]


def test_the_remembered_tags_fit_a_variable():
    many = [release(f"v1.{i}.0-{'x' * 60}") for i in range(200)]
    state = seen_tags([*many, release("v9.0.0", draft=True)])
    assert len(state) <= STATE_LIMIT
    tags = remembered(state)
    assert tags == [r.tag_name for r in many[: len(tags)]]  # the newest kept
    assert remembered(None) is None and remembered("not json") == []
    assert "v9.0.0" not in json.loads(state)


def test_the_impact_line_says_which_stacks_allow_the_version():
    catalog = StackCatalog(
        _stacks={
            "stacks/k8s-app": Requirements(
                (">= 1.4",), {"hashicorp/kubernetes": (">= 2.23, < 4.0",)}
            ),
            "legacy": Requirements(("~> 1.5.0",), {}),
            "loose": Requirements((), {"hashicorp/kubernetes": ()}),
        }
    )
    core = catalog.impact("terraform", "v1.9.0")
    assert core is not None
    assert core.line() == (
        "Stacks (Terraform 1.9.0): allowed by stacks/k8s-app (>= 1.4), loose (any version); "
        "*not allowed* by legacy (~> 1.5.0)"
    )
    provider = catalog.impact("hashicorp/kubernetes", "v4.0.0")
    assert provider is not None
    assert provider.line() == (
        "Stacks (hashicorp/kubernetes 4.0.0): allowed by loose (any version); "
        "*not allowed* by stacks/k8s-app (>= 2.23, < 4.0)"
    )
    unused = catalog.impact("cyrilgdn/postgresql", "1.26.0")
    assert unused is not None
    assert "no shipped or configured stack uses cyrilgdn/postgresql" in unused.line()
    assert catalog.impact("terraform", "nightly") is None
