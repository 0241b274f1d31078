"""The GitHubRepository block against the GitHub contract fake (a real HTTP server):
pagination, conditional requests and their persisted cache, rate limits waited out,
retries, error messages, the sticky comment, commit statuses, hostile input, secrets.

No mocks: the block's real httpx client talks to ``tests.fakes.github.FakeGitHub``. Only
the cache-persistence and run-logger tests need a Prefect server (the test harness).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect import flow
from prefect.runner.storage import GitRepository

from prefect_stacks._internal.http import HttpClient, MemoryResponseCache
from prefect_stacks.blocks.github import (
    MAX_COMMENT_BODY,
    GitHubError,
    GitHubRepository,
    GitHubResponseCache,
    marker_tag,
)
from prefect_stacks.exceptions import ConfigurationError
from tests.fakes.github import FakeGitHub

pytestmark = pytest.mark.integration

TOKEN = "ghp_block_test_token_5b1e0c2d9a"
READ_ONLY = "ghp_read_only_token_77f3a1c0e4"
PULLS = "/repos/acme/shop/pulls"


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with FakeGitHub(
        tokens={TOKEN: "prefect-stacks-bot"}, read_only_tokens=[READ_ONLY], repos=["acme/shop"]
    ) as fake:
        fake.add_repository("acme/secret", private=True, collaborators=["someone-else"])
        yield fake


def make(gh: FakeGitHub, **overrides) -> GitHubRepository:
    fields = {
        "owner": "acme",
        "repo": "shop",
        "token": TOKEN,
        "api_url": gh.api_url,
        "retry_backoff": 0.05,
    }
    fields.update(overrides)
    return GitHubRepository(**fields)


def listing_requests(gh: FakeGitHub, status: int | None | str = "any") -> int:
    return gh.count(PULLS, method="GET", status=status)


# --------------------------------------------------------------------------- listing


def test_lists_250_open_pull_requests_over_three_pages(gh: FakeGitHub):
    open_numbers = [gh.open_pull_request(f"PR {i}", head=f"feature/{i}") for i in range(250)]
    closed = gh.open_pull_request("closed one", head="old")
    gh.close(closed)
    merged = gh.open_pull_request("merged one", head="done")
    gh.merge(merged)
    other = [gh.open_pull_request(f"R {i}", head=f"rel/{i}", base="release") for i in range(3)]

    prs = make(gh).list_open_pull_requests()

    assert [pr.number for pr in prs] == sorted(open_numbers + other, reverse=True)
    assert listing_requests(gh) == 3  # per_page=100: 253 open in 3 pages
    first = gh.requests[0]
    assert first.query == {"state": "open", "per_page": "100"}
    assert first.headers["Accept"] == "application/vnd.github+json"
    assert first.headers["X-GitHub-Api-Version"] == "2022-11-28"
    assert first.headers["User-Agent"].startswith("prefect-stacks/")
    assert [r.raw_path for r in gh.requests[1:]] == [f"/repositories/{gh._repo(None).id}/pulls"] * 2
    by_number = {pr.number: pr for pr in prs}
    pr = by_number[open_numbers[7]]
    fake_pr = gh.pull_request(open_numbers[7])
    assert (pr.title, pr.head_ref, pr.head_sha, pr.base_ref) == (
        "PR 7",
        "feature/7",
        fake_pr.head_sha,
        "main",
    )
    assert pr.state == "open" and pr.merged is False and pr.author == "octocat"

    into_release = make(gh).list_open_pull_requests(base="release")
    assert sorted(pr.number for pr in into_release) == other
    assert gh.requests[-1].query["base"] == "release"


def test_pull_request_fields_forks_labels_drafts(gh: FakeGitHub):
    a = gh.open_pull_request("A", head="feat/a", draft=True, labels=["preview", "db"])
    b = gh.open_pull_request("B", head="patch-1", fork="alice/shop", author="alice")
    c = gh.open_pull_request("C", head="gone", fork_deleted=True)
    prs = {pr.number: pr for pr in make(gh).list_open_pull_requests()}
    assert prs[a].draft and prs[a].labels == ["preview", "db"] and not prs[a].from_fork
    assert prs[b].head_repo_full_name == "alice/shop" and prs[b].from_fork
    assert prs[b].author == "alice"
    assert prs[c].head_repo_full_name is None and prs[c].from_fork
    assert prs[a].html_url.endswith(f"/acme/shop/pull/{a}")


def test_get_pull_request_confirms_closed_or_merged(gh: FakeGitHub):
    merged = gh.open_pull_request("M", head="m")
    closed = gh.open_pull_request("C", head="c")
    gh.merge(merged)
    gh.close(closed)
    repo = make(gh)
    assert repo.list_open_pull_requests() == []
    m = repo.get_pull_request(merged)
    assert m.state == "closed" and m.merged is True and m.merged_at is not None
    c = repo.get_pull_request(closed)
    assert c.state == "closed" and c.merged is False and c.merged_at is None
    with pytest.raises(ValueError):
        repo.get_pull_request(0)


# --------------------------------------------------------------------------- ETags


def test_repeat_listing_is_answered_304_without_rate_cost(gh: FakeGitHub):
    numbers = [gh.open_pull_request(f"PR {i}", head=f"f/{i}") for i in range(250)]
    repo = make(gh)
    first = repo.list_open_pull_requests()
    remaining = gh.rate_limit_remaining(TOKEN)

    second = repo.list_open_pull_requests()

    assert second == first
    assert listing_requests(gh, 200) == 3 and listing_requests(gh, 304) == 3
    assert all(r.conditional for r in gh.requests[3:6])
    assert gh.rate_limit_remaining(TOKEN) == remaining  # 304s cost nothing

    new_sha = gh.push(numbers[120])  # on page 2 (numbers desc: 250..151, 150..51, 50..1)
    third = {pr.number: pr for pr in repo.list_open_pull_requests()}
    assert third[numbers[120]].head_sha == new_sha
    statuses = [r.status for r in gh.requests[6:9]]
    assert statuses == [304, 200, 304]


def test_etag_cache_survives_a_new_block_instance(gh: FakeGitHub, prefect_harness):
    for i in range(150):
        gh.open_pull_request(f"PR {i}", head=f"f/{i}")
    cache_name = f"gh-cache-{uuid.uuid4().hex[:8]}"
    first_run = make(gh, response_cache_block=cache_name)
    listed = first_run.list_open_pull_requests()
    assert listing_requests(gh, 200) == 2

    stored = GitHubResponseCache.load(cache_name)
    assert len(stored.entries) == 2
    assert TOKEN not in str(stored.entries)
    assert len(str(stored.entries)) < 150 * 1000  # only what the listing needs

    second_run = make(gh, response_cache_block=cache_name)  # a new process, in effect
    assert second_run.list_open_pull_requests() == listed
    assert listing_requests(gh, 304) == 2 and listing_requests(gh, 200) == 2

    # control: without the persisted cache, a new instance downloads everything again
    make(gh).list_open_pull_requests()
    assert listing_requests(gh, 200) == 4

    # a change is picked up and written back; a third instance sees the new ETag
    number = gh.open_pull_request("new", head="f/new")
    assert listed[0].number < number == second_run.list_open_pull_requests()[0].number
    third_run = make(gh, response_cache_block=cache_name)
    gh.clear_requests()
    third_run.list_open_pull_requests()
    assert gh.counts_by_status() == {304: 2}


def test_pluggable_cache(gh: FakeGitHub):
    gh.open_pull_request("A", head="a")
    shared = MemoryResponseCache(max_entries=50)
    one, two = make(gh), make(gh)
    one.use_response_cache(shared)
    two.use_response_cache(shared)
    one.list_open_pull_requests()
    two.list_open_pull_requests()
    assert [r.status for r in gh.requests] == [200, 304]
    assert len(shared) == 1 and shared.dirty


# --------------------------------------------------------------------------- rate limits


def test_secondary_limit_with_retry_after_is_waited_out(gh: FakeGitHub, caplog):
    gh.open_pull_request("A", head="a")
    gh.secondary_limit(retry_after=1, path_prefix=PULLS)
    caplog.set_level(logging.INFO)
    started = time.monotonic()
    prs = make(gh).list_open_pull_requests()
    assert [pr.number for pr in prs] == [1]
    assert time.monotonic() - started >= 1.0
    assert [r.status for r in gh.requests] == [403, 200]
    assert "secondary rate limit exceeded" in caplog.text and "waiting 1 s" in caplog.text


def test_secondary_limit_without_retry_after_respects_the_budget(gh: FakeGitHub):
    gh.secondary_limit(retry_after=None)
    repo = make(gh, max_rate_limit_wait=30)
    started = time.monotonic()
    with pytest.raises(GitHubError) as caught:
        repo.list_open_pull_requests()
    assert time.monotonic() - started < 5  # 60 s > budget: fails at once, no sleep
    assert caught.value.rate_limited
    message = str(caught.value)
    assert "secondary rate limit" in message and "max_rate_limit_wait" in message


def test_primary_limit_is_waited_until_reset(gh: FakeGitHub, caplog):
    gh.open_pull_request("A", head="a")
    caplog.set_level(logging.INFO)
    gh.exhaust_rate_limit(reset_in=1)
    started = time.monotonic()
    pr = make(gh).get_pull_request(1)
    assert pr.number == 1
    assert time.monotonic() - started >= 1.0
    assert [r.status for r in gh.requests] == [403, 200]
    assert "primary rate limit (core) exceeded" in caplog.text and "resets at" in caplog.text


def test_primary_limit_past_the_budget_names_the_reset_time(gh: FakeGitHub):
    gh.exhaust_rate_limit(reset_in=600)
    reset = gh._bucket("prefect-stacks-bot").reset
    started = time.monotonic()
    with pytest.raises(GitHubError) as caught:
        make(gh, max_rate_limit_wait=5).list_releases()
    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert "primary rate limit (core)" in message
    expected = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(reset))
    assert f"resets at {expected} UTC" in message
    assert caught.value.reset_at is not None and caught.value.reset_at.timestamp() == reset


def test_a_plain_403_is_a_permission_error_not_a_wait(gh: FakeGitHub):
    sha = gh.pull_request(gh.open_pull_request("A", head="a")).head_sha
    started = time.monotonic()
    with pytest.raises(GitHubError) as caught:
        make(gh, token=READ_ONLY).set_commit_status(sha, "success", "env", "ok")
    assert time.monotonic() - started < 2
    assert caught.value.status == 403 and not caught.value.rate_limited
    assert "Resource not accessible" in str(caught.value)
    assert "Commit statuses (read and write)" in str(caught.value)
    assert gh.count(method="POST") == 1


# --------------------------------------------------------------------------- retries


def test_5xx_and_dropped_connections_are_retried(gh: FakeGitHub):
    gh.open_pull_request("A", head="a")
    gh.fail(2, status=502)
    gh.drop(1)
    prs = make(gh, max_retries=3).list_open_pull_requests()
    assert [pr.number for pr in prs] == [1]
    assert [r.status for r in gh.requests] == [502, 502, None, 200]


def test_5xx_gives_up_after_the_bound(gh: FakeGitHub):
    gh.fail(10, status=500)
    with pytest.raises(GitHubError) as caught:
        make(gh, max_retries=2).get_pull_request(1)
    assert gh.count() == 3  # the first try and 2 retries
    assert "HTTP 500" in str(caught.value) and "after 3 attempts" in str(caught.value)
    assert caught.value.status == 500


def test_an_empty_first_page_while_the_api_fails_is_an_error(gh: FakeGitHub):
    for i in range(5):
        gh.open_pull_request(f"PR {i}", head=f"f/{i}")
    gh.empty_listing_with_error(status=502, error_count=10)
    with pytest.raises(GitHubError) as caught:
        make(gh, max_retries=1).list_open_pull_requests()
    assert "HTTP 502" in str(caught.value)
    assert [r.status for r in gh.requests] == [200, 502, 502]
    # and once the API is back, the whole listing (the broken page 1 is not trusted)
    gh.reset()
    assert len(make(gh).list_open_pull_requests()) == 5


def test_a_link_to_another_host_is_not_followed(gh: FakeGitHub):
    gh.open_pull_request("A", head="a")
    with HttpClient(base_url=gh.api_url, service="GitHub", headers={}) as http:
        with pytest.raises(Exception) as caught:
            http.url("https://evil.example/repos/acme/shop/pulls?page=2")
    assert "another origin" in str(caught.value)


# --------------------------------------------------------------------------- errors


def test_401_names_the_block_and_its_token(gh: FakeGitHub):
    repo = make(gh, token="ghp_wrong_token_xxxxxxxxxxxx")
    with pytest.raises(GitHubError) as caught:
        repo.list_open_pull_requests()
    assert caught.value.status == 401
    assert "bad credentials: check the token of block 'acme/shop'" in str(caught.value)
    repo._block_document_name = "shop-github"
    with pytest.raises(GitHubError) as caught:
        repo.get_pull_request(1)
    assert "check the token of block 'shop-github'" in str(caught.value)
    assert "ghp_wrong_token" not in str(caught.value)


def test_404_names_the_repository_and_the_private_case(gh: FakeGitHub):
    with pytest.raises(GitHubError) as caught:
        make(gh, repo="nope").list_open_pull_requests()
    message = str(caught.value)
    assert caught.value.status == 404
    assert "acme/nope" in message and "private" in message and "`repo` ('nope')" in message
    with pytest.raises(GitHubError) as caught:
        make(gh, repo="secret").list_open_pull_requests()  # private, token has no access
    assert "the token cannot see it" in str(caught.value)
    gh.open_pull_request("A", head="a")
    with pytest.raises(GitHubError) as caught:
        make(gh).get_pull_request(999)
    assert "pull request #999 of acme/shop" in str(caught.value)


def test_422_shows_githubs_message_and_errors(gh: FakeGitHub):
    repo = make(gh)
    with pytest.raises(GitHubError) as caught:
        repo.set_commit_status("ab" * 20, "success", "env", "ok")
    assert caught.value.status == 422
    assert f"No commit found for SHA: {'ab' * 20}" in str(caught.value)
    sha = gh.pull_request(gh.open_pull_request("A", head="a")).head_sha
    with repo.get_client().session() as http, pytest.raises(GitHubError) as caught:
        http.request("POST", f"/repos/acme/shop/statuses/{sha}", json_body={"state": "bogus"})
    message = str(caught.value)
    assert "Validation Failed" in message
    assert "Status.state: state is not included in the list" in message
    assert caught.value.errors[0]["field"] == "state"


def test_bad_names_are_configuration_errors():
    with pytest.raises(ConfigurationError, match="set `owner` to the user"):
        GitHubRepository(owner="acme/shop", repo="shop")
    with pytest.raises(ConfigurationError, match="owner '-acme'"):
        GitHubRepository(owner="-acme", repo="shop")
    with pytest.raises(ConfigurationError, match="fix the field `repo`"):
        GitHubRepository(owner="acme", repo="shop; rm -rf /")
    with pytest.raises(ConfigurationError, match="fix the field `repo`"):
        GitHubRepository(owner="acme", repo="..")
    with pytest.raises(ConfigurationError, match="api_url"):
        GitHubRepository(owner="acme", repo="shop", api_url="ftp://github.example")
    with pytest.raises(ConfigurationError, match="carries credentials") as caught:
        GitHubRepository(owner="acme", repo="shop", clone_url="https://x:ghp_s3cret@github.com/a/b")
    assert "ghp_s3cret" not in str(caught.value)
    with pytest.raises(ConfigurationError, match="response_cache_block"):
        GitHubRepository(owner="acme", repo="shop", response_cache_block="Not A Name")
    assert GitHubRepository(owner="acme", repo="shop.git").repo == "shop"
    assert GitHubRepository(owner="my-org_emu", repo="a.b-c_d").full_name == "my-org_emu/a.b-c_d"


# --------------------------------------------------------------------------- sticky comment


def test_sticky_comment_is_created_once_then_updated(gh: FakeGitHub):
    number = gh.open_pull_request("A", head="a")
    repo = make(gh)

    created = repo.upsert_sticky_comment(number, "environment", "Environment **PR_1**: creating")
    assert created.action == "created"
    assert created.body.startswith(marker_tag("environment") + "\n")
    same = repo.upsert_sticky_comment(number, "environment", "Environment **PR_1**: creating")
    assert same.action == "unchanged" and same.id == created.id
    assert gh.count(method="PATCH") == 0
    updated = repo.upsert_sticky_comment(number, "environment", "Environment **PR_1**: ready")
    assert updated.action == "updated" and updated.id == created.id
    other = repo.upsert_sticky_comment(number, "plan", "plan table")

    comments = gh.comments(number)
    assert [c["id"] for c in comments] == [created.id, other.id]
    assert comments[0]["body"] == "<!-- prefect-stacks:environment -->\nEnvironment **PR_1**: ready"
    assert gh.count(method="POST") == 2 and gh.count(method="PATCH") == 1


def test_a_deleted_sticky_comment_is_posted_again(gh: FakeGitHub):
    number = gh.open_pull_request("A", head="a")
    repo = make(gh)
    first = repo.upsert_sticky_comment(number, "environment", "v1")
    gh.delete_comment(first.id)
    again = repo.upsert_sticky_comment(number, "environment", "v1")
    assert again.action == "created" and again.id != first.id
    assert [c["id"] for c in gh.comments(number)] == [again.id]


@pytest.mark.parametrize("ours_first", [True, False])
def test_sticky_comment_found_among_120_others(gh: FakeGitHub, ours_first: bool):
    number = gh.open_pull_request("A", head="a")
    repo = make(gh)
    if ours_first:
        first = repo.upsert_sticky_comment(number, "environment", "v1")
    for i in range(120):
        # including people quoting the marker (not on the first line): not ours
        gh.add_comment(number, f"comment {i}\n> {marker_tag('environment')}")
    if not ours_first:
        first = repo.upsert_sticky_comment(number, "environment", "v1")

    second = repo.upsert_sticky_comment(number, "environment", "v2")

    assert second.id == first.id and second.action == "updated"
    ours = [c for c in gh.comments(number) if c["body"].startswith("<!-- prefect-stacks:")]
    assert len(ours) == 1 and ours[0]["body"].endswith("\nv2")
    assert len(gh.comments(number)) == 121
    comment_pages = {
        r.query.get("page", "1")
        for r in gh.requests
        if r.path.endswith(f"/issues/{number}/comments") and r.method == "GET"
    }
    assert comment_pages == {"1", "2"}  # both pages read (100 a page)


def test_sticky_comment_whose_answer_is_lost_is_not_posted_twice(gh: FakeGitHub):
    number = gh.open_pull_request("A", head="a")
    gh.drop(method="POST", after_processing=True)  # created, but the answer never comes
    comment = make(gh).upsert_sticky_comment(number, "environment", "hello")
    assert len(gh.comments(number)) == 1
    assert comment.id == gh.comments(number)[0]["id"] and comment.action == "created"
    gh.fail(1, status=502, method="POST")  # not carried out: created on the second try
    other = gh.open_pull_request("B", head="b")
    make(gh).upsert_sticky_comment(other, "environment", "hello")
    assert len(gh.comments(other)) == 1


def test_sticky_comment_body_is_capped(gh: FakeGitHub):
    number = gh.open_pull_request("A", head="a")
    comment = make(gh).upsert_sticky_comment(number, "log", "x" * 100_000)
    stored = gh.comments(number)[0]["body"]
    assert len(stored) == MAX_COMMENT_BODY and stored == comment.body
    assert stored.startswith(marker_tag("log")) and "cut: a GitHub comment holds" in stored
    with pytest.raises(ValueError):
        make(gh).upsert_sticky_comment(number, "bad marker -->", "x")


# --------------------------------------------------------------------------- statuses


def test_commit_status_carries_context_and_target_url(gh: FakeGitHub):
    sha = gh.pull_request(gh.open_pull_request("A", head="a")).head_sha
    repo = make(gh)
    repo.set_commit_status(sha, "pending", "prefect-stacks/environment", "Creating PR_1")
    status = repo.set_commit_status(
        sha,
        "success",
        "prefect-stacks/environment",
        "Ready " + "y" * 300,
        target_url="https://pr-1.preview.example/",
    )
    latest = gh.latest_statuses(sha)["prefect-stacks/environment"]
    assert latest["state"] == "success" == status.state
    assert latest["target_url"] == "https://pr-1.preview.example/"
    assert len(latest["description"]) == 140 and latest["description"].endswith("…")
    assert latest["creator"]["login"] == "prefect-stacks-bot"
    assert status.id == latest["id"] and status.context == "prefect-stacks/environment"
    assert len(gh.statuses(sha)) == 2
    with pytest.raises(ValueError):
        repo.set_commit_status(sha, "done", "ctx", "x")
    with pytest.raises(ValueError):
        repo.set_commit_status("main", "success", "ctx", "x")


def test_releases_newest_first(gh: FakeGitHub):
    gh.add_release("v1.0.0")
    gh.add_release("v1.1.0-rc1", prerelease=True, name="RC")
    gh.add_release("v2.0.0", draft=True)
    releases = make(gh).list_releases()
    assert [r.tag_name for r in releases] == ["v2.0.0", "v1.1.0-rc1", "v1.0.0"]
    assert releases[0].draft and releases[0].published_at is None
    assert releases[1].prerelease and releases[1].name == "RC"
    assert [r.tag_name for r in make(gh, token=READ_ONLY).list_releases(per_page=1)] == [
        "v1.1.0-rc1"
    ]
    assert gh.requests[-1].query == {"per_page": "1"}


# --------------------------------------------------------------------------- hostile input


def test_long_title_and_shell_metacharacters_round_trip(gh: FakeGitHub, tmp_path: Path):
    canary = tmp_path / "pwned"
    title = ("Ünïcødé ✓ `$(whoami)` " * 20)[:300]
    branch = "feat/$(rm -rf ~);x"
    touch = f"feat/$(touch {canary});`touch {canary}`|x"
    a = gh.open_pull_request(title, head=branch, base=touch)
    b = gh.open_pull_request("B", head=touch)
    repo = make(gh)

    prs = {pr.number: pr for pr in repo.list_open_pull_requests()}
    assert prs[a].title == title and len(prs[a].title) == 300
    assert prs[a].head_ref == branch and prs[b].head_ref == touch
    assert [pr.number for pr in repo.list_open_pull_requests(base=touch)] == [a]
    assert repo.get_pull_request(a).head_ref == branch
    repo.set_commit_status(prs[a].head_sha, "success", f"env {branch}", f"branch {branch}")
    assert gh.latest_statuses(prs[a].head_sha)[f"env {branch}"]["description"] == f"branch {branch}"
    repo.upsert_sticky_comment(a, "environment", f"branch `{branch}`")
    assert gh.comments(a)[0]["body"].endswith(f"branch `{branch}`")
    assert not canary.exists()
    assert Path.home().exists()


# --------------------------------------------------------------------------- git credentials


def test_git_credentials_for_prefects_git_clone_and_our_git(gh: FakeGitHub):
    repo = GitHubRepository(owner="acme", repo="shop", token=TOKEN)
    assert repo.get_clone_url() == "https://github.com/acme/shop.git"
    storage = GitRepository(url=repo.get_clone_url(), credentials=repo)
    assert (
        storage._repository_url_with_credentials
        == f"https://x-access-token:{TOKEN}@github.com/acme/shop.git"
    )
    # another host never gets the token; nor do non-https URLs
    assert repo.format_git_credentials("https://gitlab.com/a/b.git") == "https://gitlab.com/a/b.git"
    assert repo.format_git_credentials("/srv/git/shop.git") == "/srv/git/shop.git"
    assert (
        GitHubRepository(owner="acme", repo="shop").format_git_credentials(
            "https://github.com/acme/shop.git"
        )
        == "https://github.com/acme/shop.git"
    )

    ghe = GitHubRepository(
        owner="acme", repo="shop", token=TOKEN, api_url="https://ghe.example/api/v3/"
    )
    assert ghe.api_url == "https://ghe.example/api/v3"
    assert ghe.get_clone_url() == "https://ghe.example/acme/shop.git"
    assert ghe.format_git_credentials("https://ghe.example/acme/shop.git").startswith(
        "https://x-access-token:"
    )
    assert GitHubRepository(owner="a", repo="b", clone_url="/tmp/bare.git").get_clone_url() == (
        "/tmp/bare.git"
    )

    env, secrets = repo.git_auth_env()
    assert env["GIT_CONFIG_KEY_0"] == "http.extraHeader"
    assert env["GIT_CONFIG_VALUE_0"].startswith("Authorization: Basic ")
    assert TOKEN in secrets and all(TOKEN not in value for value in env.values())


# --------------------------------------------------------------------------- secrets


def test_token_never_in_logs_exceptions_or_reprs(gh: FakeGitHub, caplog):
    caplog.set_level(logging.DEBUG)
    gh.open_pull_request("A", head="a")
    repo = make(gh, max_retries=1)
    gh.secondary_limit(retry_after=1)
    gh.fail(1, status=502)
    repo.list_open_pull_requests()
    errors: list[BaseException] = []
    gh.fail(5, status=503)
    for call in (
        lambda: repo.list_open_pull_requests(),
        lambda: make(gh, repo="nope").get_pull_request(1),
        lambda: make(gh, token=READ_ONLY).upsert_sticky_comment(1, "m", "x"),
    ):
        with pytest.raises(GitHubError) as caught:
            call()
        errors.append(caught.value)
    bad = "ghp_bad_token_should_never_show_9d8c"
    with pytest.raises(GitHubError) as caught:
        make(gh, token=bad).list_releases()
    errors.append(caught.value)

    texts = [caplog.text, repr(repo), str(repo), repo.model_dump_json()]
    for error in errors:
        texts += [str(error), repr(error), repr(error.args), str(error.__cause__)]
        assert error.__cause__ is None  # httpx errors (which hold headers) are not chained
    for text in texts:
        assert TOKEN not in text and bad not in text
    assert "waiting 1 s" in caplog.text and "retrying" in caplog.text  # logs were made


# --------------------------------------------------------------------------- in a flow run


def test_waits_are_logged_to_the_flow_run(gh: FakeGitHub, prefect_harness, caplog):
    gh.open_pull_request("A", head="a")
    gh.secondary_limit(retry_after=1)
    caplog.set_level(logging.INFO)

    @flow
    def poll(api_url: str) -> list[int]:
        repo = GitHubRepository(owner="acme", repo="shop", token=TOKEN, api_url=api_url)
        return [pr.number for pr in repo.list_open_pull_requests()]

    assert poll(gh.api_url) == [1]
    waits = [r for r in caplog.records if "secondary rate limit exceeded" in r.getMessage()]
    assert waits and waits[0].name == "prefect.flow_runs" and waits[0].levelno == logging.INFO
    assert TOKEN not in caplog.text
