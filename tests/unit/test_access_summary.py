"""The access summary and the drift reading, from plan JSON in the shape
`terraform show -json` gives (resource_changes, resource_drift, prior_state)."""

from __future__ import annotations

import pytest

from prefect_stacks.blocks.terraform import AttributeChange, PlanSummary, ResourceChange
from prefect_stacks.drift import IgnoreRule, read_drift
from prefect_stacks.exceptions import ConfigurationError
from prefect_stacks.iam.summary import access_changes, parse_principals, removals


def rc(address: str, kind: str, actions: list[str], before=None, after=None, **extra):
    index = extra.pop("index", None)
    entry = {
        "address": address,
        "mode": "managed",
        "type": kind,
        "change": {"actions": actions, "before": before, "after": after, **extra},
    }
    if index is not None:
        entry["index"] = index
    return entry


def sentences(plan: dict, **kw) -> list[str]:
    return [c.sentence for c in access_changes(plan, **kw)]


def test_team_memberships_name_their_team_from_the_state_or_the_key():
    plan = {
        "prior_state": {
            "values": {
                "root_module": {
                    "resources": [
                        {"type": "github_team", "values": {"id": "42", "name": "platform"}}
                    ]
                }
            }
        },
        "resource_changes": [
            rc(
                'github_team_membership.m["platform/alice"]',
                "github_team_membership",
                ["update"],
                {"team_id": "42", "username": "alice", "role": "member"},
                {"team_id": "42", "username": "alice", "role": "maintainer"},
            ),
            rc(
                'github_team_membership.m["infra/dan"]',
                "github_team_membership",
                ["create"],
                None,
                {"username": "dan", "role": "member"},
                index="infra/dan",
                after_unknown={"team_id": True},
            ),
            rc(
                "github_team.t",
                "github_team",
                ["create"],
                None,
                {"name": "infra", "privacy": "closed"},
            ),
        ],
    }
    assert sentences(plan) == [
        "@alice becomes maintainer of team platform (was member)",
        "@dan joins team infra as member",
        "team infra is created",
    ]


def test_privileges_gained_and_lost_in_one_update():
    grant = {"role": "ci", "database": "app", "schema": "billing", "object_type": "table"}
    plan = {
        "resource_changes": [
            rc(
                "postgresql_grant.g",
                "postgresql_grant",
                ["update"],
                {**grant, "privileges": ["SELECT", "INSERT"]},
                {**grant, "privileges": ["SELECT", "UPDATE"]},
            )
        ]
    }
    assert sentences(plan) == [
        "role ci gains UPDATE on all tables in schema billing (database app)",
        "role ci loses INSERT on all tables in schema billing (database app)",
    ]


def test_what_removes_a_principal():
    plan = {
        "resource_changes": [
            rc(
                "github_membership.m",
                "github_membership",
                ["update"],
                {"username": "root", "role": "admin"},
                {"username": "root", "role": "member"},
            ),
            rc("github_membership.o", "github_membership", ["delete"], {"username": "ops"}, None),
            rc("postgresql_role.r", "postgresql_role", ["delete"], {"name": "bg"}, None),
            rc(
                "postgresql_role.s",
                "postgresql_role",
                ["update"],
                {"name": "dba", "superuser": True},
                {"name": "dba", "superuser": False},
            ),
            rc(
                "github_team_membership.x",
                "github_team_membership",
                ["delete"],
                {"username": "root", "team_id": "1", "role": "member"},
                None,
            ),
        ]
    }
    changes = access_changes(plan)
    removing = {c.principal for c in changes if c.removes}
    assert removing == {"github:root", "github:ops", "postgres:bg", "postgres:dba"}
    protected = parse_principals(["@Root", "postgres:bg"])
    assert [c.sentence for c in removals(changes, protected)] == [
        "@root becomes member of the organization (was admin)",
        "role bg is dropped",
    ]


@pytest.mark.parametrize("bad", ["root", "aws:admin", "postgres:", ":x"])
def test_a_break_glass_entry_must_say_what_it_is(bad: str):
    with pytest.raises(ConfigurationError, match="postgres:<role>"):
        parse_principals([bad])


def test_drift_is_read_from_resource_drift_and_an_unknown_type_by_its_address():
    plan = {
        "resource_drift": [
            rc(
                'postgresql_grant.g["readers/app/billing/table"]',
                "postgresql_grant",
                ["update"],
                {
                    "role": "readers",
                    "database": "app",
                    "schema": "billing",
                    "object_type": "table",
                    "privileges": ["SELECT"],
                },
                {
                    "role": "readers",
                    "database": "app",
                    "schema": "billing",
                    "object_type": "table",
                    "privileges": [],
                },
            )
        ],
        "resource_changes": [rc("random_pet.p", "random_pet", ["create"], None, {})],
    }
    assert sentences(plan, drift=True) == [
        "role readers loses SELECT on all tables in schema billing (database app)"
    ]
    assert sentences(plan) == ["random_pet.p is created"]


def summary(*resources: ResourceChange) -> PlanSummary:
    return PlanSummary(
        stack="iam", workspace="default", change=len(resources), resources=list(resources)
    )


def test_ignore_rules_by_address_and_by_attribute():
    team = ResourceChange(
        address='github_team.team["platform"]',
        actions=["update"],
        changes=[AttributeChange(path="description", before="edited", after="Platform")],
    )
    both = ResourceChange(
        address='github_team.team["billing"]',
        actions=["update"],
        changes=[
            AttributeChange(path="description", before="x", after="y"),
            AttributeChange(path="privacy", before="secret", after="closed"),
        ],
    )
    grant = ResourceChange(
        address='postgresql_grant.grant["readers/app/x/table"]', actions=["update"]
    )
    rules = [
        IgnoreRule.parse("github_team.team[*]:description"),
        IgnoreRule.parse('postgresql_grant.grant["readers/*"]'),
    ]
    drift = read_drift(summary(team, both, grant), {}, rules)
    assert [rc.address for rc in drift.resources] == ['github_team.team["billing"]']
    assert [c.path for c in drift.resources[0].changes] == ["privacy"]
    assert drift.ignored == [
        'github_team.team["platform"]',
        'github_team.team["billing"]:description',
        'postgresql_grant.grant["readers/app/x/table"]',
    ]
    assert drift.drifted and "1 resource(s) differ" in drift.headline()
    assert not read_drift(summary(team), {}, rules).drifted
    # the same drift, the same digest; another value, another digest
    assert read_drift(summary(both), {}, []).digest == read_drift(summary(both), {}, []).digest
    moved = both.model_copy(
        update={"changes": [AttributeChange(path="privacy", before="a", after="closed")]}
    )
    assert read_drift(summary(moved), {}, []).digest != read_drift(summary(both), {}, []).digest


def test_an_empty_ignore_rule_names_the_form():
    with pytest.raises(ConfigurationError, match="ADDRESS:ATTRIBUTE"):
        IgnoreRule.parse(":description")
