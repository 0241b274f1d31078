"""prefect-stacks on one machine: a local Prefect server, a process worker, the blocks
and the deployments, ready for one-click runs. The library behind ``prefect-stacks up``
and ``prefect-stacks down``, also used by the end-to-end tests.

Everything lives under one project-local *home* (default ``./.prefect-stacks``)::

    <home>/prefect/        PREFECT_HOME of the server and worker (SQLite database)
    <home>/tfstate/<stack> Terraform state of the stacks run by the local worker
    <home>/server.log      output of `prefect server start`
    <home>/worker.log      output of `prefect worker start`
    <home>/server.json     pid file of a server started here (pid, port, argv ...)
    <home>/worker.json     pid file of a worker started here
    <home>/env.sh          for a shell: PREFECT_API_URL, and this virtualenv first on PATH

Typical use::

    platform = LocalPlatform(LocalConfig(home=Path(".prefect-stacks"), port=4200))
    try:
        platform.up()              # server, pool, blocks, deployments, worker
        ...                        # runs, tests ...
    finally:
        platform.stop()            # worker first, then server (only what it started)

Every step is idempotent: a second ``up`` reuses the server and the live worker recorded
in the home (never a server started elsewhere: ``up`` refuses a port where one answers,
before it writes anything), and upserts the work pool, the block document and the
deployments. Children run in their own session (process group), so a Ctrl-C in the
terminal reaches only the process that started them, which then stops them in order.

The modules: ``config`` (LocalConfig, defaults, LocalPlatformError, api_settings),
``processes`` (spawning the server and worker, pid files, stopping a process tree),
``ports`` (free and taken ports, who listens), ``server`` and ``worker`` (reuse, refuse,
start, wait), ``setup`` (work pool, blocks, deployments, automations, env.sh) and
``platform`` (LocalPlatform composing them, down, status).
"""

from prefect_stacks.exceptions import LocalPlatformError
from prefect_stacks.local.config import (
    DEFAULT_HOME,
    DEFAULT_HOST,
    DEFAULT_POOL,
    DEFAULT_PORT,
    LOCAL_WEBAPP,
    WORKER_NAME,
    LocalConfig,
    Say,
    api_settings,
)
from prefect_stacks.local.platform import LocalPlatform, UpResult, down, status
from prefect_stacks.local.ports import free_port, listener_pid, port_in_use, suggest_port
from prefect_stacks.local.processes import (
    ManagedProcess,
    cmdline,
    descendants,
    is_alive,
    log_tail,
    prefect_argv,
    read_pid_file,
    stop_process,
)
from prefect_stacks.local.server import server_healthy

__all__ = [
    "DEFAULT_HOME",
    "DEFAULT_HOST",
    "DEFAULT_POOL",
    "DEFAULT_PORT",
    "LOCAL_WEBAPP",
    "WORKER_NAME",
    "LocalConfig",
    "LocalPlatform",
    "LocalPlatformError",
    "ManagedProcess",
    "Say",
    "UpResult",
    "api_settings",
    "cmdline",
    "descendants",
    "down",
    "free_port",
    "is_alive",
    "listener_pid",
    "log_tail",
    "port_in_use",
    "prefect_argv",
    "read_pid_file",
    "server_healthy",
    "status",
    "stop_process",
    "suggest_port",
]
