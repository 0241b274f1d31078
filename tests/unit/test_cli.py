"""Unit tests of `prefect-stacks` (up/down/status) and of the process handling in
:mod:`prefect_stacks.local`, without a Prefect server. The real `up` is covered by
``tests/e2e``."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import prefect_stacks
from prefect_stacks import local
from prefect_stacks._cli import app
from prefect_stacks.local import (
    LocalConfig,
    LocalPlatform,
    LocalPlatformError,
    is_alive,
    read_pid_file,
    stop_process,
)

runner = CliRunner()


def _spawn(code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", code], start_new_session=True)


def test_help_lists_the_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0, result.output
    for command in ("up", "down", "status"):
        assert command in result.output


def test_up_help_shows_the_options():
    result = runner.invoke(app, ["up", "--help"])
    assert result.exit_code == 0, result.output
    for option in ("--home", "--port", "--pool", "--no-worker", "--detach"):
        assert option in result.output


def test_config_defaults_and_child_environment(tmp_path):
    config = LocalConfig(home=tmp_path / "h")
    assert config.port == 4200 and config.host == "127.0.0.1" and config.pool == "local"
    assert config.api_url == "http://127.0.0.1:4200/api"
    env = config.child_env()
    assert env["PREFECT_HOME"] == str(tmp_path / "h" / "prefect")
    assert env["PREFECT_API_URL"] == config.api_url
    assert env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert env["PREFECT_WORKER_QUERY_SECONDS"] == "1"
    assert env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] == (
        f"sqlite+aiosqlite:///{tmp_path / 'h' / 'prefect' / 'prefect.db'}"
    )
    assert env["PREFECT_STACKS_HOME"] == str(tmp_path / "h")
    assert config.state_dir("local-webapp") == tmp_path / "h" / "tfstate" / "local-webapp"


def test_default_home_is_relative_to_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert LocalConfig().home == tmp_path / ".prefect-stacks"


def test_stop_process_escalates_to_sigkill_and_stops_runs_in_their_own_session():
    # A "worker" that ignores SIGTERM and has a child in its own session (as the
    # process worker's flow runs are).
    parent = _spawn(
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],"
        " preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL),"
        " start_new_session=True)\n"
        "time.sleep(60)\n"
    )
    deadline = time.monotonic() + 10
    while not local.descendants(parent.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    (child,) = local.descendants(parent.pid)
    messages: list[str] = []
    killed = stop_process(parent.pid, name="worker", grace=0.5, say=messages.append)
    parent.wait(timeout=5)
    assert killed is True
    assert "SIGKILL" in messages[0]
    deadline = time.monotonic() + 5
    while is_alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not is_alive(child)


def test_stop_process_is_gentle_when_the_process_obeys():
    proc = _spawn("import time; time.sleep(60)")
    assert stop_process(proc.pid, name="server", grace=5) is False
    assert proc.wait(timeout=5) == -signal.SIGTERM


def test_pid_file_of_a_dead_or_foreign_process_is_ignored_and_removed(tmp_path):
    pid_file = tmp_path / "server.json"
    proc = _spawn("import time; time.sleep(60)")
    try:
        pid_file.write_text(json.dumps({"pid": proc.pid, "port": 1}))
        # alive, but not a `prefect server start`
        assert read_pid_file(pid_file, "server") is None
        assert not pid_file.exists()
    finally:
        proc.kill()
        proc.wait()
    pid_file.write_text(json.dumps({"pid": proc.pid}))
    assert read_pid_file(pid_file, "server") is None
    pid_file.write_text("not json")
    assert read_pid_file(pid_file, "server") is None


def test_down_with_nothing_running(tmp_path):
    result = runner.invoke(app, ["down", "--home", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "nothing runs" in result.output


def _free_port() -> int:
    return local.free_port()


def test_server_that_exits_fails_loudly_with_its_log(tmp_path, monkeypatch):
    monkeypatch.setattr(
        local,
        "prefect_argv",
        lambda *a: [sys.executable, "-c", "import sys; print('boom: no database'); sys.exit(3)"],
    )
    platform = LocalPlatform(LocalConfig(home=tmp_path, port=_free_port()))
    with pytest.raises(LocalPlatformError) as excinfo:
        platform.start_server(timeout=20)
    message = str(excinfo.value)
    assert "exited (code 3)" in message and "boom: no database" in message
    assert str(tmp_path / "server.log") in message


def test_server_that_never_gets_healthy_times_out_with_its_log(tmp_path, monkeypatch):
    monkeypatch.setattr(
        local,
        "prefect_argv",
        lambda *a: [
            sys.executable,
            "-c",
            "print('starting...', flush=True)\nimport time\ntime.sleep(60)",
        ],
    )
    platform = LocalPlatform(LocalConfig(home=tmp_path, port=_free_port()))
    with pytest.raises(LocalPlatformError) as excinfo:
        platform.start_server(timeout=1.5)
    assert "not healthy within 2 s" in str(excinfo.value)
    assert "starting..." in str(excinfo.value)
    # what start_server started is stopped again
    assert platform.server is not None and not platform.server.alive()
    assert not (tmp_path / "server.json").exists()


def test_port_taken_by_something_else(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        monkey_config = LocalConfig(home=tmp_path, port=port)
        with pytest.raises(LocalPlatformError, match="not a healthy Prefect server"):
            LocalPlatform(monkey_config).start_server(timeout=1)


def test_prefect_yaml_declares_the_stack_deployments():
    """deployments/prefect.yaml: one `local-webapp` deployment per stack flow, in pool
    `local`, module-path entrypoints (the installed package, no pull step)."""
    from prefect.flows import load_flow_from_entrypoint

    spec = yaml.safe_load((prefect_stacks.deployments_dir() / "prefect.yaml").read_text())
    assert spec["pull"] == []
    flows = {}
    for item in spec["deployments"]:
        assert ":" not in item["entrypoint"]  # module path, not a file path
        flow = load_flow_from_entrypoint(item["entrypoint"])
        flows[flow.name] = item
    assert sorted(flows) == [
        "demo-environment",
        "environment-janitor",
        "environment-teardown",
        "feature-environment-cleanup",
        "git-watcher",
        "pull-request-watcher",
        "stack-apply",
        "stack-destroy",
        "stack-plan",
    ]
    # demo-environment schedules runs of this exact name
    assert flows["environment-teardown"]["name"] == "default"
    assert flows["environment-janitor"]["schedules"] == [{"interval": 300, "active": True}]
    # two watcher runs at once could create one PR's deployment twice
    assert flows["pull-request-watcher"]["concurrency_limit"] == {
        "limit": 1,
        "collision_strategy": "ENQUEUE",
    }
    for item in flows.values():
        assert item["work_pool"]["name"] == "local"
        assert "project:prefect-stacks" in item["tags"]
        assert item["description"]
    for item in (flows["stack-apply"], flows["stack-destroy"], flows["stack-plan"]):
        assert item["name"] == "local-webapp"
        assert item["work_pool"]["name"] == "local"
        assert item["parameters"] == {"stack": "local-webapp", "workspace": "default"}


def test_env_file_points_a_shell_at_the_server(tmp_path):
    config = LocalConfig(home=tmp_path, port=4321)
    path = LocalPlatform(config).write_env_file()
    assert "export PREFECT_API_URL=http://127.0.0.1:4321/api" in path.read_text()
    assert path == Path(tmp_path) / "env.sh"
    assert os.access(path, os.R_OK)


def test_children_ignore_database_settings_of_the_caller(tmp_path, monkeypatch):
    monkeypatch.setenv("PREFECT_API_DATABASE_CONNECTION_URL", "postgresql+asyncpg://elsewhere")
    monkeypatch.setenv("PREFECT_SERVER_DATABASE_TIMEOUT", "1")
    env = LocalPlatform(LocalConfig(home=tmp_path))._env()
    assert "PREFECT_API_DATABASE_CONNECTION_URL" not in env
    assert "PREFECT_SERVER_DATABASE_TIMEOUT" not in env
    assert env["PREFECT_SERVER_DATABASE_CONNECTION_URL"].startswith("sqlite+aiosqlite:///")
