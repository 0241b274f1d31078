"""pull-request-watcher against the GitHub REST fake on a real (throwaway) Prefect server,
without a worker: which pull requests get an environment (base, labels, drafts), what
happens to one that stops matching, and that a failing listing changes nothing. The
deploy runs it creates stay scheduled here; tests/e2e runs them."""

from __future__ import annotations

import uuid

import pytest
from prefect import get_client
from pydantic import SecretStr

from prefect_stacks.blocks.github import GitHubRepository
from prefect_stacks.environments import EnvironmentLedger, EnvironmentState
from prefect_stacks.flows.pull_requests import (
    feature_environment_cleanup,
    pull_request_watcher,
)
from tests.fakes.github import FakeGitHub

pytestmark = pytest.mark.integration
TOKEN = "ghp_watch_" + uuid.uuid4().hex


@pytest.fixture
def github(prefect_harness):
    feature_environment_cleanup.to_deployment(name="default").apply()
    from prefect.client.schemas.actions import WorkPoolCreate

    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name="local", type="process"))
        except Exception:  # noqa: BLE001 - exists already
            pass
    owner = "o" + uuid.uuid4().hex[:6]
    with FakeGitHub(tokens={TOKEN: "bot"}, repos=[f"{owner}/shop"]) as gh:
        block = f"gh-{owner}"
        GitHubRepository(
            owner=owner, repo="shop", token=SecretStr(TOKEN), api_url=gh.api_url, retry_backoff=0
        ).save(block)
        yield gh, block, f"{owner}/shop"


def scheduled_shas(name: str) -> list[str]:
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(f"feature-environment/{name}")
        from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id]))
        )
    return [r.parameters["sha"] for r in runs if r.state and r.state.is_scheduled()]


def test_filters_and_a_pull_request_that_stops_matching(github):
    gh, block, repo = github
    wanted = gh.open_pull_request("wanted", head="a", labels=["preview"], repo=repo)
    draft = gh.open_pull_request("draft", head="b", labels=["preview"], draft=True, repo=repo)
    unlabeled = gh.open_pull_request("unlabeled", head="c", repo=repo)
    other_base = gh.open_pull_request(
        "other base", head="d", base="release", labels=["preview"], repo=repo
    )
    watcher = "pr-" + uuid.uuid4().hex[:8]
    params = {"repository": block, "base": "main", "labels": ["preview"], "watcher": watcher}

    report = pull_request_watcher(**params)
    assert report["opened"] == [wanted]
    ledger = EnvironmentLedger()
    env = ledger.get(f"PR_{wanted}")
    assert env.kind == "pr" and env.expires_at is None
    sha = gh.pull_request(wanted, repo=repo).head_sha
    assert env.desired_version == sha and scheduled_shas(f"PR_{wanted}") == [sha]
    for number in (draft, unlabeled, other_base):
        assert ledger.find(f"PR_{number}") is None

    # nothing changed: nothing to do
    assert not any(pull_request_watcher(**params)[k] for k in ("opened", "updated", "closed"))

    # a new commit supersedes the queued run of the old one
    new_sha = gh.push(wanted, repo=repo)
    assert pull_request_watcher(**params)["updated"] == [wanted]
    assert scheduled_shas(f"PR_{wanted}") == [new_sha]
    assert ledger.get(f"PR_{wanted}").desired_version == new_sha

    # it becomes a draft: no longer wanted, but open: the environment is kept
    gh.update_pull_request(wanted, draft=True, repo=repo)
    report = pull_request_watcher(**params)
    assert report["kept"] == [wanted] and not report["closed"]
    assert ledger.get(f"PR_{wanted}").state != EnvironmentState.destroyed


def test_a_failing_listing_changes_nothing(github):
    gh, block, repo = github
    number = gh.open_pull_request("one", head="x", repo=repo)
    watcher = "pr-" + uuid.uuid4().hex[:8]
    params = {"repository": block, "watcher": watcher}
    assert pull_request_watcher(**params)["opened"] == [number]
    state_before = EnvironmentLedger().get(f"PR_{number}")

    gh.fail(50, status=500, path_prefix=f"/repos/{repo}/pulls")
    assert pull_request_watcher(**params, return_state=True).is_failed()
    gh.reset()
    gh.empty_listing_with_error()
    assert pull_request_watcher(**params, return_state=True).is_failed()
    gh.reset()
    env = EnvironmentLedger().get(f"PR_{number}")
    assert env.state == state_before.state and env.revision == state_before.revision

    # GitHub confirms nothing: a vanished PR whose GET fails is kept
    gh.close(number, repo=repo)
    gh.fail(50, status=502, path_prefix=f"/repos/{repo}/pulls/{number}")
    report = pull_request_watcher(**params)
    assert report["kept"] == [number] and not report["closed"]
    gh.reset()
    report = pull_request_watcher(**params)
    assert report["closed"] == [number]  # confirmed closed: cleanup run created


def test_bad_input(github):
    gh, block, repo = github
    state = pull_request_watcher(repository="no-such-block", return_state=True)
    assert state.is_failed() and "no GitHubRepository block named" in state.message
    number = gh.open_pull_request("x", head="x", repo=repo)
    # PR_<n> names are per server (one watched repository per ledger): another test's
    # PR_1 may exist; remove its deployment so this one is created
    with get_client(sync_client=True) as client:
        try:
            client.delete_deployment(
                client.read_deployment_by_name(f"feature-environment/PR_{number}").id
            )
        except Exception:  # noqa: BLE001 - not there
            pass
    state = pull_request_watcher(repository=block, work_pool="nope", return_state=True)
    assert state.is_failed() and "work_pool names the pool" in state.message
