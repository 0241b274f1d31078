"""The Ansible block without running Ansible: what reaches argv and what stays in 0600
files, how each event becomes a log line, and the recap table."""

from __future__ import annotations

import logging
import shlex
import stat
from pathlib import Path

import pytest

from prefect_stacks.blocks.ansible import AnsiblePlaybook, PlaybookResult
from prefect_stacks.blocks.ansible.events import describe_event
from prefect_stacks.exceptions import ConfigurationError

KEY = "\n".join(
    [
        "-----BEGIN OPENSSH PRIVATE KEY-----",
        "b3BlbnNzaC1rZXktdjEAAAAA",
        "-----END OPENSSH PRIVATE KEY-----",
    ]
)


def test_secrets_reach_0600_files_named_by_path_never_argv(tmp_path: Path):
    block = AnsiblePlaybook(
        playbook="maintenance-nginx",
        inventory="[web]\nweb-1 ansible_connection=local\n",
        extra_vars={"branch": "main; rm -rf /"},
        secret_vars={"db_password": "s3cret-db"},
        vault_password="s3cret-vault",
        ssh_private_key=KEY,
        env={"AWS_SECRET_ACCESS_KEY": "s3cret-aws"},
        check_mode=True,
    )
    run = block.prepare(extra_vars={"maintenance_state": "on"}, tags=["nginx"])
    cmdline, env = run._arguments(tmp_path)
    argv = shlex.split(cmdline)
    for secret in ("s3cret-db", "s3cret-vault", "BEGIN OPENSSH", "s3cret-aws", "rm -rf"):
        assert secret not in cmdline
    assert argv[argv.index("--vault-password-file") + 1] == str(tmp_path / "vault")
    assert ["--check", "--diff"] == argv[argv.index("--check") : argv.index("--check") + 2]
    assert argv[argv.index("--tags") + 1] == "nginx"
    assert env["AWS_SECRET_ACCESS_KEY"] == "s3cret-aws"  # the child's environment only
    key_file = Path(env["ANSIBLE_PRIVATE_KEY_FILE"])
    assert key_file.read_text().endswith("-----\n")  # ssh refuses a key without a newline
    inventory = Path(run._inventory(tmp_path))
    for path in (tmp_path / "vault", tmp_path / "secret_vars.json", key_file, inventory):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert '"maintenance_state": "on"' in (tmp_path / "extra_vars.json").read_text()
    assert set(block.secrets()) >= {"s3cret-db", "s3cret-vault", KEY, "s3cret-aws"}


def test_a_yaml_inventory_is_written_as_yaml_and_a_missing_path_is_named(tmp_path: Path):
    run = AnsiblePlaybook(
        playbook="maintenance-nginx", inventory="all:\n  hosts:\n    a:\n"
    ).prepare()
    assert run._inventory(tmp_path).endswith("inventory.yml")
    bad = AnsiblePlaybook(playbook="maintenance-nginx", inventory="/etc/ansible/nope").prepare()
    with pytest.raises(ConfigurationError, match="inventory: /etc/ansible/nope does not exist"):
        bad._inventory(tmp_path)
    with pytest.raises(ConfigurationError, match="playbook: /no/site.yml is not a file"):
        AnsiblePlaybook(playbook="/no/site.yml", inventory="x").prepare()


def _event(kind: str, **data) -> dict:
    return {"event": kind, "event_data": {"host": "web-1", "task": "Switch it on", **data}}


@pytest.mark.parametrize(
    ("event", "level", "line"),
    [
        (
            _event("runner_on_ok", res={"changed": True}),
            logging.INFO,
            "changed: [web-1] Switch it on",
        ),
        (_event("runner_on_ok", res={"changed": False}), logging.INFO, "ok: [web-1] Switch it on"),
        (_event("runner_on_skipped"), logging.INFO, "skipping: [web-1] Switch it on"),
        (
            _event("runner_on_failed", res={"msg": "boom", "stderr": "E: no"}),
            logging.ERROR,
            "failed: [web-1] Switch it on: boom | stderr: E: no",
        ),
        (
            _event("runner_on_failed", ignore_errors=True, res={"msg": "meh"}),
            logging.WARNING,
            "failed (ignored): [web-1] Switch it on: meh",
        ),
        (
            _event("runner_on_unreachable", res={"msg": "Connection refused"}),
            logging.ERROR,
            "unreachable: [web-1] Switch it on: Connection refused",
        ),
    ],
)
def test_each_host_result_is_one_log_line(event, level, line):
    assert describe_event(event) == (level, line)


def test_verbose_output_and_stats_are_not_lines_of_their_own():
    assert describe_event({"event": "verbose", "stdout": "x"}) is None
    assert describe_event({"event": "playbook_on_stats", "event_data": {}}) is None


def test_the_recap_names_the_bad_hosts():
    zero = dict.fromkeys(("ok", "changed", "failures", "dark", "skipped", "rescued", "ignored"), 0)
    result = PlaybookResult(
        recap={
            "web-1": {**zero, "ok": 2, "changed": 1},
            "web-2": {**zero, "ok": 1, "failures": 1},
            "web-3": {**zero, "dark": 1},
        },
        status="failed",
        rc=2,
    )
    table = result.to_markdown("maintenance")
    assert "| web-1 | 2 | 1 | 0 | 0 | 0 | 0 | 0 | changed |" in table
    assert "| web-2 | 1 | 0 | 1 | 0 | 0 | 0 | 0 | **failed** |" in table
    assert "| web-3 | 0 | 0 | 0 | 1 | 0 | 0 | 0 | **unreachable** |" in table
    assert result.hosts_with("changed") == ["web-1"]
