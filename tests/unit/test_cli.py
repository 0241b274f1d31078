"""Unit tests of `prefect-stacks` (up/down/status) and of the process handling in
:mod:`prefect_stacks.local`, without a Prefect server. The real `up` is covered by
``tests/e2e``."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import prefect_stacks
from prefect_stacks import local
from prefect_stacks._cli import app
from prefect_stacks._cli import up as up_cli
from prefect_stacks.local import (
    LocalConfig,
    LocalPlatform,
    LocalPlatformError,
    is_alive,
    read_pid_file,
    stop_process,
)
from prefect_stacks.local import server as local_server

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
    for option in ("--home", "--port", "--pool", "--no-worker", "--detach", "--database-url"):
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


def test_a_database_url_replaces_sqlite_for_the_server_only(tmp_path):
    url = "postgresql+asyncpg://prefect@127.0.0.1:5432/prefect"
    config = LocalConfig(home=tmp_path, database_url=url)
    assert config.child_env()["PREFECT_SERVER_DATABASE_CONNECTION_URL"] == url
    assert url not in (LocalPlatform(config).write_env_file()).read_text()


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
        local_server,
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
        local_server,
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
        "cache-flush",
        "database-backup",
        "database-copy",
        "demo-environment",
        "drift-check",
        "environment-janitor",
        "environment-teardown",
        "feature-environment-cleanup",
        "git-watcher",
        "iam-apply",
        "image-builder",
        "kubernetes-deploy",
        "kubernetes-rollback",
        "kubernetes-unpin",
        "maintenance-mode",
        "monitoring-silence",
        "pull-request-watcher",
        "registry-watcher",
        "release-watcher",
        "safe-deploy",
        "service-power",
        "stack-apply",
        "stack-destroy",
        "stack-plan",
    ]
    # demo-environment schedules runs of this exact name
    assert flows["environment-teardown"]["name"] == "default"
    assert flows["environment-janitor"]["schedules"] == [{"interval": 300, "active": True}]
    assert flows["release-watcher"]["concurrency_limit"]["limit"] == 1
    # on and off clicked at once must not interleave on the hosts
    assert flows["maintenance-mode"]["concurrency_limit"]["collision_strategy"] == "ENQUEUE"
    # drift-check/iam (the last drift-check): hourly, paused until the iam block exists
    assert flows["drift-check"]["schedules"] == [{"interval": 3600, "active": False}]
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


# ------------------------------------------------- a server on the port from elsewhere

FAKE_PREFECT_SERVER = """
import http.server, sys
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == '/api/health' else 404)
        self.end_headers()
        self.wfile.write(b'true')
    def log_message(self, *args):
        pass
http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), Health).serve_forever()
"""


def _wait_healthy(api_url: str) -> None:
    deadline = time.monotonic() + 10
    while not local.server_healthy(api_url, timeout=0.5):
        assert time.monotonic() < deadline, f"{api_url}/health never answered"
        time.sleep(0.05)


@pytest.fixture
def health_only_server():
    """A stand-in for a Prefect server somebody else started: answers GET /api/health
    with 200 on a free loopback port, and records every request it gets."""
    requests: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            requests.append(f"{self.command} {self.path}")
            self.send_response(200 if self.path == "/api/health" else 404)
            self.end_headers()
            self.wfile.write(b"true")

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", _free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], requests
    finally:
        server.shutdown()
        server.server_close()


def test_up_refuses_a_server_it_did_not_start_before_writing_anything(tmp_path, health_only_server):
    port, requests = health_only_server
    home = tmp_path / "home B"
    result = runner.invoke(
        app, ["up", "--home", str(home), "--port", str(port), "--no-worker", "--detach"]
    )
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)
    (error,) = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert f"already runs on http://127.0.0.1:{port}, not started from {home}" in error
    # whose it is: this test process listens on the port
    assert f"(pid {os.getpid()}: " in error
    assert "`prefect-stacks up --home" in error and 'make up UP_ARGS="--home' in error
    suggested = int(re.search(r"--port (\d+)`", error).group(1))
    assert suggested != port and not local.port_in_use("127.0.0.1", suggested)
    assert "or stop that server" in error
    # nothing was asked of the server but its health, nothing written under the home
    assert requests and set(requests) == {"GET /api/health"}
    assert not home.exists()


def test_up_reuses_the_server_its_home_started_and_refuses_it_from_another_home(tmp_path):
    """A live server recorded in home A's pid file (same port) is reused from A; from
    home B the same server is refused, naming A and how to stop it."""
    port = _free_port()
    home_a, home_b = tmp_path / "a", tmp_path / "b"
    home_a.mkdir()
    # argv of a `prefect server start`, as read_pid_file checks; cwd is the home, as `up`
    # starts its server
    proc = subprocess.Popen(
        [sys.executable, "-c", FAKE_PREFECT_SERVER, str(port), "prefect", "server", "start"],
        cwd=home_a,
        start_new_session=True,
    )
    try:
        config_a = LocalConfig(home=home_a, port=port)
        _wait_healthy(config_a.api_url)
        config_a.server_pid_file.write_text(json.dumps({"pid": proc.pid, "port": port}))
        messages: list[str] = []
        server = LocalPlatform(config_a, say=messages.append).start_server(timeout=5)
        assert (server.pid, server.started) == (proc.pid, False)
        assert messages == [f"server: reusing {config_a.base_url} (pid {proc.pid})"]

        with pytest.raises(LocalPlatformError) as excinfo:
            LocalPlatform(LocalConfig(home=home_b, port=port)).start_server(timeout=5)
        message = str(excinfo.value)
        assert f"not started from {home_b} but from {home_a}" in message
        assert f"`prefect-stacks down --home {home_a}`" in message
        assert "--port" in message and "\n" not in message
        assert not home_b.exists()

        # the same home asked for another port: the recorded server is named
        with pytest.raises(LocalPlatformError, match=f"running on port {port}, not"):
            LocalPlatform(LocalConfig(home=home_a, port=_free_port())).start_server()
        assert proc.poll() is None  # nobody stopped it
    finally:
        proc.kill()
        proc.wait()


def test_port_taken_by_something_else_suggests_a_free_port(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(LocalPlatformError) as excinfo:
            LocalPlatform(LocalConfig(home=tmp_path / "h", port=port)).start_server(timeout=1)
    suggested = int(re.search(r"--port (\d+)`", str(excinfo.value)).group(1))
    assert suggested != port
    assert not (tmp_path / "h").exists()


# ------------------------------------------------- what `up` tells a shell to run


def _fresh_shell(script: str) -> subprocess.CompletedProcess[str]:
    """``sh -c script`` with a PATH that has no virtualenv on it (a new terminal)."""
    return subprocess.run(
        ["sh", "-c", script],
        env={"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp")},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_env_file_puts_this_virtualenv_first_on_path(tmp_path):
    home = tmp_path / "a home"  # a space: the file quotes what it exports
    home.mkdir()
    path = LocalPlatform(LocalConfig(home=home, port=4321)).write_env_file()
    bin_dir = Path(sys.executable).parent
    shell = _fresh_shell(
        f". '{path}' && command -v prefect && command -v prefect-stacks "
        '&& echo "$PREFECT_API_URL" && prefect-stacks --help >/dev/null && echo ok'
    )
    assert shell.returncode == 0, shell.stderr
    assert shell.stdout.split() == [
        str(bin_dir / "prefect"),
        str(bin_dir / "prefect-stacks"),
        "http://127.0.0.1:4321/api",
        "ok",
    ]


def test_next_steps_print_the_commands_as_they_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = LocalConfig(port=4321)  # the default home, under the current directory
    config.home.mkdir()
    LocalPlatform(config).write_env_file()
    result = local.UpResult(
        server=local.ManagedProcess("server", 1, config.server_log, started=True),
        worker=None,
        pool_created=True,
        blocks=[],
        deployments=["stack-apply/local-webapp"],
        timings={"server": 1.0, "total": 2.0},
    )
    text = up_cli._next_steps(config, result, detach=True)
    commands = [
        line.strip()
        for line in text.split("Try it", 1)[1].splitlines()[1:]
        if line.startswith("  ") and not line.strip().startswith("#")
    ]
    assert commands[0].startswith(". .prefect-stacks/env.sh ")
    assert commands[1:] == [
        "prefect deployment run 'stack-apply/local-webapp' --watch",
        "prefect deployment run 'stack-apply/local-webapp' -p require_approval=true",
        "prefect deployment run 'stack-destroy/local-webapp' --watch",
    ]
    # the first line, pasted into a new terminal here, finds this virtualenv's prefect
    shell = _fresh_shell(f"{commands[0]}\ncommand -v prefect")
    assert shell.returncode == 0, shell.stderr
    assert shell.stdout.strip() == str(Path(sys.executable).parent / "prefect")
    assert "down --home .prefect-stacks" in text.splitlines()[-1]
