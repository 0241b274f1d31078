"""End to end: demo environments on a real Prefect server with a real process worker
(``e2e`` fixture: SQLite server on a free port, worker polling every second).

* a demo environment made by the ``demo-environment/default`` deployment answers, is
  warned about by the janitor deployment, and is destroyed at expiry by the one-off
  scheduled run of ``environment-teardown/default``, with Slack (a real-socket fake)
  told at each step;
* a teardown whose worker is SIGKILLed mid-destroy (the worker and its flow-run process
  groups) is finished by the janitor after a new worker starts;
* ``prefect-stacks env list|show|extend|keep|destroy`` (the console script) against the
  server, bad input included.

The janitor's own 5-minute schedule is paused for these tests (``janitor_unscheduled``):
each test runs it when it means to. The 50-environment soak is in
``test_many_environments.py``.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType

from prefect_stacks._internal.process import run_process
from prefect_stacks.blocks.slack import SlackChannel
from prefect_stacks.blocks.terraform import TerraformStack
from prefect_stacks.environments import EnvironmentLedger, EnvironmentState, extend, utcnow
from prefect_stacks.flows.environments import demo_environment
from prefect_stacks.local import LOCAL_WEBAPP
from tests.conftest import wait_for, write_stack
from tests.fakes.slack import FakeSlack

if TYPE_CHECKING:
    from tests.e2e.conftest import E2E

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("janitor_unscheduled")]

DEMO = "demo-environment/default"
TEARDOWN = "environment-teardown/default"
JANITOR = "environment-janitor/default"
SLACK_TOKEN = "xoxb-e2e-token"
SLACK_CHANNEL = "platform"

T = TypeVar("T")


# --------------------------------------------------------------------------- helpers


def seconds(delta: timedelta) -> float:
    return abs(delta.total_seconds())


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


def read_run(run_id: str | UUID):
    with get_client(sync_client=True) as client:
        return client.read_flow_run(UUID(str(run_id)))


def run_exists(run_id: str | UUID) -> bool:
    from prefect.exceptions import ObjectNotFound

    try:
        read_run(run_id)
    except ObjectNotFound:
        return False
    return True


def run_logs(run_id: str | UUID) -> str:
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    with get_client(sync_client=True) as client:
        logs = client.read_logs(
            LogFilter(flow_run_id=LogFilterFlowRunId(any_=[UUID(str(run_id))])), limit=200
        )
    return "\n".join(log.message for log in logs)


def workspace_dir(state_dir: Path, name: str) -> Path:
    """Where the local backend keeps a non-default workspace's state."""
    return state_dir / "workspaces" / name


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(tokens=[SLACK_TOKEN], channels=[SLACK_CHANNEL]) as fake:
        yield fake


@pytest.fixture
def slack_block(e2e: E2E, slack: FakeSlack) -> str:
    """A SlackChannel block document on the e2e server pointing at the fake; the
    worker's flow-run processes load it by name and post over a real socket."""
    name = "e2e-slack-" + secrets.token_hex(3)
    SlackChannel(bot_token=SLACK_TOKEN, channel=f"#{SLACK_CHANNEL}", api_url=slack.api_url).save(
        name
    )
    return name


@pytest.fixture
def slow_stack(e2e: E2E, tmp_path: Path) -> tuple[str, Path]:
    """A stack whose destroy takes 5 s (a destroy-time local-exec `sleep 5` on a
    terraform_data resource): long enough to kill the worker in the middle of it."""
    source = write_stack(
        tmp_path / "slow-src",
        """
resource "terraform_data" "slow" {
  input = terraform.workspace

  provisioner "local-exec" {
    when    = destroy
    command = "sleep 5"
  }
}
""",
    )
    state_dir = tmp_path / "slow-state"
    name = "slow-" + secrets.token_hex(3)
    TerraformStack(source=str(source), state_dir=str(state_dir)).save(name)
    return name, state_dir


# --------------------------------------------------------------------------- tests


@pytest.mark.timeout(240)
def test_demo_environment_expires_on_schedule(e2e: E2E, slack: FakeSlack, slack_block: str):
    """demo-environment (TTL 20 s) → page answers, Slack `created` → janitor warns
    (Slack `expiring`) → the scheduled teardown run destroys it within TTL + 15 s of
    creation: page gone, workspace gone, ledger `destroyed`, Slack `destroyed`."""
    ttl = 20
    name = "demo-" + secrets.token_hex(3)
    variables = e2e.webapp_variables(name)
    state_dir = e2e.config.state_dir(LOCAL_WEBAPP)
    ledger = EnvironmentLedger()

    demo = e2e.submit(
        DEMO,
        {
            "stack": LOCAL_WEBAPP,
            "ttl_seconds": ttl,
            "name": name,
            "owner": "e2e",
            "variables": variables,
            "slack_block": slack_block,
        },
    )

    def ready():
        env = ledger.find(name)
        if env is None or env.state == EnvironmentState.provisioning:
            run = read_run(demo.id)
            assert not run.state.is_final(), e2e.explain(run)
            return None
        return env

    env = wait_for(f"{name} to be ready", ready, timeout=120)
    assert env.state == EnvironmentState.ready, env
    deadline = env.created_at + timedelta(seconds=ttl + 15)
    assert env.expires_at - env.created_at == timedelta(seconds=ttl)
    assert env.url == f"http://127.0.0.1:{variables['port']}/"
    assert answers(env.url), f"{env.url} does not answer"
    assert f"<h1>{name}</h1>" in httpx.get(env.url, trust_env=False).text
    assert workspace_dir(state_dir, name).is_dir()

    # The teardown is the one-off run made at creation, scheduled at expiry.
    teardown_run_id = env.teardown_run_id
    scheduled = read_run(teardown_run_id)
    assert scheduled.state.is_scheduled(), scheduled.state
    assert scheduled.parameters == {"name": name, "reason": "expired"}
    assert seconds(scheduled.state.state_details.scheduled_time - env.expires_at) < 0.01
    assert f"env:{name}" in scheduled.tags

    created = slack.wait_for(f"Environment created: {name}", timeout=30)
    assert created.channel_name == SLACK_CHANNEL

    # The janitor deployment, while the environment lives: it warns (TTL 20 s is within
    # warn_before_seconds) and tears nothing down.
    janitor = e2e.run(JANITOR, {"warn_before_seconds": 3600})
    assert janitor.state.type == StateType.COMPLETED, e2e.explain(janitor)
    env = ledger.get(name)
    janitor_margin = (env.expires_at - utcnow()).total_seconds()
    assert janitor_margin > 0, (
        f"the janitor run ended {-janitor_margin:.1f} s after {name} expired: this machine "
        "is too slow for a 20 s TTL"
    )
    assert env.state == EnvironmentState.ready and env.warned_at is not None
    expiring = slack.wait_for(f"Environment expiring: {name}", timeout=10)
    assert "Expires" in expiring.all_text()

    demo = read_run(demo.id)
    assert demo.state.type == StateType.COMPLETED, e2e.explain(demo)

    # Destroyed by the scheduled run, within TTL + 15 s of creation.
    def destroyed():
        current = ledger.get(name)
        return current if current.state == EnvironmentState.destroyed else None

    remaining = (deadline - utcnow()).total_seconds()
    env = wait_for(f"{name} to be destroyed by {deadline}", destroyed, timeout=max(remaining, 0))
    assert not answers(env.url), f"{env.url} still answers after the teardown"
    assert not workspace_dir(state_dir, name).exists(), "the terraform workspace is left"
    assert env.destroyed_at <= deadline, (  # and the page went before the entry changed
        f"destroyed {(env.destroyed_at - env.created_at).total_seconds():.1f} s after "
        f"creation (TTL {ttl} s + 15 s allowed)"
    )

    teardown = e2e.wait(UUID(teardown_run_id), lambda s: s.is_final(), timeout=30)
    assert teardown.state.type == StateType.COMPLETED, e2e.explain(teardown)
    # It started at expiry (Prefect lets a scheduled run start up to 0.5 s early).
    assert (teardown.start_time - env.expires_at).total_seconds() > -1, teardown.start_time

    gone = slack.wait_for(f"Environment destroyed: {name}", timeout=15)
    # The message links the run that did it: the scheduled teardown, not the janitor.
    assert f"/runs/flow-run/{teardown_run_id}" in gone.all_text()
    assert "reason: expired" in gone.all_text()
    assert [m.all_text().split("\n")[0] for m in slack.messages] == [
        f":white_check_mark: Environment created: {name}",
        f":hourglass_flowing_sand: Environment expiring: {name}",
        f":wastebasket: Environment destroyed: {name}",
    ]
    assert all(m.channel_name == SLACK_CHANNEL for m in slack.messages)
    print(
        f"[e2e] {name}: janitor done {janitor_margin:.1f} s before expiry; destroyed "
        f"{(env.destroyed_at - env.created_at).total_seconds():.1f} s after creation "
        f"(TTL {ttl} s, + 15 s allowed)"
    )


@pytest.mark.timeout(240)
def test_janitor_finishes_a_teardown_whose_worker_was_killed(
    e2e: E2E, slow_stack: tuple[str, Path]
):
    """The worker and its flow-run process groups are SIGKILLed while the scheduled
    teardown runs terraform destroy; after a new worker starts, the janitor deployment
    takes the stale teardown over and finishes it."""
    stack, state_dir = slow_stack
    stale_after = 5
    ledger = EnvironmentLedger()
    name = "kill-" + secrets.token_hex(3)
    # Made in this process (quicker than a worker run; creation is not under test), then
    # made to expire in 1 s: its teardown must not start before the apply is over.
    demo_environment(stack=stack, ttl_seconds=3600, name=name)
    extend(name, 1)
    assert workspace_dir(state_dir, name).is_dir()

    try:
        # Kill inside `sleep 5`, i.e. inside terraform destroy, after the teardown claimed
        # the entry (the claim comes first; the sleep is then watched in /proc only, so
        # the kill follows within a fraction of a second).
        wait_for(
            f"the teardown of {name} to claim it",
            lambda: ledger.get(name).state == EnvironmentState.destroying,
            timeout=60,
        )
        # the run that claimed it (usually the one extend() scheduled; when a worker starts
        # that run within the second before extend() records it, the entry keeps the older
        # scheduled run and the claim names the one that runs)
        teardown_run_id = ledger.get(name).teardown_run_id
        wait_for(
            f"the teardown of {name} to reach its destroy-time sleep",
            lambda: any("sleep 5" in cmd for cmd in e2e.worker_commands()),
            timeout=30,
            interval=0.05,
        )
        killed = e2e.kill_worker()
        assert killed.running("sleep 5"), killed.commands
        assert teardown_run_id in killed.flow_run_ids, killed
        assert not e2e.worker_alive()
        # Nobody reports the killed run: it stays Running on the server; the entry stays
        # `destroying`, the workspace (and the resource in it) stays.
        assert read_run(teardown_run_id).state.type == StateType.RUNNING
        env = ledger.get(name)
        assert env.state == EnvironmentState.destroying and env.teardown_run_id == teardown_run_id
        assert workspace_dir(state_dir, name).is_dir()

        restart = e2e.restart_worker()

        # The janitor takes over a teardown only once it is stale.
        wait_for(
            "the killed teardown to become stale",
            lambda: (utcnow() - env.teardown_started_at).total_seconds() > stale_after + 0.5,
            timeout=stale_after + 5,
        )
        janitor = e2e.run(JANITOR, {"stale_after_seconds": stale_after, "warn_before_seconds": 0})
        assert janitor.state.type == StateType.COMPLETED, e2e.explain(janitor)
    finally:
        e2e.ensure_worker()

    env = ledger.get(name)
    assert env.state == EnvironmentState.destroyed, env
    assert env.error is None and env.destroyed_at is not None
    assert not workspace_dir(state_dir, name).exists(), "the terraform workspace is left"
    logs = run_logs(janitor.id)
    assert f"tearing down {name} (expired)" in logs, logs
    assert read_run(teardown_run_id).state.type == StateType.RUNNING  # still: as expected
    print(f"[e2e] worker restarted in {restart:.1f} s; janitor finished the teardown")


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def cli(e2e: E2E, prefect_stacks_cli: list[str]) -> Callable[..., Any]:
    """Run `prefect-stacks ...` against the e2e server (PREFECT_API_URL is set in
    os.environ by the e2e fixture). Wide columns: the table is read by the test."""

    def run(*args: str):
        env = {"PREFECT_API_URL": e2e.api_url, "COLUMNS": "200"}
        return run_process([*prefect_stacks_cli, *args], env=env, stream=False, timeout=60)

    return run


@pytest.mark.timeout(300)
def test_env_cli_against_the_server(e2e: E2E, cli):
    ledger = EnvironmentLedger()
    name = "cli-" + secrets.token_hex(3)
    variables = e2e.webapp_variables(name)
    state_dir = e2e.config.state_dir(LOCAL_WEBAPP)
    demo_environment(stack=LOCAL_WEBAPP, ttl_seconds=600, name=name, variables=variables)
    env = ledger.get(name)
    assert answers(env.url)

    # list: a table with every column, and this environment's row.
    listed = cli("env", "list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    header = next(line for line in lines if line.split()[:1] == ["name"])
    assert header.split() == ["name", "kind", "state", "age", "expires", "in", "url"], header
    row = next((line for line in lines if line.split()[:1] == [name]), None)
    assert row is not None, listed.stdout
    cells = row.split()
    assert cells[1:3] == ["demo", "ready"] and cells[-1] == env.url, row
    assert cells[4].startswith(("9m", "10m")), row  # expires in ~10 minutes
    assert "environment(s)" in lines[-1]

    # show: the whole entry as JSON.
    shown = cli("env", "show", name)
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["name"] == name and data["state"] == "ready" and data["url"] == env.url
    assert data["teardown_run_id"] == env.teardown_run_id

    # extend 30m: the expiry moves, the teardown run is replaced by one at the new expiry.
    before = utcnow()
    extended = cli("env", "extend", name, "30m")
    assert extended.returncode == 0, extended.stderr
    assert f"{name} now expires at" in extended.stdout
    env2 = ledger.get(name)
    assert before + timedelta(minutes=30) <= env2.expires_at <= utcnow() + timedelta(minutes=30)
    assert env2.teardown_run_id != env.teardown_run_id
    assert not run_exists(env.teardown_run_id), "the replaced teardown run is still there"
    new_run = read_run(env2.teardown_run_id)
    assert new_run.state.is_scheduled()
    assert seconds(new_run.state.state_details.scheduled_time - env2.expires_at) < 0.01

    # keep: no expiry, no scheduled teardown.
    kept = cli("env", "keep", name)
    assert kept.returncode == 0, kept.stderr
    assert f"{name} is kept" in kept.stdout
    env3 = ledger.get(name)
    assert env3.expires_at is None and env3.teardown_run_id is None
    assert not run_exists(env2.teardown_run_id), "the kept environment's teardown run is there"
    listed = cli("env", "list")
    row = next(line for line in listed.stdout.splitlines() if line.split()[:1] == [name])
    assert row.split()[4] == "never", row

    # Bad input: non-zero exit, a message naming the problem, nothing changed.
    nope = cli("env", "show", "nope")
    assert nope.returncode != 0
    assert "no environment named 'nope'" in nope.stderr, nope.stderr
    negative = cli("env", "extend", name, "-5")
    assert negative.returncode != 0
    assert "TTL must be a positive number of seconds" in negative.stderr, (
        negative.stdout + negative.stderr
    )
    unchanged = ledger.get(name)
    assert unchanged.revision == env3.revision and unchanged.expires_at is None
    assert ledger.find("nope") is None

    # destroy --wait: a teardown run now, which the worker completes; the command
    # follows it and exits 0 once the environment is destroyed.
    destroyed = cli("env", "destroy", name, "--wait", "--timeout", "50", "--poll-interval", "1")
    assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr
    first = destroyed.stdout.splitlines()[0]
    run_id = first.rsplit(" ", 1)[-1]
    assert first == f"teardown of {name} started: flow run {run_id}", first
    assert f"{name} is destroyed" in destroyed.stdout, destroyed.stdout
    run = read_run(run_id)
    assert run.state.type == StateType.COMPLETED, e2e.explain(run)
    env4 = ledger.get(name)
    assert env4.state == EnvironmentState.destroyed
    assert not answers(env.url)
    assert not workspace_dir(state_dir, name).exists()
    listed_all = cli("env", "list", "--all")
    row = next(line for line in listed_all.stdout.splitlines() if line.split()[:1] == [name])
    assert row.split()[2] == "destroyed", row
    cells = row.split()
    assert cells[4] == "destroyed" and cells[6] == "ago", row  # no "expires in" left
    again = cli("env", "destroy", name)
    assert again.returncode != 0 and "already destroyed" in again.stderr, again.stderr
