"""The local Prefect server: reuse the one the home started, refuse one it did not (its
blocks, deployments and Terraform state are someone else's), else start ``prefect server
start`` on SQLite under the home and wait until ``/api/health`` answers."""

from __future__ import annotations

import time

import httpx

from prefect_stacks.exceptions import LocalPlatformError
from prefect_stacks.local.config import LocalConfig
from prefect_stacks.local.ports import other_port_advice, port_in_use, port_owner
from prefect_stacks.local.processes import (
    ManagedProcess,
    log_tail,
    prefect_argv,
    read_pid_file,
    spawn,
    write_pid_file,
)


def server_healthy(api_url: str, timeout: float = 2.0) -> bool:
    """True if ``<api_url>/health`` answers 200 (a Prefect server is up)."""
    try:
        response = httpx.get(f"{api_url}/health", timeout=timeout, trust_env=False)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def reused_server(cfg: LocalConfig) -> ManagedProcess | None:
    """The live server recorded in the home's pid file, if any; one on another port than
    ``cfg.port`` is refused."""
    record = read_pid_file(cfg.server_pid_file, "server")
    if record is None:
        return None
    if int(record.get("port", -1)) != cfg.port:
        raise LocalPlatformError(
            f"a Prefect server started from {cfg.home} (pid {record['pid']}) is running "
            f"on port {record.get('port')}, not {cfg.port}; use --port "
            f"{record.get('port')} or stop it first with "
            f"`prefect-stacks down --home {cfg.home}`"
        )
    return ManagedProcess("server", int(record["pid"]), cfg.server_log, started=False)


def refuse_taken_port(cfg: LocalConfig) -> None:
    """Raise when something the home did not start answers on ``cfg.port``: never join a
    server started elsewhere (checked before anything is written)."""
    if server_healthy(cfg.api_url):
        whose, stop = port_owner(cfg.port)
        raise LocalPlatformError(
            f"a Prefect server already runs on {cfg.base_url}, not started from "
            f"{cfg.home}{whose}; `up` never joins or rewrites a server it did not start. "
            f"{other_port_advice(cfg)}, or stop that server{stop}"
        )
    if port_in_use(cfg.host, cfg.port):
        raise LocalPlatformError(
            f"port {cfg.port} on {cfg.host} is in use by something that is not a "
            f"healthy Prefect server{port_owner(cfg.port)[0]}. {other_port_advice(cfg)}"
        )


def spawn_server(cfg: LocalConfig) -> ManagedProcess:
    """Start ``prefect server start`` for ``cfg`` and record it in the home's pid file;
    does not wait for it."""
    cfg.home.mkdir(parents=True, exist_ok=True)
    cfg.prefect_home.mkdir(parents=True, exist_ok=True)
    argv = prefect_argv("server", "start", "--host", cfg.host, "--port", str(cfg.port))
    popen = spawn(argv, cfg.server_log, cwd=cfg.home, env=cfg.process_env())
    write_pid_file(
        cfg.server_pid_file,
        {
            "pid": popen.pid,
            "port": cfg.port,
            "api_url": cfg.api_url,
            "argv": argv,
            "started_at": time.time(),
        },
    )
    return ManagedProcess("server", popen.pid, cfg.server_log, True, popen)


def wait_healthy(cfg: LocalConfig, server: ManagedProcess, timeout: float) -> None:
    """Wait until the server answers ``/api/health``; raise with its log's tail when it
    exits first or takes longer than ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server_healthy(cfg.api_url):
            return
        if not server.alive():
            code = server.popen.returncode if server.popen else "?"
            raise LocalPlatformError(
                f"the Prefect server exited (code {code}) before it became healthy; "
                f"tail of {cfg.server_log}:\n{log_tail(cfg.server_log)}"
            )
        time.sleep(0.25)
    raise LocalPlatformError(
        f"the Prefect server on {cfg.base_url} was not healthy within {timeout:.0f} s "
        f"(GET {cfg.api_url}/health); tail of {cfg.server_log}:\n"
        f"{log_tail(cfg.server_log)}"
    )
