"""The server and worker processes: the Prefect CLI's argv, starting a long-running
child (:func:`spawn`, the one ``Popen`` of the local platform: its own session, output
to a log file), pid files, and stopping a process with everything below it. Commands
that run to completion go through :func:`prefect_stacks._internal.process.run_process`."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect_stacks.local.config import Say


def prefect_argv(*args: str) -> list[str]:
    """argv of the Prefect CLI of *this* Python (the virtualenv prefect-stacks is in),
    whatever is first on PATH."""
    return [sys.executable, "-m", "prefect", *args]


def spawn(
    argv: list[str], log_path: Path, *, cwd: Path, env: Mapping[str, str]
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in ``cwd`` (created if missing) with stdout and stderr appended to
    ``log_path``, in its own session and process group; does not wait for it."""
    cwd.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log, open(os.devnull, "rb") as devnull:
        log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} {argv}\n".encode())
        log.flush()
        return subprocess.Popen(  # noqa: S603 - argv list, no shell
            argv,
            stdin=devnull,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=dict(env),
            # Own session and process group: the terminal's Ctrl-C reaches only
            # `up`, which stops the children in order.
            start_new_session=True,
            close_fds=True,
        )


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


@dataclass
class ManagedProcess:
    """The server or worker: started by a :class:`~prefect_stacks.local.LocalPlatform`,
    or reused (started earlier from the same home, e.g. by ``up --detach``)."""

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


def write_pid_file(path: Path, data: Mapping[str, Any]) -> None:
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
