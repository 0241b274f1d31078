"""The image-builder's tag rules: what each rule gives a commit, what is skipped, and what
is refused naming the rule; and the build arguments refused as secrets."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from prefect_stacks._internal.git import Revision
from prefect_stacks.blocks.docker import ImageBuild
from prefect_stacks.blocks.image_secrets import refuse_secrets, secret_like_names
from prefect_stacks.blocks.image_tags import (
    DEFAULT_TAG_RULES,
    image_tags,
    is_tag,
    parse_tag_rule,
    parse_tag_rules,
    tag_safe,
)
from prefect_stacks.exceptions import ConfigurationError

SHA = "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d"
# 23:30 at UTC-5 is the next day in UTC: {date} is the UTC date
WHEN = datetime(2024, 3, 9, 23, 30, tzinfo=timezone(timedelta(hours=-5)))


def revision(**fields) -> Revision:
    return Revision(**{"sha": SHA, "committed_at": WHEN, **fields})


def tags_of(rules, rev: Revision, logger=None) -> list[str]:
    return image_tags(parse_tag_rules(rules), rev, logger)


def test_the_default_rules_are_the_full_and_the_short_sha():
    assert tags_of(DEFAULT_TAG_RULES, revision()) == [SHA, SHA[:7]]


@pytest.mark.parametrize(
    ("rules", "rev", "expected"),
    [
        (["sha"], revision(), [SHA]),
        (["sha7"], revision(), ["1a2b3c4"]),
        (["describe"], revision(describe="v1.2.0-3-g1a2b3c4"), ["v1.2.0-3-g1a2b3c4"]),
        (["describe"], revision(describe="release/2.0-1-g1a2b3c4"), ["release-2.0-1-g1a2b3c4"]),
        (["semver"], revision(tags=("v1.2.3",)), ["1.2.3"]),
        (["semver"], revision(tags=("1.4.0-rc.1",)), ["1.4.0-rc.1"]),
        (["semver"], revision(tags=("v2.0.0+build.7",)), ["2.0.0_build.7"]),
        # several tags at the commit: the highest version; a non-semver tag is ignored
        (["semver"], revision(tags=("latest-stable", "v1.2.3", "v1.10.0")), ["1.10.0"]),
        (
            ["semver", "semver-minor", "semver-major"],
            revision(tags=("v1.2.3",)),
            ["1.2.3", "1.2", "1"],
        ),
        (["{branch}-{sha7}"], revision(branch="main"), ["main-1a2b3c4"]),
        (["{branch}-{sha7}"], revision(branch="feature/login"), ["feature-login-1a2b3c4"]),
        (["{date}.{sha7}"], revision(), ["20240310.1a2b3c4"]),
        (["v{tag}"], revision(tags=("1.0.0",)), ["v1.0.0"]),
        (["{tag}"], revision(tags=("beta", "alpha")), ["alpha"]),
        (["build_{describe}"], revision(describe="1a2b3c4"), ["build_1a2b3c4"]),
        # the same tag from two rules is one tag
        (["sha7", "{sha7}", "sha"], revision(), ["1a2b3c4", SHA]),
    ],
)
def test_each_rule_gives_its_tag(rules, rev, expected):
    assert tags_of(rules, rev) == expected
    assert all(is_tag(tag) for tag in expected)


@pytest.mark.parametrize(
    "branch",
    [
        "feat/$(touch${IFS}pwned);x`id`",
        "a&&b|c>d<e",
        "x'y\"z\\w",
        "-leading-dash",
        "..dots..",
        "über/straße",
    ],
)
def test_shell_characters_in_a_branch_never_reach_the_tag(branch):
    (tag,) = tags_of(["{branch}-{sha7}"], revision(branch=branch))
    assert is_tag(tag)
    assert not set(tag) & set("$()`;&|<>'\"\\ /{}")
    assert tag.endswith("-1a2b3c4")


def test_tag_safe():
    assert tag_safe("feature/x") == "feature-x"
    assert tag_safe("feat/$(touch${IFS}pwned);x`id`") == "feat-touch-IFS-pwned-x-id"
    assert tag_safe("///") == ""
    assert tag_safe(None) == ""


@pytest.mark.parametrize(
    ("rules", "rev", "skipped"),
    [
        (["semver", "sha7"], revision(tags=("latest",)), "no semver tag points at the commit"),
        (["semver", "sha7"], revision(), "no semver tag points at the commit"),
        (["semver-minor", "sha7"], revision(tags=("v1.3.0-rc.1",)), "is a prerelease"),
        (["semver-major", "sha7"], revision(tags=("v0.4.1",)), "0.x"),
        (["{branch}-{sha7}", "sha7"], revision(branch=None), "not a branch"),
        (["v{tag}", "sha7"], revision(), "no tag points at the commit"),
    ],
)
def test_a_rule_with_nothing_to_give_is_skipped_with_a_log_line(rules, rev, skipped):
    lines: list[str] = []

    class Log:
        def info(self, message, *args):
            lines.append(message % args)

    assert tags_of(rules, rev, Log()) == ["1a2b3c4"]
    assert len(lines) == 1
    assert lines[0].startswith(f"tag rule {rules[0]!r} skipped: ") and skipped in lines[0]


def test_no_tag_at_all_is_an_error_that_says_what_to_add():
    with pytest.raises(ConfigurationError, match=r"no tag rule gave a tag .*'semver'.*e\.g\. sha7"):
        tags_of(["semver"], revision())


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("sha8", r"unknown tag rule 'sha8': use one of sha, sha7, describe, semver"),
        ("latest", r"unknown tag rule 'latest'"),
        ("{branch}-{short}", r"tag rule '\{branch\}-\{short\}': unknown placeholder \{short\}"),
        ("{sha:.5}", r"'\{sha:\.5\}': \{sha\} takes no format"),
        ("{sha!r}", r"takes no format or conversion"),
        ("{branch.upper}", r"unknown placeholder \{branch\.upper\}"),
        ("{branch", r"tag rule '\{branch' is not a template"),
        ("{}", r"unknown placeholder \{\}"),
        ("$(id)-{sha7}", r"'\$\(id\)-' has characters a Docker tag cannot hold"),
        ("{branch}/{sha7}", r"'/' has characters a Docker tag cannot hold"),
        ("{{sha}}", r"has characters a Docker tag cannot hold"),
    ],
)
def test_a_bad_rule_is_refused_naming_it(rule, message):
    with pytest.raises(ConfigurationError, match=message):
        parse_tag_rule(rule)


def test_a_template_whose_result_is_no_tag_is_refused_naming_the_rule():
    with pytest.raises(
        ConfigurationError, match=r"tag rule '-\{sha7\}' gives '-1a2b3c4', not a valid"
    ):
        tags_of(["-{sha7}"], revision())
    long_branch = "b" * 130
    with pytest.raises(ConfigurationError, match=r"tag rule '\{branch\}-\{sha\}' gives .* 128"):
        tags_of(["{branch}-{sha}"], revision(branch=long_branch))


def test_no_rules_is_refused():
    with pytest.raises(ConfigurationError, match="tag_rules is empty"):
        parse_tag_rules([])


def test_what_each_rule_needs_from_git():
    rules = {
        r.text: r for r in parse_tag_rules(["sha", "describe", "semver-major", "{tag}-{date}"])
    }
    assert not rules["sha"].needs_tags and not rules["sha"].needs_describe
    assert rules["describe"].needs_describe and not rules["describe"].needs_tags
    assert rules["semver-major"].needs_tags
    assert rules["{tag}-{date}"].needs_tags and not rules["{tag}-{date}"].needs_describe


# --------------------------------------------------------------------------- secrets


@pytest.mark.parametrize(
    "name",
    [
        "GITHUB_TOKEN",
        "NPM_TOKEN",
        "npmToken",
        "DB_PASSWORD",
        "PASSWD",
        "AWS_SECRET_ACCESS_KEY",
        "API_KEY",
        "apikey",
        "SSH_PRIVATE_KEY",
        "CLIENT_SECRET",
        "GCP_CREDENTIALS",
        "KEY",
    ],
)
def test_build_argument_names_that_say_secret_are_refused(name):
    assert secret_like_names([name]) == [name]
    with pytest.raises(ValidationError, match=r"look like secrets: .*docker history") as err:
        ImageBuild(image="web", build_args={name: "s3cr3t-value"})
    assert "s3cr3t-value" not in str(err.value)


@pytest.mark.parametrize("name", ["VERSION", "KEYBOARD", "MONKEY", "TOKENIZER_MODEL", "NODE_ENV"])
def test_ordinary_build_argument_names_pass(name):
    assert ImageBuild(image="web", build_args={name: "x"}).build_args == {name: "x"}


def test_a_build_argument_or_label_holding_a_secret_is_refused_without_showing_it():
    token = "ghp_" + "x" * 20
    with pytest.raises(ConfigurationError, match=r"build argument 'NPMRC' holds a secret") as err:
        refuse_secrets({"NPMRC": f"//registry/:_authToken={token}"}, {}, [token])
    assert token not in str(err.value)
    assert "docker history" in str(err.value)
    with pytest.raises(ConfigurationError, match=r"label 'note' holds a secret"):
        refuse_secrets({}, {"note": token}, [token])
    # a short secret counts only whole
    refuse_secrets({"A": "abc-def"}, {}, ["abc"])
    with pytest.raises(ConfigurationError):
        refuse_secrets({"A": "abc"}, {}, ["abc"])
    refuse_secrets({"A": "fine"}, {"b": "fine"}, [token, None, ""])
