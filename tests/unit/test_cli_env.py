"""`prefect-stacks env ...` fails clearly, before touching any server, on bad input."""

from __future__ import annotations

import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings
from typer.testing import CliRunner

from prefect_stacks._cli import app

runner = CliRunner()


def test_without_an_api_url_it_says_how_to_point_at_a_server():
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        result = runner.invoke(app, ["env", "list"])
    assert result.exit_code == 1
    assert "PREFECT_API_URL is not set" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["env", "show", "x;rm -rf /"], "not a valid environment name"),
        (["env", "extend", "demo-1", "soon"], "is not a duration"),
        (["env", "extend", "demo-1", "--", "-5"], "TTL must be a positive"),
    ],
)
def test_bad_input_is_refused_before_any_server_call(args, message):
    # a closed port: any server call would fail with a connection error instead
    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert message in result.output


def test_list_piped_keeps_whole_urls(monkeypatch):
    """Piped (CI logs, `| grep`), the table is not cut to 80 columns."""
    from prefect_stacks.environments import Environment, EnvironmentLedger

    url = "https://" + "preview-" * 12 + "pr-42.example.com/some/long/path"
    entry = Environment(name="PR_42", kind="pr", stack="webapp", workspace="PR_42", url=url)
    monkeypatch.setattr(EnvironmentLedger, "list", lambda self, include_destroyed=False: [entry])
    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        result = runner.invoke(app, ["env", "list"])
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if line.lstrip().startswith("PR_42"))
    assert url in row and "provisioning" in row


def _row(output: str, name: str) -> str:
    return next(line for line in output.splitlines() if line.lstrip().startswith(name))


def test_list_shows_no_expiry_for_destroyed_or_destroying(monkeypatch):
    """Issue 10: a destroyed environment showed "expires in 29m46s"."""
    from datetime import timedelta

    from prefect_stacks.environments import (
        Environment,
        EnvironmentLedger,
        EnvironmentState,
        utcnow,
    )

    now = utcnow()
    common = {"kind": "demo", "stack": "s", "expires_at": now + timedelta(minutes=30)}
    entries = [
        Environment(
            name="demo-gone",
            workspace="demo-gone",
            state=EnvironmentState.destroyed,
            destroyed_at=now - timedelta(minutes=3),
            **common,
        ),
        Environment(
            name="demo-going",
            workspace="demo-going",
            state=EnvironmentState.destroying,
            **common,
        ),
        Environment(
            name="demo-live", workspace="demo-live", state=EnvironmentState.ready, **common
        ),
    ]
    monkeypatch.setattr(EnvironmentLedger, "list", lambda self, include_destroyed=False: entries)
    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        result = runner.invoke(app, ["env", "list", "--all"])
    assert result.exit_code == 0, result.output
    gone = _row(result.output, "demo-gone")
    assert "destroyed 3m0" in gone and "ago" in gone and "29m" not in gone, gone
    going = _row(result.output, "demo-going")
    assert "29m" not in going and "—" in going, going
    assert "29m" in _row(result.output, "demo-live")


def test_destroy_timeout_needs_wait():
    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        result = runner.invoke(app, ["env", "destroy", "demo-1", "--timeout", "5"])
    assert result.exit_code == 1
    assert "--timeout only applies with --wait" in result.output


class _FakeClient:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def read_flow_run(self, run_id):
        return run_id


def _destroy_wait(monkeypatch, states: list[str], codes: list[int], args=()):
    """`env destroy NAME --wait` with the server faked: ``codes`` are what following each
    teardown run returns, ``states`` the entry's state after each."""
    import uuid

    import prefect_stacks._cli.env as env_cli
    from prefect_stacks import environments as envs

    runs = [str(uuid.uuid4()) for _ in codes]
    followed: list[str] = []
    monkeypatch.setattr(envs, "destroy", lambda name: runs[0])
    monkeypatch.setattr(env_cli, "get_client", lambda sync_client: _FakeClient())

    def follow(client, flow_run, *, timeout, poll_interval):
        followed.append(str(flow_run))
        return codes[len(followed) - 1]

    def get(self, name):
        i = len(followed) - 1
        nxt = runs[i + 1] if i + 1 < len(runs) else runs[i]
        return envs.Environment(
            name=name,
            stack="s",
            workspace=name,
            state=envs.EnvironmentState(states[i]),
            teardown_run_id=nxt,
            error="StackError: destroy refused" if states[i] == "failed" else None,
        )

    monkeypatch.setattr(env_cli, "follow", follow)
    monkeypatch.setattr(envs.EnvironmentLedger, "get", get)
    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        result = runner.invoke(app, ["env", "destroy", "demo-1", "--wait", *args])
    return result, followed, runs


def test_destroy_wait_exits_zero_once_destroyed(monkeypatch):
    result, followed, runs = _destroy_wait(monkeypatch, ["destroyed"], [0])
    assert result.exit_code == 0, result.output
    assert followed == runs and "demo-1 is destroyed" in result.output


def test_destroy_wait_exits_non_zero_when_the_teardown_failed(monkeypatch):
    result, _, runs = _destroy_wait(monkeypatch, ["failed", "failed"], [1, 0])
    assert result.exit_code == 1, result.output
    assert "did not succeed: demo-1 is failed: StackError: destroy refused" in result.output
    assert f"a retry is scheduled: flow run {runs[1]}" in result.output


def test_destroy_wait_follows_a_rescheduled_teardown(monkeypatch):
    """A teardown that finds the environment still provisioning ends Completed and
    reschedules itself: --wait follows the next run until the entry is destroyed."""
    result, followed, runs = _destroy_wait(monkeypatch, ["provisioning", "destroyed"], [0, 0])
    assert result.exit_code == 0, result.output
    assert followed == runs and "following the next teardown run" in result.output


def test_destroy_wait_times_out_with_exit_4(monkeypatch):
    result, _, _ = _destroy_wait(monkeypatch, ["destroying"], [4], args=["--timeout", "1"])
    assert result.exit_code == 4, result.output
