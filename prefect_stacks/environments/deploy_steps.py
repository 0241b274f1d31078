"""The steps an environment deploy is made of: check a commit out, build it (a command
in the checkout), apply the stack into the environment's workspace, smoke check the URL.
(The image build is beside the image code: :func:`prefect_stacks.blocks.docker.build_and_push`.)"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import httpx
from prefect import task
from prefect.cache_policies import NO_CACHE

from prefect_stacks._internal.git import clone
from prefect_stacks._internal.process import run_process
from prefect_stacks.blocks.github import GitHubRepository
from prefect_stacks.blocks.terraform import (
    TerraformStack,
    terraform_apply,
    terraform_init,
    terraform_outputs,
    terraform_plan,
)
from prefect_stacks.environments.pull_requests import env_name
from prefect_stacks.exceptions import GitError, PrefectStacksError


@task(cache_policy=NO_CACHE, task_run_name="checkout-{sha:.12}")
def checkout(block: GitHubRepository, sha: str) -> Path:
    """A fresh clone of the repository at ``sha`` (real git; the token as a header)."""
    dest = Path(tempfile.mkdtemp(prefix="prefect-stacks-pr-"))
    try:
        return clone(block.get_clone_url(), dest, ref=sha, token=block.git_token(), stream=False)
    except GitError as exc:
        raise PrefectStacksError(
            f"could not check out {sha[:12]} of {block.full_name}: {exc.result.stderr_tail()}"
        ) from exc


@task(cache_policy=NO_CACHE, task_run_name="build")
def build(command: list[str], workdir: Path, number: int, sha: str) -> None:
    """Run ``command`` in the checkout, with PR_NUMBER, GIT_SHA and ENVIRONMENT set."""
    result = run_process(
        command,
        cwd=workdir,
        env={"PR_NUMBER": str(number), "GIT_SHA": sha, "ENVIRONMENT": env_name(number)},
        prefix="build: ",
    )
    if result.returncode != 0:
        raise PrefectStacksError(
            f"build command {command[0]!r} failed (exit {result.returncode}): "
            f"{result.stderr_tail()}"
        )


def apply_stack(block: TerraformStack, workspace: str) -> str | None:
    """Plan and apply ``block`` into ``workspace`` (created if new); returns the stack's
    ``url`` output (None when it has none)."""
    with terraform_init(block, workspace) as workdir:
        plan = terraform_plan(workdir)
        terraform_apply(workdir, plan)
        outputs = terraform_outputs(workdir)
    url = outputs.values.get("url")
    return url if isinstance(url, str) else None


@task(cache_policy=NO_CACHE, task_run_name="smoke-check")
def smoke_check(url: str, expect: str, timeout: float = 30.0) -> None:
    """The page answers 200 and shows ``expect`` (the deployed commit)."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, timeout=5)
            if response.status_code == 200 and expect in response.text:
                return
            last = f"HTTP {response.status_code}, {expect!r} not on the page"
        except httpx.HTTPError as exc:
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(0.5)
    raise PrefectStacksError(f"smoke check of {url} failed after {timeout:.0f} s: {last}")
