"""The GitHub contract fake itself: does it answer like GitHub's REST API?

Plain httpx against ``tests.fakes.github.FakeGitHub`` (no prefect-stacks code), so a
block test that passes against the fake passes against GitHub's documented behaviour:
pagination ``Link`` headers, ETag / ``304`` without a rate-limit charge, rate-limit
headers, error bodies, and the failure switches.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fakes.github import FakeGitHub

TOKEN = "ghp_contract_token_0123456789"
READ_ONLY = "ghp_read_only_token_0123456789"
LINK_ITEM = re.compile(r'^<(?P<url>[^>]+)>; rel="(?P<rel>prev|next|last|first)"$')
TERRAFORM_RELEASES = (
    Path(__file__).parents[1] / "data" / "github" / "releases-hashicorp-terraform.json"
)


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with FakeGitHub(
        tokens={TOKEN: "prefect-stacks-bot"},
        read_only_tokens=[READ_ONLY],
        repos=["acme/shop"],
    ) as fake:
        fake.add_repository("acme/secret", private=True, collaborators=["someone-else"])
        yield fake


@pytest.fixture
def client(gh: FakeGitHub) -> Iterator[httpx.Client]:
    headers = {
        "Authorization": f"Bearer {TOKEN}",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
        "User-Agent": "contract-test",
    }
    with httpx.Client(base_url=gh.api_url, headers=headers, timeout=10) as c:
        yield c


def links(response: httpx.Response) -> list[tuple[str, str]]:
    """The Link header as [(rel, url)], checking each item's exact format."""
    header = response.headers.get("link")
    if header is None:
        return []
    items = []
    for item in header.split(", "):
        match = LINK_ITEM.match(item)
        assert match, f"not GitHub's Link format: {item!r}"
        items.append((match["rel"], match["url"]))
    return items


def remaining(response: httpx.Response) -> int:
    return int(response.headers["x-ratelimit-remaining"])


# --------------------------------------------------------------------------- pagination


def test_pull_listing_pages_with_github_link_headers(gh: FakeGitHub, client: httpx.Client):
    numbers = [gh.open_pull_request(f"PR {i}", head=f"feature/{i}") for i in range(65)]
    repo_id = gh._repo("acme/shop").id
    base = f"{gh.api_url}/repositories/{repo_id}/pulls"

    first = client.get("/repos/acme/shop/pulls", params={"state": "open", "per_page": 30})
    assert first.status_code == 200
    assert links(first) == [
        ("next", f"{base}?state=open&per_page=30&page=2"),
        ("last", f"{base}?state=open&per_page=30&page=3"),
    ]
    middle = client.get(links(first)[0][1])  # follow the absolute URL as given
    assert [rel for rel, _ in links(middle)] == ["prev", "next", "last", "first"]
    assert links(middle)[0][1].endswith("page=1") and links(middle)[3][1].endswith("page=1")
    last = client.get(dict(links(middle))["next"])
    assert [rel for rel, _ in links(last)] == ["prev", "first"]

    seen = [pr["number"] for page in (first, middle, last) for pr in page.json()]
    assert seen == sorted(numbers, reverse=True)  # newest first, each once
    assert [len(p.json()) for p in (first, middle, last)] == [30, 30, 5]


def test_listing_defaults_caps_and_single_page(gh: FakeGitHub, client: httpx.Client):
    for i in range(35):
        gh.open_pull_request(f"PR {i}", head=f"f/{i}")
    default = client.get("/repos/acme/shop/pulls")
    assert len(default.json()) == 30  # GitHub's default per_page
    capped = client.get("/repos/acme/shop/pulls", params={"per_page": 500})
    assert len(capped.json()) == 35 and links(capped) == []  # max 100: one page, no Link
    beyond = client.get("/repos/acme/shop/pulls", params={"per_page": 30, "page": 9})
    assert beyond.json() == []


def test_pull_listing_filters_and_fields(gh: FakeGitHub, client: httpx.Client):
    a = gh.open_pull_request("A", head="feat/a", labels=["preview"], draft=True)
    b = gh.open_pull_request("B", head="feat/b", base="release")
    c = gh.open_pull_request("C", head="patch-1", fork="alice/shop", author="alice")
    gh.merge(b)
    gh.close(c)

    open_ = client.get("/repos/acme/shop/pulls").json()
    assert [p["number"] for p in open_] == [a]
    assert open_[0]["draft"] is True and open_[0]["labels"][0]["name"] == "preview"
    assert "merged" not in open_[0]  # only GET /pulls/{n} has it, as on GitHub
    closed = client.get("/repos/acme/shop/pulls", params={"state": "closed"}).json()
    assert {p["number"] for p in closed} == {b, c}
    into_release = client.get("/repos/acme/shop/pulls", params={"state": "all", "base": "release"})
    assert [p["number"] for p in into_release.json()] == [b]

    merged = client.get(f"/repos/acme/shop/pulls/{b}").json()
    assert merged["merged"] is True and merged["state"] == "closed" and merged["merged_at"]
    fork = client.get(f"/repos/acme/shop/pulls/{c}").json()
    assert fork["merged"] is False and fork["head"]["repo"]["full_name"] == "alice/shop"
    assert client.get("/repos/acme/shop/pulls", params={"state": "bogus"}).status_code == 422


# --------------------------------------------------------------------------- ETag / 304


def test_etag_304_costs_no_rate_limit(gh: FakeGitHub, client: httpx.Client):
    number = gh.open_pull_request("A", head="feat/a")
    first = client.get(f"/repos/acme/shop/pulls/{number}")
    etag = first.headers["etag"]
    assert re.fullmatch(r'"[0-9a-f]{32}"', etag)  # strong, quoted
    before = remaining(first)

    again = client.get(f"/repos/acme/shop/pulls/{number}", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    assert remaining(again) == before  # not charged
    assert gh.rate_limit_remaining(TOKEN) == before
    weak = client.get(f"/repos/acme/shop/pulls/{number}", headers={"If-None-Match": f"W/{etag}"})
    assert weak.status_code == 304

    gh.push(number)
    changed = client.get(f"/repos/acme/shop/pulls/{number}", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert remaining(changed) == before - 1
    assert gh.count(f"/repos/acme/shop/pulls/{number}", status=304) == 2


def test_rate_limit_headers_on_every_answer(gh: FakeGitHub, client: httpx.Client):
    answers = [
        client.get("/repos/acme/shop"),
        client.get("/repos/acme/nope"),
        client.get("/repos/acme/shop", headers={"Authorization": "Bearer wrong"}),
        client.get("/rate_limit"),
    ]
    for answer in answers:
        for header in ("limit", "remaining", "used", "reset", "resource"):
            assert f"x-ratelimit-{header}" in answer.headers, (answer.status_code, header)
    assert [a.status_code for a in answers] == [200, 404, 401, 200]
    # 401 answers are on the anonymous bucket, as on GitHub
    assert answers[2].headers["x-ratelimit-limit"] == "60"
    # /rate_limit is not counted
    used = client.get("/rate_limit").json()["resources"]["core"]["used"]
    assert client.get("/rate_limit").json()["resources"]["core"]["used"] == used


# --------------------------------------------------------------------------- errors


def test_error_bodies(gh: FakeGitHub, client: httpx.Client):
    bad = client.get("/repos/acme/shop", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and bad.json()["message"] == "Bad credentials"
    assert bad.json()["documentation_url"].startswith("https://docs.github.com/")
    legacy = client.get("/repos/acme/shop", headers={"Authorization": f"token {TOKEN}"})
    assert legacy.status_code == 200  # the older `token` scheme works too

    missing = client.get("/repos/acme/nope")
    assert missing.status_code == 404 and missing.json()["message"] == "Not Found"
    hidden = client.get("/repos/acme/secret")  # private, token without access: 404, not 403
    assert hidden.status_code == 404 and hidden.json()["message"] == "Not Found"
    assert (
        httpx.get(f"{gh.api_url}/repos/acme/secret", headers={"User-Agent": "x"}).status_code == 404
    )

    sha = gh.pull_request(gh.open_pull_request("A", head="a")).head_sha
    invalid = client.post(f"/repos/acme/shop/statuses/{sha}", json={"state": "bogus"})
    assert invalid.status_code == 422
    assert invalid.json()["message"] == "Validation Failed"
    assert invalid.json()["errors"][0]["field"] == "state"
    too_long = client.post(
        f"/repos/acme/shop/statuses/{sha}", json={"state": "success", "description": "x" * 141}
    )
    assert too_long.status_code == 422 and too_long.json()["errors"][0]["field"] == "description"
    unknown = client.post(f"/repos/acme/shop/statuses/{'0' * 40}", json={"state": "success"})
    assert unknown.status_code == 422 and unknown.json()["message"].startswith("No commit found")

    big = client.post("/repos/acme/shop/issues/1/comments", json={"body": "x" * 65537})
    assert big.status_code == 422 and "too long" in big.json()["errors"][0]["message"]
    empty = client.post("/repos/acme/shop/issues/1/comments", json={"body": " "})
    assert empty.status_code == 422
    ro = client.post(
        f"/repos/acme/shop/statuses/{sha}",
        json={"state": "success"},
        headers={"Authorization": f"Bearer {READ_ONLY}"},
    )
    assert ro.status_code == 403
    assert ro.json()["message"] == "Resource not accessible by personal access token"
    no_agent = client.get("/repos/acme/shop", headers={"User-Agent": ""})
    assert no_agent.status_code == 403 and "User-Agent" in no_agent.json()["message"]
    version = client.get("/repos/acme/shop", headers={"X-GitHub-Api-Version": "1999-01-01"})
    assert version.status_code == 400


def test_primary_rate_limit_exhausted_then_reset(gh: FakeGitHub, client: httpx.Client):
    gh.exhaust_rate_limit(reset_in=1)
    limited = client.get("/repos/acme/shop")
    assert limited.status_code == 403
    assert limited.json()["message"].startswith("API rate limit exceeded for")
    assert remaining(limited) == 0
    reset = int(limited.headers["x-ratelimit-reset"])
    assert time.time() < reset <= time.time() + 2.5
    time.sleep(max(0.0, reset - time.time()) + 0.1)
    after = client.get("/repos/acme/shop")
    assert after.status_code == 200 and remaining(after) == gh.rate_limit - 1


# --------------------------------------------------------------------------- state


def test_comments_statuses_and_releases(gh: FakeGitHub, client: httpx.Client):
    number = gh.open_pull_request("A", head="feat/a")
    sha = gh.pull_request(number).head_sha
    for i in range(3):
        gh.add_comment(number, f"comment {i}")
    created = client.post(f"/repos/acme/shop/issues/{number}/comments", json={"body": "mine"})
    assert created.status_code == 201 and created.json()["user"]["login"] == "prefect-stacks-bot"
    cid = created.json()["id"]
    page = client.get(f"/repos/acme/shop/issues/{number}/comments", params={"per_page": 2})
    assert [c["body"] for c in page.json()] == ["comment 0", "comment 1"]  # oldest first
    assert dict(links(page))["last"].endswith("page=2")
    edited = client.patch(f"/repos/acme/shop/issues/comments/{cid}", json={"body": "edited"})
    assert edited.status_code == 200 and gh.comments(number)[-1]["body"] == "edited"
    assert client.get(f"/repos/acme/shop/issues/{number + 99}/comments").status_code == 404

    for state, context in [("pending", "ci"), ("success", "ci"), ("failure", "env")]:
        answer = client.post(
            f"/repos/acme/shop/statuses/{sha}",
            json={"state": state, "context": context, "target_url": "https://x.test/1"},
        )
        assert answer.status_code == 201
    combined = client.get(f"/repos/acme/shop/commits/{sha}/status").json()
    assert combined["state"] == "failure"
    assert {s["context"]: s["state"] for s in combined["statuses"]} == {
        "ci": "success",
        "env": "failure",
    }
    by_branch = client.get("/repos/acme/shop/commits/feat/a/status").json()
    assert by_branch["sha"] == sha
    assert len(gh.statuses(sha)) == 3 and gh.latest_statuses(sha)["ci"]["state"] == "success"

    gh.add_release("v1.0.0")
    gh.add_release("v1.1.0-rc1", prerelease=True)
    gh.add_release("v2.0.0", draft=True)
    tags = [r["tag_name"] for r in client.get("/repos/acme/shop/releases").json()]
    assert tags == ["v2.0.0", "v1.1.0-rc1", "v1.0.0"]
    ro = client.get("/repos/acme/shop/releases", headers={"Authorization": f"Bearer {READ_ONLY}"})
    assert [r["tag_name"] for r in ro.json()] == ["v1.1.0-rc1", "v1.0.0"]  # no push access


def test_pull_request_lifecycle_controls(gh: FakeGitHub, client: httpx.Client):
    number = gh.open_pull_request("A", head="feat/a")
    old = gh.pull_request(number).head_sha
    new = gh.push(number)
    assert new != old
    assert client.get(f"/repos/acme/shop/pulls/{number}").json()["head"]["sha"] == new
    gh.close(number)
    assert client.get(f"/repos/acme/shop/pulls/{number}").json()["state"] == "closed"
    gh.reopen(number)
    assert client.get(f"/repos/acme/shop/pulls/{number}").json()["state"] == "open"
    gh.merge(number)
    assert client.get(f"/repos/acme/shop/pulls/{number}").json()["merged"] is True
    with pytest.raises(ValueError):
        gh.reopen(number)


# --------------------------------------------------------------------------- tags


def test_tags_listing_shape_pagination_and_304(gh: FakeGitHub, client: httpx.Client):
    fixed = gh.add_tag("v0.1.0", "a" * 40)
    assert fixed == "a" * 40
    made_up = [gh.add_tag(f"v1.{i}.0") for i in range(4)]
    assert len(set(made_up)) == 4 and all(re.fullmatch(r"[0-9a-f]{40}", s) for s in made_up)
    repo_id = gh._repo("acme/shop").id
    base = f"{gh.api_url}/repositories/{repo_id}/tags"

    first = client.get("/repos/acme/shop/tags", params={"per_page": 2})
    assert first.status_code == 200
    assert [t["name"] for t in first.json()] == ["v1.3.0", "v1.2.0"]  # newest first
    tag = first.json()[0]
    assert set(tag) == {"name", "commit", "zipball_url", "tarball_url", "node_id"}
    api = f"{gh.api_url}/repos/acme/shop"
    assert tag["commit"] == {"sha": made_up[3], "url": f"{api}/commits/{made_up[3]}"}
    assert tag["zipball_url"] == f"{api}/zipball/refs/tags/v1.3.0"
    assert tag["tarball_url"] == f"{api}/tarball/refs/tags/v1.3.0"
    assert tag["node_id"] and tag["node_id"] != first.json()[1]["node_id"]
    assert links(first) == [
        ("next", f"{base}?per_page=2&page=2"),
        ("last", f"{base}?per_page=2&page=3"),
    ]
    last = client.get(dict(links(first))["last"])
    assert [t["name"] for t in last.json()] == ["v0.1.0"]
    assert last.json()[0]["commit"]["sha"] == "a" * 40
    assert [rel for rel, _ in links(last)] == ["prev", "first"]
    assert len(client.get("/repos/acme/shop/tags").json()) == 5  # default: one page, no Link
    assert links(client.get("/repos/acme/shop/tags")) == []

    etag = first.headers["etag"]
    before = remaining(client.get("/rate_limit"))
    again = client.get(
        "/repos/acme/shop/tags", params={"per_page": 2}, headers={"If-None-Match": etag}
    )
    assert again.status_code == 304 and again.content == b""
    assert remaining(again) == before and gh.rate_limit_remaining(TOKEN) == before
    gh.add_tag("v2.0.0")
    changed = client.get(
        "/repos/acme/shop/tags", params={"per_page": 2}, headers={"If-None-Match": etag}
    )
    assert changed.status_code == 200 and changed.json()[0]["name"] == "v2.0.0"
    assert remaining(changed) == before - 1
    assert client.get("/repos/acme/nope/tags").status_code == 404


# --------------------------------------------------------------------------- renamed / deleted


def test_renamed_repository_answers_301_to_its_id(gh: FakeGitHub, client: httpx.Client):
    gh.add_tag("v1.0.0")
    gh.add_tag("v1.1.0")
    repo_id = gh._repo("acme/shop").id
    gh.rename_repository("acme/shop", "acme/storefront")

    before = gh.rate_limit_remaining(TOKEN)
    moved = client.get("/repos/acme/shop/tags", params={"per_page": 1, "page": 2})
    location = f"{gh.api_url}/repositories/{repo_id}/tags?per_page=1&page=2"
    assert moved.status_code == 301
    assert moved.headers["location"] == location
    assert moved.json() == {
        "message": "Moved Permanently",
        "url": location,
        "documentation_url": "https://docs.github.com/v3/#http-redirects",
    }
    assert "etag" not in moved.headers
    assert remaining(moved) == before - 1  # a 301 counts, as on GitHub
    assert client.get("/repos/ACME/Shop").headers["location"] == (
        f"{gh.api_url}/repositories/{repo_id}"
    )

    followed = client.get(moved.headers["location"])
    assert followed.status_code == 200 and [t["name"] for t in followed.json()] == ["v1.0.0"]
    auto = client.get("/repos/acme/shop/tags", follow_redirects=True)
    assert [t["name"] for t in auto.json()] == ["v1.1.0", "v1.0.0"]
    assert auto.history[0].status_code == 301

    by_id = client.get(f"/repositories/{repo_id}")
    assert by_id.status_code == 200
    assert by_id.json()["full_name"] == "acme/storefront" and by_id.json()["id"] == repo_id
    new = client.get("/repos/acme/storefront/tags")
    assert new.status_code == 200 and len(new.json()) == 2
    assert new.json()[0]["zipball_url"].startswith(f"{gh.api_url}/repos/acme/storefront/")

    # writes answer 307 (GitHub's answer, so that clients repeat the method and body)
    number = gh.open_pull_request("A", head="feat/a", repo="acme/storefront")
    write = client.post(f"/repos/acme/shop/issues/{number}/comments", json={"body": "hi"})
    assert write.status_code == 307
    assert write.headers["location"] == (
        f"{gh.api_url}/repositories/{repo_id}/issues/{number}/comments"
    )
    assert write.json()["message"] == "Moved Permanently"
    assert gh.comments(number, repo="acme/storefront") == []  # not carried out
    posted = client.post(write.headers["location"], json={"body": "hi"})
    assert posted.status_code == 201

    # the helpers take the new name; the old one is gone
    gh.add_tag("v1.2.0", repo="acme/storefront")
    gh.add_release("v1.2.0", repo="acme/storefront")
    assert client.get("/repos/acme/storefront/releases").json()[0]["tag_name"] == "v1.2.0"
    with pytest.raises(KeyError):
        gh.add_tag("v9", repo="acme/shop")
    assert gh.count(prefix="/repos/acme/shop/", status=301) == 2


def test_renamed_private_repository_stays_hidden(gh: FakeGitHub, client: httpx.Client):
    gh.rename_repository("acme/secret", "acme/hidden")
    assert client.get("/repos/acme/secret").status_code == 404  # no access: no redirect


def test_deleted_repository_answers_404(gh: FakeGitHub, client: httpx.Client):
    gh.add_tag("v1.0.0")
    repo_id = gh._repo("acme/shop").id
    gh.rename_repository("acme/shop", "acme/storefront")
    gh.delete_repository("acme/storefront")
    for path in (
        "/repos/acme/storefront",
        "/repos/acme/storefront/tags",
        "/repos/acme/shop/tags",  # the old name no longer redirects
        f"/repositories/{repo_id}",
        f"/repositories/{repo_id}/releases",
    ):
        gone = client.get(path)
        assert gone.status_code == 404, path
        assert gone.json()["message"] == "Not Found" and gone.json()["status"] == "404"
        assert gone.json()["documentation_url"].startswith("https://docs.github.com/")
    with pytest.raises(KeyError):
        gh.add_tag("v2", repo="acme/storefront")


# --------------------------------------------------------------------------- recorded releases


def test_load_releases_serves_the_recorded_terraform_releases(gh: FakeGitHub, client: httpx.Client):
    recorded = json.loads(TERRAFORM_RELEASES.read_text(encoding="utf-8"))
    assert len(recorded) == 8
    assert all(
        r["url"].startswith("https://api.github.com/repos/hashicorp/terraform/") for r in recorded
    )
    gh.add_repository("hashicorp/terraform")
    ids = gh.load_releases(TERRAFORM_RELEASES, repo="hashicorp/terraform")
    assert len(ids) == 8 and ids == sorted(ids, reverse=True)

    listing = client.get("/repos/hashicorp/terraform/releases").json()
    assert [r["tag_name"] for r in listing] == [r["tag_name"] for r in recorded]
    assert listing[0]["tag_name"] == "v1.9.0"  # newest first
    assert [r["prerelease"] for r in listing] == [r["prerelease"] for r in recorded]
    assert {r["tag_name"] for r in listing if r["prerelease"]} == {
        "v1.9.0-rc1",
        "v1.10.0-alpha20240606",
    }
    for served, original in zip(listing, recorded, strict=True):
        for key in (
            "name",
            "body",
            "draft",
            "created_at",
            "published_at",
            "target_commitish",
        ):
            assert served[key] == original[key], key
        assert served["author"]["login"] == original["author"]["login"]
        assert set(original) <= set(served)  # the same shape
        api = f"{gh.api_url}/repos/hashicorp/terraform"
        assert served["url"] == f"{api}/releases/{served['id']}"  # rewritten to the fake
        assert served["tarball_url"] == f"{api}/tarball/{original['tag_name']}"
    assert listing[0]["body"].startswith("## 1.9.0 (June 26, 2024)")

    page = client.get("/repos/hashicorp/terraform/releases", params={"per_page": 3})
    assert [r["tag_name"] for r in page.json()] == [r["tag_name"] for r in recorded[:3]]
    assert dict(links(page))["last"].endswith("per_page=3&page=3")
    assert client.get("/repos/acme/shop/releases").json() == []  # only into that repository


# --------------------------------------------------------------------------- switches


def test_fail_and_secondary_limit_switches_respect_path_prefix(
    gh: FakeGitHub, client: httpx.Client
):
    gh.open_pull_request("A", head="a")
    gh.fail(2, status=502, path_prefix="/repos/acme/shop/pulls")
    assert client.get("/repos/acme/shop").status_code == 200  # other path: untouched
    assert client.get("/repos/acme/shop/pulls").status_code == 502
    assert client.get("/repos/acme/shop/pulls/1").status_code == 502
    assert client.get("/repos/acme/shop/pulls").status_code == 200  # the 2 are used up

    before = gh.rate_limit_remaining(TOKEN)
    gh.secondary_limit(retry_after=7)
    limited = client.get("/repos/acme/shop/pulls")
    assert limited.status_code == 403
    assert limited.headers["retry-after"] == "7"
    assert "secondary rate limit" in limited.json()["message"]
    assert remaining(limited) > 0  # not the primary limit
    assert gh.rate_limit_remaining(TOKEN) == before
    gh.secondary_limit(retry_after=None, status=429)
    bare = client.get("/repos/acme/shop")
    assert bare.status_code == 429 and "retry-after" not in bare.headers
    assert gh.counts_by_status()[502] == 2


def test_drop_closes_the_connection(gh: FakeGitHub, client: httpx.Client):
    number = gh.open_pull_request("A", head="a")
    gh.drop()
    with pytest.raises(httpx.RemoteProtocolError):
        client.get("/repos/acme/shop")
    gh.drop(method="POST")
    with pytest.raises(httpx.RemoteProtocolError):
        client.post(f"/repos/acme/shop/issues/{number}/comments", json={"body": "lost"})
    assert gh.comments(number) == []  # dropped before it was carried out
    gh.drop(method="POST", after_processing=True)
    with pytest.raises(httpx.RemoteProtocolError):
        client.post(f"/repos/acme/shop/issues/{number}/comments", json={"body": "kept"})
    assert [c["body"] for c in gh.comments(number)] == ["kept"]  # done, answer lost
    assert gh.count(status=None) == 3


def test_empty_listing_with_error(gh: FakeGitHub, client: httpx.Client):
    for i in range(3):
        gh.open_pull_request(f"PR {i}", head=f"f/{i}")
    gh.empty_listing_with_error(status=502, error_count=2)
    first = client.get("/repos/acme/shop/pulls", params={"per_page": 100})
    assert first.status_code == 200 and first.json() == []
    next_url = dict(links(first))["next"]
    assert client.get(next_url).status_code == 502
    assert client.get(next_url).status_code == 502
    # switches used up: the real listing again
    assert len(client.get("/repos/acme/shop/pulls", params={"per_page": 100}).json()) == 3


def test_request_log_counts_and_hides_tokens(gh: FakeGitHub, client: httpx.Client):
    gh.open_pull_request("A", head="a")
    etag = client.get("/repos/acme/shop/pulls").headers["etag"]
    client.get("/repos/acme/shop/pulls", headers={"If-None-Match": etag})
    client.get("/repos/acme/shop/pulls/1")
    assert gh.counts_by_path()["GET /repos/acme/shop/pulls"] == 2
    assert gh.counts_by_status() == {200: 2, 304: 1}
    assert gh.count(prefix="/repos/acme/shop/pulls", status=304) == 1
    assert all(r.login == "prefect-stacks-bot" for r in gh.requests)
    assert TOKEN not in repr(gh.requests)
    assert gh.requests[1].conditional and not gh.requests[0].conditional


def test_cli_serves_other_processes(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.github", "--token", TOKEN, "--pulls", "2"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline().strip() if proc.stdout else ""
        assert line.startswith("api_url=http://127.0.0.1:"), line
        api_url = line.split("=", 1)[1]
        answer = httpx.get(
            f"{api_url}/repos/acme/shop/pulls",
            headers={"Authorization": f"Bearer {TOKEN}", "User-Agent": "other-process"},
        )
        assert [p["number"] for p in answer.json()] == [2, 1]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
