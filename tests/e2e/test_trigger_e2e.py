"""End to end: ``prefect-stacks trigger`` (the console script, as a CI job runs it)
against a real Prefect server and process worker running the deployments of
``deployments/prefect.yaml``: logs streamed while waiting, exit codes that mirror the
final state, a paused run that is waited through, Ctrl-C, idempotency keys, and bad
names and parameters refused without a run."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import threading
import time
from typing import TYPE_CHECKING
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType

from prefect_stacks._internal.process import run_process
from prefect_stacks.local import LOCAL_WEBAPP

if TYPE_CHECKING:
    from tests.e2e.conftest import E2E

pytestmark = pytest.mark.e2e

PLAN = f"stack-plan/{LOCAL_WEBAPP}"
APPLY = f"stack-apply/{LOCAL_WEBAPP}"
LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) +\S")


@pytest.fixture
def trigger(e2e: E2E, prefect_stacks_cli: list[str]):
    """Run `prefect-stacks trigger ...` to its end against the e2e server."""

    def run(*args: str, timeout: float = 180):
        env = {"PREFECT_API_URL": e2e.api_url}
        return run_process(
            [*prefect_stacks_cli, "trigger", *args], env=env, stream=False, timeout=timeout
        )

    return run


def _variables(e2e: E2E, workspace: str) -> str:
    return "variables=" + json.dumps(e2e.webapp_variables(workspace))


def _run_id(stdout: str) -> UUID:
    match = re.search(r"^id:\s+(\S+)$", stdout, re.MULTILINE)
    assert match, f"no run id printed:\n{stdout}"
    return UUID(match.group(1))


@pytest.mark.timeout(300)
def test_wait_streams_the_logs_and_exits_0_when_completed(e2e: E2E, trigger):
    workspace = "trigger-plan"
    done = trigger(
        PLAN, "--param", f"workspace={workspace}", "--param", _variables(e2e, workspace),
        "--tag", "ci", "--wait", "--poll-interval", "0.5",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    # the run's own log lines, as they were logged, each once
    summary = f"{LOCAL_WEBAPP}/{workspace}: 1 to add, 0 to change, 0 to destroy."
    assert sum(line.endswith(summary) for line in lines) == 1, done.stdout
    assert sum(bool(LOG_LINE.match(line)) for line in lines) >= 5, done.stdout
    # state changes as polled (a busy machine may poll past a short Running): at least one
    assert any(re.fullmatch(r"state: (Scheduled|Pending|Running)", line) for line in lines)
    assert re.search(r"finished: Completed", lines[-1]), done.stdout
    run_id = _run_id(done.stdout)
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(run_id)
    assert flow_run.state.type == StateType.COMPLETED
    assert flow_run.parameters["workspace"] == workspace
    assert "ci" in flow_run.tags


@pytest.mark.timeout(300)
def test_wait_exits_1_with_the_error_when_the_run_fails(e2e: E2E, trigger):
    failed = trigger(
        PLAN, "--param", "stack=nope", "--param", "workspace=trigger-fail",
        "--wait", "--poll-interval", "0.5",
    )  # fmt: skip
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "finished: Failed" in failed.stdout.splitlines()[-1], failed.stdout
    # the flow's error, in the streamed logs and in the final state
    assert failed.stdout.count("no TerraformStack block named 'nope'") >= 2, failed.stdout


@pytest.mark.timeout(120)
def test_bad_names_and_parameters_are_refused_without_a_run(e2e: E2E, trigger):
    with get_client(sync_client=True) as client:
        runs_before = client.count_flow_runs()

    unknown = trigger("stack-plan/nope", "--wait", timeout=60)
    assert unknown.returncode == 1, unknown.stdout + unknown.stderr
    assert f"no deployment 'stack-plan/nope' on {e2e.api_url}" in unknown.stderr
    assert "prefect deployment ls" in unknown.stderr
    assert "Traceback" not in unknown.stderr

    typo = trigger(APPLY, "--param", "workspce=x", timeout=60)
    assert typo.returncode == 1
    assert f"deployment {APPLY} has no parameter 'workspce'" in typo.stderr

    # the server checks the values against the deployment's parameter schema
    wrong_type = trigger(APPLY, "--param", "require_approval=maybe", timeout=60)
    assert wrong_type.returncode == 1
    assert f"deployment {APPLY} refused the parameters" in wrong_type.stderr
    assert "'require_approval'" in wrong_type.stderr and "boolean" in wrong_type.stderr

    with get_client(sync_client=True) as client:
        assert client.count_flow_runs() == runs_before


@pytest.mark.timeout(300)
def test_without_wait_prints_the_run_and_returns_at_once(e2e: E2E, trigger):
    workspace = "trigger-nowait"
    started = time.monotonic()
    created = trigger(
        PLAN, "-p", f"workspace={workspace}", "-p", _variables(e2e, workspace),
        "--name", "from-ci", timeout=60,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert created.returncode == 0, created.stdout + created.stderr
    assert created.stdout.startswith(f"flow run from-ci of {PLAN}\n"), created.stdout
    run_id = _run_id(created.stdout)
    ui = e2e.api_url.removesuffix("/api")
    assert f"url: {ui}/runs/flow-run/{run_id}" in created.stdout
    assert elapsed < 20, f"trigger without --wait took {elapsed:.1f} s"
    assert not LOG_LINE.search(created.stdout), "logs printed without --wait"

    finished = e2e.wait(run_id, lambda state: state.is_final())
    assert finished.state.type == StateType.COMPLETED, e2e.explain(finished)
    # (the run is renamed when it starts: stack-plan sets its own flow_run_name)
    assert finished.parameters["workspace"] == workspace


class Streaming:
    """`prefect-stacks trigger ... --wait` in the background, its stdout read line by line."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.proc = subprocess.Popen(
            argv,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for_line(self, needle: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:
                break
            self.lines.append(line)
            if needle in line:
                return line
        raise AssertionError(f"no line with {needle!r} in:\n" + "\n".join(self.lines))

    def finish(self, timeout: float) -> int:
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGUSR1)  # the CLI prints its threads' stacks
            time.sleep(3)
            self.proc.kill()
            self.proc.wait()
            while (line := self._queue.get(timeout=5)) is not None:
                self.lines.append(line)
            raise AssertionError(
                f"still running {timeout:g} s later; its output and stacks:\n{self.output}"
            ) from None
        while (line := self._queue.get(timeout=5)) is not None:
            self.lines.append(line)
        return code

    @property
    def output(self) -> str:
        return "\n".join(self.lines)


@pytest.mark.timeout(300)
def test_a_paused_run_is_waited_through_ctrl_c_leaves_it_and_a_retry_follows_it(
    e2e: E2E, prefect_stacks_cli: list[str]
):
    """stack-apply with require_approval pauses for input: `--wait` keeps waiting and
    says so. Ctrl-C stops waiting (exit 130) but not the run; the same command again with
    the same idempotency key (a retried CI job) follows that run instead of starting one,
    and exits 3 when the plan is rejected (Cancelled)."""
    from prefect.flow_runs import resume_flow_run

    workspace = "trigger-approval"
    argv = [
        *prefect_stacks_cli, "trigger", APPLY,
        "-p", f"workspace={workspace}", "-p", _variables(e2e, workspace),
        "-p", "require_approval=true",
        "--idempotency-key", f"e2e-{time.time_ns()}", "--wait", "--poll-interval", "0.5",
    ]  # fmt: skip
    env = {"PREFECT_API_URL": e2e.api_url}

    first = Streaming(argv, env)
    try:
        first.wait_for_line("waits for input", timeout=150)
        first.proc.send_signal(signal.SIGINT)
        assert first.finish(timeout=30) == 130, first.output
    finally:
        if first.proc.poll() is None:
            first.proc.kill()
    run_id = _run_id(first.output)
    assert f"prefect flow-run cancel {run_id}" in first.output
    assert e2e.wait(run_id, lambda s: s.is_paused(), timeout=10).state.is_paused()

    second = Streaming(argv, env)
    try:
        second.wait_for_line("waits for input", timeout=60)
        assert _run_id(second.output) == run_id, "the retry started a second run"
        resume_flow_run(run_id, run_input={"decision": "reject", "approver": "ci"})
        assert second.finish(timeout=60) == 3, second.output
    finally:
        if second.proc.poll() is None:
            second.proc.kill()
    assert "finished: Cancelled: apply rejected by ci" in second.lines[-1], second.output
    # the paused note is printed once per pause, not at every poll
    assert sum("waits for input" in line for line in second.lines) == 1, second.output


@pytest.mark.timeout(300)
def test_issue_10_apply_ends_with_its_url_and_a_missing_block_with_one_line(e2e: E2E, trigger):
    """On a real worker: a Completed apply's last printed line is its page; a missing
    block fails the run with the list of blocks that exist and no traceback."""
    workspace = "trigger-url"
    done = trigger(
        APPLY, "-p", f"workspace={workspace}", "-p", _variables(e2e, workspace),
        "--wait", "--poll-interval", "0.5",
    )  # fmt: skip
    try:
        assert done.returncode == 0, done.stdout + done.stderr
        lines = done.stdout.splitlines()
        assert re.fullmatch(r"url: https?://\S+", lines[-1]), done.stdout
        assert "Completed: applied: url=" in lines[-2], done.stdout
    finally:
        trigger(
            f"stack-destroy/{LOCAL_WEBAPP}", "-p", f"workspace={workspace}",
            "-p", "delete_workspace=true", "--wait", "--poll-interval", "0.5",
        )  # fmt: skip

    failed = trigger(PLAN, "-p", "stack=nope", "--wait", "--poll-interval", "0.5")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert f"existing: {LOCAL_WEBAPP}" in failed.stdout or f", {LOCAL_WEBAPP}" in failed.stdout
    assert "Traceback" not in failed.stdout, failed.stdout
    assert "Engine execution exited" not in failed.stdout, failed.stdout
