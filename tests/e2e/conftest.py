"""End-to-end fixtures: a REAL Prefect server (on a database of the session's
PostgreSQL, or SQLite in a temporary PREFECT_HOME with E2E_SQLITE=1; a free port) and a
process worker polling every second, brought up by the same library code as
``prefect-stacks up`` (:mod:`prefect_stacks.local`), with the blocks and every deployment
of ``deployments/prefect.yaml`` applied.

The ``local-webapp`` block keeps its Terraform state and the web server's run dir in the
test's temporary directory, and the web server listens on a free port, so the tests
neither see nor disturb a developer's own ``prefect-stacks up``.

Missing tools (terraform, python3): skipped with the reason on a laptop, a failure in
CI (``CI=true``), where a skipped layer would pass unnoticed.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest

from prefect_stacks.local import (
    LOCAL_WEBAPP,
    LocalConfig,
    LocalPlatform,
    LocalPlatformError,
    api_settings,
    descendants,
    free_port,
    is_alive,
    log_tail,
)
from tests.conftest import stop, stop_webapps

RUN_TIMEOUT = 150.0  # seconds for one stack run (terraform init + plan + apply)


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def require_tool(name: str, why: str) -> None:
    """Skip (laptop) or fail (CI) when ``name`` is not on PATH."""
    if shutil.which(name):
        return
    message = f"`{name}` is not on PATH; {why}"
    if in_ci():
        pytest.fail(f"{message} (CI=true: a missing service fails the run)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def prefect_stacks_cli() -> list[str]:
    """argv of the `prefect-stacks` console script of this virtualenv, for tests of
    `up` / `down` (which save a Terraform stack block, hence the terraform check)."""
    require_tool("terraform", "`prefect-stacks up` saves a Terraform stack block")
    script = Path(sys.executable).parent / "prefect-stacks"
    if script.exists():
        return [str(script)]
    found = shutil.which("prefect-stacks")
    if not found:
        pytest.fail("the prefect-stacks console script is not installed (pip install -e .)")
    return [found]


@dataclass
class E2E:
    """The running platform and helpers to drive it through the Prefect API."""

    config: LocalConfig
    platform: LocalPlatform
    root: Path
    _webapps: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return self.config.api_url

    def webapp_variables(self, workspace: str) -> dict[str, Any]:
        """Stack variables for one workspace: its own run dir and free port (the stack
        wants a run dir per workspace; its derived ports might be taken here)."""
        if workspace not in self._webapps:
            self._webapps[workspace] = {
                "run_dir": str(self.root / "webapp" / workspace),
                "port": free_port(),
            }
        return dict(self._webapps[workspace])

    # ----------------------------------------------------------------- runs
    def run(self, deployment: str, parameters: dict[str, Any], timeout: float = RUN_TIMEOUT):
        """Run a deployment and wait for a final state; returns the FlowRun."""
        from prefect.deployments import run_deployment

        return run_deployment(
            deployment,
            parameters=parameters,
            timeout=timeout,
            poll_interval=1,
            as_subflow=False,
        )

    def submit(self, deployment: str, parameters: dict[str, Any]):
        """Create a run of a deployment and return at once."""
        from prefect.deployments import run_deployment

        return run_deployment(deployment, parameters=parameters, timeout=0, as_subflow=False)

    def wait(self, flow_run_id: UUID, until: Callable[[Any], bool], timeout: float = RUN_TIMEOUT):
        """Poll the flow run until ``until(state)`` or a final state; returns the run."""
        from prefect.client.orchestration import get_client

        deadline = time.monotonic() + timeout
        with get_client(sync_client=True) as client:
            while True:
                flow_run = client.read_flow_run(flow_run_id)
                state = flow_run.state
                if state is not None and (until(state) or state.is_final()):
                    return flow_run
                if time.monotonic() > deadline:
                    return flow_run
                time.sleep(0.5)

    def explain(self, flow_run) -> str:
        """State, message and last log lines of a run, for assertion messages."""
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

        with get_client(sync_client=True) as client:
            logs = client.read_logs(
                LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run.id])), limit=200
            )
        lines = [f"{log.level:>2} {log.message}" for log in logs][-40:]
        state = flow_run.state
        return (
            f"flow run {flow_run.name} ({flow_run.id}) is "
            f"{state.type.value if state else None}: {state.message if state else ''}\n"
            + "\n".join(lines)
            + f"\n--- tail of {self.config.worker_log}:\n{log_tail(self.config.worker_log, 20)}"
        )

    def artifacts(self, flow_run_id: UUID, key: str) -> list[Any]:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import (
            ArtifactFilter,
            ArtifactFilterFlowRunId,
            ArtifactFilterKey,
        )

        with get_client(sync_client=True) as client:
            return client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
                    key=ArtifactFilterKey(any_=[key]),
                )
            )

    def url_of(self, flow_run_id: UUID, workspace: str, stack: str = LOCAL_WEBAPP) -> str:
        """The URL a stack-apply run published as its link artifact."""
        found = self.artifacts(flow_run_id, f"url-{stack}-{workspace}")
        assert found, f"no url-{stack}-{workspace} artifact on flow run {flow_run_id}"
        match = re.search(r"\((https?://[^)\s]+)\)", str(found[-1].data))
        assert match, f"link artifact without a URL: {found[-1].data!r}"
        return match.group(1)

    # ----------------------------------------------------------------- the worker
    def worker_alive(self) -> bool:
        worker = self.platform.worker
        return worker is not None and worker.alive()

    def worker_processes(self) -> list[int]:
        """The worker and every process below it (flow runs, terraform, local-exec)."""
        worker = self.platform.worker
        if worker is None or worker.pid is None or not worker.alive():
            return []
        return [worker.pid, *descendants(worker.pid)]

    def worker_commands(self) -> list[str]:
        """Command lines of :meth:`worker_processes` (e.g. to see a `sleep` running)."""
        return [cmd for cmd in map(_cmdline, self.worker_processes()) if cmd]

    def kill_worker(self) -> KilledWorker:
        """SIGKILL the worker AND its flow runs, as a crashed machine would: nobody
        reports anything to the server (a killed run stays Running there)."""
        worker = self.platform.worker
        assert worker is not None and worker.pid is not None, "no worker to kill"
        killed = kill_process_tree(worker.pid)
        if worker.popen is not None:
            worker.popen.wait(timeout=10)  # reap it (it is our child)
        return killed

    def restart_worker(self, timeout: float = 60.0) -> float:
        """Start a new worker (the old one must be dead) and wait until it polls;
        returns how long that took."""
        assert not self.worker_alive(), "the worker still runs; kill_worker() first"
        started = time.monotonic()
        self.platform.worker = None
        self.platform.start_worker()
        self.platform.wait_for_worker(timeout=timeout)
        return time.monotonic() - started

    def ensure_worker(self) -> None:
        """A test that kills the worker calls this in its `finally`: the next test
        gets a polling worker even when this one failed half-way."""
        if not self.worker_alive():
            self.restart_worker()


@dataclass
class KilledWorker:
    """What :func:`kill_process_tree` killed, for assertions and failure messages."""

    pids: list[int]
    commands: dict[int, str]
    flow_run_ids: list[str]  # flow runs whose process was killed

    def running(self, needle: str) -> bool:
        """Whether a killed process's command line contained ``needle``."""
        return any(needle in cmd for cmd in self.commands.values())


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def _flow_run_id(pid: int) -> str | None:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    for item in environ:
        if item.startswith(b"PREFECT__FLOW_RUN_ID="):
            return item.split(b"=", 1)[1].decode()
    return None


def kill_process_tree(root: int, timeout: float = 10.0) -> KilledWorker:
    """SIGKILL ``root`` and every process below it, including those in other sessions
    and process groups (the worker starts each flow run in its own session; terraform
    and its local-exec children sit below the flow run).

    The tree is frozen first (SIGSTOP, repeated until no new process appears: a
    stopped process cannot fork), so nothing escapes by being started between the
    listing and the kill; then every process and its process group get SIGKILL.
    Descendants are found from /proc before anything dies (orphans are re-parented)."""
    frozen: list[int] = []
    deadline = time.monotonic() + timeout
    while True:
        tree = [root, *descendants(root)]
        new = [pid for pid in tree if pid not in frozen and is_alive(pid)]
        if not new:
            break
        for pid in new:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGSTOP)
        frozen.extend(new)
        if time.monotonic() > deadline:
            break
    commands = {pid: _cmdline(pid) for pid in frozen}
    flow_runs = sorted({r for r in (_flow_run_id(pid) for pid in frozen if pid != root) if r})
    for pid in frozen:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if os.getpgid(pid) == pid:
                os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    while any(is_alive(pid) for pid in frozen):
        if time.monotonic() > deadline + 5:
            alive = [pid for pid in frozen if is_alive(pid)]
            raise AssertionError(f"processes survived SIGKILL: {alive}")
        time.sleep(0.05)
    return KilledWorker(pids=frozen, commands=commands, flow_run_ids=flow_runs)


@contextlib.contextmanager
def _global_api_settings() -> Iterator[None]:
    """Make the current settings (the e2e server's API URL) the process-global ones too,
    as ``prefect_test_harness`` does: the log and event workers of flows run in this
    process (e.g. ``demo_environment(...)`` called by a test) start their clients on
    Prefect's global event-loop thread, which does not see ``temporary_settings``; without
    this they would send logs and events to a throwaway ephemeral server (or to another
    test server of the session)."""
    import prefect.context

    with prefect.context._temporary_global_settings_context(prefect.context.get_settings_context()):
        yield


def _drain_client_workers() -> None:
    """Flush logs and events of in-process flows before the server stops."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        with contextlib.suppress(Exception):
            worker.drain_all(timeout=10, at_exit=False)


@pytest.fixture(scope="package")
def janitor_unscheduled(e2e: E2E) -> Iterator[None]:
    """Pause the 5-minute schedule of `environment-janitor/default` (its scheduled runs
    are deleted): tests of environments run the janitor themselves, when they mean to,
    and a scheduled run in the middle would warn or tear down in their place. Runs of
    a paused deployment can still be created."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("environment-janitor/default")
        client.pause_deployment(deployment.id)
    try:
        yield
    finally:
        with get_client(sync_client=True) as client:
            client.resume_deployment(deployment.id)


def _server_database(request: pytest.FixtureRequest, label: str) -> str:
    """A new database on the session's PostgreSQL, as an asyncpg URL for the server."""
    dsn = request.getfixturevalue("postgres")  # postgres://postgres@127.0.0.1:PORT/postgres?...
    name = "prefect_" + re.sub(r"\W", "_", label)
    subprocess.run(["psql", dsn, "-qc", f"CREATE DATABASE {name}"], check=True)
    server = dsn.split("?")[0].rsplit("/", 1)[0].replace("postgres://", "postgresql+asyncpg://")
    return f"{server}/{name}"


@pytest.fixture(scope="package")
def e2e(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[E2E]:
    """The platform, up for the tests of this package only (package scope: the server
    and worker stop, and PREFECT_API_URL is restored, before the other layers run)."""
    require_tool("terraform", "the e2e tests apply real Terraform stacks")
    require_tool("python3", "the local-webapp stack runs its web server with python3")
    root = tmp_path_factory.mktemp("e2e")
    # The shared server runs on PostgreSQL, as Prefect advises beyond a few concurrent
    # runs: on SQLite the 50-environment soak spent minutes in "database is locked"
    # retries (503s). `up` on SQLite, the README's default, is tested by the `up`
    # tests, which start their own server. E2E_SQLITE=1 runs this server on SQLite.
    database_url = None if os.environ.get("E2E_SQLITE") else _server_database(request, root.name)
    config = LocalConfig(home=root / "home", port=free_port(), database_url=database_url)
    platform = LocalPlatform(config, say=lambda msg: print(f"[e2e] {msg}"))
    env = E2E(config=config, platform=platform, root=root)
    saved_api_url = os.environ.get("PREFECT_API_URL")
    try:
        try:
            result = platform.up(stack_variables=env.webapp_variables("default"))
        except LocalPlatformError as exc:
            pytest.fail(f"could not bring the local platform up: {exc}", pytrace=False)
        print(f"[e2e] platform up: {result.timings}")
        # Subprocesses started by tests and the Prefect client of this process talk
        # to the test server (never to a developer's server or an ephemeral one).
        os.environ["PREFECT_API_URL"] = config.api_url
        with api_settings(config.api_url), _global_api_settings():
            try:
                yield env
            finally:
                _drain_client_workers()
    finally:
        stop_webapps(root / "webapp")
        platform.stop()
        if saved_api_url is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = saved_api_url


@contextlib.contextmanager
def running_receiver(e2e: E2E, cli: list[str], log_path: Path, port: int | None = None):
    """`prefect-stacks webhooks serve` as its own process against the e2e server, on
    ``port`` (a free one when None); yields its base URL."""
    port = port or free_port()
    log = log_path.open("w")
    proc = subprocess.Popen(
        [*cli, "webhooks", "serve", "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**e2e.config.child_env(), "PREFECT_API_URL": e2e.api_url},
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    else:
        proc.kill()
    if proc.poll() is not None:
        log.close()
        pytest.fail(f"the receiver did not start:\n{log_path.read_text()}")
    try:
        yield base
    finally:
        stop(proc)
        log.close()


@pytest.fixture
def receiver(e2e: E2E, prefect_stacks_cli, tmp_path: Path) -> Iterator[str]:
    """`prefect-stacks webhooks serve` as its own process against the e2e server; yields
    its base URL."""
    with running_receiver(e2e, prefect_stacks_cli, tmp_path / "webhooks.log") as base:
        yield base
