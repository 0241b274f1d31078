"""TCP ports of the local server: whether one is in use, a free one to suggest, and who
listens on it (from /proc), for the message that refuses a port ``up`` cannot use."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import socket
from pathlib import Path

from prefect_stacks.local.config import DEFAULT_HOST, LocalConfig
from prefect_stacks.local.processes import cmdline


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


def port_owner(port: int) -> tuple[str, str]:
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


def other_port_advice(cfg: LocalConfig) -> str:
    """``Use another port: `prefect-stacks up ... --port <free>` or `make up ...` ``."""
    args = []
    if cfg.home != LocalConfig().home:
        args += ["--home", str(cfg.home)]
    if cfg.host != DEFAULT_HOST:
        args += ["--host", cfg.host]
    args += ["--port", str(suggest_port(cfg.host, cfg.port))]
    line = " ".join(shlex.quote(a) for a in args)
    return f'Use another port: `prefect-stacks up {line}` or `make up UP_ARGS="{line}"`'
