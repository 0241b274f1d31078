"""The IAM stack end to end on a throwaway Prefect server, with real terraform, the real
postgresql provider and a real PostgreSQL: a change to the access file told in words,
approved in the typed form and applied (roles and grants checked in PostgreSQL); an
approval that names another plan, or a plan file changed after the approval, applies
nothing; self-approval refused with four eyes; a break-glass role's removal refused
before anyone is asked; drift made by hand told once and its resolution once, with no
apply ever run by the check."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest
import yaml
from prefect import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.client.schemas.sorting import ArtifactSort
from prefect.flow_engine import flow_run_logger, run_flow
from prefect.flow_runs import resume_flow_run
from prefect.states import Failed

from prefect_stacks import stack_path
from prefect_stacks.approvals import ApprovalInput, plan_sha256, refusal
from prefect_stacks.blocks.slack import SlackChannel
from prefect_stacks.blocks.terraform import PlanSummary, TerraformStack
from prefect_stacks.flows.iam import iam_apply
from prefect_stacks.flows.stacks import drift_check
from tests.conftest import read_events, require_provider, wait_for
from tests.fakes.github_orgs import FakeGitHubOrgs
from tests.fakes.slack import FakeSlack

pytestmark = pytest.mark.integration

SLACK_TOKEN = "xoxb-iam"
GITHUB_TOKEN = "ghp_iam_" + uuid.uuid4().hex

BASE_ACCESS = {
    "database_roles": {
        "readers": {
            "grants": [
                {"database": "app", "object_type": "database", "privileges": ["CONNECT"]},
                {
                    "database": "app",
                    "schema": "billing",
                    "object_type": "schema",
                    "privileges": ["USAGE"],
                },
                {
                    "database": "app",
                    "schema": "billing",
                    "object_type": "table",
                    "privileges": ["SELECT"],
                },
            ]
        },
        "writers": {
            "grants": [
                {
                    "database": "app",
                    "schema": "billing",
                    "object_type": "table",
                    "privileges": ["INSERT", "SELECT"],
                },
            ]
        },
    },
    "people": {"alice": {"database_roles": ["writers"]}, "bob": {"database_roles": ["readers"]}},
    "service_accounts": {"breakglass": {"database_roles": ["writers"]}},
}


class Access:
    """A copy of stacks/iam with its own access file, its block, and psql on the test
    PostgreSQL."""

    def __init__(
        self, root: Path, postgres: str, mirror: Path, github: FakeGitHubOrgs | None = None
    ) -> None:
        self.postgres = postgres
        self.source = root / "iam"
        shutil.copytree(stack_path("iam"), self.source)
        port = int(postgres.rsplit(":", 1)[1].split("/", 1)[0])
        self.block = f"iam-{uuid.uuid4().hex[:6]}"
        variables = {"postgres_port": port, "postgres_sslmode": "disable"}
        env = {}
        if github is not None:
            variables |= {
                "github_owner": "acme",
                "github_base_url": github.api_url.rstrip("/") + "/",
                "github_write_delay_ms": 10,
            }
            env["GITHUB_TOKEN"] = GITHUB_TOKEN
        TerraformStack(
            source=str(self.source),
            provider_mirror=str(mirror),
            state_dir=str(root / "state"),
            variables=variables,
            env=env,
            parallelism=1,  # the postgresql provider's grants (docs/iam.md)
        ).save(self.block)
        self.write(BASE_ACCESS)

    def apply(self) -> None:
        """Apply the access file directly (no flow, no approval): a test's starting point."""
        with TerraformStack.load(self.block).prepare() as workdir:
            workdir.init()
            workdir.apply(workdir.plan())

    def write(self, access: dict) -> None:
        (self.source / "access.yaml").write_text(yaml.safe_dump(access))

    def psql(self, sql: str, database: str = "app") -> str:
        dsn = self.postgres.rsplit("/", 1)[0] + f"/{database}"
        return subprocess.run(
            ["psql", dsn, "-tAc", sql], capture_output=True, text=True, check=True
        ).stdout.strip()

    def can(self, role: str, privilege: str, table: str = "billing.invoices") -> bool:
        return self.psql(f"SELECT has_table_privilege('{role}', '{table}', '{privilege}')") == "t"

    def exists(self, role: str) -> bool:
        return self.psql(f"SELECT count(*) FROM pg_roles WHERE rolname = '{role}'") == "1"


@pytest.fixture(scope="module")
def database(postgres: str) -> str:
    admin = postgres.rsplit("/", 1)[0] + "/postgres"
    subprocess.run(
        ["psql", admin, "-c", "DROP DATABASE IF EXISTS app"], check=True, capture_output=True
    )
    subprocess.run(["psql", admin, "-c", "CREATE DATABASE app"], check=True, capture_output=True)
    app = postgres.rsplit("/", 1)[0] + "/app"
    subprocess.run(
        ["psql", app, "-c", "CREATE SCHEMA billing; CREATE TABLE billing.invoices (id int)"],
        check=True,
        capture_output=True,
    )
    return postgres


ROLES = ("readers", "writers", "alice", "bob", "carol", "breakglass")


def drop_roles(access: Access) -> None:
    """Roles are the cluster's, not the test's: each test starts without them."""
    for role in ROLES:
        if access.exists(role):
            access.psql(f"DROP OWNED BY {role}; DROP ROLE {role}")


@pytest.fixture
def access(prefect_harness, database, terraform_bin, terraform_mirror, tmp_path):
    require_provider("postgresql")
    made = Access(tmp_path, database, terraform_mirror)
    drop_roles(made)
    yield made
    drop_roles(made)


@pytest.fixture
def slack():
    with FakeSlack(tokens=[SLACK_TOKEN], channels=["access"]) as fake:
        block = f"slack-{uuid.uuid4().hex[:6]}"
        SlackChannel(bot_token=SLACK_TOKEN, channel="#access", api_url=fake.api_url).save(block)
        fake.block = block
        yield fake


def start(parameters: dict):
    """iam-apply as a worker would run it, in a thread; returns (run id, thread)."""
    with get_client(sync_client=True) as client:
        created = client.create_flow_run(iam_apply, parameters=parameters)

    def go():
        try:
            run_flow(iam_apply, flow_run=created, error_logger=flow_run_logger(flow_run=created))
        except Exception:  # the run's state says what happened
            pass

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    return created.id, thread


def state_of(run_id):
    with get_client(sync_client=True) as client:
        return client.read_flow_run(run_id).state


def paused(run_id) -> None:
    wait_for("iam-apply to wait for approval", lambda: state_of(run_id).is_paused(), timeout=180)


def finished(run_id, thread):
    thread.join(180)
    return state_of(run_id)


def newest_artifact(key: str) -> str:
    with get_client(sync_client=True) as client:
        (artifact,) = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
            sort=ArtifactSort.CREATED_DESC,
            limit=1,
        )
    return artifact.data


def access_summary(block: str) -> str:
    return newest_artifact(f"access-{block}-default")


def approve(access: Access, parameters: dict, approver: str = "bob", **answer) -> object:
    run_id, thread = start({"stack": access.block, **parameters})
    paused(run_id)
    run_input = {"decision": "approve", "approver": approver, **answer}
    resume_flow_run(run_id, run_input=run_input)
    return run_id, finished(run_id, thread)


def with_github(access: dict) -> dict:
    """The access file, with GitHub: two teams, and the people's logins and teams."""
    access = yaml.safe_load(yaml.safe_dump(access))
    access["teams"] = {"platform": {"description": "Platform"}, "billing": {}}
    access["people"]["alice"] |= {"github": "alice", "teams": {"platform": "maintainer"}}
    access["people"]["bob"] |= {
        "github": "bob",
        "teams": {"platform": "member", "billing": "member"},
    }
    return access


def test_a_change_told_in_words_approved_and_applied(
    prefect_harness, database, terraform_bin, terraform_mirror, tmp_path, slack
):
    require_provider("postgresql")
    require_provider("github")
    with FakeGitHubOrgs(
        tokens={GITHUB_TOKEN: "iam-bot"}, orgs=["acme"], users=["alice", "bob", "carol"]
    ) as github:
        access = Access(tmp_path, database, terraform_mirror, github)
        drop_roles(access)
        try:
            changed_and_applied(access, github, slack)
        finally:
            drop_roles(access)


def changed_and_applied(access: Access, github: FakeGitHubOrgs, slack) -> None:
    access.write(with_github(BASE_ACCESS))
    _, first = approve(access, {"requested_by": "alice", "slack": slack.block})
    assert first.is_completed(), first.message
    assert access.can("bob", "SELECT") and not access.can("bob", "INSERT")
    assert access.can("alice", "INSERT")
    assert github.team_members("platform") == {"alice": "maintainer", "bob": "member"}
    assert github.team_members("billing") == {"bob": "member"}

    changed = with_github(BASE_ACCESS)
    changed["people"]["carol"] = {
        "database_roles": ["readers"],
        "github": "carol",
        "teams": {"platform": "member"},
    }
    changed["people"]["bob"]["teams"] = {"platform": "maintainer"}
    changed["database_roles"]["writers"]["grants"][0]["privileges"] = ["SELECT"]
    access.write(changed)
    run_id, second = approve(access, {"requested_by": "alice", "slack": slack.block})
    assert second.is_completed(), second.message
    summary = access_summary(access.block)
    for sentence in (
        "role carol is created (can log in)",
        "role carol becomes a member of readers",
        "role writers loses INSERT on all tables in schema billing (database app)",
        "@carol joins the organization as member",
        "@carol joins team platform as member",
        "@bob becomes maintainer of team platform (was member)",
        "@bob leaves team billing",
    ):
        assert sentence in summary, summary
    assert second.message == (
        f"applied 7 access change(s) to {access.block}/default, approved by bob"
    )
    assert access.can("carol", "SELECT") and not access.can("alice", "INSERT")
    assert github.team_members("platform") == {
        "alice": "maintainer",
        "bob": "maintainer",
        "carol": "member",
    }
    assert github.team_members("billing") == {}
    assert github.org_members()["carol"] == "member"
    texts = [m.text or "" for m in slack.messages]
    assert any("waiting for approval" in t and "role carol is created" in t for t in texts)
    assert texts[-1].startswith(":white_check_mark:")


def test_self_approval_is_refused_with_four_eyes(access: Access):
    run_id, state = approve(access, {"requested_by": "Alice"}, approver="alice")
    assert state.is_failed()
    assert "alice requested this run and cannot approve it too (four_eyes)" in state.message
    # the decision's record does not say "approved" any more
    assert newest_artifact(f"approval-{access.block}-default").startswith("### Approval refused")
    assert not access.exists("carol") and not access.exists("alice")  # nothing applied


def test_four_eyes_without_a_requester_is_a_configuration_error(access: Access):
    state = iam_apply(stack=access.block, return_state=True)
    assert state.is_failed() and "set requested_by" in state.message


def test_an_answer_naming_another_plan_is_refused(prefect_harness, tmp_path):
    plan_file = tmp_path / "apply.tfplan"
    plan_file.write_bytes(b"the plan shown")
    plan = PlanSummary(stack="iam", workspace="default", add=1, plan_file=str(plan_file))
    shown = plan_sha256(plan)
    answer = ApprovalInput(decision="approve", approver="bob", plan_sha256="0" * 64)
    state, message = refusal((answer, shown), plan, 60, rerun="iam-apply")
    assert state is Failed
    assert "is for plan 000000000000, not the plan of this run" in message
    same = ApprovalInput(decision="approve", approver="bob", plan_sha256=shown.upper())
    assert refusal((same, shown), plan, 60, rerun="iam-apply") is None


def test_a_plan_file_changed_after_the_approval_applies_nothing(access: Access):
    began = time.time()
    run_id, thread = start({"stack": access.block, "requested_by": "alice"})
    paused(run_id)
    # the plan file the paused run will apply: the one made since it started (the
    # runs before it removed theirs)
    plans = [
        p
        for p in Path(tempfile.gettempdir()).glob("prefect-stacks-*/apply.tfplan")
        if p.stat().st_mtime >= began
    ]
    assert len(plans) == 1
    plans[0].write_bytes(plans[0].read_bytes() + b"\0")  # changed after it was shown
    resume_flow_run(run_id, run_input={"decision": "approve", "approver": "bob"})
    state = finished(run_id, thread)
    assert state.is_failed() and "the plan file changed after it was approved" in state.message
    assert not access.exists("alice")


def test_removing_a_break_glass_role_is_refused_before_anyone_is_asked(access: Access, slack):
    access.apply()
    without = yaml.safe_load(yaml.safe_dump(BASE_ACCESS))
    del without["service_accounts"]["breakglass"]
    access.write(without)
    state = iam_apply(
        stack=access.block,
        requested_by="alice",
        break_glass=["postgres:breakglass"],
        slack=slack.block,
        return_state=True,
    )
    assert state.is_failed()
    assert "refused before approval" in state.message and "postgres:breakglass" in state.message
    assert "role breakglass is dropped" in state.message
    assert access.exists("breakglass")
    assert [m.text for m in slack.messages if "waiting for approval" in (m.text or "")] == []


def test_drift_is_told_once_and_its_resolution_once_and_nothing_is_applied(access: Access, slack):
    access.apply()
    check = {"stack": access.block, "slack": slack.block}
    assert drift_check(**check)["told"] == "in sync"

    access.psql("REVOKE SELECT ON ALL TABLES IN SCHEMA billing FROM readers")
    # a rule that ignores it: no drift, nothing told or recorded, what was ignored listed
    quiet = drift_check(**check, ignore=['postgresql_grant.grant["readers/*"]'])
    assert quiet["drifted"] is False and quiet["told"] == "in sync"
    assert quiet["ignored"] == ['postgresql_grant.grant["readers/app/billing/table"]']
    found = drift_check(**check)
    assert found["told"] == "drifted" and found["drifted"]
    assert found["resources"] == ['postgresql_grant.grant["readers/app/billing/table"]']
    again = drift_check(**check)
    assert again["told"] == "still drifted"
    assert not access.can("bob", "SELECT")  # the check applied nothing
    (told,) = [m.text or "" for m in slack.messages if "drifted" in (m.text or "")]
    assert "role readers loses SELECT on all tables in schema billing (database app)" in told
    events = read_events("stacks.stack.drifted", f"stacks.stack.{access.block}/default")
    assert len(events) == 1 and events[0]["payload"]["count"] == 1

    access.psql("GRANT SELECT ON ALL TABLES IN SCHEMA billing TO readers")
    assert drift_check(**check)["told"] == "resolved"
    assert drift_check(**check)["told"] == "in sync"
    resolved = [m.text or "" for m in slack.messages if "back in sync" in (m.text or "")]
    assert len(resolved) == 1
    assert read_events("stacks.stack.drift-resolved", f"stacks.stack.{access.block}/default")


def test_a_drift_check_of_a_workspace_never_applied_says_so(access: Access):
    state = drift_check(stack=access.block, workspace="nowhere", return_state=True)
    assert state.is_failed()
    assert "workspace 'nowhere' does not exist, so there is nothing to check" in state.message
