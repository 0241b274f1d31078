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
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import yaml

from prefect_stacks._internal.data import deployments_dir, stack_path
from prefect_stacks._internal.process import run_process
from prefect_stacks.exceptions import PrefectStacksError

DEFAULT_HOME = Path(".prefect-stacks")
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4200
DEFAULT_POOL = "local"
LOCAL_WEBAPP = "local-webapp"
WORKER_NAME = "prefect-stacks-local"

SERVER_START_TIMEOUT = 60.0
WORKER_START_TIMEOUT = 45.0
DEPLOY_TIMEOUT = 180.0
WORKER_STOP_GRACE = 10.0
SERVER_STOP_GRACE = 15.0

Say = Callable[[str], None]

_FOREIGN_ENV = ("PREFECT_SERVER_DATABASE_", "PREFECT_API_DATABASE_", "PREFECT__SERVER_")


class LocalPlatformError(PrefectStacksError):
    """The local server, worker or deployments could not be brought up (or down); the
    message says what failed and where its log is."""


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class LocalConfig:
    """Where and how the local platform runs."""

    home: Path = DEFAULT_HOME
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    pool: str = DEFAULT_POOL
    worker_query_seconds: int = 1
    worker_prefetch_seconds: int = 2

    def __post_init__(self) -> None:
        object.__setattr__(self, "home", Path(self.home).expanduser().resolve())

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api"

    @property
    def ui_url(self) -> str:
        return self.base_url

    @property
    def prefect_home(self) -> Path:
        return self.home / "prefect"

    @property
    def server_log(self) -> Path:
        return self.home / "server.log"

    @property
    def worker_log(self) -> Path:
        return self.home / "worker.log"

    @property
    def server_pid_file(self) -> Path:
        return self.home / "server.json"

    @property
    def worker_pid_file(self) -> Path:
        return self.home / "worker.json"

    @property
    def env_file(self) -> Path:
        return self.home / "env.sh"

    def state_dir(self, stack: str) -> Path:
        return self.home / "tfstate" / stack

    def child_env(self) -> dict[str, str]:
        """Variables added to the environment of the server, the worker (and so of the
        flow runs it starts) and of `prefect deploy`."""
        return {
            "PREFECT_HOME": str(self.prefect_home),
            "PREFECT_API_URL": self.api_url,
            "PREFECT_UI_URL": self.ui_url,
            "PREFECT_SERVER_DATABASE_CONNECTION_URL": (
                f"sqlite+aiosqlite:///{self.prefect_home / 'prefect.db'}"
            ),
            "PREFECT_SERVER_API_HOST": self.host,
            "PREFECT_SERVER_API_PORT": str(self.port),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_WORKER_QUERY_SECONDS": str(self.worker_query_seconds),
            "PREFECT_WORKER_PREFETCH_SECONDS": str(self.worker_prefetch_seconds),
            "PREFECT_STACKS_HOME": str(self.home),
            "PYTHONUNBUFFERED": "1",
        }


@contextlib.contextmanager
def api_settings(api_url: str) -> Iterator[None]:
    """Point the Prefect client of *this* process at ``api_url`` (Prefect reads its
    settings once at import, so setting os.environ afterwards is not enough)."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        yield


# --------------------------------------------------------------------------- processes


def prefect_argv(*args: str) -> list[str]:
    """argv of the Prefect CLI of *this* Python (the virtualenv prefect-stacks is in),
    whatever is first on PATH."""
    return [sys.executable, "-m", "prefect", *args]


def is_alive(pid: int) -> bool:
    """True if ``pid`` runs and is not a zombie (an exited child not yet collected by
    its parent still answers kill(pid, 0))."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): trust kill(0)
    state = stat.rsplit(")", 1)[-1].split()[:1]
    return state not in (["Z"], ["X"])


def cmdline(pid: int) -> list[str] | None:
    """argv of ``pid`` from /proc, or None when unknown."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, grandchildren ...), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) < 2:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _wait_gone(pids: Sequence[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if not any(is_alive(p) for p in pids):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def _signal(pid: int, sig: int, *, group: bool) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if group and os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def stop_process(
    pid: int,
    *,
    name: str,
    grace: float,
    sig: int = signal.SIGTERM,
    say: Say | None = None,
) -> bool:
    """Stop ``pid`` and everything below it: ``sig`` to its process group, up to
    ``grace`` seconds to exit, then SIGKILL (the Prefect worker, for one, only forwards
    a first interrupt to itself and may wait for its runs). Processes that left the
    group (flow runs started in their own session) are found from /proc beforehand and
    stopped the same way. Returns True if it had to use SIGKILL."""
    say = say or (lambda _msg: None)
    if not is_alive(pid):
        return False
    below = descendants(pid)
    _signal(pid, sig, group=True)
    killed = False
    if not _wait_gone([pid], grace):
        say(f"{name} (pid {pid}) did not stop within {grace:g} s; sending SIGKILL")
        _signal(pid, signal.SIGKILL, group=True)
        killed = True
        _wait_gone([pid], 5)
    left = [p for p in below if is_alive(p)]
    if left:
        for p in left:
            _signal(p, signal.SIGTERM, group=True)
        if not _wait_gone(left, 5):
            for p in left:
                _signal(p, signal.SIGKILL, group=True)
            _wait_gone(left, 5)
    return killed


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"({path} does not exist)"
    return "\n".join(text.splitlines()[-lines:]) or f"({path} is empty)"


def port_in_use(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def free_port(host: str = DEFAULT_HOST) -> int:
    """A TCP port nobody listens on right now (for tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def server_healthy(api_url: str, timeout: float = 2.0) -> bool:
    """True if ``<api_url>/health`` answers 200 (a Prefect server is up)."""
    try:
        response = httpx.get(f"{api_url}/health", timeout=timeout, trust_env=False)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def suggest_port(host: str, after: int) -> int:
    """A port to offer instead of ``after``: the first of ``after + 100`` onwards
    (4300 for 4200) that nobody listens on and that binds; else any free port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    start = after + 100 if after + 100 < 65000 else 4300
    for port in range(start, start + 100):
        if port == after or port_in_use(host, port):
            continue
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError:
                continue
        return port
    return free_port(host)


def listener_pid(port: int) -> int | None:
    """The pid of the process listening on TCP ``port``, from /proc; None when unknown
    (no /proc, or a process of another user)."""
    sockets: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            for line in Path(table).read_text().splitlines()[1:]:
                cols = line.split()
                if len(cols) > 9 and cols[3] == "0A" and int(cols[1].rsplit(":")[-1], 16) == port:
                    sockets.add(f"socket:[{cols[9]}]")
    if sockets:
        for fd_dir in Path("/proc").glob("[0-9]*/fd"):
            with contextlib.suppress(OSError):
                if any(os.readlink(fd) in sockets for fd in fd_dir.iterdir()):
                    return int(fd_dir.parent.name)
    return None


def _owner(port: int) -> tuple[str, str]:
    """Whose process listens on ``port``, as far as /proc tells: `` (pid 123: <argv>,
    started in <dir>)`` and how to stop it; ``("", "")`` when unknown."""
    pid = listener_pid(port)
    if pid is None:
        return "", ""
    argv = " ".join(" ".join(cmdline(pid) or []).split())  # one line, even for `-c` code
    argv = f": `{argv if len(argv) <= 80 else argv[:77] + '...'}`" if argv else ""
    try:
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return f" (pid {pid}{argv})", f" (pid {pid})"
    with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
        if int(json.loads((cwd / "server.json").read_text())["port"]) == port:
            # `up` starts its server in its home: that home's pid file names this port.
            home = shlex.quote(str(cwd))
            return f" but from {cwd}", f": `prefect-stacks down --home {home}`"
    return f" (pid {pid}{argv}, started in {cwd})", f" (pid {pid})"


def _other_port_advice(cfg: LocalConfig) -> str:
    """``Use another port: `prefect-stacks up ... --port <free>` or `make up ...` ``."""
    args = []
    if cfg.home != LocalConfig().home:
        args += ["--home", str(cfg.home)]
    if cfg.host != DEFAULT_HOST:
        args += ["--host", cfg.host]
    args += ["--port", str(suggest_port(cfg.host, cfg.port))]
    line = " ".join(shlex.quote(a) for a in args)
    return f'Use another port: `prefect-stacks up {line}` or `make up UP_ARGS="{line}"`'


# --------------------------------------------------------------------------- pid files


@dataclass
class ManagedProcess:
    """The server or worker: started by this :class:`LocalPlatform`, or reused (started
    earlier from the same home, e.g. by ``up --detach``)."""

    role: str
    pid: int | None
    log: Path | None
    started: bool
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        return self.pid is not None and is_alive(self.pid)

    def describe(self) -> str:
        how = "started" if self.started else "reused"
        pid = f"pid {self.pid}" if self.pid else "pid unknown (not started by prefect-stacks)"
        log = f", log {self.log}" if self.log else ""
        return f"{pid} ({how}){log}"


def _write_pid_file(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def read_pid_file(path: Path, role: str) -> dict[str, Any] | None:
    """The record in ``path`` if its process still runs and is the Prefect ``role``
    (``server`` or ``worker``) it names; a stale file is removed."""
    try:
        data = json.loads(path.read_text())
        pid = int(data["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    argv = cmdline(pid)
    ours = is_alive(pid) and (
        argv is None  # no /proc: trust the file
        or ("prefect" in " ".join(argv) and role in argv and "start" in argv)
    )
    if not ours:
        with contextlib.suppress(OSError):
            path.unlink()
        return None
    return data


# --------------------------------------------------------------------------- platform


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


class LocalPlatform:
    """Brings the local platform up and down; see the module docstring."""

    def __init__(self, config: LocalConfig, *, say: Say | None = None) -> None:
        self.config = config
        self.say: Say = say or (lambda _msg: None)
        self.server: ManagedProcess | None = None
        self.worker: ManagedProcess | None = None
        self._worker_spawned_at: datetime | None = None

    # ------------------------------------------------------------------ helpers
    def _env(self) -> dict[str, str]:
        # Database settings inherited from the caller's environment (another server's,
        # a test harness's) must not point our server elsewhere.
        env = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN_ENV)}
        env.update(self.config.child_env())
        return env

    def _spawn(self, argv: list[str], log_path: Path) -> subprocess.Popen[bytes]:
        self.config.home.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log, open(os.devnull, "rb") as devnull:
            log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} {argv}\n".encode())
            log.flush()
            return subprocess.Popen(  # noqa: S603 - argv list, no shell
                argv,
                stdin=devnull,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.config.home,
                env=self._env(),
                # Own session and process group: the terminal's Ctrl-C reaches only
                # `up`, which stops the children in order.
                start_new_session=True,
                close_fds=True,
            )

    # ------------------------------------------------------------------ server
    def start_server(self, timeout: float = SERVER_START_TIMEOUT) -> ManagedProcess:
        """Reuse the server recorded in the home's pid file (alive, same port), else
        start ``prefect server start`` on SQLite under the home and wait for
        ``/api/health``. A server on the port that the home did not start is refused
        before anything is written: its blocks and deployments are someone else's."""
        cfg = self.config
        record = read_pid_file(cfg.server_pid_file, "server")
        if record is not None and int(record.get("port", -1)) != cfg.port:
            raise LocalPlatformError(
                f"a Prefect server started from {cfg.home} (pid {record['pid']}) is running "
                f"on port {record.get('port')}, not {cfg.port}; use --port "
                f"{record.get('port')} or stop it first with "
                f"`prefect-stacks down --home {cfg.home}`"
            )
        if record is not None:
            pid = int(record["pid"])
            self.server = ManagedProcess("server", pid, cfg.server_log, started=False)
            self._wait_healthy(self.server, timeout)
            self.say(f"server: reusing {cfg.base_url} (pid {pid})")
            return self.server
        if server_healthy(cfg.api_url):
            # Never join a server this home did not start: its blocks, deployments and
            # Terraform state belong to someone else (checked before anything is written).
            whose, stop = _owner(cfg.port)
            raise LocalPlatformError(
                f"a Prefect server already runs on {cfg.base_url}, not started from "
                f"{cfg.home}{whose}; `up` never joins or rewrites a server it did not start. "
                f"{_other_port_advice(cfg)}, or stop that server{stop}"
            )
        if port_in_use(cfg.host, cfg.port):
            raise LocalPlatformError(
                f"port {cfg.port} on {cfg.host} is in use by something that is not a "
                f"healthy Prefect server{_owner(cfg.port)[0]}. {_other_port_advice(cfg)}"
            )
        cfg.home.mkdir(parents=True, exist_ok=True)
        cfg.prefect_home.mkdir(parents=True, exist_ok=True)
        argv = prefect_argv("server", "start", "--host", cfg.host, "--port", str(cfg.port))
        popen = self._spawn(argv, cfg.server_log)
        self.server = ManagedProcess("server", popen.pid, cfg.server_log, True, popen)
        _write_pid_file(
            cfg.server_pid_file,
            {
                "pid": popen.pid,
                "port": cfg.port,
                "api_url": cfg.api_url,
                "argv": argv,
                "started_at": time.time(),
            },
        )
        self.say(f"server: starting on {cfg.base_url} (pid {popen.pid}, log {cfg.server_log})")
        try:
            self._wait_healthy(self.server, timeout)
        except BaseException:
            self.stop()
            raise
        return self.server

    def _wait_healthy(self, server: ManagedProcess, timeout: float) -> None:
        cfg = self.config
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

    # ------------------------------------------------------------------ API objects
    def ensure_work_pool(self) -> bool:
        """Create the process work pool if it is missing; True when created."""
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.actions import WorkPoolCreate
        from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
        from prefect.workers.process import ProcessWorker

        with api_settings(self.config.api_url), get_client(sync_client=True) as client:
            try:
                pool = client.read_work_pool(self.config.pool)
            except ObjectNotFound:
                pass
            else:
                if pool.type != "process":
                    raise LocalPlatformError(
                        f"work pool {self.config.pool!r} exists with type {pool.type!r}, "
                        "not 'process'; choose another pool name with --pool"
                    )
                return False
            try:
                client.create_work_pool(
                    WorkPoolCreate(
                        name=self.config.pool,
                        type="process",
                        description="Local process worker started by `prefect-stacks up`.",
                        base_job_template=ProcessWorker.get_default_base_job_template(),
                    )
                )
            except ObjectAlreadyExists:
                return False
            return True

    def register_blocks(self) -> list[str]:
        """Register every Block class exported from ``prefect_stacks`` (what
        ``prefect block register -m prefect_stacks`` does, in process)."""
        from prefect.blocks.core import InvalidBlockRegistration

        from prefect_stacks.blocks.base import package_blocks

        names: list[str] = []
        with api_settings(self.config.api_url):
            for cls in package_blocks():
                try:
                    cls.register_type_and_schema(_sync=True)
                except InvalidBlockRegistration:
                    continue
                names.append(cls.get_block_type_name())
        return names

    def save_stack_block(
        self,
        name: str = LOCAL_WEBAPP,
        *,
        stack: str | None = None,
        variables: Mapping[str, Any] | None = None,
        state_dir: Path | None = None,
    ) -> Any:
        """Create or overwrite the TerraformStack block document ``name`` for the
        shipped stack ``stack`` (default: the same name), state under the home."""
        from prefect_stacks.blocks.terraform import TerraformStack

        stack = stack or name
        block = TerraformStack(
            source=str(stack_path(stack)),
            state_dir=str(state_dir or self.config.state_dir(name)),
            variables=dict(variables or {}),
        )
        with api_settings(self.config.api_url):
            block.save(name, overwrite=True)
        return block

    def apply_deployments(self, prefect_file: Path | None = None) -> list[str]:
        """``prefect --no-prompt deploy --all`` of ``deployments/prefect.yaml`` (every
        deployment into the configured pool), then check each exists. Returns the
        deployment names as ``flow/deployment``."""
        source = Path(prefect_file or deployments_dir() / "prefect.yaml")
        try:
            spec = yaml.safe_load(source.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise LocalPlatformError(f"cannot read {source}: {exc}") from exc
        deployments = spec.get("deployments") or []
        if not deployments:
            raise LocalPlatformError(f"{source} declares no deployments")
        prefect_yaml = source
        if any((d.get("work_pool") or {}).get("name") != self.config.pool for d in deployments):
            # Another pool than the file names (`up --pool`): apply a copy naming it.
            for item in deployments:
                item["work_pool"] = {**(item.get("work_pool") or {}), "name": self.config.pool}
            spec.pop("definitions", None)
            prefect_yaml = self.config.home / f"prefect.{self.config.pool}.yaml"
            prefect_yaml.write_text(
                f"# Written by prefect-stacks from {source} for pool {self.config.pool!r}.\n"
                + yaml.safe_dump(spec, sort_keys=False)
            )
        result = run_process(
            prefect_argv("--no-prompt", "deploy", "--all", "--prefect-file", str(prefect_yaml)),
            cwd=self.config.home,
            env=self.config.child_env(),
            stream=False,
            timeout=DEPLOY_TIMEOUT,
        )
        if result.returncode != 0:
            raise LocalPlatformError(
                f"`prefect deploy` of {source} failed (exit code {result.returncode}):\n"
                + "\n".join((result.stdout + result.stderr).strip().splitlines()[-30:])
            )
        return self._check_deployments(deployments, source)

    def apply_automations(self, directory: Path | None = None) -> dict[str, list[str]]:
        """Create or update the automations of ``deployments/automations/*.yaml``
        (after the deployments they run exist); a rerun changes nothing."""
        from prefect_stacks.events import automations

        directory = directory or automations.automations_dir()
        if not directory.is_dir():
            return {"created": [], "updated": [], "unchanged": []}
        with api_settings(self.config.api_url):
            try:
                return automations.apply(directory)
            except PrefectStacksError as exc:
                raise LocalPlatformError(f"automations in {directory}: {exc}") from exc

    def _check_deployments(self, deployments: list[dict[str, Any]], source: Path) -> list[str]:
        from prefect.client.orchestration import get_client
        from prefect.exceptions import ObjectNotFound
        from prefect.flows import load_flow_from_entrypoint

        names = []
        with api_settings(self.config.api_url), get_client(sync_client=True) as client:
            for item in deployments:
                flow_name = load_flow_from_entrypoint(item["entrypoint"]).name
                full = f"{flow_name}/{item['name']}"
                try:
                    client.read_deployment_by_name(full)
                except ObjectNotFound:
                    raise LocalPlatformError(
                        f"`prefect deploy` of {source} did not create {full!r}"
                    ) from None
                names.append(full)
        return names

    # ------------------------------------------------------------------ worker
    def start_worker(self) -> ManagedProcess:
        """Reuse a live worker recorded in the home (same server and pool), else start
        ``prefect worker start --pool <pool> --type process``. Does not wait for it."""
        cfg = self.config
        record = read_pid_file(cfg.worker_pid_file, "worker")
        if record is not None:
            same = record.get("api_url") == cfg.api_url and record.get("pool") == cfg.pool
            if not same:
                raise LocalPlatformError(
                    f"a worker started from {cfg.home} (pid {record['pid']}) polls pool "
                    f"{record.get('pool')!r} of {record.get('api_url')}; stop it first with "
                    f"`prefect-stacks down --home {cfg.home}`"
                )
            pid = int(record["pid"])
            self.worker = ManagedProcess("worker", pid, cfg.worker_log, started=False)
            self.say(f"worker: reusing pid {pid} (pool {cfg.pool!r})")
            return self.worker
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
        self._worker_spawned_at = datetime.now(timezone.utc)
        popen = self._spawn(argv, cfg.worker_log)
        self.worker = ManagedProcess("worker", popen.pid, cfg.worker_log, True, popen)
        _write_pid_file(
            cfg.worker_pid_file,
            {
                "pid": popen.pid,
                "pool": cfg.pool,
                "api_url": cfg.api_url,
                "argv": argv,
                "started_at": time.time(),
            },
        )
        self.say(f"worker: starting for pool {cfg.pool!r} (pid {popen.pid}, log {cfg.worker_log})")
        return self.worker

    def wait_for_worker(self, timeout: float = WORKER_START_TIMEOUT) -> None:
        """Wait until the worker has reported to the server (it is then polling)."""
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import WorkerFilter, WorkerFilterStatus

        assert self.worker is not None
        cfg = self.config
        deadline = time.monotonic() + timeout
        online = WorkerFilter(status=WorkerFilterStatus(any_=["ONLINE"]))
        with api_settings(cfg.api_url), get_client(sync_client=True) as client:
            while time.monotonic() < deadline:
                if not self.worker.alive():
                    code = self.worker.popen.returncode if self.worker.popen else "?"
                    raise LocalPlatformError(
                        f"the worker exited (code {code}) right after it started; tail of "
                        f"{cfg.worker_log}:\n{log_tail(cfg.worker_log)}"
                    )
                workers = client.read_workers_for_work_pool(cfg.pool, worker_filter=online)
                # A worker started here must have sent a heartbeat since it started (the
                # server may still list an earlier one of the same name as online).
                since = self._worker_spawned_at if self.worker.started else None
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
            server = self.start_server()
            timings["server"] = time.monotonic() - t0
            t = time.monotonic()
            pool_created = self.ensure_work_pool()
            self.say(
                f"work pool: {self.config.pool!r} " + ("created" if pool_created else "exists")
            )
            # The worker boots (a few seconds of imports) while blocks and deployments
            # are applied.
            if worker:
                self.start_worker()
            blocks = self.register_blocks()
            self.say(f"blocks: registered {', '.join(blocks)}")
            self.save_stack_block(LOCAL_WEBAPP, variables=stack_variables)
            self.say(
                f"block: TerraformStack {LOCAL_WEBAPP!r} saved "
                f"(state in {self.config.state_dir(LOCAL_WEBAPP)})"
            )
            timings["pool+blocks"] = time.monotonic() - t
            t = time.monotonic()
            deployments = self.apply_deployments(prefect_file)
            automations = self.apply_automations(
                Path(prefect_file).parent / "automations" if prefect_file else None
            )
            timings["deploy"] = time.monotonic() - t
            self.say(f"deployments: {', '.join(deployments)}")
            self.say(
                "automations: "
                + ", ".join(f"{len(v)} {k}" for k, v in automations.items() if v or k == "created")
            )
            if worker:
                t = time.monotonic()
                self.wait_for_worker()
                timings["worker"] = time.monotonic() - t
            self.write_env_file()
        except BaseException:
            self.stop()
            raise
        timings["total"] = time.monotonic() - t0
        return UpResult(
            server, self.worker, pool_created, blocks, deployments, timings, automations
        )

    def write_env_file(self) -> Path:
        """``<home>/env.sh``: after ``. <home>/env.sh`` a shell's bare ``prefect`` and
        ``prefect-stacks`` are this virtualenv's, talking to this server."""
        path = self.config.env_file
        lines = [
            "# Source this file to point the prefect CLI at the local server:",
            f"#   . {shlex.quote(str(path))}",
            f"export PREFECT_API_URL={shlex.quote(self.config.api_url)}",
        ]
        # The directory of this interpreter, not resolved: a virtualenv's bin/ (its
        # python is a symlink to the system's), where `prefect` and `prefect-stacks` are.
        bin_dir = Path(sys.executable).parent
        if (bin_dir / "prefect").exists():
            lines.append(f'export PATH={shlex.quote(str(bin_dir))}:"$PATH"')
        path.write_text("\n".join(lines) + "\n")
        return path

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
        "healthy": server_healthy(config.api_url),
        "server_pid": server and server["pid"],
        "worker_pid": worker and worker["pid"],
    }


__all__ = [
    "DEFAULT_HOME",
    "DEFAULT_POOL",
    "DEFAULT_PORT",
    "LOCAL_WEBAPP",
    "LocalConfig",
    "LocalPlatform",
    "LocalPlatformError",
    "ManagedProcess",
    "UpResult",
    "api_settings",
    "down",
    "free_port",
    "server_healthy",
    "status",
    "stop_process",
]
