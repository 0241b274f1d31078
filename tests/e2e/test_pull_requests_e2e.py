"""A dedicated environment per pull request, end to end: the GitHub REST fake (a real
HTTP server), a real local git repository holding the commits, real terraform with the
local-webapp stack, a real Prefect server and process worker.

pull requests 1 and 2 opened -> two environments answering with their SHA; a commit on 1
-> its page shows the new SHA, its status is success, one comment (updated); two commits
a second apart -> serialized, ends on the second; a failing listing (500, and an empty
page while the API errors) -> nothing destroyed; 1 merged -> its environment, workspace
and deployment are gone, 2 untouched.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from prefect import get_client
from prefect.exceptions import ObjectNotFound
from pydantic import SecretStr

from prefect_stacks import stack_path
from prefect_stacks.blocks.github import GitHubRepository
from prefect_stacks.blocks.terraform import TerraformStack
from prefect_stacks.environments import EnvironmentLedger, EnvironmentState
from tests.conftest import GitRepo, git, wait_for
from tests.fakes.github import FakeGitHub

if TYPE_CHECKING:
    from tests.e2e.conftest import E2E

pytestmark = pytest.mark.e2e

WATCHER = "pull-request-watcher/default"
TOKEN = "ghp_e2e_" + uuid.uuid4().hex


def page(url: str) -> str | None:
    try:
        response = httpx.get(url, timeout=2)
    except httpx.HTTPError:
        return None
    return response.text if response.status_code == 200 else None


def deployed(ledger: EnvironmentLedger, name: str, sha: str):
    def check():
        env = ledger.find(name)
        if env and env.state == EnvironmentState.ready and env.deployed_version == sha:
            return env
        return None

    return check


def runs_of(deployment: str) -> list:
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    with get_client(sync_client=True) as client:
        deployment_id = client.read_deployment_by_name(deployment).id
        return client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
        )


def deployment_exists(name: str) -> bool:
    with get_client(sync_client=True) as client:
        try:
            client.read_deployment_by_name(name)
            return True
        except ObjectNotFound:
            return False


@pytest.mark.timeout(900)
def test_pull_request_environments(e2e: E2E, tmp_path: Path):
    ledger = EnvironmentLedger()
    repo = GitRepo(tmp_path, "shop")
    repo.commit("main")
    tag = uuid.uuid4().hex[:6]
    stack = f"webapp-pr-{tag}"
    state_dir = e2e.root / f"pr-state-{tag}"
    # default run_dir and port are derived from the workspace: one per PR_<n>
    TerraformStack(source=str(stack_path("local-webapp")), state_dir=str(state_dir)).save(stack)
    with FakeGitHub(tokens={TOKEN: "bot"}, repos=["acme/shop"]) as gh:
        block = f"gh-{tag}"
        GitHubRepository(
            owner="acme",
            repo="shop",
            token=SecretStr(TOKEN),
            api_url=gh.api_url,
            clone_url=str(repo.bare),
            response_cache_block=f"gh-cache-{tag}",
            retry_backoff=0.2,
        ).save(block)
        params = {
            "repository": block,
            "stack": stack,
            "watcher": f"pr-e2e-{tag}",
            # the stack derives run dir and port from workspace + name: unique per test
            # run, so two runs on one machine (a laptop and CI) cannot share a server
            "variables": {"name": f"e2e-{tag}"},
        }

        def watch(expect_failure: bool = False):
            run = e2e.run(WATCHER, params)
            if expect_failure:
                assert run.state.is_failed(), e2e.explain(run)
            else:
                assert run.state.is_completed(), e2e.explain(run)
            return run

        one_sha = repo.commit("feat/one")
        two_sha = repo.commit("feat/$(touch${IFS}pwned);x`id`")  # shell characters in a branch
        one = gh.open_pull_request("One", head="feat/one", sha=one_sha)
        two = gh.open_pull_request("T" * 300, head="feat/$(touch${IFS}pwned);x`id`", sha=two_sha)
        try:
            watch()
            env1 = wait_for("PR_1 deployed", deployed(ledger, f"PR_{one}", one_sha), timeout=180)
            env2 = wait_for("PR_2 deployed", deployed(ledger, f"PR_{two}", two_sha), timeout=180)
            assert one_sha in (page(env1.url) or "") and two_sha in (page(env2.url) or "")
            assert not (repo.work / "pwned").exists() and not Path("pwned").exists()

            # a commit on 1: new SHA on its page, status success, one comment (updated)
            new_sha = repo.commit("feat/one")
            gh.push(one, sha=new_sha)
            watch()
            env1 = wait_for("PR_1 redeployed", deployed(ledger, f"PR_{one}", new_sha), timeout=180)
            assert new_sha in (page(env1.url) or "")
            context = f"prefect-stacks/PR_{one}"
            status = wait_for(
                "status success",
                lambda: (
                    (s := gh.latest_statuses(new_sha).get(context))
                    and s["state"] == "success"
                    and s
                ),
                timeout=60,
            )
            assert status["target_url"] == env1.url
            wait_for(
                "the comment to say ready",
                lambda: any(
                    "**ready**" in c["body"] and new_sha[:12] in c["body"] for c in gh.comments(one)
                ),
                timeout=60,
            )
            assert len(gh.comments(one)) == 1  # updated, not a second one

            # two commits a second apart: serialized, ending on the second
            first = repo.commit("feat/one")
            gh.push(one, sha=first)
            watch()
            time.sleep(1)
            second = repo.commit("feat/one")
            gh.push(one, sha=second)
            watch()
            env1 = wait_for(
                "PR_1 on the second commit", deployed(ledger, f"PR_{one}", second), timeout=180
            )
            assert second in (page(env1.url) or "")
            assert len(gh.comments(one)) == 1
            # serialized: no two runs of PR_1's deployment were running at once
            spans = sorted(
                (r.start_time, r.end_time)
                for r in runs_of(f"feature-environment/PR_{one}")
                if r.start_time is not None
            )
            assert len(spans) >= 3
            for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
                assert end is not None and end <= start, spans

            # the listing fails: nothing is destroyed
            gh.fail(100, status=500, path_prefix="/repos/acme/shop/pulls")
            watch(expect_failure=True)
            gh.reset()
            gh.empty_listing_with_error()
            watch(expect_failure=True)
            gh.reset()
            for number in (one, two):
                env = ledger.get(f"PR_{number}")
                assert env.state == EnvironmentState.ready and page(env.url), env

            # 1 merged: environment, workspace and deployment gone; 2 untouched
            url1 = env1.url
            gh.merge(one)
            watch()
            wait_for(
                "PR_1 destroyed",
                lambda: ledger.get(f"PR_{one}").state == EnvironmentState.destroyed,
                timeout=180,
            )
            assert page(url1) is None
            assert not (state_dir / "workspaces" / f"PR_{one}").exists()
            assert not deployment_exists(f"feature-environment/PR_{one}")
            env2 = ledger.get(f"PR_{two}")
            assert env2.state == EnvironmentState.ready and two_sha in (page(env2.url) or "")
            assert deployment_exists(f"feature-environment/PR_{two}")

            # closed then reopened (destroyed, then recreated with its deployment) is
            # test_pull_request_lifecycle_e2e.py's subject, through the watcher and the receiver
        finally:
            for number in (one, two):
                if gh.pull_request(number).state == "open":
                    gh.close(number)
            e2e.run(WATCHER, params)
            wait_for(
                "everything destroyed",
                lambda: all(
                    (e := ledger.find(f"PR_{n}")) is None or e.state == EnvironmentState.destroyed
                    for n in (one, two)
                ),
                timeout=120,
            )


@pytest.mark.timeout(900)
def test_pull_request_images(e2e: E2E, dockerd: str, registry: str, tmp_path: Path):
    """Each commit built into an image (prefect-docker, a real dockerd), pushed to a real
    registry tagged with its SHA, and deployed pinned by digest; a commit whose build
    fails leaves the running version in place and says why on the pull request."""
    from prefect_docker import DockerHost

    ledger = EnvironmentLedger()
    repo = GitRepo(tmp_path, "images")
    (repo.work / "Dockerfile").write_text("FROM scratch\nCOPY change.txt /change.txt\n")
    git("add", "Dockerfile", cwd=repo.work)
    repo.commit("main")
    tag = uuid.uuid4().hex[:6]
    stack = f"webapp-img-{tag}"
    TerraformStack(
        source=str(stack_path("local-webapp")), state_dir=str(e2e.root / f"img-state-{tag}")
    ).save(stack)
    DockerHost(base_url=dockerd).save(f"docker-{tag}")
    image = f"{registry}/shop/web-{tag}"
    with FakeGitHub(tokens={TOKEN: "bot"}, repos=["acme/images"]) as gh:
        GitHubRepository(
            owner="acme",
            repo="images",
            token=SecretStr(TOKEN),
            api_url=gh.api_url,
            clone_url=str(repo.bare),
            retry_backoff=0.2,
        ).save(f"gh-img-{tag}")
        params = {
            "repository": f"gh-img-{tag}",
            "stack": stack,
            "watcher": f"pr-img-{tag}",
            "variables": {"name": f"img-{tag}"},
            "image_build": {"image": image, "docker_host": f"docker-{tag}", "pull": False},
        }

        def watch():
            run = e2e.run(WATCHER, params)
            assert run.state.is_completed(), e2e.explain(run)

        def pinned(sha: str) -> str:
            digest = httpx.head(
                f"http://{registry}/v2/shop/web-{tag}/manifests/{sha}",
                headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
                timeout=10,
            ).headers["Docker-Content-Digest"]
            return f"{image}:{sha}@{digest}"

        first = repo.commit("feat/img")
        number = gh.open_pull_request("Images", head="feat/img", sha=first)
        name = f"PR_{number}"
        try:
            watch()
            env = wait_for("the first image deployed", deployed(ledger, name, first), timeout=180)
            reference = pinned(first)
            assert f"image <code>{reference}</code>" in (page(env.url) or "")
            wait_for(  # the comment follows the ledger's ready
                "the comment to name the image",
                lambda: any(f"Image `{reference}`" in c["body"] for c in gh.comments(number)),
                timeout=60,
            )

            # a commit that does not build: the running version stays, GitHub is told
            (repo.work / "Dockerfile").write_text("FROM scratch\nCOPY missing.txt /\n")
            git("add", "Dockerfile", cwd=repo.work)
            broken = repo.commit("feat/img")
            gh.push(number, sha=broken)
            watch()
            context = f"prefect-stacks/{name}"
            wait_for(
                "status failure",
                lambda: (s := gh.latest_statuses(broken).get(context)) and s["state"] == "failure",
                timeout=180,
            )
            wait_for(  # the comment follows the status
                "the comment to say failed, with Docker's error",
                lambda: any(
                    "**failed**" in c["body"] and "missing.txt" in c["body"]
                    for c in gh.comments(number)
                ),
                timeout=60,
            )
            env = ledger.get(name)
            assert env.state == EnvironmentState.ready and env.deployed_version == first
            assert f"image <code>{reference}</code>" in (page(env.url) or "")
            tags = httpx.get(f"http://{registry}/v2/shop/web-{tag}/tags/list", timeout=10)
            assert broken not in (tags.json().get("tags") or [])

            # fixed: the new commit's image replaces the first
            (repo.work / "Dockerfile").write_text("FROM scratch\nCOPY change.txt /change.txt\n")
            git("add", "Dockerfile", cwd=repo.work)
            fixed = repo.commit("feat/img")
            gh.push(number, sha=fixed)
            watch()
            env = wait_for("the fixed image deployed", deployed(ledger, name, fixed), timeout=180)
            assert f"image <code>{pinned(fixed)}</code>" in (page(env.url) or "")
            assert len(gh.comments(number)) == 1
        finally:
            if gh.pull_request(number).state == "open":
                gh.close(number)
            e2e.run(WATCHER, params)
            wait_for(
                f"{name} destroyed",
                lambda: (e := ledger.find(name)) is None or e.state == EnvironmentState.destroyed,
                timeout=120,
            )
