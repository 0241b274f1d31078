"""maintenance-mode against real nginx hosts with real Ansible (ansible-runner, local
connection aliases): every page turns 503 with the maintenance page and back to 200;
each task's result is in the log as it happens; the recap is an artifact; Slack is told.
And the failure paths: an unreachable host, a failing task, a wrong vault password and a
limit that matches nothing each fail the run naming what to fix, and the hosts that did
switch are said."""

from __future__ import annotations

import logging
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from prefect import get_client

from prefect_stacks.blocks.ansible import AnsiblePlaybook
from prefect_stacks.blocks.slack import SlackChannel
from prefect_stacks.exceptions import AnsibleError, ConfigurationError
from prefect_stacks.flows.day2.maintenance import maintenance_mode
from tests.conftest import free_port
from tests.fakes.slack import FakeSlack
from tests.nginx import NginxHost, nginx_hosts

pytestmark = pytest.mark.integration

SLACK_TOKEN = "xoxb-maintenance"
VAULT_PASSWORD = "vault-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def hosts(tmp_path_factory) -> list[NginxHost]:
    with nginx_hosts(tmp_path_factory.mktemp("nginx"), ["web-1", "web-2", "web-3"]) as found:
        yield found


@pytest.fixture
def slack():
    with FakeSlack(tokens=[SLACK_TOKEN], channels=["ops"]) as fake:
        yield fake


def inventory(hosts: list[NginxHost], *extra: str) -> str:
    lines = ["[web]"]
    lines += [
        f"{h.name} ansible_connection=local maintenance_dir={h.maintenance_dir}" for h in hosts
    ]
    if extra:
        lines += ["[other]", *extra]
    lines += ["", "[all:vars]", f"ansible_python_interpreter={sys.executable}"]
    return "\n".join(lines) + "\n"


def save(hosts_inventory: str, **fields) -> str:
    name = "maintenance-" + uuid.uuid4().hex[:6]
    AnsiblePlaybook(playbook="maintenance-nginx", inventory=hosts_inventory, **fields).save(name)
    return name


def recap_artifact(block_name: str) -> str:
    with get_client(sync_client=True) as client:
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
        from prefect.client.schemas.sorting import ArtifactSort

        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[f"ansible-{block_name}"])),
            sort=ArtifactSort.CREATED_DESC,
            limit=1,
        )
    return found[0].data


def statuses(hosts: list[NginxHost]) -> dict[str, int]:
    return {h.name: h.get().status_code for h in hosts}


def test_on_then_off_on_every_host_with_each_task_logged_a_recap_and_slack_told(
    prefect_harness, hosts, slack, caplog
):
    caplog.set_level(logging.INFO)
    block = save(inventory(hosts))
    SlackChannel(bot_token=SLACK_TOKEN, channel="#ops", api_url=slack.api_url).save(block)

    result = maintenance_mode(
        state="on",
        playbook=block,
        message="Back at noon",
        reason="database upgrade",
        check_urls=[h.url for h in hosts],
        slack=block,
    )
    assert statuses(hosts) == {h.name: 503 for h in hosts}
    assert all("Back at noon" in h.get().text for h in hosts)
    assert result == {
        "state": "on",
        "hosts": ["web-1", "web-2", "web-3"],
        "changed": result["changed"],
    }
    assert result["changed"] == ["web-1", "web-2", "web-3"]
    for h in hosts:  # each host's task result, as ansible-runner's events came in
        assert f"changed: [{h.name}] Switch the maintenance page on" in caplog.text
    recap = recap_artifact(block)
    assert "| web-2 |" in recap and "| changed |" in recap
    (told,) = [m.text for m in slack.messages]
    assert "ON" in told and "web-1, web-2, web-3" in told and "database upgrade" in told

    # idempotent, and a limit: only web-2 is asked, and nothing changes there
    again = maintenance_mode(
        state="on", playbook=block, message="Back at noon", reason="database upgrade", limit="web-2"
    )
    assert again["hosts"] == ["web-2"] and again["changed"] == []

    maintenance_mode(state="off", playbook=block, check_urls=[h.url for h in hosts])
    assert statuses(hosts) == {h.name: 200 for h in hosts}


def test_check_mode_changes_nothing_and_a_limit_matching_nothing_is_refused(prefect_harness, hosts):
    block = save(inventory(hosts))
    dry = maintenance_mode(state="on", playbook=block, check_mode=True)
    assert dry["changed"] == ["web-1", "web-2", "web-3"]  # what would change
    assert statuses(hosts) == {h.name: 200 for h in hosts}
    assert "check mode" in recap_artifact(block)

    with pytest.raises(AnsibleError, match="no host of the inventory matched the limit 'web-9'"):
        maintenance_mode(state="on", playbook=block, limit="web-9")


def test_an_unreachable_host_and_a_failing_task_are_named_and_the_others_still_switch(
    prefect_harness, hosts, slack, tmp_path
):
    closed = free_port()
    block = save(
        inventory(
            hosts,
            f"web-4 ansible_host=127.0.0.1 ansible_port={closed} ansible_user=nobody "
            "ansible_connection=ssh",
            f"web-5 ansible_connection=local maintenance_dir={tmp_path / 'no' / 'such' / 'dir'}",
        )
    )
    SlackChannel(bot_token=SLACK_TOKEN, channel="#ops", api_url=slack.api_url).save(block)
    try:
        with pytest.raises(AnsibleError) as failed:
            maintenance_mode(state="on", playbook=block, slack=block)
        assert failed.value.unreachable_hosts == ["web-4"]
        assert failed.value.failed_hosts == ["web-5"]
        assert "could not reach web-4" in str(failed.value)
        assert "failed on web-5" in str(failed.value)
        assert statuses(hosts) == {h.name: 503 for h in hosts}  # the others did switch
        recap = recap_artifact(block)
        assert "| web-4 |" in recap and "**unreachable**" in recap and "**failed**" in recap
        (told,) = [m.text for m in slack.messages]
        assert "failed on web-4, web-5" in told and "web-1, web-2, web-3" in told
    finally:
        maintenance_mode(state="off", playbook=block, limit="web")


def _vaulted(value: str, password_file: Path) -> str:
    out = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-vault"),
            "encrypt_string",
            "--vault-password-file",
            str(password_file),
            value,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return out.split("!vault |", 1)[1]


def test_vault_data_opens_with_the_password_and_a_wrong_one_is_named(
    prefect_harness, hosts, tmp_path, caplog
):
    caplog.set_level(logging.DEBUG)
    password_file = tmp_path / "pw"
    password_file.write_text(VAULT_PASSWORD)
    secret_reason = "secret-reason-" + uuid.uuid4().hex[:6]
    vaulted = _vaulted(secret_reason, password_file).replace("\n", "\n    ")
    host = hosts[0]
    yaml_inventory = (
        "all:\n"
        "  vars:\n"
        f"    ansible_python_interpreter: {sys.executable}\n"
        f"    maintenance_reason: !vault |{vaulted}\n"
        "  hosts:\n"
        f"    {host.name}:\n"
        "      ansible_connection: local\n"
        f"      maintenance_dir: {host.maintenance_dir}\n"
    )
    wrong = save(yaml_inventory, vault_password="not-the-password")
    with pytest.raises(AnsibleError, match="vault password does not open.*vault_password"):
        AnsiblePlaybook.load(wrong).run(extra_vars={"maintenance_state": "on"})
    assert host.get().status_code == 200

    right = save(yaml_inventory, vault_password=VAULT_PASSWORD)
    playbook = AnsiblePlaybook.load(right)
    try:
        playbook.run(extra_vars={"maintenance_state": "on"})
        assert secret_reason in (host.maintenance_dir / "maintenance.html").read_text()
    finally:
        playbook.run(extra_vars={"maintenance_state": "off"})
    assert VAULT_PASSWORD not in caplog.text


def test_a_missing_block_or_playbook_is_a_configuration_error(prefect_harness, hosts):
    with pytest.raises(ConfigurationError, match="no AnsiblePlaybook block named 'nope'"):
        maintenance_mode(state="on", playbook="nope")
    with pytest.raises(ConfigurationError, match="no shipped playbook 'maintenance-apache'"):
        AnsiblePlaybook(playbook="maintenance-apache", inventory="x").prepare()
    with pytest.raises(ConfigurationError, match="inventory: .* does not exist"):
        AnsiblePlaybook(playbook="maintenance-nginx", inventory="/no/such/inventory").run()


def _start(parameters: dict):
    """maintenance-mode as a worker would run it, in a thread (it pauses)."""
    import threading

    from prefect.flow_engine import run_flow

    with get_client(sync_client=True) as client:
        created = client.create_flow_run(maintenance_mode, parameters=parameters)
    thread = threading.Thread(
        target=lambda: run_flow(maintenance_mode, flow_run=created, return_type="state"),
        daemon=True,
    )
    thread.start()
    return created.id, thread


def _state(run_id):
    with get_client(sync_client=True) as client:
        return client.read_flow_run(run_id).state


def test_production_hosts_wait_for_an_approval_and_a_rejection_switches_nothing(
    prefect_harness, hosts
):
    from prefect.flow_runs import resume_flow_run

    from tests.conftest import wait_for

    block = save(inventory(hosts))
    asked = {"state": "on", "playbook": block, "require_approval": True, "reason": "upgrade"}
    run_id, thread = _start(asked)
    wait_for("the run to wait for approval", lambda: _state(run_id).is_paused(), 60)
    assert statuses(hosts) == {h.name: 200 for h in hosts}  # nothing before the answer
    resume_flow_run(run_id, run_input={"decision": "reject", "approver": "bob", "comment": "no"})
    thread.join(60)
    assert _state(run_id).is_cancelled()
    assert "rejected by bob (no): nothing was done" in _state(run_id).message
    assert statuses(hosts) == {h.name: 200 for h in hosts}

    run_id, thread = _start(asked)
    wait_for("the run to wait for approval", lambda: _state(run_id).is_paused(), 60)
    resume_flow_run(run_id, run_input={"decision": "approve", "approver": "bob"})
    thread.join(120)
    try:
        assert _state(run_id).is_completed(), _state(run_id)
        assert statuses(hosts) == {h.name: 503 for h in hosts}
    finally:
        maintenance_mode(state="off", playbook=block)
