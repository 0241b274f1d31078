""":class:`LocalPlatform`, the object that brings the local platform up (server, work
pool, worker, blocks, deployments, automations) and down again, stopping only what it
started; :func:`down` and :func:`status` for what a home recorded in its pid files."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from prefect_stacks.local import server as local_server
from prefect_stacks.local import setup
from prefect_stacks.local import worker as local_worker
from prefect_stacks.local.config import (
    LOCAL_WEBAPP,
    SERVER_START_TIMEOUT,
    SERVER_STOP_GRACE,
    WORKER_START_TIMEOUT,
    WORKER_STOP_GRACE,
    LocalConfig,
    Say,
)
from prefect_stacks.local.processes import (
    ManagedProcess,
    log_tail,
    read_pid_file,
    stop_process,
)


@dataclass
class UpResult:
    """What :meth:`LocalPlatform.up` did, with timings in seconds."""

    server: ManagedProcess
    worker: ManagedProcess | None
    pool_created: bool
    blocks: list[str]
    deployments: list[str]
    timings: dict[str, float]
    automations: dict[str, list[str]] = field(default_factory=dict)


@contextlib.contextmanager
def _timed(timings: dict[str, float], step: str) -> Iterator[None]:
    started = time.monotonic()
    yield
    timings[step] = time.monotonic() - started


class LocalPlatform:
    """Brings the local platform up and down; see :mod:`prefect_stacks.local`."""

    def __init__(self, config: LocalConfig, *, say: Say | None = None) -> None:
        self.config = config
        self.say: Say = say or (lambda _msg: None)
        self.server: ManagedProcess | None = None
        self.worker: ManagedProcess | None = None
        self._worker_spawned_at: datetime | None = None

    def _env(self) -> dict[str, str]:
        """The environment the server and the worker start with."""
        return self.config.process_env()

    # ------------------------------------------------------------------ server
    def start_server(self, timeout: float = SERVER_START_TIMEOUT) -> ManagedProcess:
        """Reuse the server recorded in the home's pid file (alive, same port), else
        start ``prefect server start`` on SQLite under the home and wait for
        ``/api/health``. A server on the port that the home did not start is refused
        before anything is written: its blocks and deployments are someone else's."""
        cfg = self.config
        reused = local_server.reused_server(cfg)
        if reused is not None:
            self.server = reused
            local_server.wait_healthy(cfg, reused, timeout)
            self.say(f"server: reusing {cfg.base_url} (pid {reused.pid})")
            return reused
        local_server.refuse_taken_port(cfg)
        self.server = local_server.spawn_server(cfg)
        self.say(
            f"server: starting on {cfg.base_url} (pid {self.server.pid}, log {cfg.server_log})"
        )
        try:
            local_server.wait_healthy(cfg, self.server, timeout)
        except BaseException:
            self.stop()
            raise
        return self.server

    # ------------------------------------------------------------------ API objects
    def ensure_work_pool(self) -> bool:
        """Create the process work pool if it is missing; True when created."""
        return setup.ensure_work_pool(self.config)

    def register_blocks(self) -> list[str]:
        """Register every Block class exported from ``prefect_stacks``."""
        return setup.register_blocks(self.config)

    def save_stack_block(
        self,
        name: str = LOCAL_WEBAPP,
        *,
        stack: str | None = None,
        variables: Mapping[str, Any] | None = None,
        state_dir: Path | None = None,
    ) -> Any:
        """Create or overwrite the TerraformStack block document ``name``."""
        return setup.save_stack_block(
            self.config, name, stack=stack, variables=variables, state_dir=state_dir
        )

    def apply_deployments(self, prefect_file: Path | None = None) -> list[str]:
        """Apply every deployment of ``prefect_file`` into the pool; their names."""
        return setup.apply_deployments(self.config, prefect_file)

    def apply_automations(self, directory: Path | None = None) -> dict[str, list[str]]:
        """Create or update the automations of ``directory``."""
        return setup.apply_automations(self.config, directory)

    def write_env_file(self) -> Path:
        """``<home>/env.sh`` for a shell."""
        return setup.write_env_file(self.config)

    # ------------------------------------------------------------------ worker
    def start_worker(self) -> ManagedProcess:
        """Reuse a live worker recorded in the home (same server and pool), else start
        ``prefect worker start --pool <pool> --type process``. Does not wait for it."""
        cfg = self.config
        reused = local_worker.reused_worker(cfg)
        if reused is not None:
            self.worker = reused
            self.say(f"worker: reusing pid {reused.pid} (pool {cfg.pool!r})")
            return reused
        self._worker_spawned_at = datetime.now(timezone.utc)
        self.worker = local_worker.spawn_worker(cfg)
        self.say(
            f"worker: starting for pool {cfg.pool!r} (pid {self.worker.pid}, log {cfg.worker_log})"
        )
        return self.worker

    def wait_for_worker(self, timeout: float = WORKER_START_TIMEOUT) -> None:
        """Wait until the worker has reported to the server (it is then polling)."""
        assert self.worker is not None
        since = self._worker_spawned_at if self.worker.started else None
        local_worker.wait_for_worker(self.config, self.worker, since, timeout)

    # ------------------------------------------------------------------ all of it
    def up(
        self,
        *,
        worker: bool = True,
        stack_variables: Mapping[str, Any] | None = None,
        prefect_file: Path | None = None,
    ) -> UpResult:
        """Server, work pool, worker, blocks, the ``local-webapp`` block and the
        deployments. On failure whatever this call started is stopped again."""
        timings: dict[str, float] = {}
        t0 = time.monotonic()
        try:
            with _timed(timings, "server"):
                server = self.start_server()
            result = UpResult(server, None, False, [], [], timings)
            with _timed(timings, "pool+blocks"):
                self._pool_worker_blocks(result, worker, stack_variables)
            with _timed(timings, "deploy"):
                self._deployments(result, prefect_file)
            if worker:
                with _timed(timings, "worker"):
                    self.wait_for_worker()
            self.write_env_file()
        except BaseException:
            self.stop()
            raise
        timings["total"] = time.monotonic() - t0
        result.worker = self.worker
        return result

    def _pool_worker_blocks(
        self, result: UpResult, worker: bool, stack_variables: Mapping[str, Any] | None
    ) -> None:
        result.pool_created = self.ensure_work_pool()
        self.say(
            f"work pool: {self.config.pool!r} " + ("created" if result.pool_created else "exists")
        )
        # The worker boots (a few seconds of imports) while blocks and deployments
        # are applied.
        if worker:
            self.start_worker()
        result.blocks = self.register_blocks()
        self.say(f"blocks: registered {', '.join(result.blocks)}")
        self.save_stack_block(LOCAL_WEBAPP, variables=stack_variables)
        self.say(
            f"block: TerraformStack {LOCAL_WEBAPP!r} saved "
            f"(state in {self.config.state_dir(LOCAL_WEBAPP)})"
        )

    def _deployments(self, result: UpResult, prefect_file: Path | None) -> None:
        result.deployments = self.apply_deployments(prefect_file)
        result.automations = self.apply_automations(
            Path(prefect_file).parent / "automations" if prefect_file else None
        )
        self.say(f"deployments: {', '.join(result.deployments)}")
        self.say(
            "automations: "
            + ", ".join(
                f"{len(v)} {k}" for k, v in result.automations.items() if v or k == "created"
            )
        )

    def check_children(self) -> str | None:
        """None while every child started here runs, else what died (for the
        foreground loop of ``up``)."""
        for proc in (self.worker, self.server):
            if proc is not None and proc.started and not proc.alive():
                code = proc.popen.returncode if proc.popen else "?"
                return (
                    f"the {proc.role} (pid {proc.pid}) exited with code {code}; tail of "
                    f"{proc.log}:\n{log_tail(proc.log) if proc.log else ''}"
                )
        return None

    def stop(self, *, include_reused: bool = False) -> list[str]:
        """Stop the worker, then the server: those this object started (or, with
        ``include_reused``, also those it reused from the home). Returns what it did."""
        done: list[str] = []
        for proc, pid_file, grace in (
            (self.worker, self.config.worker_pid_file, WORKER_STOP_GRACE),
            (self.server, self.config.server_pid_file, SERVER_STOP_GRACE),
        ):
            if proc is None or proc.pid is None or not (proc.started or include_reused):
                continue
            if proc.alive():
                self.say(f"stopping the {proc.role} (pid {proc.pid}) ...")
                killed = stop_process(proc.pid, name=proc.role, grace=grace, say=self.say)
                done.append(f"{proc.role} pid {proc.pid} " + ("killed" if killed else "stopped"))
            if proc.popen is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.popen.wait(timeout=1)
            with contextlib.suppress(OSError):
                if json.loads(pid_file.read_text()).get("pid") == proc.pid:
                    pid_file.unlink()
        return done


def down(config: LocalConfig, *, say: Say | None = None) -> list[str]:
    """Stop the worker and the server recorded in ``config.home`` (by ``up --detach``,
    or by an ``up`` still running elsewhere). Returns what it stopped."""
    say = say or (lambda _msg: None)
    done: list[str] = []
    for role, pid_file, grace in (
        ("worker", config.worker_pid_file, WORKER_STOP_GRACE),
        ("server", config.server_pid_file, SERVER_STOP_GRACE),
    ):
        record = read_pid_file(pid_file, role)
        if record is None:
            continue
        pid = int(record["pid"])
        say(f"stopping the {role} (pid {pid}) ...")
        killed = stop_process(pid, name=role, grace=grace, say=say)
        done.append(f"{role} pid {pid} " + ("killed" if killed else "stopped"))
        with contextlib.suppress(OSError):
            pid_file.unlink()
    return done


def status(config: LocalConfig) -> dict[str, Any]:
    """What runs from ``config.home``: server and worker pids, and server health."""
    server = read_pid_file(config.server_pid_file, "server")
    worker = read_pid_file(config.worker_pid_file, "worker")
    return {
        "home": str(config.home),
        "api_url": config.api_url,
        "healthy": local_server.server_healthy(config.api_url),
        "server_pid": server and server["pid"],
        "worker_pid": worker and worker["pid"],
    }
