"""What a Terraform plan changes in access, in words, read from ``terraform show -json``:
"@alice joins team platform as maintainer", "role ci loses SELECT on tables in schema
billing (database app)". One reader per resource type of the postgresql
(cyrilgdn/postgresql) and github (integrations/github) providers; any other resource is
named by its address and action.

The same readers serve a plan's ``resource_changes`` (what an apply would do) and its
``resource_drift`` (what changed outside Terraform, for the drift check).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prefect_stacks.exceptions import ConfigurationError

Values = dict[str, Any]


@dataclass(frozen=True)
class AccessChange:
    """One change of access. ``principal`` is ``postgres:<role>`` or ``github:<login>``
    (or ``team:<name>``); ``removes`` marks a principal losing its existence or its admin
    rights (what break-glass principals are protected from)."""

    sentence: str
    address: str
    principal: str = ""
    removes: bool = False


def _actions(change: Values) -> str:
    actions = change.get("actions") or []
    if "create" in actions and "delete" in actions:
        return "replace"
    return actions[0] if len(actions) == 1 else "+".join(actions)


def _sorted_set(value: Any) -> list[str]:
    return sorted(str(v) for v in value) if isinstance(value, list) else []


def _privileges(privileges: list[str]) -> str:
    return ", ".join(privileges) if privileges else "no privileges"


@dataclass
class _Context:
    """What the readers need beyond one resource: team names by id."""

    team_names: dict[str, str]


# --------------------------------------------------------------------------- postgresql
def _pg_role(rc: Values, before: Values, after: Values, action: str, ctx: _Context):
    name = after.get("name") or before.get("name") or "?"
    principal = f"postgres:{name}"
    address = rc["address"]
    if action == "create":
        login = " (can log in)" if after.get("login") else ""
        yield AccessChange(f"role {name} is created{login}", address, principal)
        for group in _sorted_set(after.get("roles")):
            yield AccessChange(f"role {name} becomes a member of {group}", address, principal)
        return
    if action == "delete":
        yield AccessChange(f"role {name} is dropped", address, principal, removes=True)
        return
    if action == "replace":
        yield AccessChange(
            f"role {name} is dropped and created again (what it was granted outside this "
            "stack is lost)",
            address,
            principal,
        )
    old, new = set(_sorted_set(before.get("roles"))), set(_sorted_set(after.get("roles")))
    for group in sorted(new - old):
        yield AccessChange(f"role {name} becomes a member of {group}", address, principal)
    for group in sorted(old - new):
        yield AccessChange(f"role {name} stops being a member of {group}", address, principal)
    for flag, word in (
        ("superuser", "SUPERUSER"),
        ("login", "LOGIN"),
        ("create_role", "CREATEROLE"),
    ):
        was, now = bool(before.get(flag)), bool(after.get(flag))
        if was != now:
            verb = "gains" if now else "loses"
            removes = flag == "superuser" and was and not now
            yield AccessChange(f"role {name} {verb} {word}", address, principal, removes=removes)


def _grant_target(values: Values) -> str:
    kind = values.get("object_type") or "?"
    database = values.get("database") or "?"
    schema = values.get("schema")
    objects = _sorted_set(values.get("objects"))
    if kind == "database":
        return f"database {database}"
    if kind == "schema":
        return f"schema {schema} (database {database})"
    which = f"{kind}s {', '.join(objects)}" if objects else f"all {kind}s"
    return f"{which} in schema {schema} (database {database})"


def _pg_grant(rc: Values, before: Values, after: Values, action: str, ctx: _Context):
    values = after or before
    role = values.get("role") or "?"
    principal, address = f"postgres:{role}", rc["address"]
    target = _grant_target(values)
    old = _sorted_set(before.get("privileges")) if action != "create" else []
    new = _sorted_set(after.get("privileges")) if action != "delete" else []
    gained = [p for p in new if p not in old]
    lost = [p for p in old if p not in new]
    if gained:
        yield AccessChange(
            f"role {role} gains {_privileges(gained)} on {target}", address, principal
        )
    if lost:
        yield AccessChange(f"role {role} loses {_privileges(lost)} on {target}", address, principal)
    if not gained and not lost and action != "update":
        yield AccessChange(f"the grant of role {role} on {target} is {action}d", address, principal)


def _pg_grant_role(rc: Values, before: Values, after: Values, action: str, ctx: _Context):
    values = after or before
    role, group = values.get("role") or "?", values.get("grant_role") or "?"
    principal = f"postgres:{role}"
    if action in ("create", "replace"):
        yield AccessChange(f"role {role} becomes a member of {group}", rc["address"], principal)
    if action == "delete":
        yield AccessChange(f"role {role} stops being a member of {group}", rc["address"], principal)


# --------------------------------------------------------------------------- github
def _team_name(rc: Values, values: Values, ctx: _Context, unknown: Values) -> str:
    team_id = values.get("team_id")
    if team_id is not None and str(team_id) in ctx.team_names:
        return ctx.team_names[str(team_id)]
    index = rc.get("index")
    if isinstance(index, str) and "/" in index:  # for_each key "team/login" (stacks/iam)
        return index.split("/", 1)[0]
    if unknown.get("team_id"):
        return "(a team created by this plan)"
    return str(team_id) if team_id is not None else "?"


def _github_team(rc: Values, before: Values, after: Values, action: str, ctx: _Context):
    name = after.get("name") or before.get("name") or "?"
    principal = f"team:{name}"
    if action in ("create", "delete"):
        verb = "created" if action == "create" else "deleted"
        yield AccessChange(
            f"team {name} is {verb}", rc["address"], principal, removes=action == "delete"
        )
        return
    if action == "replace":
        yield AccessChange(f"team {name} is deleted and created again", rc["address"], principal)
    for field in ("name", "privacy", "parent_team_id"):
        if before.get(field) != after.get(field) and field in after:
            yield AccessChange(
                f"team {name}: {field} {before.get(field)!r} becomes {after.get(field)!r}",
                rc["address"],
                principal,
            )


def _github_team_membership(rc, before, after, action, ctx: _Context):
    values = after or before
    login = values.get("username") or "?"
    team = _team_name(rc, values, ctx, rc.get("change", {}).get("after_unknown") or {})
    principal = f"github:{login}"
    if action == "create":
        role = after.get("role") or "member"
        yield AccessChange(f"@{login} joins team {team} as {role}", rc["address"], principal)
    elif action == "delete":
        yield AccessChange(f"@{login} leaves team {team}", rc["address"], principal)
    elif before.get("role") != after.get("role"):
        yield AccessChange(
            f"@{login} becomes {after.get('role')} of team {team} (was {before.get('role')})",
            rc["address"],
            principal,
        )


def _github_membership(rc, before, after, action, ctx: _Context):
    values = after or before
    login = values.get("username") or "?"
    principal = f"github:{login}"
    if action == "create":
        role = after.get("role") or "member"
        yield AccessChange(f"@{login} joins the organization as {role}", rc["address"], principal)
    elif action == "delete":
        yield AccessChange(
            f"@{login} leaves the organization", rc["address"], principal, removes=True
        )
    elif before.get("role") != after.get("role"):
        demoted = before.get("role") == "admin"
        yield AccessChange(
            f"@{login} becomes {after.get('role')} of the organization (was {before.get('role')})",
            rc["address"],
            principal,
            removes=demoted,
        )


def _github_permission(subject: str) -> Callable:
    """github_team_repository (``team_id``) and github_repository_collaborator
    (``username``): a permission on a repository."""

    def read(rc, before, after, action, ctx: _Context):
        values = after or before
        if subject == "team":
            who = f"team {_team_name(rc, values, ctx, {})}"
            principal = f"team:{who.removeprefix('team ')}"
        else:
            who = f"@{values.get('username') or '?'}"
            principal = f"github:{values.get('username') or '?'}"
        repository = values.get("repository") or "?"
        old = before.get("permission") if action != "create" else None
        new = after.get("permission") if action != "delete" else None
        if new and new != old:
            yield AccessChange(
                f"{who} gains `{new}` on repository {repository}", rc["address"], principal
            )
        if old and old != new:
            yield AccessChange(
                f"{who} loses `{old}` on repository {repository}", rc["address"], principal
            )

    return read


READERS: dict[str, Callable] = {
    "postgresql_role": _pg_role,
    "postgresql_grant": _pg_grant,
    "postgresql_grant_role": _pg_grant_role,
    "github_team": _github_team,
    "github_team_membership": _github_team_membership,
    "github_membership": _github_membership,
    "github_team_repository": _github_permission("team"),
    "github_repository_collaborator": _github_permission("user"),
}


def _team_names(plan: Values) -> dict[str, str]:
    """Team id -> name, from the state the plan starts from."""
    names: dict[str, str] = {}

    def walk(module: Values) -> None:
        for resource in module.get("resources") or []:
            if resource.get("type") == "github_team":
                values = resource.get("values") or {}
                if values.get("id") is not None and values.get("name"):
                    names[str(values["id"])] = values["name"]
        for child in module.get("child_modules") or []:
            walk(child)

    walk(((plan.get("prior_state") or {}).get("values") or {}).get("root_module") or {})
    return names


def access_changes(plan: Values, *, drift: bool = False) -> list[AccessChange]:
    """The access changes of a ``terraform show -json`` plan, in plan order: what an
    apply would do (``resource_changes``), or with ``drift=True`` what changed outside
    Terraform since the last apply (``resource_drift``)."""
    ctx = _Context(_team_names(plan))
    found: list[AccessChange] = []
    for rc in plan.get("resource_drift" if drift else "resource_changes") or []:
        if rc.get("mode") == "data":
            continue
        change = rc.get("change") or {}
        action = _actions(change)
        if action in ("no-op", "read", ""):
            continue
        before, after = change.get("before") or {}, change.get("after") or {}
        reader = READERS.get(rc.get("type", ""))
        if reader is None:
            found.append(AccessChange(f"{rc.get('address')} is {action}d", rc.get("address", "?")))
            continue
        found.extend(reader(rc, before, after, action, ctx))
    # grouped by who they are about, a principal's creation first (stable: plan order)
    found.sort(key=lambda c: (c.principal, " is created" not in c.sentence))
    return found


PRINCIPAL_KINDS = ("postgres", "github", "team")


def parse_principals(names: list[str]) -> set[str]:
    """``["postgres:breakglass", "github:root-admin", "@ops"]`` -> principals as
    :class:`AccessChange` names them; anything else is a ConfigurationError."""
    parsed = set()
    for name in names:
        text = name.strip()
        if text.startswith("@"):
            text = "github:" + text[1:]
        kind, _, who = text.partition(":")
        if kind.lower() not in PRINCIPAL_KINDS or not who.strip():
            raise ConfigurationError(
                f"break_glass entry {name!r}: write `postgres:<role>`, `github:<login>` (or "
                "`@<login>`) or `team:<name>`"
            )
        parsed.add(f"{kind.lower()}:{who.strip().lower()}")
    return parsed


def removals(changes: list[AccessChange], protected: set[str]) -> list[AccessChange]:
    """The changes that would remove a protected principal (or its admin rights)."""
    return [c for c in changes if c.removes and c.principal.lower() in protected]


def to_markdown(title: str, changes: list[AccessChange]) -> str:
    """A bulleted list under a heading (the artifact, the approval form)."""
    lines = [f"### {title}", ""]
    lines += [f"- {c.sentence}" for c in changes] or ["No change of access."]
    return "\n".join(lines)


__all__ = [
    "AccessChange",
    "access_changes",
    "parse_principals",
    "removals",
    "to_markdown",
]
