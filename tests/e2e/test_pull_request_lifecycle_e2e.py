"""Open -> close -> reopen -> close of one pull request at one head commit, end to end:
four transitions are four events and four automation runs, the environment is alive after
the reopen and gone at the end. Once through the webhook receiver (signed GitHub
deliveries rendered from the GitHub fake's state; the automation runs
`pull-request-watcher`, whose own events about the same transitions are the same events),
once through the watcher alone (runs of `pull-request-watcher`, as a schedule would
start them). Real Prefect server and worker, real terraform, real git.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import textwrap
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from prefect import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.exceptions import ObjectNotFound
from pydantic import SecretStr

from prefect_stacks import events, stack_path
from prefect_stacks.blocks.github import GitHubRepository
from prefect_stacks.blocks.terraform import TerraformStack
from prefect_stacks.blocks.webhooks import WebhookSource
from prefect_stacks.environments import EnvironmentLedger, EnvironmentState
from prefect_stacks.events import automations
from tests.conftest import GitRepo, read_events, wait_for
from tests.fakes.github import FakeGitHub

if TYPE_CHECKING:
    from tests.e2e.conftest import E2E

pytestmark = pytest.mark.e2e

WATCHER = "pull-request-watcher/default"
TOKEN = "ghp_life_" + uuid.uuid4().hex
SECRET = "whsec-" + uuid.uuid4().hex


class Lifecycle:
    """One repository on the GitHub fake, its blocks, and an automation that runs the
    pull-request watcher on every `stacks.pull-request.*` event about it."""

    def __init__(self, e2e: E2E, gh: FakeGitHub, tmp_path: Path, tag: str) -> None:
        self.e2e, self.gh, self.tag = e2e, gh, tag
        self.full_name = f"acme/life-{tag}"
        gh.add_repository(self.full_name)
        self.repo = GitRepo(tmp_path, f"life-{tag}")
        self.repo.commit("main")
        stack = f"webapp-life-{tag}"
        TerraformStack(
            source=str(stack_path("local-webapp")), state_dir=str(e2e.root / f"life-{tag}")
        ).save(stack)
        block = GitHubRepository(
            owner="acme",
            repo=f"life-{tag}",
            token=SecretStr(TOKEN),
            api_url=gh.api_url,
            clone_url=str(self.repo.bare),
            retry_backoff=0.2,
        )
        block.save(f"gh-life-{tag}")
        self.params = {
            "repository": f"gh-life-{tag}",
            "stack": stack,
            "watcher": f"pr-life-{tag}",
            "variables": {"name": f"life-{tag}"},
        }
        self.repository = events.normalize_repository(block.github_clone_url())
        self.ledger = EnvironmentLedger()

    def automate(self, directory: Path) -> None:
        directory.mkdir()
        parameters = json.dumps(self.params)
        (directory / "life.yaml").write_text(
            textwrap.dedent(
                f"""
                automations:
                  - name: e2e-pr-lifecycle-{self.tag}
                    trigger:
                      expect: ["stacks.pull-request.*"]
                      match: {{stacks.repository: "{self.repository}"}}
                    actions:
                      - type: run-deployment
                        deployment: {WATCHER}
                        parameters: {parameters}
                """
            )
        )
        assert automations.apply(directory)["created"]

    def automation_runs(self) -> list[Any]:
        """Runs of the watcher for this repository that an automation created (they
        carry the triggered action's idempotency key; runs started here do not)."""
        with get_client(sync_client=True) as client:
            deployment_id = client.read_deployment_by_name(WATCHER).id
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
            )
        return [
            r
            for r in runs
            if r.parameters.get("watcher") == self.params["watcher"] and r.idempotency_key
        ]

    def transition_events(self, number: int) -> list[dict[str, Any]]:
        resource = f"stacks.pull-request.{self.repository}#{number}"
        found = read_events(resource_id=resource, at_least=4)
        return sorted(found, key=lambda e: e["occurred"])

    def alive(self, number: int, sha: str):
        def check():
            env = self.ledger.find(f"PR_{number}")
            ok = env and env.state == EnvironmentState.ready and env.deployed_version == sha
            return env if ok and env.url and sha in _page(env.url) else None

        return check

    @staticmethod
    def has_deployment(number: int) -> bool:
        """Whether the pull request's own deployment exists on the server."""
        with get_client(sync_client=True) as client:
            try:
                client.read_deployment_by_name(f"feature-environment/PR_{number}")
            except ObjectNotFound:
                return False
        return True

    def gone(self, number: int):
        def check():
            env = self.ledger.find(f"PR_{number}")
            return env is None or env.state == EnvironmentState.destroyed

        return check

    def settle(self, expected_runs: int) -> list[Any]:
        """Wait until the automation made ``expected_runs`` runs and all are final, then a
        little longer, so that a surplus run would be seen."""
        wait_for(
            f"{expected_runs} automation runs, all final",
            lambda: (
                len(runs := self.automation_runs()) >= expected_runs
                and all(r.state and r.state.is_final() for r in runs)
            ),
            timeout=240,
        )
        time.sleep(4)
        return self.automation_runs()


def _page(url: str) -> str:
    try:
        response = httpx.get(url, timeout=2)
    except httpx.HTTPError:
        return ""
    return response.text if response.status_code == 200 else ""


def _deliver(receiver: str, source: str, payload: dict[str, Any], delivery: str) -> str:
    body = json.dumps(payload).encode()
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    answer = httpx.post(
        f"{receiver}/hooks/{source}",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": "pull_request",
            "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": f"sha256={digest}",
        },
        timeout=30,
    )
    assert answer.status_code == 202 and answer.json()["status"] == "accepted", answer.text
    return answer.json()["events"][0]


@pytest.fixture
def github():
    with FakeGitHub(tokens={TOKEN: "bot"}, repos=[]) as gh:
        yield gh


@pytest.mark.timeout(900)
def test_lifecycle_through_the_receiver(e2e: E2E, receiver: str, github, tmp_path: Path):
    life = Lifecycle(e2e, github, tmp_path, uuid.uuid4().hex[:6])
    life.automate(tmp_path / "automations")
    source = f"github-life-{life.tag}"
    WebhookSource(kind="github", secret=SecretStr(SECRET)).save(source)
    sha = life.repo.commit("feat/life")
    number = github.open_pull_request("Life", head="feat/life", sha=sha, repo=life.full_name)
    gh = github

    def deliver(action: str) -> str:
        payload = gh.webhook_payload(action, number, repo=life.full_name)
        return _deliver(receiver, source, payload, str(uuid.uuid4()))

    try:
        ids = [deliver("opened")]
        wait_for("PR alive after opened", life.alive(number, sha), timeout=240)
        time.sleep(1.1)  # GitHub's times are to the second
        gh.close(number, repo=life.full_name)
        ids.append(deliver("closed"))
        wait_for("PR gone after closed", life.gone(number), timeout=240)
        time.sleep(1.1)
        gh.reopen(number, repo=life.full_name)
        reopened = gh.webhook_payload("reopened", number, repo=life.full_name)
        ids.append(_deliver(receiver, source, reopened, str(uuid.uuid4())))
        wait_for("PR alive after reopened", life.alive(number, sha), timeout=240)
        # the reopen delivered again under another delivery id: the same event
        assert _deliver(receiver, source, reopened, str(uuid.uuid4())) == ids[2]
        time.sleep(1.1)
        gh.close(number, repo=life.full_name)
        ids.append(deliver("closed"))
        wait_for("PR gone at the end", life.gone(number), timeout=240)
    finally:
        if gh.pull_request(number, repo=life.full_name).state == "open":
            gh.close(number, repo=life.full_name)
            e2e.run(WATCHER, life.params)

    assert len(set(ids)) == 4
    runs = life.settle(4)
    assert len(runs) == 4, [(r.name, r.state.type) for r in runs]
    assert all(r.state.is_completed() for r in runs), [e2e.explain(r) for r in runs]
    # the watcher's own events about these transitions were the webhook's events
    stored = life.transition_events(number)
    assert sorted(e["id"] for e in stored) == sorted(ids), [(e["event"], e["id"]) for e in stored]


@pytest.mark.timeout(900)
def test_lifecycle_through_the_watcher(e2e: E2E, github, tmp_path: Path):
    life = Lifecycle(e2e, github, tmp_path, uuid.uuid4().hex[:6])
    life.automate(tmp_path / "automations")
    gh = github
    sha = life.repo.commit("feat/life")
    number = gh.open_pull_request("Life", head="feat/life", sha=sha, repo=life.full_name)

    def poll():
        run = e2e.run(WATCHER, life.params)
        assert run.state.is_completed(), e2e.explain(run)

    try:
        poll()
        wait_for("PR alive after opened", life.alive(number, sha), timeout=240)
        time.sleep(1.1)
        gh.close(number, repo=life.full_name)
        poll()
        wait_for("PR gone after closed", life.gone(number), timeout=240)
        time.sleep(1.1)
        gh.reopen(number, repo=life.full_name)
        poll()
        wait_for("PR alive after reopened", life.alive(number, sha), timeout=240)
        assert life.has_deployment(number)  # recreated with the environment
        time.sleep(1.1)
        gh.close(number, repo=life.full_name)
        poll()
        wait_for("PR gone at the end", life.gone(number), timeout=240)
        assert not life.has_deployment(number)
    finally:
        if gh.pull_request(number, repo=life.full_name).state == "open":
            gh.close(number, repo=life.full_name)
            e2e.run(WATCHER, life.params)

    runs = life.settle(4)
    assert len(runs) == 4, [(r.name, r.state.type) for r in runs]
    stored = life.transition_events(number)
    assert [e["event"] for e in stored] == [
        "stacks.pull-request.opened",
        "stacks.pull-request.closed",
        "stacks.pull-request.opened",
        "stacks.pull-request.closed",
    ]
    assert len({e["id"] for e in stored}) == 4
