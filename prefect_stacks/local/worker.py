"""The local process worker: reuse the live one the home started (same server and pool),
else start ``prefect worker start --type process``; wait until it reports to the server."""

from __future__ import annotations

import time
from datetime import datetime

from prefect_stacks.exceptions import LocalPlatformError
from prefect_stacks.local.config import (
    WORKER_NAME,
    LocalConfig,
    api_settings,
)
from prefect_stacks.local.processes import (
    ManagedProcess,
    log_tail,
    prefect_argv,
    read_pid_file,
    spawn,
    write_pid_file,
)


def reused_worker(cfg: LocalConfig) -> ManagedProcess | None:
    """The live worker recorded in the home's pid file, if any; one polling another
    server or pool is refused."""
    record = read_pid_file(cfg.worker_pid_file, "worker")
    if record is None:
        return None
    if record.get("api_url") != cfg.api_url or record.get("pool") != cfg.pool:
        raise LocalPlatformError(
            f"a worker started from {cfg.home} (pid {record['pid']}) polls pool "
            f"{record.get('pool')!r} of {record.get('api_url')}; stop it first with "
            f"`prefect-stacks down --home {cfg.home}`"
        )
    return ManagedProcess("worker", int(record["pid"]), cfg.worker_log, started=False)


def spawn_worker(cfg: LocalConfig) -> ManagedProcess:
    """Start ``prefect worker start`` for ``cfg.pool`` and record it in the home's pid
    file; does not wait for it."""
    argv = prefect_argv(
        "worker",
        "start",
        "--pool",
        cfg.pool,
        "--type",
        "process",
        "--name",
        WORKER_NAME,
        "--install-policy",
        "never",
    )
    popen = spawn(argv, cfg.worker_log, cwd=cfg.home, env=cfg.process_env())
    write_pid_file(
        cfg.worker_pid_file,
        {
            "pid": popen.pid,
            "pool": cfg.pool,
            "api_url": cfg.api_url,
            "argv": argv,
            "started_at": time.time(),
        },
    )
    return ManagedProcess("worker", popen.pid, cfg.worker_log, True, popen)


def wait_for_worker(
    cfg: LocalConfig, worker: ManagedProcess, since: datetime | None, timeout: float
) -> None:
    """Wait until the worker has reported to the server (it is then polling). With
    ``since`` (when it was started here), only a heartbeat sent after it counts: the
    server may still list an earlier worker of the same name as online."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import WorkerFilter, WorkerFilterStatus

    deadline = time.monotonic() + timeout
    online = WorkerFilter(status=WorkerFilterStatus(any_=["ONLINE"]))
    with api_settings(cfg.api_url), get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            if not worker.alive():
                code = worker.popen.returncode if worker.popen else "?"
                raise LocalPlatformError(
                    f"the worker exited (code {code}) right after it started; tail of "
                    f"{cfg.worker_log}:\n{log_tail(cfg.worker_log)}"
                )
            workers = client.read_workers_for_work_pool(cfg.pool, worker_filter=online)
            if any(
                w.name == WORKER_NAME
                and (
                    since is None
                    or (w.last_heartbeat_time is not None and w.last_heartbeat_time >= since)
                )
                for w in workers
            ):
                return
            time.sleep(0.25)
    raise LocalPlatformError(
        f"the worker did not report to {cfg.base_url} within {timeout:.0f} s; tail of "
        f"{cfg.worker_log}:\n{log_tail(cfg.worker_log)}"
    )
