"""The GitHub contract fake, plus organizations, their members, teams and team memberships:
what the ``integrations/github`` Terraform provider needs for ``github_team``,
``github_team_membership`` and ``github_membership``.

:class:`FakeGitHubOrgs` subclasses :class:`tests.fakes.github.FakeGitHub` (every repository
endpoint, the headers, ETag/304, rate limits, failure switches and the request log stay as
they are) and follows GitHub's public contract for
https://docs.github.com/en/rest/orgs/orgs, /orgs/members, /teams/teams and /teams/members::

    with FakeGitHubOrgs(tokens={"ghp_t": "admin"}, orgs=["acme"], users=["alice"]) as gh:
        ...  # the provider, with base_url = gh.base_url + "/"
        assert gh.team_members("platform") == {"alice": "maintainer"}

The API is served at the root (as api.github.com) and under ``/api/v3`` (as GitHub
Enterprise Server, where go-github's enterprise client -- so the Terraform provider, given
any ``base_url`` but api.github.com -- sends it); GraphQL at ``POST /graphql`` and
``POST /api/graphql``. The request log (:attr:`requests`) keeps the path without
``/api/v3`` (``raw_path`` has it as asked).

Endpoints (``{team}`` is ``/orgs/{org}/teams/{slug}`` or, as go-github's ``...ByID``
methods and GitHub's own ``Link`` headers use it, ``/organizations/{org_id}/team/{id}``):

* ``GET /user`` (401 without a token), ``GET /users/{login}`` (404 for an unknown login);
* ``GET /orgs/{org}``, ``GET /organizations/{org_id}``;
* ``GET|POST /orgs/{org}/teams`` (paginated; 201; 422 for a missing or taken name, a bad
  ``privacy``, a secret nested team, an unknown parent or maintainer); as on GitHub, the
  creator becomes a maintainer of the new team;
* ``GET|PATCH|DELETE {team}`` (204; child teams go with their parent), ``GET {team}/teams``;
* ``GET {team}/members`` (``role`` all|member|maintainer, paginated; active members only);
* ``GET|PUT|DELETE {team}/memberships/{login}`` -> ``{url, role, state}``; 404 for an
  unknown login or (GET) no membership, 422 for a bad ``role``;
* ``GET /orgs/{org}/members`` (``role`` all|admin|member, paginated),
  ``GET|DELETE /orgs/{org}/members/{login}`` (204 / 404);
* ``GET|PUT|DELETE /orgs/{org}/memberships/{login}`` -> ``{url, state, role,
  organization_url, organization, user}``; leaving an organization leaves its teams;
* ``POST /graphql``: queries (no fragments, no mutations) over ``viewer``, ``user(login)``
  and ``organization(login) { team(slug) { members { nodes | edges | totalCount |
  pageInfo } } }``, which the provider sends to drop the default maintainer.

Who may do what: an organization owner (role ``admin``) everything; a member creates teams
and sees closed teams; a secret team is seen by owners and its members only (404 to others,
as on GitHub); a team maintainer edits the team and its memberships. Writes without a
token are 401, with a read-only token 403.

Invitations: by default (``invitations=False``) an owner adds people directly, as on
GitHub Enterprise Server (or an Enterprise Managed Users organization): a new org or team
membership is ``active`` at once, and a team membership for someone outside the
organization makes them a member. With ``invitations=True`` (github.com), someone outside
the organization gets an invitation: the membership is ``pending`` until
:meth:`accept_invitation`, and pending people are in no listing or count.
"""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from tests.fakes.github import (
    DOCS,
    FakeGitHub,
    FakeRepo,
    _Answer,
    _error,
    _not_found,
    _now,
    _validation_failed,
)

API_PREFIX = "/api/v3"
TEAM_PRIVACY = ("secret", "closed")
TEAM_ROLES = ("member", "maintainer")
ORG_ROLES = ("admin", "member")
GRAPHQL_PATHS = ("/graphql", "/api/graphql")
GRAPHQL_DOCS = "https://docs.github.com/graphql"
TEAMS_DOCS = f"{DOCS}/teams/teams"
MEMBERS_DOCS = f"{DOCS}/teams/members"
ORG_MEMBERS_DOCS = f"{DOCS}/orgs/members"


def slugify(name: str) -> str:
    """GitHub's team slug: lower case, each run of other characters than letters and
    digits one ``-``, none at the ends."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


@dataclass
class FakeTeam:
    id: int
    org: str  # the organization's login
    name: str
    slug: str
    description: str | None = None
    privacy: str = "secret"
    parent_id: int | None = None
    permission: str = "pull"
    notification_setting: str = "notifications_enabled"
    members: dict[str, str] = field(default_factory=dict)  # login -> member|maintainer
    pending: dict[str, str] = field(default_factory=dict)  # invited, not yet accepted
    created_at: str = field(default_factory=_now)
    updated_at: str = field(default_factory=_now)


@dataclass
class FakeOrg:
    id: int
    login: str
    name: str | None = None
    description: str | None = None
    members: dict[str, str] = field(default_factory=dict)  # login -> admin|member
    invitations: dict[str, str] = field(default_factory=dict)  # login -> role, pending
    teams: dict[int, FakeTeam] = field(default_factory=dict)
    created_at: str = field(default_factory=_now)

    def team_by_slug(self, slug: str) -> FakeTeam | None:
        slug = slug.lower()
        return next((t for t in self.teams.values() if t.slug == slug), None)


class _GraphQLError(Exception):
    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.error = {"message": message, **extra}


class FakeGitHubOrgs(FakeGitHub):
    """:class:`FakeGitHub` with organizations, members and teams.

    Args:
        orgs: organizations to create (logins); the first is the default ``org`` of the
            control methods.
        users: the people who have an account (logins): only they can be added to an
            organization or a team (anyone else is a 404, as on GitHub). The tokens' logins
            are users too.
        owners: who owns every organization in ``orgs`` (role ``admin``); None: every
            token's login but the read-only tokens', which are members.
        invitations: False: people are added directly (GitHub Enterprise Server); True:
            someone outside the organization is invited, ``pending`` until
            :meth:`accept_invitation` (github.com).
        everything else: as :class:`FakeGitHub`.
    """

    def __init__(
        self,
        tokens: Mapping[str, str] | Iterable[str] = ("ghp_fake_token",),
        *,
        orgs: Iterable[str] = ("acme",),
        users: Iterable[str] = (),
        owners: Iterable[str] | None = None,
        invitations: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(tokens, **kwargs)
        self.invitations = invitations
        self._local = threading.local()
        self._users: dict[str, str] = {}  # lower -> login as spelled
        self._orgs: dict[str, FakeOrg] = {}  # lower login -> org
        self._orgs_by_id: dict[int, FakeOrg] = {}
        self._teams_by_id: dict[int, FakeTeam] = {}
        for login in users:
            self.add_user(login)
        read_only_logins = {self._tokens[t] for t in self._read_only}
        token_logins = list(dict.fromkeys(self._tokens.values()))
        for login in token_logins:
            self.add_user(login)
        if owners is None:
            owner_logins = [x for x in token_logins if x not in read_only_logins]
            member_logins = [x for x in token_logins if x in read_only_logins]
        else:
            owner_logins, member_logins = list(owners), []
        for login in orgs:
            self.add_org(login, owners=owner_logins, members=member_logins)

    # ------------------------------------------------------------------ state control
    def add_user(self, login: str) -> None:
        """Someone with an account (who can then be added to organizations and teams)."""
        with self._lock:
            self._users.setdefault(login.lower(), login)
            self._user_id(login)

    def add_org(
        self,
        login: str,
        *,
        owners: Iterable[str] = (),
        members: Iterable[str] = (),
        name: str | None = None,
        description: str | None = None,
    ) -> FakeOrg:
        """An organization; ``owners`` and ``members`` (users, created when unknown) are
        active members with role ``admin`` and ``member``."""
        with self._lock:
            if login.lower() in self._orgs or login.lower() in self._users:
                raise ValueError(f"the login {login!r} is taken")
            org = FakeOrg(id=self._next_id(), login=login, name=name, description=description)
            self._orgs[login.lower()] = org
            self._orgs_by_id[org.id] = org
            for role, logins in (("member", members), ("admin", owners)):
                for member in logins:
                    self.add_user(member)
                    org.members[self._users[member.lower()]] = role
            return org

    def add_team(
        self,
        name: str,
        *,
        org: str | None = None,
        privacy: str = "secret",
        description: str | None = None,
        parent: str | None = None,
        members: Mapping[str, str] | Iterable[str] = (),
    ) -> FakeTeam:
        """A team made by someone else (no default maintainer); ``members``: logins (role
        member) or login -> role; they join the organization when outside it."""
        with self._lock:
            o = self._org(org)
            slug = slugify(name)
            if not slug or o.team_by_slug(slug) is not None:
                raise ValueError(f"team name {name!r} is empty or taken in {o.login}")
            if privacy not in TEAM_PRIVACY:
                raise ValueError(f"privacy must be one of {TEAM_PRIVACY}")
            parent_team = self._team(parent, org) if parent else None
            team = FakeTeam(
                id=self._next_id(),
                org=o.login,
                name=name,
                slug=slug,
                description=description,
                privacy=privacy,
                parent_id=parent_team.id if parent_team else None,
            )
            o.teams[team.id] = team
            self._teams_by_id[team.id] = team
            roles = members if isinstance(members, Mapping) else dict.fromkeys(members, "member")
            for login, role in roles.items():
                self.set_team_membership(team.slug, login, role, org=o.login)
            return team

    def set_team_membership(
        self, team: str, login: str, role: str = "member", *, org: str | None = None
    ) -> None:
        """What someone does by hand on GitHub: ``login`` (a user, created when unknown)
        becomes an active ``role`` (member|maintainer) of ``team`` (a slug), and a member
        of the organization when outside it."""
        if role not in TEAM_ROLES:
            raise ValueError(f"role must be one of {TEAM_ROLES}")
        with self._lock:
            t = self._team(team, org)
            o = self._org(t.org)
            self.add_user(login)
            login = self._users[login.lower()]
            o.invitations.pop(login, None)
            o.members.setdefault(login, "member")
            t.pending.pop(login, None)
            t.members[login] = role
            t.updated_at = _now()

    def remove_team_membership(self, team: str, login: str, *, org: str | None = None) -> None:
        """By hand: ``login`` leaves ``team`` (active or pending)."""
        with self._lock:
            t = self._team(team, org)
            key = self._known(login) or login
            t.members.pop(key, None)
            t.pending.pop(key, None)
            t.updated_at = _now()

    def set_org_membership(self, login: str, role: str = "member", *, org: str | None = None):
        """By hand: ``login`` (created when unknown) is an active ``role`` (admin|member)."""
        if role not in ORG_ROLES:
            raise ValueError(f"role must be one of {ORG_ROLES}")
        with self._lock:
            o = self._org(org)
            self.add_user(login)
            login = self._users[login.lower()]
            o.invitations.pop(login, None)
            o.members[login] = role

    def remove_org_member(self, login: str, *, org: str | None = None) -> None:
        """By hand: ``login`` leaves the organization (and so every team of it), or their
        invitation is cancelled."""
        with self._lock:
            self._leave(self._org(org), self._known(login) or login)

    def accept_invitation(self, login: str, *, org: str | None = None) -> None:
        """``login`` accepts their invitation: the pending org and team memberships become
        active."""
        with self._lock:
            o = self._org(org)
            login = self._known(login) or login
            if login not in o.invitations:
                raise KeyError(f"{login} has no invitation to {o.login}")
            o.members[login] = o.invitations.pop(login)
            for t in o.teams.values():
                if login in t.pending:
                    t.members[login] = t.pending.pop(login)

    def delete_team(self, team: str, *, org: str | None = None) -> None:
        """By hand: delete ``team`` and its child teams."""
        with self._lock:
            self._delete_team(self._team(team, org))

    # ------------------------------------------------------------------ state reading
    def org(self, login: str | None = None) -> FakeOrg:
        with self._lock:
            return self._org(login)

    def teams(self, *, org: str | None = None) -> list[str]:
        """The slugs of the organization's teams, oldest first."""
        with self._lock:
            return [t.slug for t in self._org(org).teams.values()]

    def team(self, slug: str, *, org: str | None = None) -> FakeTeam | None:
        with self._lock:
            return self._org(org).team_by_slug(slug)

    def team_members(
        self, slug: str, *, org: str | None = None, pending: bool = False
    ) -> dict[str, str]:
        """login -> role (member|maintainer) of the active members; ``pending``: of the
        pending ones instead."""
        with self._lock:
            t = self._team(slug, org)
            return dict(t.pending if pending else t.members)

    def org_members(self, *, org: str | None = None, pending: bool = False) -> dict[str, str]:
        """login -> role (admin|member) of the active members; ``pending``: the invited."""
        with self._lock:
            o = self._org(org)
            return dict(o.invitations if pending else o.members)

    # ------------------------------------------------------------------ internals
    def _org(self, login: str | None) -> FakeOrg:
        if login is None:
            return next(iter(self._orgs.values()))
        return self._orgs[login.lower()]

    def _team(self, slug: str, org: str | None) -> FakeTeam:
        team = self._org(org).team_by_slug(slug)
        if team is None:
            raise KeyError(f"no team {slug!r}")
        return team

    def _known(self, login: str) -> str | None:
        """The login as spelled at sign-up, or None for someone without an account."""
        return self._users.get(login.lower())

    def _leave(self, o: FakeOrg, login: str) -> None:
        o.members.pop(login, None)
        o.invitations.pop(login, None)
        for t in o.teams.values():
            if t.members.pop(login, None) or t.pending.pop(login, None):
                t.updated_at = _now()

    def _delete_team(self, team: FakeTeam) -> None:
        o = self._org(team.org)
        for child in [t for t in o.teams.values() if t.parent_id == team.id]:
            self._delete_team(child)
        o.teams.pop(team.id, None)
        self._teams_by_id.pop(team.id, None)

    def _canonical(self, path: str) -> tuple[str, FakeRepo | None]:
        """``/api/v3/x`` (GitHub Enterprise Server's form) is ``/x``."""
        prefix = ""
        if path == API_PREFIX or path.startswith(API_PREFIX + "/"):
            prefix, path = API_PREFIX, path[len(API_PREFIX) :] or "/"
        self._local.prefix = prefix
        return super()._canonical(path)

    # --- JSON shapes (``api``: the API's base URL as asked; ``web``: the site's)
    def _user_json(self, api: str, web: str, login: str) -> dict[str, Any]:
        data = self._user(api, login)
        data["html_url"] = f"{web}/{login}"
        data["avatar_url"] = f"{web}/avatars/{login}"
        for key in ("followers", "following", "gists", "starred", "subscriptions", "repos"):
            data[f"{key}_url"] = f"{api}/users/{login}/{key}"
        data["organizations_url"] = f"{api}/users/{login}/orgs"
        return data

    def _org_json(self, api: str, web: str, o: FakeOrg, *, full: bool) -> dict[str, Any]:
        url = f"{api}/orgs/{o.login}"
        data: dict[str, Any] = {
            "login": o.login,
            "id": o.id,
            "node_id": f"O_{o.id}",
            "url": url,
            "repos_url": f"{url}/repos",
            "events_url": f"{url}/events",
            "hooks_url": f"{url}/hooks",
            "issues_url": f"{url}/issues",
            "members_url": f"{url}/members{{/member}}",
            "public_members_url": f"{url}/public_members{{/member}}",
            "avatar_url": f"{web}/avatars/{o.login}",
            "description": o.description,
        }
        if full:
            data.update(
                {
                    "name": o.name,
                    "company": None,
                    "blog": None,
                    "location": None,
                    "email": None,
                    "is_verified": False,
                    "has_organization_projects": True,
                    "has_repository_projects": True,
                    "public_repos": sum(
                        1 for r in self._repos.values() if r.owner.lower() == o.login.lower()
                    ),
                    "public_gists": 0,
                    "followers": 0,
                    "following": 0,
                    "html_url": f"{web}/{o.login}",
                    "created_at": o.created_at,
                    "updated_at": o.created_at,
                    "type": "Organization",
                }
            )
        return data

    def _team_json(self, api: str, web: str, t: FakeTeam, *, full: bool) -> dict[str, Any]:
        o = self._org(t.org)
        url = f"{api}/organizations/{o.id}/team/{t.id}"
        parent = self._teams_by_id.get(t.parent_id) if t.parent_id else None
        data: dict[str, Any] = {
            "id": t.id,
            "node_id": f"T_{t.id}",
            "url": url,
            "html_url": f"{web}/orgs/{o.login}/teams/{t.slug}",
            "name": t.name,
            "slug": t.slug,
            "description": t.description,
            "privacy": t.privacy,
            "notification_setting": t.notification_setting,
            "permission": t.permission,
            "members_url": f"{url}/members{{/member}}",
            "repositories_url": f"{url}/repos",
            "parent": self._team_json(api, web, parent, full=False) if parent else None,
        }
        if full:
            data.update(
                {
                    "members_count": len(t.members),
                    "repos_count": 0,
                    "created_at": t.created_at,
                    "updated_at": t.updated_at,
                    "organization": self._org_json(api, web, o, full=True),
                }
            )
        return data

    def _team_membership_json(self, api: str, t: FakeTeam, login: str) -> dict[str, Any]:
        o = self._org(t.org)
        active = login in t.members
        return {
            "url": f"{api}/organizations/{o.id}/team/{t.id}/memberships/{login}",
            "role": t.members[login] if active else t.pending[login],
            "state": "active" if active else "pending",
        }

    def _org_membership_json(self, api: str, web: str, o: FakeOrg, login: str) -> dict[str, Any]:
        active = login in o.members
        return {
            "url": f"{api}/orgs/{o.login}/memberships/{login}",
            "state": "active" if active else "pending",
            "role": o.members[login] if active else o.invitations[login],
            "organization_url": f"{api}/orgs/{o.login}",
            "organization": self._org_json(api, web, o, full=False),
            "user": self._user_json(api, web, login),
        }

    # --- permissions
    @staticmethod
    def _is_owner(o: FakeOrg, login: str | None) -> bool:
        return login is not None and o.members.get(login) == "admin"

    def _can_see_team(self, o: FakeOrg, t: FakeTeam, login: str | None) -> bool:
        if login is None or login not in o.members:
            return False
        return t.privacy == "closed" or self._is_owner(o, login) or login in t.members

    def _can_manage_team(self, o: FakeOrg, t: FakeTeam, login: str | None) -> bool:
        return self._is_owner(o, login) or (
            login is not None and t.members.get(login) == "maintainer"
        )

    # --- routing
    def _answer(
        self,
        method: str,
        path: str,
        repo: FakeRepo | None,
        query: dict[str, str],
        query_items: list[tuple[str, str]],
        body: Any,
        login: str | None,
        token: str | None,
        base: str,
        *args: Any,
        **kwargs: Any,  # whatever FakeGitHub._answer takes besides, passed on
    ) -> _Answer:
        api = base + getattr(self._local, "prefix", "")
        parts = [unquote(p) for p in path.strip("/").split("/")]
        writing = method in ("POST", "PATCH", "PUT", "DELETE")
        if path in GRAPHQL_PATHS and not getattr(self._local, "prefix", ""):
            if method != "POST":
                return _not_found()
            return self._graphql(api, base, body, login)
        mine = (
            parts == ["user"]
            or (len(parts) == 2 and parts[0] == "users")
            or (len(parts) >= 2 and parts[0] == "orgs")
            or (len(parts) >= 2 and parts[0] == "organizations")
        )
        if not mine:
            return super()._answer(
                method, path, repo, query, query_items, body, login, token, base, *args, **kwargs
            )
        if writing and login is None:
            return _error(401, "Requires authentication")
        if writing and token in self._read_only:
            return _error(403, "Resource not accessible by personal access token")
        ctx = _Ctx(method, api, base, query, query_items, body, login)

        if parts == ["user"]:
            if method != "GET":
                return _not_found()
            if login is None:
                return _error(401, "Requires authentication", f"{DOCS}/users/users")
            return _Answer(200, self._private_user_json(api, base, login))
        if parts[0] == "users":
            if method != "GET":
                return _not_found()
            return self._get_user(ctx, parts[1])

        if parts[0] == "organizations":
            o = self._orgs_by_id.get(int(parts[1])) if parts[1].isdigit() else None
            if o is None:
                return _not_found()
            if len(parts) == 2:
                if method != "GET":
                    return _not_found()
                return _Answer(200, self._org_json(api, base, o, full=True))
            if len(parts) >= 4 and parts[2] == "team" and parts[3].isdigit():
                t = o.teams.get(int(parts[3]))
                return self._team_route(ctx, o, t, parts[4:])
            return _not_found()

        o = self._orgs.get(parts[1].lower())
        if o is None:
            return _not_found(f"{DOCS}/orgs/orgs#get-an-organization")
        rest = parts[2:]
        if not rest:
            if method != "GET":
                return _not_found()
            return _Answer(200, self._org_json(api, base, o, full=True))
        if rest == ["teams"]:
            if method == "GET":
                return self._list_teams(ctx, o)
            if method == "POST":
                return self._create_team(ctx, o)
            return _not_found()
        if len(rest) >= 2 and rest[0] == "teams":
            return self._team_route(ctx, o, o.team_by_slug(rest[1]), rest[2:])
        if rest == ["members"] and method == "GET":
            return self._list_org_members(ctx, o)
        if len(rest) == 2 and rest[0] == "members":
            return self._org_member(ctx, o, rest[1])
        if len(rest) == 2 and rest[0] == "memberships":
            return self._org_membership(ctx, o, rest[1])
        return _not_found()

    def _private_user_json(self, api: str, web: str, login: str) -> dict[str, Any]:
        data = self._user_json(api, web, login)
        data.update(
            {
                "name": None,
                "company": None,
                "blog": "",
                "location": None,
                "email": None,
                "bio": None,
                "public_repos": 0,
                "public_gists": 0,
                "followers": 0,
                "following": 0,
                "created_at": "2020-01-01T00:00:00Z",
                "updated_at": "2020-01-01T00:00:00Z",
            }
        )
        return data

    def _get_user(self, ctx: _Ctx, who: str) -> _Answer:
        o = self._orgs.get(who.lower())
        if o is not None:
            data = self._org_json(ctx.api, ctx.web, o, full=True)
            return _Answer(200, data)
        known = self._known(who)
        if known is None:
            return _not_found(f"{DOCS}/users/users#get-a-user")
        data = self._private_user_json(ctx.api, ctx.web, known)
        return _Answer(200, data)

    # --- teams
    def _list_teams(self, ctx: _Ctx, o: FakeOrg) -> _Answer:
        if ctx.login is None:
            return _error(401, "Requires authentication", f"{TEAMS_DOCS}#list-teams")
        if ctx.login not in o.members:
            return _error(403, f"You must be a member of {o.login} to list its teams.")
        teams = [t for t in o.teams.values() if self._can_see_team(o, t, ctx.login)]
        items = [self._team_json(ctx.api, ctx.web, t, full=False) for t in teams]
        link_base = f"{ctx.api}/organizations/{o.id}/teams"
        chunk, headers = self._page(items, ctx.query, link_base, ctx.query_items)
        return _Answer(200, chunk, headers)

    def _team_fields(
        self, ctx: _Ctx, o: FakeOrg, body: dict[str, Any], team: FakeTeam | None
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The checked changes of a create (``team`` None) or an update, and 422 errors."""
        errors: list[dict[str, Any]] = []
        changes: dict[str, Any] = {}

        def invalid(name: str, message: str | None = None, code: str = "invalid") -> None:
            error = {"resource": "Team", "code": code, "field": name}
            if message:
                error["message"] = message
            errors.append(error)

        if "name" in body or team is None:
            name = body.get("name")
            if not isinstance(name, str) or not slugify(name):
                invalid("name", code="missing_field")
            else:
                other = o.team_by_slug(slugify(name))
                if other is not None and other is not team:
                    invalid("name", "Name must be unique for this org", code="custom")
                changes["name"] = name
        if "description" in body:
            if body["description"] is not None and not isinstance(body["description"], str):
                invalid("description")
            else:
                changes["description"] = body["description"] or None
        if "parent_team_id" in body:
            parent_id = body["parent_team_id"]
            if parent_id is None:
                changes["parent_id"] = None
            elif not isinstance(parent_id, int) or parent_id not in o.teams:
                invalid("parent_team_id", "Parent team could not be found")
            elif team is not None and self._descends(o.teams[parent_id], team):
                invalid("parent_team_id", "A team cannot be its own ancestor")
            else:
                changes["parent_id"] = parent_id
        nested = changes.get("parent_id", team.parent_id if team else None) is not None
        privacy = body.get("privacy")
        if privacy is None and team is None:
            privacy = "closed" if nested else "secret"  # GitHub's defaults
        if privacy is not None:
            if privacy not in TEAM_PRIVACY:
                invalid("privacy")
            else:
                changes["privacy"] = privacy
        if nested and changes.get("privacy", team.privacy if team else None) == "secret":
            invalid("privacy", "A secret team cannot be a parent or child team")
        if "permission" in body:
            if body["permission"] not in ("pull", "push", "admin"):
                invalid("permission")
            else:
                changes["permission"] = body["permission"]
        if "notification_setting" in body:
            setting = body["notification_setting"]
            if setting not in ("notifications_enabled", "notifications_disabled"):
                invalid("notification_setting")
            else:
                changes["notification_setting"] = setting
        maintainers = body.get("maintainers") or []
        if team is None:
            found = []
            for who in maintainers if isinstance(maintainers, list) else [None]:
                known = self._known(who) if isinstance(who, str) else None
                if known is None or known not in o.members:
                    invalid("maintainers", f"{who} is not a member of {o.login}")
                else:
                    found.append(known)
            changes["maintainers"] = found
        return changes, errors

    def _descends(self, team: FakeTeam, ancestor: FakeTeam) -> bool:
        node: FakeTeam | None = team
        while node is not None:
            if node.id == ancestor.id:
                return True
            node = self._teams_by_id.get(node.parent_id) if node.parent_id else None
        return False

    def _create_team(self, ctx: _Ctx, o: FakeOrg) -> _Answer:
        if ctx.login not in o.members:
            return _error(403, f"You must be a member of {o.login} to create a team.")
        if not isinstance(ctx.body, dict):
            return _error(400, "Problems parsing JSON", f"{TEAMS_DOCS}#create-a-team")
        changes, errors = self._team_fields(ctx, o, ctx.body, None)
        if errors:
            return _validation_failed(errors, f"{TEAMS_DOCS}#create-a-team")
        team = FakeTeam(
            id=self._next_id(),
            org=o.login,
            name=changes["name"],
            slug=slugify(changes["name"]),
            description=changes.get("description"),
            privacy=changes["privacy"],
            parent_id=changes.get("parent_id"),
            permission=changes.get("permission", "pull"),
            notification_setting=changes.get("notification_setting", "notifications_enabled"),
        )
        o.teams[team.id] = team
        self._teams_by_id[team.id] = team
        # As on GitHub: the person who creates a team becomes its maintainer.
        team.members[ctx.login] = "maintainer"
        for who in changes["maintainers"]:
            team.members[who] = "maintainer"
        url = f"{ctx.api}/organizations/{o.id}/team/{team.id}"
        return _Answer(201, self._team_json(ctx.api, ctx.web, team, full=True), {"Location": url})

    def _team_route(self, ctx: _Ctx, o: FakeOrg, t: FakeTeam | None, rest: list[str]) -> _Answer:
        if ctx.login is None and ctx.method == "GET":
            return _error(401, "Requires authentication", TEAMS_DOCS)
        if t is None or not self._can_see_team(o, t, ctx.login):
            return _not_found(TEAMS_DOCS)
        if not rest:
            if ctx.method == "GET":
                return _Answer(200, self._team_json(ctx.api, ctx.web, t, full=True))
            if ctx.method == "PATCH":
                return self._update_team(ctx, o, t)
            if ctx.method == "DELETE":
                if not self._can_manage_team(o, t, ctx.login):
                    return _error(
                        403,
                        "You must be an organization owner or team maintainer to delete a team.",
                    )
                self._delete_team(t)
                return _Answer(204)
            return _not_found()
        if rest == ["teams"] and ctx.method == "GET":
            children = [c for c in o.teams.values() if c.parent_id == t.id]
            items = [self._team_json(ctx.api, ctx.web, c, full=False) for c in children]
            link_base = f"{ctx.api}/organizations/{o.id}/team/{t.id}/teams"
            chunk, headers = self._page(items, ctx.query, link_base, ctx.query_items)
            return _Answer(200, chunk, headers)
        if rest == ["members"] and ctx.method == "GET":
            return self._list_team_members(ctx, o, t)
        if len(rest) == 2 and rest[0] == "memberships":
            return self._team_membership(ctx, o, t, rest[1])
        return _not_found()

    def _update_team(self, ctx: _Ctx, o: FakeOrg, t: FakeTeam) -> _Answer:
        docs = f"{TEAMS_DOCS}#update-a-team"
        if not self._can_manage_team(o, t, ctx.login):
            return _error(
                403, "You must be an organization owner or team maintainer to edit a team.", docs
            )
        if not isinstance(ctx.body, dict):
            return _error(400, "Problems parsing JSON", docs)
        changes, errors = self._team_fields(ctx, o, ctx.body, t)
        if errors:
            return _validation_failed(errors, docs)
        if "name" in changes:
            t.name, t.slug = changes["name"], slugify(changes["name"])
        for key in ("description", "privacy", "parent_id", "permission", "notification_setting"):
            if key in changes:
                setattr(t, key, changes[key])
        t.updated_at = _now()
        return _Answer(200, self._team_json(ctx.api, ctx.web, t, full=True))

    def _list_team_members(self, ctx: _Ctx, o: FakeOrg, t: FakeTeam) -> _Answer:
        role = ctx.query.get("role", "all")
        if role not in ("all", *TEAM_ROLES):
            return _validation_failed(
                [{"resource": "Team", "code": "invalid", "field": "role"}],
                f"{MEMBERS_DOCS}#list-team-members",
            )
        logins = [x for x, r in t.members.items() if role == "all" or r == role]
        items = [self._user_json(ctx.api, ctx.web, x) for x in logins]
        link_base = f"{ctx.api}/organizations/{o.id}/team/{t.id}/members"
        chunk, headers = self._page(items, ctx.query, link_base, ctx.query_items)
        return _Answer(200, chunk, headers)

    def _team_membership(self, ctx: _Ctx, o: FakeOrg, t: FakeTeam, who: str) -> _Answer:
        docs = f"{MEMBERS_DOCS}#get-team-membership-for-a-user"
        login = self._known(who)
        if ctx.method == "GET":
            if login is None or (login not in t.members and login not in t.pending):
                return _not_found(docs)
            return _Answer(200, self._team_membership_json(ctx.api, t, login))
        if ctx.method not in ("PUT", "DELETE"):
            return _not_found()
        if not self._can_manage_team(o, t, ctx.login):
            # GitHub's words for a DELETE; a PUT is refused alike
            action = "remove" if ctx.method == "DELETE" else "add"
            message = (
                f"You must be an organization owner or team maintainer to {action} a team "
                "membership."
            )
            return _error(403, message, docs)
        if login is None:
            return _not_found(docs)
        if ctx.method == "DELETE":
            t.members.pop(login, None)
            t.pending.pop(login, None)
            t.updated_at = _now()
            return _Answer(204)
        body = ctx.body if isinstance(ctx.body, dict) else {}
        role = body.get("role", "member")
        if role not in TEAM_ROLES:
            return _validation_failed(
                [{"resource": "TeamMember", "code": "invalid", "field": "role"}],
                f"{MEMBERS_DOCS}#add-or-update-team-membership-for-a-user",
            )
        if login in t.members:
            t.members[login] = role
        elif login in o.members:
            t.members[login] = role
        elif not self._is_owner(o, ctx.login):
            return _error(403, f"Only an owner can add someone outside {o.login} to a team.")
        elif self.invitations:
            o.invitations.setdefault(login, "member")
            t.pending[login] = role
        else:
            o.members[login] = "member"
            t.members[login] = role
        t.updated_at = _now()
        return _Answer(200, self._team_membership_json(ctx.api, t, login))

    # --- organization members
    def _list_org_members(self, ctx: _Ctx, o: FakeOrg) -> _Answer:
        role = ctx.query.get("role", "all")
        if role not in ("all", *ORG_ROLES):
            return _validation_failed(
                [{"resource": "Organization", "code": "invalid", "field": "role"}],
                f"{ORG_MEMBERS_DOCS}#list-organization-members",
            )
        # Only members see the (private) membership; the fake has no public members.
        logins = list(o.members) if ctx.login in o.members else []
        logins = [x for x in logins if role == "all" or o.members[x] == role]
        items = [self._user_json(ctx.api, ctx.web, x) for x in logins]
        link_base = f"{ctx.api}/organizations/{o.id}/members"
        chunk, headers = self._page(items, ctx.query, link_base, ctx.query_items)
        return _Answer(200, chunk, headers)

    def _org_member(self, ctx: _Ctx, o: FakeOrg, who: str) -> _Answer:
        login = self._known(who)
        if ctx.method == "GET":
            if ctx.login not in o.members:
                return _not_found(ORG_MEMBERS_DOCS)
            return _Answer(204) if login in o.members else _not_found(ORG_MEMBERS_DOCS)
        if ctx.method != "DELETE":
            return _not_found()
        if not self._is_owner(o, ctx.login):
            return _error(403, "You must be an organization owner.", ORG_MEMBERS_DOCS)
        if login is None or login not in o.members:
            return _not_found(ORG_MEMBERS_DOCS)
        self._leave(o, login)
        return _Answer(204)

    def _org_membership(self, ctx: _Ctx, o: FakeOrg, who: str) -> _Answer:
        docs = f"{ORG_MEMBERS_DOCS}#get-organization-membership-for-a-user"
        if ctx.login is None:
            return _error(401, "Requires authentication", docs)
        login = self._known(who)
        if ctx.method == "GET":
            if ctx.login not in o.members:
                return _error(
                    403,
                    f"You must be a member of {o.login} to see membership information for {who}.",
                    docs,
                )
            if login is None or (login not in o.members and login not in o.invitations):
                return _not_found(docs)
            return _Answer(200, self._org_membership_json(ctx.api, ctx.web, o, login))
        if ctx.method not in ("PUT", "DELETE"):
            return _not_found()
        if not self._is_owner(o, ctx.login):
            return _error(403, "You must be an organization owner.", docs)
        if login is None:
            return _not_found(docs)
        if ctx.method == "DELETE":
            if login not in o.members and login not in o.invitations:
                return _not_found(docs)
            self._leave(o, login)
            return _Answer(204)
        body = ctx.body if isinstance(ctx.body, dict) else {}
        role = body.get("role", "member")
        if role not in ORG_ROLES:
            return _validation_failed(
                [{"resource": "OrganizationMembership", "code": "invalid", "field": "role"}],
                f"{ORG_MEMBERS_DOCS}#set-organization-membership-for-a-user",
            )
        if login in o.members or not self.invitations:
            o.members[login] = role
        else:
            o.invitations[login] = role
        return _Answer(200, self._org_membership_json(ctx.api, ctx.web, o, login))

    # --- GraphQL
    def _graphql(self, api: str, web: str, body: Any, login: str | None) -> _Answer:
        if login is None:
            return _error(
                401,
                "This endpoint requires you to be authenticated.",
                f"{GRAPHQL_DOCS}/guides/forming-calls-with-graphql#authenticating-with-graphql",
            )
        if not isinstance(body, dict):
            return _error(400, "Problems parsing JSON", GRAPHQL_DOCS)
        text = body.get("query")
        if not isinstance(text, str):
            return _Answer(
                200,
                {
                    "errors": [
                        {"message": "A query attribute must be specified and must be a string."}
                    ]
                },
            )
        variables = body.get("variables") or {}
        try:
            operation = _parse_graphql(text)
        except _GraphQLError as exc:
            return _Answer(200, {"errors": [exc.error]})
        if operation["kind"] != "query":
            message = f"The fake answers queries only, not a {operation['kind']}"
            return _Answer(200, {"errors": [{"message": message}]})
        resolver = _Resolver(self, login, variables)
        data = resolver.object("Query", None, operation["selections"], ["query"])
        if resolver.fatal:
            return _Answer(200, {"errors": resolver.errors})
        out: dict[str, Any] = {"data": data}
        if resolver.errors:
            out["errors"] = resolver.errors
        return _Answer(200, out)


@dataclass
class _Ctx:
    """One request, as the route handlers need it."""

    method: str
    api: str
    web: str
    query: dict[str, str]
    query_items: list[tuple[str, str]]
    body: Any
    login: str | None


# --------------------------------------------------------------------------- GraphQL
_TOKEN = re.compile(
    r"""(?P<skip>[\s,]+|\#[^\n]*)
      | (?P<spread>\.\.\.)
      | (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<name>[_A-Za-z][_0-9A-Za-z]*)
      | (?P<punct>[{}()\[\]:!$=@])
    """,
    re.VERBOSE,
)


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise _GraphQLError(f"Parse error on {text[pos]!r} at offset {pos}")
        pos = m.end()
        kind = m.lastgroup or ""
        if kind != "skip":
            out.append((kind, m.group()))
    return out


def _parse_graphql(text: str) -> dict[str, Any]:
    """One operation of a GraphQL document: ``{"kind", "selections"}``; a selection is
    ``{"alias", "name", "args", "selections"}`` (an argument value is ``("var", name)`` or
    a literal). Fragments are refused."""
    toks = _tokens(text)
    pos = 0

    def peek() -> tuple[str, str] | None:
        return toks[pos] if pos < len(toks) else None

    def take(value: str | None = None, kind: str | None = None) -> str:
        nonlocal pos
        tok = peek()
        if tok is None or (value is not None and tok[1] != value) or (kind and tok[0] != kind):
            found = tok[1] if tok else "end of document"
            raise _GraphQLError(f"Parse error on {found!r} (expected {value or kind})")
        pos += 1
        return tok[1]

    def value() -> Any:
        tok = peek()
        if tok is None:
            raise _GraphQLError("Parse error on end of document")
        kind, text_ = tok
        if text_ == "$":
            take("$")
            return ("var", take(kind="name"))
        if kind == "string":
            take()
            return bytes(text_[1:-1], "utf-8").decode("unicode_escape")
        if kind == "number":
            take()
            return float(text_) if "." in text_ else int(text_)
        if text_ == "[":
            take("[")
            items = []
            while peek() and peek()[1] != "]":
                items.append(value())
            take("]")
            return items
        if text_ == "{":
            take("{")
            obj = {}
            while peek() and peek()[1] != "}":
                key = take(kind="name")
                take(":")
                obj[key] = value()
            take("}")
            return obj
        if kind == "name":
            take()
            return {"true": True, "false": False, "null": None}.get(text_, ("enum", text_))
        raise _GraphQLError(f"Parse error on {text_!r}")

    def selection_set() -> list[dict[str, Any]]:
        take("{")
        selections = []
        while peek() and peek()[1] != "}":
            if peek()[0] == "spread":
                raise _GraphQLError("The fake does not support fragments")
            name = take(kind="name")
            alias = name
            if peek() and peek()[1] == ":":
                take(":")
                name = take(kind="name")
            args: dict[str, Any] = {}
            if peek() and peek()[1] == "(":
                take("(")
                while peek() and peek()[1] != ")":
                    key = take(kind="name")
                    take(":")
                    args[key] = value()
                take(")")
            if peek() and peek()[1] == "@":
                raise _GraphQLError("The fake does not support directives")
            subs = selection_set() if peek() and peek()[1] == "{" else []
            selections.append({"alias": alias, "name": name, "args": args, "selections": subs})
        take("}")
        return selections

    kind = "query"
    if peek() and peek()[0] == "name":
        kind = take()
        if peek() and peek()[0] == "name":
            take()  # the operation's name
        if peek() and peek()[1] == "(":  # variable definitions: the types are not checked
            depth = 0
            while True:
                tok = take()
                depth += {"(": 1, ")": -1}.get(tok, 0)
                if depth == 0:
                    break
    operation = {"kind": kind, "selections": selection_set()}
    if peek() is not None:
        raise _GraphQLError("The fake answers documents of one operation only")
    return operation


_FIELDS: dict[str, tuple[str, ...]] = {
    "Query": ("viewer", "user", "organization"),
    "User": ("login", "id", "databaseId", "name", "url"),
    "Organization": ("login", "id", "databaseId", "name", "url", "team"),
    "Team": ("id", "databaseId", "name", "slug", "description", "privacy", "url", "members"),
    "TeamMemberConnection": ("nodes", "edges", "totalCount", "pageInfo"),
    "TeamMemberEdge": ("node", "role", "cursor"),
    "PageInfo": ("hasNextPage", "hasPreviousPage", "startCursor", "endCursor"),
}


def _cursor(index: int) -> str:
    return base64.b64encode(f"cursor:v2:{index}".encode()).decode()


def _uncursor(cursor: str) -> int:
    try:
        return int(base64.b64decode(cursor).decode().rsplit(":", 1)[1])
    except (ValueError, IndexError) as exc:
        raise _GraphQLError(f"`{cursor}` does not appear to be a valid cursor.") from exc


class _Resolver:
    """Answers a parsed query from the fake's state, as GitHub's schema would."""

    def __init__(self, fake: FakeGitHubOrgs, login: str, variables: dict[str, Any]) -> None:
        self.fake, self.login, self.variables = fake, login, variables
        self.errors: list[dict[str, Any]] = []
        self.fatal = False
        self.web = fake.base_url

    def arg(self, selection: dict[str, Any], name: str) -> Any:
        value = selection["args"].get(name)
        if isinstance(value, tuple) and value[0] == "var":
            return self.variables.get(value[1])
        if isinstance(value, tuple) and value[0] == "enum":
            return value[1]
        return value

    def object(
        self, type_name: str, obj: Any, selections: list[dict[str, Any]], path: list[Any]
    ) -> dict[str, Any] | None:
        out: dict[str, Any] = {}
        for sel in selections:
            name = sel["name"]
            if name == "__typename":
                out[sel["alias"]] = type_name
                continue
            if name not in _FIELDS[type_name]:
                self.fatal = True
                self.errors.append(
                    {
                        "path": [*path, sel["alias"]],
                        "extensions": {
                            "code": "undefinedField",
                            "typeName": type_name,
                            "fieldName": name,
                        },
                        "message": f"Field '{name}' doesn't exist on type '{type_name}'",
                    }
                )
                continue
            out[sel["alias"]] = getattr(self, f"_{type_name}")(obj, sel, [*path, sel["alias"]])
        return out

    def _user(self, login: str, sel: dict[str, Any], path: list[Any]) -> dict[str, Any] | None:
        return self.object("User", login, sel["selections"], path)

    def _Query(self, _: Any, sel: dict[str, Any], path: list[Any]) -> Any:  # noqa: N802
        name = sel["name"]
        if name == "viewer":
            return self._user(self.login, sel, path)
        who = self.arg(sel, "login")
        if name == "user":
            known = self.fake._known(who) if isinstance(who, str) else None
            if known is None:
                self.not_found(path, f"Could not resolve to a User with the login of '{who}'.")
                return None
            return self._user(known, sel, path)
        org = self.fake._orgs.get(who.lower()) if isinstance(who, str) else None
        if org is None:
            self.not_found(path, f"Could not resolve to an Organization with the login of '{who}'.")
            return None
        return self.object("Organization", org, sel["selections"], path)

    def not_found(self, path: list[Any], message: str) -> None:
        self.errors.append({"type": "NOT_FOUND", "path": path[1:], "message": message})

    def _User(self, login: str, sel: dict[str, Any], path: list[Any]) -> Any:  # noqa: N802
        uid = self.fake._user_id(login)
        return {
            "login": login,
            "id": f"U_{uid}",
            "databaseId": uid,
            "name": None,
            "url": f"{self.web}/{login}",
        }[sel["name"]]

    def _Organization(self, org: FakeOrg, sel: dict[str, Any], path: list[Any]) -> Any:  # noqa: N802
        name = sel["name"]
        if name == "team":
            slug = self.arg(sel, "slug")
            team = org.team_by_slug(slug) if isinstance(slug, str) else None
            if team is None or not self.fake._can_see_team(org, team, self.login):
                return None  # GitHub answers null for a team it does not show
            return self.object("Team", team, sel["selections"], path)
        return {
            "login": org.login,
            "id": f"O_{org.id}",
            "databaseId": org.id,
            "name": org.name,
            "url": f"{self.web}/{org.login}",
        }[name]

    def _Team(self, team: FakeTeam, sel: dict[str, Any], path: list[Any]) -> Any:  # noqa: N802
        name = sel["name"]
        if name == "members":
            return self.members(team, sel, path)
        return {
            "id": f"T_{team.id}",
            "databaseId": team.id,
            "name": team.name,
            "slug": team.slug,
            "description": team.description,
            "privacy": "SECRET" if team.privacy == "secret" else "VISIBLE",
            "url": f"{self.web}/orgs/{team.org}/teams/{team.slug}",
        }[name]

    def members(self, team: FakeTeam, sel: dict[str, Any], path: list[Any]) -> Any:
        role = self.arg(sel, "role")
        membership = self.arg(sel, "membership") or "ALL"
        logins = [(x, r) for x, r in team.members.items()]
        if membership in ("ALL", "CHILD_TEAM"):
            children = [t for t in self.fake._teams_by_id.values() if t.id != team.id]
            for child in children:
                if child.org == team.org and self.fake._descends(child, team):
                    known = {x for x, _ in logins}
                    logins += [(x, r) for x, r in child.members.items() if x not in known]
            if membership == "CHILD_TEAM":
                logins = [(x, r) for x, r in logins if x not in team.members]
        if role:
            logins = [(x, r) for x, r in logins if r.upper() == role]
        first, last = self.arg(sel, "first"), self.arg(sel, "last")
        after, before = self.arg(sel, "after"), self.arg(sel, "before")
        for n in (first, last):
            if n is not None and not 1 <= n <= 100:
                self.fatal = True
                self.errors.append(
                    {
                        "path": path,
                        "message": "Requesting more than 100 records on the `members` "
                        "connection exceeds the `first` limit of 100 records.",
                    }
                )
                return None
        indexed = list(enumerate(logins))
        if after:
            start = _uncursor(after)
            indexed = [(i, m) for i, m in indexed if i > start]
        if before:
            end = _uncursor(before)
            indexed = [(i, m) for i, m in indexed if i < end]
        total_window = len(indexed)
        if first is not None:
            indexed = indexed[:first]
        elif last is not None:
            indexed = indexed[-last:]
        else:
            indexed = indexed[:100]
        page = {
            "hasNextPage": (first is not None or last is None) and len(indexed) < total_window,
            "hasPreviousPage": bool(after) or (last is not None and len(indexed) < total_window),
            "startCursor": _cursor(indexed[0][0]) if indexed else None,
            "endCursor": _cursor(indexed[-1][0]) if indexed else None,
        }
        out: dict[str, Any] = {}
        for sub in sel["selections"]:
            sub_path = [*path, sub["alias"]]
            name = sub["name"]
            if name not in _FIELDS["TeamMemberConnection"]:
                self.object("TeamMemberConnection", None, [sub], path)
                continue
            if name == "totalCount":
                out[sub["alias"]] = len(logins)
            elif name == "pageInfo":
                out[sub["alias"]] = self.object("PageInfo", page, sub["selections"], sub_path)
            elif name == "nodes":
                out[sub["alias"]] = [
                    self._user(x, sub, [*sub_path, n]) for n, (_, (x, _r)) in enumerate(indexed)
                ]
            else:
                out[sub["alias"]] = [
                    self.object("TeamMemberEdge", (i, x, r), sub["selections"], [*sub_path, n])
                    for n, (i, (x, r)) in enumerate(indexed)
                ]
        return out

    def _TeamMemberEdge(self, edge: Any, sel: dict[str, Any], path: list[Any]) -> Any:  # noqa: N802
        index, login, role = edge
        name = sel["name"]
        if name == "node":
            return self._user(login, sel, path)
        if name == "role":
            return role.upper()
        return _cursor(index)

    def _PageInfo(self, page: dict[str, Any], sel: dict[str, Any], path: list[Any]) -> Any:  # noqa: N802
        return page[sel["name"]]
