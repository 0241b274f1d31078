"""Shared test fixtures.

Services are real wherever they run here. When one is missing, a test skips with the
reason on a laptop, and FAILS when ``CI=true``: CI must never go green by skipping.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

T = TypeVar("T")

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PG_BIN = Path("/usr/lib/postgresql/15/bin")

# Keep prefect-stacks' own home (local state, plugin cache) out of the user's.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def wait_for(what: str, check: Callable[[], T], timeout: float, interval: float = 0.25) -> T:
    """Poll ``check`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}", pytrace=False)
        time.sleep(interval)


def require(ok: bool, reason: str) -> None:
    """Skip (laptop) or fail (CI) when a needed service or tool is missing."""
    if ok:
        return
    if IN_CI:
        pytest.fail(f"CI=true and a required service is missing: {reason}")
    pytest.skip(reason)


def require_tool(name: str) -> str:
    path = shutil.which(name)
    require(path is not None, f"`{name}` is not installed")
    assert path is not None
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def _stacks_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    home = tmp_path_factory.mktemp("stacks-home")
    monkeypatch.setenv("PREFECT_STACKS_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def terraform_bin() -> str:
    return require_tool("terraform")


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """A throwaway Prefect server (SQLite) for tests that run flows or use blocks."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def stop(proc: subprocess.Popen, timeout: float = 10) -> None:
    """Stop a service a test started: SIGTERM, then SIGKILL after ``timeout`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def write_stack(path: Path, main_tf: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "main.tf").write_text(main_tf)
    return path


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real PostgreSQL 15 server on a free loopback port; yields a conn string.

    initdb refuses to run as root, so the cluster belongs to the `postgres` user.
    """
    initdb = PG_BIN / "initdb"
    require(initdb.exists(), f"PostgreSQL server binaries not found in {PG_BIN}")
    as_postgres: list[str] = []
    if os.geteuid() == 0:
        require(shutil.which("runuser") is not None, "runuser is needed to run initdb as postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    # Not under pytest's tmp dirs: those are 0700 root, which the postgres user cannot enter.
    base = Path(tempfile.mkdtemp(prefix="prefect-stacks-pg-"))
    if as_postgres:
        import pwd

        pw = pwd.getpwnam("postgres")
        os.chown(base, pw.pw_uid, pw.pw_gid)
    data = base / "data"
    port = free_port()
    subprocess.run(
        [*as_postgres, str(initdb), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"],
        check=True,
        capture_output=True,
    )
    log = base / "pg.log"
    subprocess.run(
        [
            *as_postgres,
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(log),
            "-w",
            "-o",
            f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ready = subprocess.run(
                [str(PG_BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
                capture_output=True,
            )
            if ready.returncode == 0:
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"PostgreSQL did not start: {log.read_text()[-2000:]}")
        yield f"postgres://postgres@127.0.0.1:{port}/postgres?sslmode=disable"
    finally:
        subprocess.run(
            [*as_postgres, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(base, ignore_errors=True)


FAKE_TERRAFORM = r'''#!{python}
"""A stand-in terraform that records how it was called (argv, env, var files) and
answers from a script, to test how the block drives python-terraform."""
import json, os, stat, sys
log = os.environ["FAKE_TF_LOG"]
script = json.loads(os.environ.get("FAKE_TF_SCRIPT", "{{}}"))
args = sys.argv[1:]
sub = args[0] if args else ""
if sub == "workspace" and len(args) > 1:
    sub = "workspace " + args[1]
if sub == "state" and len(args) > 1:
    sub = "state " + args[1]
var_files = {{}}
for a in args:
    if a.startswith("-var-file="):
        p = a.split("=", 1)[1]
        var_files[p] = {{"mode": oct(stat.S_IMODE(os.stat(p).st_mode)),
                        "content": json.load(open(p))}}
record = {{"argv": args, "cwd": os.getcwd(), "var_files": var_files,
          "tf_vars": {{k: v for k, v in os.environ.items() if k.startswith("TF_VAR_")}},
          "env": {{k: os.environ.get(k) for k in
                  ("TF_IN_AUTOMATION", "TF_INPUT", "MY_CRED", "TF_CLI_CONFIG_FILE")}}}}
cli_config = os.environ.get("TF_CLI_CONFIG_FILE")
if cli_config and os.path.isfile(cli_config):
    record["cli_config"] = open(cli_config).read()
with open(log, "a") as fh:
    fh.write(json.dumps(record) + "\n")
answer = script.get(sub, {{}})
for a in args:
    if a.startswith("-out="):
        open(a.split("=", 1)[1], "w").write("plan")
sys.stdout.write(answer.get("stdout", ""))
sys.stderr.write(answer.get("stderr", ""))
sys.exit(answer.get("rc", 0))
'''


@pytest.fixture
def fake_terraform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Returns (path of a fake terraform binary, function reading its call log)."""
    import json

    binary = tmp_path / "fake-terraform"
    binary.write_text(FAKE_TERRAFORM.format(python=sys.executable))
    binary.chmod(0o755)
    log = tmp_path / "fake-terraform.log"
    monkeypatch.setenv("FAKE_TF_LOG", str(log))

    def calls() -> list[dict]:
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]

    def script(answers: dict) -> None:
        monkeypatch.setenv("FAKE_TF_SCRIPT", json.dumps(answers))

    return binary, calls, script


def stop_webapps(root: Path) -> None:
    """A failed test may leave local-webapp servers running: stop the server of every
    run dir under ``root`` (webapp.py's own `stop`: pid file, SIGTERM, then SIGKILL)."""
    if not root.is_dir():
        return
    from prefect_stacks import stack_path

    script = stack_path("local-webapp") / "webapp.py"
    for run_dir in root.iterdir():
        if run_dir.is_dir():
            subprocess.run(
                [sys.executable, str(script), f"--run-dir={run_dir}", "stop"],
                capture_output=True,
                timeout=30,
            )


def read_events(
    name: str | None = None,
    resource_id: str | None = None,
    *,
    at_least: int = 1,
    timeout: float = 15.0,
) -> list[dict[str, Any]]:
    """Events on the current Prefect server (``POST /api/events/filter``), polled until
    ``at_least`` match: the server persists events asynchronously."""
    from prefect import get_client

    flt: dict[str, Any] = {}
    if name:
        flt["event"] = {"name": [name]}
    if resource_id:
        flt["resource"] = {"id": [resource_id]}
    deadline = time.monotonic() + timeout
    while True:
        with get_client(sync_client=True) as client:
            page = client.request(
                "POST", "/events/filter", json={"filter": flt, "limit": 50}
            ).json()
        found = page.get("events", [])
        if len(found) >= at_least or time.monotonic() > deadline:
            return found
        time.sleep(0.3)


def git(*args: str, cwd: Path) -> str:
    """Run real git (argv, no shell); its stdout."""
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


class GitRepo:
    """A bare repository (what watchers poll and flows clone) and a working clone to
    commit from, with real git."""

    def __init__(self, root: Path, name: str = "origin") -> None:
        require_tool("git")
        self.bare = root / f"{name}.git"
        self.work = root / f"{name}-work"
        git("init", "-q", "--bare", "-b", "main", str(self.bare), cwd=root)
        git("clone", "-q", str(self.bare), str(self.work), cwd=root)
        git("config", "user.name", "t", cwd=self.work)
        git("config", "user.email", "t@example.com", cwd=self.work)
        self.count = 0

    def commit(self, branch: str = "main") -> str:
        """A new commit on ``branch`` (created if needed), pushed; returns its SHA."""
        self.count += 1
        git("checkout", "-q", "-B", branch, cwd=self.work)
        (self.work / "change.txt").write_text(f"{branch} {self.count}\n")
        git("add", "change.txt", cwd=self.work)
        git("commit", "-q", "-m", f"{branch} {self.count}", cwd=self.work)
        git("push", "-q", "-f", "origin", branch, cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work)


# ------------------------------------------------------------------ Docker + registry
# dockerd runs when started by hand (Debian's docker.io; root): its own data and exec
# roots and socket under a short temp dir (unix socket paths are limited to 108 bytes),
# no iptables and no bridge (nothing here needs container networking). The registry
# is Distribution (Debian's docker-registry) on a loopback port: Docker treats
# 127.0.0.0/8 registries as insecure (plain HTTP) by default.


def _wait_for(check, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"
    pytest.fail(f"{what} did not start within {timeout:.0f}s:\n{tail}")


@pytest.fixture(scope="session")
def dockerd() -> Iterator[str]:
    """A real Docker engine; yields its base URL (unix://...)."""
    binary = shutil.which("dockerd") or (
        "/usr/sbin/dockerd" if Path("/usr/sbin/dockerd").exists() else None
    )
    require(binary is not None, "dockerd is not installed (Debian package docker.io)")
    require(os.geteuid() == 0, "dockerd needs root")
    base = Path(tempfile.mkdtemp(prefix="psd-", dir="/tmp"))
    sock = base / "docker.sock"
    log = base / "dockerd.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(binary),
                f"--host=unix://{sock}",
                f"--data-root={base / 'data'}",
                f"--exec-root={base / 'x'}",
                f"--pidfile={base / 'docker.pid'}",
                "--iptables=false",
                "--ip6tables=false",
                "--bridge=none",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"unix://{sock}"

    def ready() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"dockerd exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        import docker

        try:
            client = docker.DockerClient(base_url=url, version="auto", timeout=5)
        except Exception:
            return False
        try:
            return bool(client.ping())
        finally:
            client.close()

    try:
        _wait_for(ready, 60, "dockerd", log)
        yield url
    finally:
        stop(proc, 30)
        subprocess.run(["umount", "-R", str(base / "data")], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def start_registry(
    base: Path, auth: Path | None = None, notify: tuple[str, str] | None = None
) -> tuple[subprocess.Popen, str, Path]:
    """Start Distribution; ``notify`` = (url, bearer token) sends its notifications there
    (retried every second until answered, as a real endpoint would be)."""
    base.mkdir(parents=True, exist_ok=True)
    binary = shutil.which("docker-registry")
    require(binary is not None, "docker-registry is not installed (Debian package docker-registry)")
    port = free_port()
    config = base / "config.yml"
    text = (
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {base / 'data'}\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    if auth is not None:
        text += f"auth:\n  htpasswd:\n    realm: prefect-stacks-tests\n    path: {auth}\n"
    if notify is not None:
        text += (
            "notifications:\n  endpoints:\n    - name: prefect-stacks\n"
            f"      url: {notify[0]}\n"
            f"      headers:\n        Authorization: [Bearer {notify[1]}]\n"
            "      timeout: 5s\n      threshold: 3\n      backoff: 1s\n"
        )
    config.write_text(text)
    log = base / "registry.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [binary, "serve", str(config)], stdout=out, stderr=subprocess.STDOUT
        )
    import httpx

    def ready() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"docker-registry exited with {proc.returncode}:\n{log.read_text()}")
        try:
            # 200 open, 401 with a login: either way it answers the v2 API
            answer = httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=2).status_code
        except httpx.HTTPError:
            return False
        return answer in (200, 401)

    _wait_for(ready, 30, "docker-registry", log)
    return proc, f"127.0.0.1:{port}", log


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Distribution registry on loopback, no login; yields its host:port."""
    proc, address, _ = start_registry(tmp_path_factory.mktemp("registry"))
    try:
        yield address
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="session")
def registry_with_login(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, str]]:
    """A real Distribution registry that wants a login (htpasswd, bcrypt); yields
    (host:port, username, password)."""
    import secrets as _secrets

    htpasswd = require_tool("htpasswd")  # Debian apache2-utils
    base = tmp_path_factory.mktemp("registry-login")
    user, password = "ci", "pw-" + _secrets.token_hex(12)
    users = base / "htpasswd"
    created = subprocess.run(
        [htpasswd, "-B", "-i", "-c", str(users), user],
        input=password,
        text=True,
        capture_output=True,
    )
    assert created.returncode == 0, created.stderr
    proc, address, _ = start_registry(base, auth=users)
    try:
        yield address, user, password
    finally:
        proc.terminate()
        proc.wait(10)


# ------------------------------------------------------------------ the test bed (K8s, providers)
# Built by `make testbed` from Go modules (tests/testbed/, docs/testing.md).


def testbed_binary(component: str, name: str | None = None) -> Path:
    from tests import testbed

    reason = testbed.unavailable(component)
    require(reason is None, reason or "")
    return testbed.binary(component, name)


@pytest.fixture(scope="session")
def kubectl() -> str:
    """kubectl: the test bed's, or the one on PATH for a cluster of your own."""
    if os.environ.get("PREFECT_STACKS_TEST_KUBECONFIG") and shutil.which("kubectl"):
        return shutil.which("kubectl") or "kubectl"
    return str(testbed_binary("kubernetes", "kubectl"))


@pytest.fixture(scope="session")
def helm_bin() -> str:
    if os.environ.get("PREFECT_STACKS_TEST_KUBECONFIG") and shutil.which("helm"):
        return shutil.which("helm") or "helm"
    return str(testbed_binary("helm"))


@pytest.fixture(scope="session")
def kube_cluster() -> Iterator[Path]:
    """A real Kubernetes API server with one kwok node; yields its kubeconfig.

    ``PREFECT_STACKS_TEST_KUBECONFIG`` names a cluster of your own (kind, k3d) instead.
    Otherwise kwokctl's binary runtime starts etcd, the API server, controller-manager,
    scheduler and kwok from the test bed, and every one of them is gone at the end."""
    own = os.environ.get("PREFECT_STACKS_TEST_KUBECONFIG")
    if own:
        require(Path(own).is_file(), f"PREFECT_STACKS_TEST_KUBECONFIG={own} is not a file")
        yield Path(own)
        return
    from tests import testbed
    from tests.testbed.cluster import ClusterError, KwokCluster

    bins = {
        name: testbed_binary("kubernetes", name)
        for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
    }
    bins["etcd"] = testbed_binary("etcd")
    bins["kwokctl"] = testbed_binary("kwok", "kwokctl")
    bins["kwok"] = testbed_binary("kwok", "kwok")
    cluster = KwokCluster(Path(tempfile.mkdtemp(prefix="psk-")), bins, testbed.kube_version())
    try:
        kubeconfig = cluster.start()
    except ClusterError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield kubeconfig
    finally:
        cluster.stop()
        left = cluster.alive()
        if left:
            pytest.fail(f"the test cluster left processes running: {left}", pytrace=False)


@pytest.fixture(scope="session")
def terraform_mirror() -> Path:
    """The test bed's provider mirror (for ``TerraformStack(provider_mirror=...)``); a
    test asks :func:`require_provider` for the providers its stack names."""
    from tests import testbed

    mirror = testbed.mirror_dir()
    require(mirror.is_dir(), f"no provider mirror at {mirror}: run `make testbed`")
    return mirror


def require_provider(name: str) -> None:
    """A provider from the mirror: skip (or fail in CI) when it is not built, except
    when the Go proxy refused a module it needs (its `.refused` record says so): then
    skip, saying so. A vendored provider whose archive fails its sha256 check is a
    failure, not a refusal (docs/testing.md, "Vendored providers")."""
    from tests import testbed

    refused = testbed.refused(f"provider-{name}")
    if refused:
        pytest.skip(f"{refused}; its stack was checked by `terraform fmt -check` only")
    reason = testbed.unavailable(f"provider-{name}")
    require(reason is None, reason or "")


# ------------------------------------------------------------------ Alertmanager
@pytest.fixture(scope="session")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prometheus Alertmanager (Debian's prometheus-alertmanager) on loopback, no
    receivers but a null one; yields its base URL. Tests post alerts to it themselves
    (``POST /api/v2/alerts``), as Prometheus would."""
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    require(
        binary is not None,
        "prometheus-alertmanager is not installed (Debian package prometheus-alertmanager)",
    )
    base = tmp_path_factory.mktemp("alertmanager")
    config = base / "alertmanager.yml"
    config.write_text("route:\n  receiver: none\nreceivers:\n  - name: none\n")
    port, cluster_port = free_port(), free_port()
    log = base / "alertmanager.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(binary),
                f"--config.file={config}",
                f"--storage.path={base / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                f"--cluster.listen-address=127.0.0.1:{cluster_port}",
                "--cluster.advertise-address=127.0.0.1:" + str(cluster_port),
                "--log.level=warn",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    import httpx

    def ready() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"alertmanager exited with {proc.returncode}:\n{log.read_text()}")
        try:
            return httpx.get(f"{url}/-/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        _wait_for(ready, 30, "alertmanager", log)
        yield url
    finally:
        stop(proc, 10)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under pytest-xdist (`make test` runs two workers) the whole e2e layer is one unit
    of work, so one worker runs it: its tests share one Prefect server and worker (the
    `e2e` fixture, package scope), and the soak must not share the machine with a second
    e2e platform. Every other module is a unit of its own (module fixtures stay in one
    worker), run by the other worker beside it. (xdist's own `--dist loadgroup` marks
    stopped working with pytest 9.2, which ignores the node id it rewrites.)"""
    from xdist.scheduler import LoadScopeScheduling

    class E2EInOneWorker(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "tests/e2e" if nodeid.startswith("tests/e2e/") else nodeid.split("::", 1)[0]

    return E2EInOneWorker(config, log)
