"""demo-environment, environment-teardown and environment-janitor on a real (throwaway)
Prefect server with real terraform and the local-webapp stack. Scheduled runs are not
executed here (no worker): the tests call the teardown/janitor flows themselves. The
worker-driven path is in tests/e2e/test_environments_e2e.py."""

from __future__ import annotations

import urllib.error
import urllib.request
import uuid
from datetime import timedelta
from pathlib import Path
from uuid import UUID

import pytest
from prefect import get_client

from prefect_stacks import stack_path
from prefect_stacks.blocks.terraform import TerraformStack
from prefect_stacks.environments import (
    EnvironmentLedger,
    EnvironmentState,
    destroy,
    extend,
    keep,
    utcnow,
)
from prefect_stacks.exceptions import ConfigurationError, EnvironmentNotFound, LedgerError
from prefect_stacks.flows.environments import (
    demo_environment,
    environment_janitor,
    environment_teardown,
)
from tests.conftest import read_events, stop_webapps, wait_for, write_stack

pytestmark = pytest.mark.integration


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture(scope="module")
def teardown_deployment(prefect_harness) -> str:
    """The teardown deployment must exist (demo-environment schedules runs of it)."""
    environment_teardown.to_deployment(name="default").apply()
    return "environment-teardown/default"


@pytest.fixture
def webapp_block(tmp_path: Path, prefect_harness, terraform_bin) -> str:
    name = "webapp-" + uuid.uuid4().hex[:8]
    TerraformStack(
        source=str(stack_path("local-webapp")),
        state_dir=str(tmp_path / "state"),
        variables={"app_version": "9.9.9"},
    ).save(name)
    yield name
    stop_webapps(tmp_path / "run")  # a failed test must not leave servers behind


def _run_dir(tmp_path: Path, env: str) -> str:
    return str(tmp_path / "run" / env)


def _flow_run(run_id: str):
    with get_client(sync_client=True) as client:
        try:
            return client.read_flow_run(UUID(run_id))
        except Exception:
            return None


def _table_names() -> set[str]:
    """The names in the latest ``environments`` table artifact."""
    import json

    from prefect.artifacts import Artifact

    artifact = Artifact.get("environments")
    assert artifact is not None, "no environments table"
    data = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    return {row["name"] for row in data}


def test_demo_environment_lifecycle(webapp_block, teardown_deployment, tmp_path: Path):
    name = "demo-" + uuid.uuid4().hex[:6]
    result = demo_environment(
        stack=webapp_block,
        ttl_seconds=3600,
        name=name,
        owner="alice",
        variables={"run_dir": _run_dir(tmp_path, name)},
    )
    ledger = EnvironmentLedger()
    env = ledger.get(name)
    assert env.state == EnvironmentState.ready and env.owner == "alice"
    assert env.url == result["url"] and answers(env.url)
    assert timedelta(minutes=59) < env.expires_at - env.created_at <= timedelta(hours=1)
    # the environments table says so at once (not only after the next janitor run)
    assert name in _table_names()
    # automations can react: a stacks.environment.created event for it
    created = read_events("stacks.environment.created", f"stacks.environment.{name}")
    assert created and created[0]["payload"]["url"] == env.url
    assert created[0]["payload"]["state"] == "ready"
    # in the run's own event feed (`--watch`), with the URL in its name
    assert created[0]["resource"]["prefect.resource.name"] == f"{name} {env.url}"
    assert any(r["prefect.resource.role"] == "flow-run" for r in created[0]["related"])
    # the teardown is a one-off run scheduled at expiry
    run = _flow_run(env.teardown_run_id)
    assert run.state.is_scheduled()
    assert abs((run.state.state_details.scheduled_time - env.expires_at).total_seconds()) < 1
    assert run.parameters == {"name": name, "reason": "expired"}

    # extend: a new run at the new expiry, the old one deleted
    old_run = env.teardown_run_id
    env = extend(name, 7200)
    assert env.teardown_run_id != old_run and _flow_run(old_run) is None
    assert _flow_run(env.teardown_run_id).state.is_scheduled()

    # keep: no expiry, no scheduled teardown
    kept_run = env.teardown_run_id
    env = keep(name)
    assert env.expires_at is None and env.teardown_run_id is None
    assert _flow_run(kept_run) is None

    # an "expired" teardown of a kept environment does nothing
    assert environment_teardown(name=name) == "not expired"
    assert answers(env.url)

    # destroy now: a run scheduled now, then the teardown itself
    run_id = destroy(name)
    assert _flow_run(run_id).state.is_scheduled()
    assert environment_teardown(name=name, reason="requested") == "destroyed"
    env = ledger.get(name)
    assert env.state == EnvironmentState.destroyed and env.destroyed_at is not None
    assert read_events("stacks.environment.destroyed", f"stacks.environment.{name}")
    assert not answers(env.url)
    assert not (tmp_path / "state" / "workspaces" / name).exists()
    assert name not in _table_names()
    assert _flow_run(run_id) is None  # the not-started run made for it is gone
    # idempotent: again is success
    assert environment_teardown(name=name, reason="requested") == "already destroyed"


def test_bad_input_changes_nothing(webapp_block, teardown_deployment, monkeypatch):
    import prefect_stacks.flows.environments as flows

    ledger = EnvironmentLedger()
    before = {e.name for e in ledger.list(include_destroyed=True)}
    with pytest.raises(ConfigurationError, match="TTL must be a positive"):
        demo_environment(stack=webapp_block, ttl_seconds=-5, name="demo-neg")
    with pytest.raises(ConfigurationError, match="TTL 100d00h is longer than the 90-day"):
        demo_environment(stack=webapp_block, ttl_seconds="100d", name="demo-long")
    with pytest.raises(ConfigurationError, match="no TerraformStack block named"):
        demo_environment(stack="no-such-stack", ttl_seconds=60, name="demo-nostack")
    with pytest.raises(ConfigurationError, match="not a valid environment name"):
        demo_environment(stack=webapp_block, ttl_seconds=60, name="x; rm -rf /")
    with pytest.raises(ConfigurationError, match="no SlackChannel block named 'nope'"):
        demo_environment(stack=webapp_block, name="demo-noslack", slack_block="nope")
    monkeypatch.setattr(flows, "TEARDOWN_DEPLOYMENT", "nope/nope")
    with pytest.raises(ConfigurationError, match="does not exist"):
        demo_environment(stack=webapp_block, ttl_seconds=60, name="demo-nd")
    monkeypatch.undo()
    with pytest.raises(EnvironmentNotFound, match="no environment named 'ghost-1'"):
        environment_teardown.with_options(retries=0)(name="ghost-1")
    with pytest.raises(EnvironmentNotFound):
        extend("ghost-1", 60)
    assert {e.name for e in ledger.list(include_destroyed=True)} == before


def test_user_errors_end_the_run_failed_with_their_message(webapp_block, teardown_deployment):
    """Issue 10: a bad TTL, a missing block or an unknown environment ends the run
    Failed with one message that says what to fix, not a traceback."""
    from prefect_stacks.blocks.slack import SlackChannel

    state = demo_environment(stack=webapp_block, ttl_seconds=-5, name="demo-neg", return_state=True)
    assert state.is_failed() and state.message.startswith("TTL must be a positive"), state
    assert "`prefect-stacks env keep <name>`" in state.message and "keep()" not in state.message

    SlackChannel(bot_token="xoxb-unused", channel="#x").save("team-alerts", overwrite=True)
    state = demo_environment(
        stack=webapp_block, name="demo-noslack", slack_block="tema-alerts", return_state=True
    )
    assert state.is_failed() and "no SlackChannel block named 'tema-alerts'" in state.message
    assert "team-alerts" in state.message  # what exists, to pick from

    state = environment_teardown(name="ghost-2", return_state=True)
    assert state.is_failed() and "no environment named 'ghost-2'" in state.message
    assert "env list --all" in state.message


def test_a_ttl_is_a_duration_and_empty_means_none(webapp_block, teardown_deployment, tmp_path):
    """ttl_seconds takes "2h" as `env extend` does; the old nulls are empty values."""
    name = "demo-" + uuid.uuid4().hex[:6]
    demo_environment(
        stack=webapp_block,
        ttl_seconds="2h",
        name=name,
        owner=None,
        slack_block=None,
        variables={"run_dir": _run_dir(tmp_path, name)},
    )
    env = EnvironmentLedger().get(name)
    assert env.expires_at - env.created_at == timedelta(hours=2)
    assert env.owner is None and env.slack_block is None
    assert environment_teardown(name=name, reason="requested") == "destroyed"


def test_the_server_refuses_bad_parameters_at_run_creation(prefect_harness):
    """`prefect deployment run demo-environment/... -p ttl_seconds=-5` is refused when
    the run is created (the deployment enforces its parameter schema), not on a worker;
    "2h" and the old null values are accepted."""
    from prefect.exceptions import PrefectHTTPStatusError

    deployment_id = demo_environment.to_deployment(name="schema-check").apply()
    with get_client(sync_client=True) as client:
        with pytest.raises(PrefectHTTPStatusError) as refused:
            client.create_flow_run_from_deployment(deployment_id, parameters={"ttl_seconds": -5})
        assert refused.value.response.status_code == 409
        detail = refused.value.response.json()["detail"]
        assert "ttl_seconds" in detail and "minimum of 0" in detail, detail
        for parameters in (
            {"ttl_seconds": "2h"},
            {"ttl_seconds": 7200, "owner": None, "name": None, "variables": None},
        ):
            run = client.create_flow_run_from_deployment(deployment_id, parameters=parameters)
            client.delete_flow_run(run.id)


def test_janitor_tears_down_expired_warns_and_dry_runs(
    webapp_block, teardown_deployment, tmp_path: Path
):
    ledger = EnvironmentLedger()
    expired = "demo-" + uuid.uuid4().hex[:6]
    soon = "demo-" + uuid.uuid4().hex[:6]
    for name, ttl in ((expired, 3600), (soon, 3600)):
        demo_environment(
            stack=webapp_block,
            ttl_seconds=ttl,
            name=name,
            variables={"run_dir": _run_dir(tmp_path, name)},
        )
    # the expired one's scheduled teardown "never ran" (no worker here): move its expiry
    # into the past; the other expires in 5 minutes
    ledger.update(expired, lambda e: setattr(e, "expires_at", utcnow() - timedelta(seconds=5)))
    ledger.update(soon, lambda e: setattr(e, "expires_at", utcnow() + timedelta(minutes=5)))
    url = ledger.get(expired).url

    dry = environment_janitor(dry_run=True, warn_before_seconds=600)
    assert expired in dry["teardown"] and soon in dry["warn"]
    assert ledger.get(expired).state == EnvironmentState.ready and answers(url)
    assert ledger.get(soon).warned_at is None

    report = environment_janitor(warn_before_seconds=600)
    assert expired in report["teardown"] and soon in report["warn"]
    assert ledger.get(expired).state == EnvironmentState.destroyed and not answers(url)
    assert ledger.get(soon).warned_at is not None
    # warned once only
    assert soon not in environment_janitor(warn_before_seconds=600)["warn"]
    environment_teardown(name=soon, reason="requested")


def test_failed_teardown_keeps_the_entry_and_the_janitor_retries(
    tmp_path: Path, prefect_harness, teardown_deployment, terraform_bin
):
    flag = tmp_path / "destroy-may-succeed"
    src = write_stack(
        tmp_path / "src",
        f"""
resource "terraform_data" "fragile" {{
  provisioner "local-exec" {{
    when    = destroy
    command = "test -f {flag} || (echo destroy refused >&2; exit 1)"
  }}
}}
""",
    )
    block = "fragile-" + uuid.uuid4().hex[:6]
    TerraformStack(source=str(src), state_dir=str(tmp_path / "state")).save(block)
    name = "demo-" + uuid.uuid4().hex[:6]
    demo_environment(stack=block, ttl_seconds=60, name=name)
    ledger = EnvironmentLedger()
    ledger.update(name, lambda e: setattr(e, "expires_at", utcnow() - timedelta(seconds=1)))

    with pytest.raises(Exception, match="destroy refused"):
        environment_teardown.with_options(retries=0)(name=name)
    env = ledger.get(name)
    assert env.state == EnvironmentState.failed and "destroy refused" in env.error
    assert (tmp_path / "state" / "workspaces" / name).exists()  # infrastructure remains
    with pytest.raises(LedgerError):
        ledger.remove(name)  # and the entry can't be dropped while it does

    report = environment_janitor()
    assert name in report["failed"] and ledger.get(name).state == EnvironmentState.failed
    flag.write_text("ok")
    report = environment_janitor()
    assert name in report["teardown"] and name not in report["failed"]
    assert ledger.get(name).state == EnvironmentState.destroyed
    assert not (tmp_path / "state" / "workspaces" / name).exists()


def test_janitor_acts_on_nothing_when_the_listing_fails(prefect_harness, monkeypatch):
    def broken(self, include_destroyed=False):
        raise LedgerError("listing the environment ledger failed: 500")

    monkeypatch.setattr(EnvironmentLedger, "list", broken)
    state = environment_janitor(return_state=True)
    assert state.is_failed() and "listing the environment ledger failed" in state.message


def _gated_stack(root: Path, when: str) -> tuple[str, Path]:
    """A stack whose apply (``when="create"``) or destroy (``"destroy"``) waits for a
    file, so a test can act while terraform is in the middle of it."""
    gate = root / f"{when}-gate"
    src = write_stack(
        root / f"src-{when}",
        f"""
resource "terraform_data" "gated" {{
  provisioner "local-exec" {{
    when    = {when}
    command = "i=0; while [ ! -f {gate} ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done"
  }}
}}
""",
    )
    block = f"gated-{when}-" + uuid.uuid4().hex[:6]
    TerraformStack(source=str(src), state_dir=str(root / "state")).save(block)
    return block, gate


def test_teardown_waits_for_a_running_apply(
    tmp_path: Path, prefect_harness, teardown_deployment, terraform_bin
):
    """The race the 50-environment soak found: a TTL shorter than the apply. A teardown
    that ran now would destroy an empty workspace, and the apply would then build into
    it and leak. It must wait for the provisioning run instead."""
    from concurrent.futures import ThreadPoolExecutor

    block, gate = _gated_stack(tmp_path, "create")
    name = "demo-" + uuid.uuid4().hex[:6]
    ledger = EnvironmentLedger()
    with ThreadPoolExecutor(1) as pool:
        demo = pool.submit(demo_environment, stack=block, ttl_seconds=1, name=name)
        # the entry with its scheduled teardown recorded: a teardown that rescheduled
        # itself before that would be replaced by the demo's own (still a teardown, but
        # not the one this test looks at)
        env = wait_for(
            "the entry and its scheduled teardown",
            lambda: (e := ledger.find(name)) and e.provisioning_run_id and e.teardown_run_id and e,
            timeout=60,
        )
        wait_for("expiry", lambda: utcnow() > env.expires_at, timeout=60)
        scheduled_before = ledger.get(name).teardown_run_id

        assert environment_teardown(name=name) == "waiting for provisioning"
        env = ledger.get(name)
        assert env.state == EnvironmentState.provisioning
        # it rescheduled itself a few seconds later, replacing the old one-off run
        assert env.teardown_run_id != scheduled_before
        retry = _flow_run(env.teardown_run_id)
        assert retry.state.is_scheduled() and retry.parameters["reason"] == "expired"
        assert 0 < (retry.state.state_details.scheduled_time - utcnow()).total_seconds() <= 11
        # the janitor leaves it alone too, and says so
        report = environment_janitor(warn_before_seconds=0, stale_after_seconds=600)
        assert name in report["waiting"] and ledger.get(name).state == EnvironmentState.provisioning

        gate.write_text("go")
        assert demo.result(timeout=120)["name"] == name
    env = ledger.get(name)
    assert env.state == EnvironmentState.ready and env.provisioning_run_id is None
    assert environment_teardown(name=name) == "destroyed"
    assert not (tmp_path / "state" / "workspaces" / name).exists()


def test_an_apply_overtaken_by_a_teardown_destroys_again(
    tmp_path: Path, prefect_harness, teardown_deployment, terraform_bin
):
    """If a teardown did run during the apply (it judged the provisioning run dead), the
    demo flow must not leave what it built: it reopens the entry and schedules a
    teardown now."""
    from concurrent.futures import ThreadPoolExecutor

    block, gate = _gated_stack(tmp_path, "create")
    name = "demo-" + uuid.uuid4().hex[:6]
    ledger = EnvironmentLedger()
    with ThreadPoolExecutor(1) as pool:
        demo = pool.submit(demo_environment, stack=block, ttl_seconds=3600, name=name)
        wait_for(
            "the entry", lambda: (e := ledger.find(name)) and e.provisioning_run_id, timeout=60
        )
        # what a teardown that took over would leave: destroyed, before the apply ends
        ledger.update(
            name,
            lambda e: (
                setattr(e, "state", EnvironmentState.destroyed),
                setattr(e, "destroyed_at", utcnow()),
            ),
        )
        gate.write_text("go")
        result = demo.result(timeout=120)
    assert result["state"] == "failed"
    env = ledger.get(name)
    assert env.state == EnvironmentState.failed and "destroying again" in env.error
    assert env.destroyed_at is None and env.provisioning_run_id is None
    assert (tmp_path / "state" / "workspaces" / name).exists()  # the apply did build
    run = _flow_run(env.teardown_run_id)
    assert run.state.is_scheduled() and run.parameters["reason"] == "requested"
    assert (run.state.state_details.scheduled_time - utcnow()).total_seconds() <= 1
    assert environment_teardown(name=name, reason="requested") == "destroyed"
    assert not (tmp_path / "state" / "workspaces" / name).exists()


def test_a_teardown_taken_over_midway_leaves_the_entry_to_the_new_owner(
    tmp_path: Path, prefect_harness, teardown_deployment, terraform_bin
):
    from concurrent.futures import ThreadPoolExecutor

    block, gate = _gated_stack(tmp_path, "destroy")
    name = "demo-" + uuid.uuid4().hex[:6]
    demo_environment(stack=block, ttl_seconds=3600, name=name)
    ledger = EnvironmentLedger()
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(environment_teardown, name=name, reason="requested")
        wait_for(
            "the claim", lambda: ledger.get(name).state == EnvironmentState.destroying, timeout=60
        )
        # another run takes over (as the janitor does once a claim is stale)
        ledger.update(name, lambda e: setattr(e, "teardown_started_at", utcnow()))
        taken_over = ledger.get(name)
        gate.write_text("go")
        assert first.result(timeout=120) == "superseded"
    env = ledger.get(name)
    assert env.state == EnvironmentState.destroying and env.destroyed_at is None
    assert env.teardown_started_at == taken_over.teardown_started_at
    # the janitor finishes a stale `destroying` entry even though it has not expired
    report = environment_janitor(stale_after_seconds=0, warn_before_seconds=0)
    assert name in report["teardown"] and not report["failed"]
    assert ledger.get(name).state == EnvironmentState.destroyed


def test_a_teardown_that_already_started_never_replaces_a_newer_one(
    prefect_harness, teardown_deployment
):
    """A teardown due at once can be picked up before the flow that scheduled it records
    it; if it rescheduled itself meanwhile, recording the older (started) run must not
    cancel the newer scheduled one: there must always be a scheduled teardown."""
    from prefect.exceptions import ObjectNotFound
    from prefect.states import Running, Scheduled

    from prefect_stacks.environments import (
        Environment,
        EnvironmentLedger,
        record_teardown,
        schedule_teardown,
        utcnow,
    )

    ledger = EnvironmentLedger()
    name = "demo-" + uuid.uuid4().hex[:6]
    ledger.create(Environment(name=name, kind="demo", stack="s", workspace=name))
    newer = schedule_teardown(name, utcnow() + timedelta(seconds=10), ledger=ledger)
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(teardown_deployment)
        started = client.create_flow_run_from_deployment(
            deployment.id, parameters={"name": name}, state=Scheduled(scheduled_time=utcnow())
        )
        client.set_flow_run_state(started.id, Running(), force=True)
    assert record_teardown(name, str(started.id), ledger) == []
    env = ledger.get(name)
    assert env.teardown_run_id == newer and str(started.id) in env.objects.flow_runs
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(UUID(newer)).state.is_scheduled()  # not cancelled
    # a scheduled one still replaces as before (an extend, a reschedule)
    latest = schedule_teardown(name, utcnow() + timedelta(seconds=60), ledger=ledger)
    assert ledger.get(name).teardown_run_id == latest
    with get_client(sync_client=True) as client, pytest.raises(ObjectNotFound):
        client.read_flow_run(UUID(newer))  # the one it replaced is deleted
