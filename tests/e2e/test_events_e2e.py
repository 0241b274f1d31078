"""Webhook -> event -> automation -> flow run, end to end on the real server and worker:
`prefect-stacks webhooks serve` runs as its own process, a correctly signed GitHub `push`
delivery goes to it over HTTP, and the automation applied from YAML starts
`stack-plan/local-webapp` with parameters templated from the event, which the worker
runs to Completed. A forged delivery and a replayed one start nothing."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import textwrap
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from prefect import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from pydantic import SecretStr

from prefect_stacks import events
from prefect_stacks.events import automations

if TYPE_CHECKING:
    from tests.e2e.conftest import E2E

pytestmark = pytest.mark.e2e

PLAN = "stack-plan/local-webapp"


def plan_runs() -> list:
    with get_client(sync_client=True) as client:
        deployment_id = client.read_deployment_by_name(PLAN).id
        return client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
        )


def runs_for(sha: str) -> list:
    return [
        r
        for r in plan_runs()
        if (r.parameters.get("variables") or {}).get("app_version") == sha[:12]
    ]


def github_push(repository: str, branch: str, sha: str, before: str) -> bytes:
    return json.dumps(
        {
            "ref": f"refs/heads/{branch}",
            "before": before,
            "after": sha,
            "created": False,
            "deleted": False,
            "forced": False,
            "repository": {
                "full_name": repository.split("github.com/")[1],
                "clone_url": f"https://{repository}.git",
                "html_url": f"https://{repository}",
            },
            "pusher": {"name": "alice"},
            "head_commit": {"id": sha, "message": "change"},
        }
    ).encode()


def signed(body: bytes, secret: str, delivery: str) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": f"sha256={digest}",
        "User-Agent": "GitHub-Hookshot/e2e",
    }


@pytest.mark.timeout(300)
def test_signed_push_runs_the_automation_forged_and_replayed_do_not(
    e2e: E2E, receiver: str, tmp_path: Path
):
    from prefect_stacks.blocks.webhooks import WebhookSource

    secret = secrets.token_hex(16)
    source = "github-e2e-" + uuid.uuid4().hex[:6]
    WebhookSource(kind="github", secret=SecretStr(secret)).save(source)
    repository = f"github.com/acme/e2e-{uuid.uuid4().hex[:6]}"
    variables = e2e.webapp_variables("events")
    directory = tmp_path / "automations"
    directory.mkdir()
    (directory / "e2e.yaml").write_text(
        textwrap.dedent(
            f"""
            automations:
              - name: e2e-plan-on-push-{source}
                trigger:
                  expect: [stacks.git.commit]
                  match: {{stacks.repository: "{repository}"}}
                actions:
                  - type: run-deployment
                    deployment: {PLAN}
                    parameters:
                      stack: local-webapp
                      workspace: "{{{{ event.payload.branch }}}}"
                      variables:
                        app_version: "{{{{ event.payload.sha[:12] }}}}"
                        run_dir: "{variables["run_dir"]}"
                        port: {variables["port"]}
            """
        )
    )
    assert automations.apply(directory)["created"]

    sha, before = secrets.token_hex(20), secrets.token_hex(20)
    body = github_push(repository, "feature-x", sha, before)
    delivery = str(uuid.uuid4())
    url = f"{receiver}/hooks/{source}"

    # forged: signed with another secret -> 401, no event, no run
    forged = httpx.post(url, content=body, headers=signed(body, "not-the-secret", delivery))
    assert forged.status_code == 401, forged.text

    sent = time.monotonic()
    accepted = httpx.post(url, content=body, headers=signed(body, secret, delivery))
    assert accepted.status_code == 202, accepted.text
    expected = events.git_commit(f"https://{repository}.git", "feature-x", sha, before)
    assert accepted.json()["events"] == [str(expected.id)]

    deadline = time.monotonic() + 60
    while not (found := runs_for(sha)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(found) == 1, "the automation did not start exactly one stack-plan run"
    print(f"\n[events] signed push -> flow run created in {time.monotonic() - sent:.2f} s")
    run = e2e.wait(found[0].id, lambda s: s.is_final())
    assert run.state.is_completed(), e2e.explain(run)
    assert run.parameters["workspace"] == "feature-x"
    assert run.parameters["variables"]["app_version"] == sha[:12]

    # the same delivery again (a sender retry): acknowledged, no second event or run
    replay = httpx.post(url, content=body, headers=signed(body, secret, delivery))
    assert replay.status_code == 200 and replay.json()["status"] == "duplicate"
    time.sleep(3)
    assert len(runs_for(sha)) == 1
