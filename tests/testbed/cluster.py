"""A real Kubernetes control plane for the tests: kwokctl's binary runtime.

``kwokctl create cluster --runtime binary`` starts etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and kwok (fake kubelets) as detached processes
(setsid) and returns. Orphans like these are reparented to PID 1, which on these machines
does not reap them, so the cluster runs under a small supervisor process of our own: it
becomes their "child subreaper" (prctl), creates the cluster, reaps what exits, and when
its stdin closes (the fixture's teardown, or the test process dying) deletes the cluster
and reaps every process it started before it exits itself.

Run as a script, this file is that supervisor; imported, :class:`KwokCluster` drives it.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
READY_LINE = "prefect-stacks-testbed: cluster created"
STAGES = Path(__file__).with_name("kwok-stages.yaml")


# --------------------------------------------------------------------------- supervisor
def _reap() -> bool:
    """Reap every exited child; False when there is no child left."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return False
        if pid == 0:
            return True


def _running(pids: list[int]) -> bool:
    """Whether any of ``pids`` still exists (call after reaping: a zombie counts)."""
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        return True
    return False


def _pids(cluster_dir: Path) -> list[int]:
    found = []
    for record in (cluster_dir / "pids").glob("*.pid"):
        try:
            found.append(int(record.read_text().strip()))
        except (OSError, ValueError):
            pass
    return found


def supervise(kwokctl: str, name: str, create_args: list[str]) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print("prefect-stacks-testbed: prctl(PR_SET_CHILD_SUBREAPER) failed", flush=True)
        return 2
    workdir = Path(os.environ["KWOK_WORKDIR"])
    cluster_dir = workdir / "clusters" / name
    # kwokctl's output to a file, not a pipe: a component that inherited a pipe would
    # keep it open, and reading it to the end would wait for that component to exit.
    log = workdir / "kwokctl.log"
    with log.open("w") as out:
        created = subprocess.run(
            [kwokctl, "--name", name, "create", "cluster", *create_args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    pids = _pids(cluster_dir)
    if created.returncode == 0:
        print(f"{READY_LINE} {json.dumps(pids)}", flush=True)
    else:
        print(log.read_text(errors="replace"), flush=True)
    try:
        while created.returncode == 0:
            readable, _, _ = select.select([sys.stdin], [], [], 1.0)
            _reap()
            if readable and not sys.stdin.readline():
                break  # stdin closed: the fixture is done, or the test process died
    finally:
        subprocess.run(
            [kwokctl, "--name", name, "delete", "cluster"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=120,
        )
        grace = float(os.environ.get("STOP_GRACE_SECONDS", "10"))
        deadline = time.monotonic() + grace
        while _reap() and _running(pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in pids:  # whatever delete missed
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        while _reap():
            time.sleep(0.1)
    return 0 if created.returncode == 0 else 1


# --------------------------------------------------------------------------- the fixture's side
class ClusterError(Exception):
    pass


class KwokCluster:
    """Start (:meth:`start`) and stop (:meth:`stop`) one kwokctl cluster in ``workdir``."""

    def __init__(
        self,
        workdir: Path,
        bins: dict[str, Path],
        kube_version: str,
        name: str = "stacks",
        stop_grace: float = 10.0,
    ):
        self.workdir = workdir
        self.stop_grace = stop_grace
        self.name = name
        self.bins = bins
        self.kube_version = kube_version
        self.pids: list[int] = []
        self._proc: subprocess.Popen | None = None

    @property
    def cluster_dir(self) -> Path:
        return self.workdir / "clusters" / self.name

    @property
    def kubeconfig(self) -> Path:
        return self.cluster_dir / "kubeconfig.yaml"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "KWOK_WORKDIR": str(self.workdir),
            "KWOK_KUBE_VERSION": self.kube_version,
            "KWOK_RUNTIME": "binary",
            "KWOK_KUBECTL_BINARY": str(self.bins["kubectl"]),
            # how long the supervisor lets `kwokctl delete` stop things before SIGKILL
            "STOP_GRACE_SECONDS": str(self.stop_grace),
        }

    def create_args(self) -> list[str]:
        b = self.bins
        return [
            "--runtime=binary",
            f"--config={self.workdir / 'kwok.yaml'}",
            f"--kubeconfig={self.workdir / 'merged-kubeconfig.yaml'}",  # not ~/.kube/config
            f"--kube-apiserver-binary={b['kube-apiserver']}",
            f"--kube-controller-manager-binary={b['kube-controller-manager']}",
            f"--kube-scheduler-binary={b['kube-scheduler']}",
            f"--etcd-binary={b['etcd']}",
            f"--kwok-controller-binary={b['kwok']}",
            "--wait=120s",
        ]

    def start(self, timeout: float = 180) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        # kwok's default stages, plus pods of an image tagged "*unready*" never Ready
        (self.workdir / "kwok.yaml").write_text(STAGES.read_text())
        self._proc = subprocess.Popen(
            [sys.executable, __file__, str(self.bins["kwokctl"]), self.name, *self.create_args()],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=self.env(),
            text=True,
            start_new_session=True,
        )
        assert self._proc.stdout is not None
        output = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self._proc.stdout.readline()
            if not line:
                break
            if line.startswith(READY_LINE):
                self.pids = json.loads(line[len(READY_LINE) :])
                break
            output.append(line)
        if not self.pids:
            self.stop()
            raise ClusterError("kwokctl could not create the cluster:\n" + "".join(output)[-4000:])
        try:
            self._wait_ready(deadline)
        except BaseException:
            self.stop()
            raise
        return self.kubeconfig

    def _wait_ready(self, deadline: float) -> None:
        """The API answers /readyz, then one kwok node exists and is Ready."""
        while self.kubectl("get", "--raw=/readyz", check=False, timeout=10).strip() != "ok":
            if time.monotonic() > deadline:
                raise ClusterError("kube-apiserver never answered /readyz with ok")
            time.sleep(0.5)
        scaled = subprocess.run(
            [str(self.bins["kwokctl"]), "--name", self.name, "scale", "node", "--replicas=1"],
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=120,
        )
        if scaled.returncode != 0:
            raise ClusterError(f"kwokctl scale node failed: {scaled.stdout}{scaled.stderr}")
        left = max(1, int(deadline - time.monotonic()))
        self.kubectl("wait", "--for=condition=Ready", "node", "--all", f"--timeout={left}s")

    def kubectl(self, *args: str, check: bool = True, timeout: float = 120) -> str:
        proc = subprocess.run(
            [str(self.bins["kubectl"]), f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout

    def alive(self) -> list[int]:
        """Those of the cluster's processes that still exist (zombies included)."""
        return [pid for pid in self.pids if _running([pid])]

    def stop(self) -> None:
        if self._proc is not None:
            if self._proc.stdin:
                self._proc.stdin.close()  # the supervisor deletes the cluster and reaps
            try:
                self._proc.wait(150)
            except subprocess.TimeoutExpired:
                os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait()
            if self._proc.stdout:
                self._proc.stdout.close()
            self._proc = None
        shutil.rmtree(self.workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(supervise(sys.argv[1], sys.argv[2], sys.argv[3:]))
