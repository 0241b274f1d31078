"""The organizations, members and teams of the GitHub contract fake
(``tests.fakes.github_orgs.FakeGitHubOrgs``): do they answer like GitHub's REST API
(https://docs.github.com/en/rest/teams/teams, /teams/members, /orgs/members) and the
GraphQL query the Terraform provider sends? Plain httpx, no prefect-stacks code."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from tests.fakes.github_orgs import FakeGitHubOrgs, slugify

OWNER = "ghp_owner_token_0123456789"
MEMBER = "ghp_member_token_0123456789"
OUTSIDER = "ghp_outsider_token_0123456789"
READ_ONLY = "ghp_read_only_token_0123456789"
LINK_ITEM = re.compile(r'^<(?P<url>[^>]+)>; rel="(?P<rel>prev|next|last|first)"$')
PROVIDER_QUERY = (
    "query($login:String!$slug:String!){organization(login:$login)"
    "{team(slug:$slug){members{nodes{login}}}}}"
)


@pytest.fixture
def gh() -> Iterator[FakeGitHubOrgs]:
    with FakeGitHubOrgs(
        tokens={OWNER: "octo-owner", MEMBER: "mona", OUTSIDER: "stranger"},
        read_only_tokens=[READ_ONLY],
        orgs=["acme"],
        owners=["octo-owner"],
        users=["alice", "bob", "Carol"],
    ) as fake:
        fake.set_org_membership("mona", "member")
        yield fake


def connect(gh: FakeGitHubOrgs, token: str | None = OWNER, prefix: str = "") -> httpx.Client:
    headers = {
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
        "User-Agent": "contract-test",
    }
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.Client(base_url=gh.base_url + prefix, headers=headers, timeout=10)


@pytest.fixture
def client(gh: FakeGitHubOrgs) -> Iterator[httpx.Client]:
    with connect(gh) as c:
        yield c


def links(response: httpx.Response) -> dict[str, str]:
    header = response.headers.get("link")
    if header is None:
        return {}
    out = {}
    for item in header.split(", "):
        match = LINK_ITEM.match(item)
        assert match, f"not GitHub's Link format: {item!r}"
        out[match["rel"]] = match["url"]
    return out


def assert_error(response: httpx.Response, status: int, message: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) >= {"message", "documentation_url", "status"}
    assert body["status"] == str(status)
    if message is not None:
        assert body["message"] == message
    return body


def create_team(client: httpx.Client, name: str, **fields) -> dict:
    response = client.post("/orgs/acme/teams", json={"name": name, **fields})
    assert response.status_code == 201, response.text
    return response.json()


# --------------------------------------------------------------------------- users, orgs


def test_api_is_served_at_the_root_and_under_api_v3(gh: FakeGitHubOrgs, client: httpx.Client):
    root = client.get("/orgs/acme")
    with connect(gh, prefix="/api/v3") as enterprise:
        v3 = enterprise.get("/orgs/acme")
        repo = enterprise.get("/repos/acme/shop")
    assert root.status_code == v3.status_code == 200
    assert root.json()["id"] == v3.json()["id"]
    assert root.json()["url"] == f"{gh.base_url}/orgs/acme"
    assert v3.json()["url"] == f"{gh.base_url}/api/v3/orgs/acme"  # URLs as asked
    assert v3.json()["html_url"] == f"{gh.base_url}/acme"
    assert repo.status_code == 200 and repo.json()["full_name"] == "acme/shop"
    logged = gh.requests[-2]
    assert (logged.path, logged.raw_path) == ("/orgs/acme", "/api/v3/orgs/acme")
    assert gh.counts_by_path()["GET /orgs/acme"] == 2


def test_organization_shape_by_login_and_by_id(gh: FakeGitHubOrgs, client: httpx.Client):
    org = client.get("/orgs/ACME").json()
    assert org["login"] == "acme" and org["type"] == "Organization"
    assert org["node_id"] == f"O_{org['id']}"
    assert org["members_url"] == f"{gh.base_url}/orgs/acme/members{{/member}}"
    assert client.get(f"/organizations/{org['id']}").json() == org
    assert_error(client.get("/orgs/nope"), 404, "Not Found")
    assert_error(client.get("/organizations/999999"), 404, "Not Found")
    with connect(gh, token=None) as anonymous:
        assert anonymous.get("/orgs/acme").status_code == 200  # organizations are public


def test_user_and_users(gh: FakeGitHubOrgs, client: httpx.Client):
    me = client.get("/user")
    assert me.status_code == 200 and me.json()["login"] == "octo-owner"
    assert me.json()["type"] == "User"
    with connect(gh, token=None) as anonymous:
        assert_error(anonymous.get("/user"), 401, "Requires authentication")
    carol = client.get("/users/carol")  # logins are case-insensitive, spelt as signed up
    assert carol.status_code == 200 and carol.json()["login"] == "Carol"
    assert client.get("/users/acme").json()["type"] == "Organization"
    assert_error(client.get("/users/nobody-here"), 404, "Not Found")


# --------------------------------------------------------------------------- teams


def test_create_team_shape_and_the_creator_becomes_maintainer(
    gh: FakeGitHubOrgs, client: httpx.Client
):
    response = client.post(
        "/orgs/acme/teams", json={"name": "Platform Team", "description": "Runs it"}
    )
    assert response.status_code == 201
    team = response.json()
    org_id = gh.org().id
    url = f"{gh.base_url}/organizations/{org_id}/team/{team['id']}"
    assert response.headers["location"] == url
    assert team["slug"] == "platform-team" and team["name"] == "Platform Team"
    assert team["privacy"] == "secret"  # GitHub's default for a team without a parent
    assert team["permission"] == "pull" and team["parent"] is None
    assert team["node_id"] == f"T_{team['id']}"
    assert team["url"] == url
    assert team["members_url"] == f"{url}/members{{/member}}"
    assert team["repositories_url"] == f"{url}/repos"
    assert team["html_url"] == f"{gh.base_url}/orgs/acme/teams/platform-team"
    assert team["members_count"] == 1 and team["organization"]["login"] == "acme"
    assert gh.team_members("platform-team") == {"octo-owner": "maintainer"}
    assert gh.teams() == ["platform-team"]


def test_create_team_validation(gh: FakeGitHubOrgs, client: httpx.Client):
    create_team(client, "platform", privacy="closed")

    def errors(body: dict) -> list[dict]:
        response = client.post("/orgs/acme/teams", json=body)
        return assert_error(response, 422, "Validation Failed")["errors"]

    assert errors({})[0] == {"resource": "Team", "code": "missing_field", "field": "name"}
    taken = errors({"name": "PLATFORM"})[0]
    assert taken["field"] == "name" and taken["message"] == "Name must be unique for this org"
    assert errors({"name": "x", "privacy": "public"})[0]["field"] == "privacy"
    assert errors({"name": "x", "parent_team_id": 424242})[0]["field"] == "parent_team_id"
    parent = gh.team("platform").id
    secret_child = errors({"name": "x", "parent_team_id": parent, "privacy": "secret"})
    assert secret_child[0]["field"] == "privacy"
    assert errors({"name": "x", "maintainers": ["nobody-here"]})[0]["field"] == "maintainers"
    child = create_team(client, "infra", parent_team_id=parent)
    assert child["privacy"] == "closed"  # GitHub's default for a nested team
    assert child["parent"]["slug"] == "platform"
    assert_error(client.post("/orgs/acme/teams", content=b"{"), 400, "Problems parsing JSON")
    assert_error(client.post("/orgs/nope/teams", json={"name": "x"}), 404)


def test_team_by_slug_and_by_id_update_and_delete(gh: FakeGitHubOrgs, client: httpx.Client):
    team = create_team(client, "platform", privacy="closed")
    org_id = gh.org().id
    by_id = f"/organizations/{org_id}/team/{team['id']}"
    assert client.get("/orgs/acme/teams/platform").json() == client.get(by_id).json()
    assert_error(client.get("/orgs/acme/teams/nope"), 404, "Not Found")
    assert_error(client.get(f"/organizations/{org_id}/team/999999"), 404, "Not Found")

    renamed = client.patch(by_id, json={"name": "Platform Ops", "description": "d"})
    assert renamed.status_code == 200
    assert renamed.json()["slug"] == "platform-ops" and renamed.json()["description"] == "d"
    assert client.get("/orgs/acme/teams/platform").status_code == 404
    child = create_team(client, "child", parent_team_id=team["id"])
    listed = client.get("/orgs/acme/teams").json()
    assert [t["slug"] for t in listed] == ["platform-ops", "child"]
    assert [t["id"] for t in client.get(f"{by_id}/teams").json()] == [child["id"]]

    assert client.delete("/orgs/acme/teams/platform-ops").status_code == 204
    assert client.get(by_id).status_code == 404
    assert gh.teams() == []  # the child team went with its parent


def test_secret_teams_are_hidden_from_other_members(gh: FakeGitHubOrgs, client: httpx.Client):
    gh.add_team("hidden", privacy="secret", members={"alice": "member"})
    gh.add_team("open", privacy="closed")
    with connect(gh, token=MEMBER) as mona, connect(gh, token=OUTSIDER) as stranger:
        assert_error(mona.get("/orgs/acme/teams/hidden"), 404, "Not Found")
        assert mona.get("/orgs/acme/teams/open").status_code == 200
        assert [t["slug"] for t in mona.get("/orgs/acme/teams").json()] == ["open"]
        assert_error(stranger.get("/orgs/acme/teams/open"), 404)
        assert_error(stranger.get("/orgs/acme/teams"), 403)
        created = mona.post("/orgs/acme/teams", json={"name": "monas"})
        assert created.status_code == 201  # members may create teams
        assert_error(mona.patch("/orgs/acme/teams/open", json={"description": "x"}), 403)
    assert [t["slug"] for t in client.get("/orgs/acme/teams").json()] == [
        "hidden",
        "open",
        "monas",
    ]


# --------------------------------------------------------------------------- team members


def test_team_membership_put_get_delete(gh: FakeGitHubOrgs, client: httpx.Client):
    team = create_team(client, "platform", privacy="closed")
    path = "/orgs/acme/teams/platform/memberships"
    org_id = gh.org().id
    put = client.put(f"{path}/alice", json={"role": "maintainer"})
    assert put.status_code == 200
    assert put.json() == {
        "url": f"{gh.base_url}/organizations/{org_id}/team/{team['id']}/memberships/alice",
        "role": "maintainer",
        "state": "active",
    }
    by_id = f"/organizations/{org_id}/team/{team['id']}/memberships"
    assert client.get(f"{by_id}/ALICE").json()["role"] == "maintainer"
    assert client.put(f"{by_id}/alice", json={"role": "member"}).json()["role"] == "member"
    assert client.put(f"{path}/bob", json={}).json()["role"] == "member"  # the default
    assert gh.team_members("platform") == {
        "octo-owner": "maintainer",
        "alice": "member",
        "bob": "member",
    }
    assert gh.org_members()["bob"] == "member"  # added directly (invitations=False)

    assert_error(client.put(f"{path}/alice", json={"role": "owner"}), 422, "Validation Failed")
    assert_error(client.put(f"{path}/nobody-here", json={"role": "member"}), 404)
    assert_error(client.get(f"{path}/Carol"), 404, "Not Found")  # a user, not in the team
    assert_error(client.get(f"{path}/nobody-here"), 404)
    assert_error(client.put("/orgs/acme/teams/nope/memberships/alice", json={}), 404)

    assert client.delete(f"{path}/alice").status_code == 204
    assert client.delete(f"{path}/alice").status_code == 204  # as GitHub: not a 404
    assert client.get(f"{path}/alice").status_code == 404
    assert "alice" not in gh.team_members("platform")


def test_team_membership_permissions(gh: FakeGitHubOrgs, client: httpx.Client):
    gh.add_team("platform", privacy="closed", members={"mona": "member"})
    path = "/orgs/acme/teams/platform/memberships/alice"
    with connect(gh, token=MEMBER) as mona:
        body = assert_error(mona.put(path, json={"role": "member"}), 403)
        assert "organization owner or team maintainer" in body["message"]
        refused = assert_error(mona.delete(path), 403)
        assert refused["message"] == (
            "You must be an organization owner or team maintainer to remove a team membership."
        )
    gh.set_team_membership("platform", "mona", "maintainer")
    with connect(gh, token=MEMBER) as mona:
        assert_error(mona.put(path, json={}), 403)  # alice is outside the organization
        gh.set_org_membership("alice")
        assert mona.put(path, json={}).status_code == 200  # a maintainer manages the team
    with connect(gh, token=None) as anonymous:
        assert_error(anonymous.put(path, json={}), 401, "Requires authentication")
        assert_error(anonymous.get(path), 401)
    with connect(gh, token=READ_ONLY) as read_only:
        assert_error(
            read_only.put(path, json={}), 403, "Resource not accessible by personal access token"
        )


def test_team_members_listing_pages_and_filters(gh: FakeGitHubOrgs, client: httpx.Client):
    team = create_team(client, "platform", privacy="closed")
    for i in range(6):
        gh.set_team_membership("platform", f"user{i}", "maintainer" if i % 2 else "member")
    org_id = gh.org().id
    base = f"{gh.base_url}/organizations/{org_id}/team/{team['id']}/members"

    first = client.get("/orgs/acme/teams/platform/members", params={"per_page": 3})
    assert first.status_code == 200
    assert [u["login"] for u in first.json()] == ["octo-owner", "user0", "user1"]
    assert links(first) == {
        "next": f"{base}?per_page=3&page=2",
        "last": f"{base}?per_page=3&page=3",
    }
    last = client.get(links(first)["last"])
    assert [u["login"] for u in last.json()] == ["user5"]
    assert links(last) == {
        "prev": f"{base}?per_page=3&page=2",
        "first": f"{base}?per_page=3&page=1",
    }
    assert set(first.json()[0]) >= {"login", "id", "node_id", "url", "html_url", "type"}

    maintainers = client.get("/orgs/acme/teams/platform/members", params={"role": "maintainer"})
    assert [u["login"] for u in maintainers.json()] == ["octo-owner", "user1", "user3", "user5"]
    assert "link" not in maintainers.headers
    assert_error(client.get(f"{base}", params={"role": "owner"}), 422)
    assert client.get("/orgs/acme/teams/platform").json()["members_count"] == 7


def test_a_change_by_hand_changes_the_etag(gh: FakeGitHubOrgs, client: httpx.Client):
    gh.add_team("platform", privacy="closed", members={"alice": "member"})
    path = "/orgs/acme/teams/platform/memberships/alice"
    first = client.get(path)
    etag = first.headers["etag"]
    assert client.get(path, headers={"If-None-Match": etag}).status_code == 304
    gh.set_team_membership("platform", "alice", "maintainer")
    changed = client.get(path, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.json()["role"] == "maintainer"


# --------------------------------------------------------------------------- org members


def test_org_membership_put_get_delete(gh: FakeGitHubOrgs, client: httpx.Client):
    path = "/orgs/acme/memberships"
    put = client.put(f"{path}/alice", json={"role": "member"})
    assert put.status_code == 200
    body = put.json()
    assert set(body) == {"url", "state", "role", "organization_url", "organization", "user"}
    assert body["url"] == f"{gh.base_url}/orgs/acme/memberships/alice"
    assert (body["state"], body["role"]) == ("active", "member")
    assert body["organization"]["login"] == "acme" and body["user"]["login"] == "alice"
    assert client.put(f"{path}/alice", json={"role": "admin"}).json()["role"] == "admin"
    assert client.get(f"{path}/Alice").json()["role"] == "admin"
    assert gh.org_members() == {"octo-owner": "admin", "mona": "member", "alice": "admin"}

    assert_error(client.put(f"{path}/alice", json={"role": "owner"}), 422, "Validation Failed")
    assert_error(client.put(f"{path}/nobody-here", json={"role": "member"}), 404, "Not Found")
    assert_error(client.get(f"{path}/bob"), 404)  # a user, not a member
    with connect(gh, token=MEMBER) as mona, connect(gh, token=OUTSIDER) as stranger:
        assert mona.get(f"{path}/alice").status_code == 200
        assert_error(mona.put(f"{path}/bob", json={}), 403)  # owners only
        refused = assert_error(stranger.get(f"{path}/alice"), 403)
        assert refused["message"] == (
            "You must be a member of acme to see membership information for alice."
        )

    gh.add_team("platform", privacy="closed", members={"alice": "maintainer"})
    assert client.delete(f"{path}/alice").status_code == 204
    assert "alice" not in gh.org_members()
    assert gh.team_members("platform") == {}  # leaving the organization leaves its teams
    assert_error(client.delete(f"{path}/alice"), 404)


def test_org_members_listing_and_checks(gh: FakeGitHubOrgs, client: httpx.Client):
    for login in ("alice", "bob"):
        gh.set_org_membership(login)
    listed = client.get("/orgs/acme/members", params={"per_page": 2})
    assert [u["login"] for u in listed.json()] == ["octo-owner", "mona"]
    assert links(listed)["next"].endswith(f"/organizations/{gh.org().id}/members?per_page=2&page=2")
    admins = client.get("/orgs/acme/members", params={"role": "admin"}).json()
    assert [u["login"] for u in admins] == ["octo-owner"]
    assert_error(client.get("/orgs/acme/members", params={"role": "boss"}), 422)
    assert client.get("/orgs/acme/members/bob").status_code == 204
    assert client.get("/orgs/acme/members/Carol").status_code == 404
    assert client.delete("/orgs/acme/members/bob").status_code == 204
    assert client.get("/orgs/acme/members/bob").status_code == 404
    with connect(gh, token=OUTSIDER) as stranger:
        assert stranger.get("/orgs/acme/members").json() == []  # no public members


def test_invitations_stay_pending_until_accepted():
    with FakeGitHubOrgs(tokens={OWNER: "octo-owner"}, users=["alice"], invitations=True) as gh:
        gh.add_team("platform", privacy="closed")
        with connect(gh) as client:
            team = client.put(
                "/orgs/acme/teams/platform/memberships/alice", json={"role": "maintainer"}
            )
            assert team.json()["state"] == "pending"
            org = client.get("/orgs/acme/memberships/alice").json()
            assert (org["state"], org["role"]) == ("pending", "member")
            assert client.get("/orgs/acme/teams/platform/members").json() == []
            assert gh.team_members("platform", pending=True) == {"alice": "maintainer"}
            assert gh.org_members(pending=True) == {"alice": "member"}
            gh.accept_invitation("alice")
            assert client.get("/orgs/acme/memberships/alice").json()["state"] == "active"
            membership = client.get("/orgs/acme/teams/platform/memberships/alice").json()
            assert (membership["state"], membership["role"]) == ("active", "maintainer")
            assert gh.team_members("platform") == {"alice": "maintainer"}


# --------------------------------------------------------------------------- GraphQL


def test_graphql_answers_the_providers_team_members_query(gh: FakeGitHubOrgs, client: httpx.Client):
    create_team(client, "platform", privacy="closed")
    variables = {"login": "acme", "slug": "platform"}
    for path in ("/graphql", "/api/graphql"):
        answer = client.post(path, json={"query": PROVIDER_QUERY, "variables": variables})
        assert answer.status_code == 200
        assert answer.json() == {
            "data": {"organization": {"team": {"members": {"nodes": [{"login": "octo-owner"}]}}}}
        }
    missing = client.post(
        "/graphql", json={"query": PROVIDER_QUERY, "variables": {**variables, "slug": "nope"}}
    )
    assert missing.json() == {"data": {"organization": {"team": None}}}
    unknown = client.post(
        "/graphql", json={"query": PROVIDER_QUERY, "variables": {**variables, "login": "nope"}}
    )
    assert unknown.json()["data"] == {"organization": None}
    assert unknown.json()["errors"][0]["type"] == "NOT_FOUND"
    with connect(gh, token=None) as anonymous:
        assert_error(anonymous.post("/graphql", json={"query": PROVIDER_QUERY}), 401)


def test_graphql_connection_pages_edges_and_errors(gh: FakeGitHubOrgs, client: httpx.Client):
    gh.add_team(
        "platform",
        privacy="closed",
        members={"alice": "maintainer", "bob": "member", "Carol": "member"},
    )
    query = """
      query Members($after: String) {
        viewer { login }
        organization(login: "acme") {
          team(slug: "platform") {
            slug
            members(first: 2, after: $after) {
              totalCount
              pageInfo { hasNextPage endCursor }
              edges { role node { login } }
            }
          }
        }
      }
    """
    first = client.post("/graphql", json={"query": query}).json()["data"]
    assert first["viewer"] == {"login": "octo-owner"}
    members = first["organization"]["team"]["members"]
    assert members["totalCount"] == 3 and members["pageInfo"]["hasNextPage"] is True
    assert members["edges"] == [
        {"role": "MAINTAINER", "node": {"login": "alice"}},
        {"role": "MEMBER", "node": {"login": "bob"}},
    ]
    after = {"after": members["pageInfo"]["endCursor"]}
    second = client.post("/graphql", json={"query": query, "variables": after}).json()["data"]
    rest = second["organization"]["team"]["members"]
    assert [e["node"]["login"] for e in rest["edges"]] == ["Carol"]
    assert rest["pageInfo"]["hasNextPage"] is False

    bad = client.post("/graphql", json={"query": '{ organization(login: "acme") { nope } }'})
    assert bad.status_code == 200 and "data" not in bad.json()
    assert bad.json()["errors"][0]["message"] == "Field 'nope' doesn't exist on type 'Organization'"
    broken = client.post("/graphql", json={"query": "{ organization("})
    assert broken.json()["errors"][0]["message"].startswith("Parse error")


# --------------------------------------------------------------------------- controls


def test_control_methods(gh: FakeGitHubOrgs):
    assert slugify("  Billing & Ops!! ") == "billing-ops"
    team = gh.add_team("Billing & Ops", members=["alice"], description="money")
    assert gh.team("billing-ops") is team and team.privacy == "secret"
    assert gh.team_members("billing-ops") == {"alice": "member"}
    gh.set_team_membership("billing-ops", "alice", "maintainer")
    gh.set_team_membership("billing-ops", "newcomer")  # unknown: gets an account and joins
    assert gh.team_members("billing-ops") == {"alice": "maintainer", "newcomer": "member"}
    assert gh.org_members()["newcomer"] == "member"
    gh.remove_team_membership("billing-ops", "alice")
    assert gh.team_members("billing-ops") == {"newcomer": "member"}
    gh.remove_org_member("newcomer")
    assert gh.team_members("billing-ops") == {} and "newcomer" not in gh.org_members()
    other = gh.add_org("globex", owners=["bob"])
    assert gh.org("globex") is other and gh.org_members(org="globex") == {"bob": "admin"}
    gh.delete_team("billing-ops")
    assert gh.team("billing-ops") is None and gh.teams() == []
    with pytest.raises(ValueError):
        gh.set_team_membership("x", "alice", "owner")
    with pytest.raises(KeyError):
        gh.team_members("nope")
