"""The release watcher on a throwaway Prefect server, against the GitHub fake serving
Terraform's releases in GitHub's own payload shape and the Slack fake: a silent
baseline; one message and one event per new release, with the stacks a Terraform release
concerns; filters; a digest; an idle poll that costs no rate limit; and a repository
that moved, is gone or is rate-limited reported while the others go on."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from prefect.blocks.system import Secret

from prefect_stacks.blocks.slack import SlackChannel
from prefect_stacks.blocks.terraform import TerraformStack
from prefect_stacks.flows.releases import WatchedRepository, release_watcher
from tests.conftest import read_events
from tests.fakes.github import FakeGitHub
from tests.fakes.slack import FakeSlack

pytestmark = pytest.mark.integration

TOKEN = "ghp_releases_" + uuid.uuid4().hex
SLACK_TOKEN = "xoxb-releases"
TERRAFORM_RELEASES = (
    Path(__file__).parents[1] / "data" / "github" / "releases-hashicorp-terraform.json"
)


@pytest.fixture
def gh():
    with FakeGitHub(tokens={TOKEN: "watcher"}, repos=["hashicorp/terraform"]) as fake:
        fake.load_releases(TERRAFORM_RELEASES, repo="hashicorp/terraform")
        yield fake


@pytest.fixture
def slack():
    with FakeSlack(tokens=[SLACK_TOKEN], channels=["releases"]) as fake:
        yield fake


@pytest.fixture
def blocks(prefect_harness, slack):
    tag = uuid.uuid4().hex[:6]
    Secret(value=TOKEN).save(f"gh-token-{tag}")
    SlackChannel(bot_token=SLACK_TOKEN, channel="#releases", api_url=slack.api_url).save(
        f"slack-{tag}"
    )
    # an underscore: the ETag cache block's name (no underscores allowed) is derived
    return {"token_block": f"gh-token-{tag}", "slack": f"slack-{tag}", "watcher": f"rel_{tag}"}


def watch(gh: FakeGitHub, blocks: dict, repositories: list[WatchedRepository], **kw):
    return release_watcher(repositories=repositories, api_url=gh.api_url, **blocks, **kw)


def texts(slack: FakeSlack) -> list[str]:
    return [m.text or "" for m in slack.messages]


def test_baseline_then_one_message_and_one_event_per_release_then_an_idle_poll_is_free(
    gh: FakeGitHub, slack: FakeSlack, blocks: dict
):
    gh.add_repository("acme/tool")
    gh.add_tag("v0.1.0", repo="acme/tool")
    watched = [
        WatchedRepository(repository="hashicorp/terraform"),
        WatchedRepository(repository="acme/tool", source="tags"),
    ]
    first = watch(gh, blocks, watched)
    assert first["new"] == [] and sorted(first["baseline"]) == ["acme/tool", "hashicorp/terraform"]
    assert slack.messages == []

    gh.add_release("v1.9.1", repo="hashicorp/terraform", name="v1.9.1", body="BUG FIXES: ...")
    gh.add_release("v1.10.0-beta1", repo="hashicorp/terraform", prerelease=True)  # filtered
    gh.add_tag("v0.2.0", repo="acme/tool")
    second = watch(gh, blocks, watched)
    assert second["new"] == [
        {"repository": "hashicorp/terraform", "tag": "v1.9.1", "kind": "patch"},
        {"repository": "acme/tool", "tag": "v0.2.0", "kind": "minor"},
    ]
    terraform, tool = texts(slack)
    assert "*hashicorp/terraform* `v1.9.1`" in terraform and "patch" in terraform
    assert f"{gh.api_url.rstrip('/')}/hashicorp/terraform/releases/tag/v1.9.1" in terraform
    # the impact line names the shipped stacks and their constraints
    assert "Stacks (Terraform 1.9.1): allowed by" in terraform
    # (in Slack's mrkdwn, > is written &gt;)
    assert "stacks/k8s-app (&gt;= 1.4)" in terraform
    assert "stacks/local-webapp (&gt;= 1.4)" in terraform
    assert "`v0.2.0`" in tool and "minor" in tool and "Stacks" not in tool

    repo_id = gh.api_url.split("://", 1)[1].rstrip("/")
    published = read_events(
        "stacks.release.published", f"stacks.release.{repo_id}/hashicorp/terraform"
    )
    assert [(e["payload"]["tag"], e["payload"]["prerelease"]) for e in published] == [
        ("v1.9.1", False)
    ]
    assert read_events("stacks.release.published", f"stacks.release.{repo_id}/acme/tool")

    spent = gh.rate_limit_remaining(TOKEN)
    gh.clear_requests()
    idle = watch(gh, blocks, watched)
    assert idle["new"] == [] and len(slack.messages) == 2
    assert gh.rate_limit_remaining(TOKEN) == spent  # every listing answered 304
    assert gh.counts_by_status() == {304: 2}


def test_filters_and_a_digest_for_many(gh: FakeGitHub, slack: FakeSlack, blocks: dict):
    for name in ("acme/one", "acme/two"):
        gh.add_repository(name)
        gh.add_release("v1.0.0", repo=name)
    watched = [
        WatchedRepository(repository="acme/one", prereleases=True, constraint=">=1.9,<2"),
        WatchedRepository(repository="acme/two", include=r"^v", exclude=r"-hotfix$"),
    ]
    watch(gh, blocks, watched)
    for tag, prerelease in [
        ("v1.8.0", False),  # below the range
        ("v1.9.0", False),
        ("v1.9.1-rc1", True),  # in the range, a prerelease (asked for)
        ("v2.0.0", False),  # above it
    ]:
        gh.add_release(tag, repo="acme/one", prerelease=prerelease)
    gh.add_release("v1.1.0", repo="acme/two", draft=True)  # never
    gh.add_release("v1.1.0-hotfix", repo="acme/two")
    gh.add_release("release-7", repo="acme/two")
    gh.add_release("v1.2.0", repo="acme/two")
    result = watch(gh, blocks, watched, digest_over=1)
    assert [(n["repository"], n["tag"], n["kind"]) for n in result["new"]] == [
        ("acme/one", "v1.9.0", "minor"),
        ("acme/one", "v1.9.1-rc1", "prerelease"),
        ("acme/two", "v1.2.0", "minor"),
    ]
    (digest,) = texts(slack)  # more than digest_over: one message
    assert digest.startswith(":mega: 3 new releases:")
    assert all(tag in digest for tag in ("v1.9.1-rc1", "v1.9.0", "v1.2.0"))
    assert not any(tag in digest for tag in ("v1.8.0", "v2.0.0", "hotfix", "release-7"))


def test_a_repository_added_later_is_recorded_silently(gh: FakeGitHub, slack: FakeSlack, blocks):
    gh.add_repository("acme/late")
    gh.add_release("v3.0.0", repo="acme/late")
    # the default state name (no `watcher`) stays the same when the list changes
    own = {k: v for k, v in blocks.items() if k != "watcher"}
    watch(gh, own, [WatchedRepository(repository="hashicorp/terraform")])
    longer = [
        WatchedRepository(repository="hashicorp/terraform"),
        WatchedRepository(repository="acme/late"),
    ]
    gh.add_release("v1.9.1", repo="hashicorp/terraform")
    result = watch(gh, own, longer)
    assert [(n["repository"], n["tag"]) for n in result["new"]] == [
        ("hashicorp/terraform", "v1.9.1")
    ]
    assert result["baseline"] == []  # not a new watcher: acme/late alone recorded, silently
    assert len(slack.messages) == 1 and "v3.0.0" not in (slack.messages[0].text or "")


def test_a_configured_stack_pinned_below_is_named(gh, slack, blocks, tmp_path: Path):
    pinned = tmp_path / "pinned"
    pinned.mkdir()
    (pinned / "versions.tf").write_text('terraform {\n  required_version = "~> 1.8.0"\n}\n')
    stack = f"pinned-{uuid.uuid4().hex[:6]}"
    TerraformStack(source=str(pinned)).save(stack)
    watched = [WatchedRepository(repository="hashicorp/terraform")]
    watch(gh, blocks, watched)
    gh.add_release("v1.10.0", repo="hashicorp/terraform")
    watch(gh, blocks, watched)
    (text,) = texts(slack)
    assert f"*not allowed* by {stack} (~&gt; 1.8.0)" in text  # mrkdwn-escaped


def test_moved_gone_and_rate_limited_are_reported_and_the_others_go_on(
    gh: FakeGitHub, slack: FakeSlack, blocks: dict
):
    for name in ("acme/old-name", "acme/doomed", "acme/steady"):
        gh.add_repository(name)
        gh.add_release("v1.0.0", repo=name)
    watched = [
        WatchedRepository(repository="acme/old-name"),
        WatchedRepository(repository="acme/doomed"),
        WatchedRepository(repository="acme/steady"),
    ]
    watch(gh, blocks, watched)
    gh.rename_repository("acme/old-name", "acme/new-name")
    gh.add_release("v1.1.0", repo="acme/new-name")
    gh.delete_repository("acme/doomed")
    gh.add_release("v1.0.1", repo="acme/steady")
    state = watch(gh, blocks, watched, return_state=True)
    assert state.is_failed()
    assert "acme/doomed" in state.message and "404" in state.message
    assert "1 of 3 repositories could not be read" in state.message
    assert [t.split("`")[1] for t in texts(slack)] == ["v1.1.0", "v1.0.1"]
    assert "*acme/new-name*" in texts(slack)[0]  # told under the name it has now

    # the rate limit spent: reported, nothing forgotten; once it resets, nothing is lost
    gh.add_release("v1.0.2", repo="acme/steady")
    gh.exhaust_rate_limit(reset_in=3, token=TOKEN)
    still = [WatchedRepository(repository="acme/steady")]
    limited = watch(gh, blocks, still, return_state=True, max_rate_limit_wait=0)
    assert limited.is_failed() and "rate limit" in limited.message
    assert len(slack.messages) == 2
    time.sleep(3.5)
    after = watch(gh, blocks, still)
    assert [n["tag"] for n in after["new"]] == ["v1.0.2"]


def test_without_a_baseline_everything_listed_is_told(gh: FakeGitHub, slack: FakeSlack, blocks):
    gh.add_repository("acme/fresh")
    for tag in ("v1.0.0", "v1.1.0", "v2.0.0-rc1"):
        gh.add_release(tag, repo="acme/fresh", prerelease="rc" in tag)
    result = watch(
        gh, blocks, [WatchedRepository(repository="acme/fresh")], baseline_on_first_run=False
    )
    assert [(n["tag"], n["kind"]) for n in result["new"]] == [
        ("v1.0.0", "major"),
        ("v1.1.0", "minor"),
    ]
    assert len(slack.messages) == 2
