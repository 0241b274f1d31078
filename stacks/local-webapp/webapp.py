#!/usr/bin/env python3
"""Start and stop the local web server of the ``local-webapp`` Terraform stack.

Standard library only. Terraform's local-exec provisioners call it as an argv list
(never through a shell)::

    webapp.py start --name=N --version=V --port=P --host=127.0.0.1 --run-dir=D
    webapp.py stop --run-dir=D

Options may also precede the subcommand (``webapp.py --run-dir=D stop``); the stack
passes them that way so that the subcommand is what Terraform names in its errors.

``start`` writes ``D/index.html``, copies this script to ``D/webapp.py`` and starts
``D/webapp.py serve`` as a detached process (own session, stdio in ``D/server.log``,
pid in ``D/server.pid``) so that the server neither depends on the directory Terraform
ran in (it may be a temporary copy that is deleted afterwards) nor dies with Terraform.
It returns once the server answers HTTP 200, or fails with the tail of the server log.

``stop`` terminates the server named by ``D/server.pid`` (SIGTERM, SIGKILL after a
grace period) and removes the files it created in ``D``, then ``D`` itself if empty.
A server or run dir that is already gone counts as success.

``serve`` (internal) is the HTTP server: ``/`` answers the page, ``/healthz`` ``ok``.
"""

from __future__ import annotations

import argparse
import errno
import html
import http.server
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

PID_FILE = "server.pid"
LOG_FILE = "server.log"
PAGE_FILE = "index.html"
SERVER_SCRIPT = "webapp.py"
OWN_FILES = (PID_FILE, LOG_FILE, PAGE_FILE, SERVER_SCRIPT)

START_TIMEOUT = 10.0
STOP_GRACE = 5.0


def _err(message: str) -> None:
    print(f"webapp.py: {message}", file=sys.stderr, flush=True)


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


# --------------------------------------------------------------------------- processes


def _read_pid(run_dir: Path) -> int | None:
    try:
        text = (run_dir / PID_FILE).read_text().strip()
    except OSError:
        return None
    try:
        pid = int(text)
    except ValueError:
        return None
    return pid if pid > 1 else None


def _is_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie (a zombie no longer serves anything;
    it lingers when its parent, e.g. a container's PID 1, does not reap it)."""
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
    # The state is the first field after the parenthesised command name.
    state = stat.rsplit(")", 1)[-1].split()[0:1]
    return state != ["Z"] and state != ["X"]


def _is_our_server(pid: int, run_dir: Path) -> bool:
    """True if ``pid`` is alive and is the ``serve`` process of ``run_dir`` (guards
    against killing an unrelated process that reused a stale pid)."""
    if not _is_alive(pid):
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        # No /proc at all (macOS): trust the pid file; a vanished pid is not ours.
        return not Path("/proc/self").exists()
    except OSError:
        return False
    args = [a.decode(errors="replace") for a in argv]
    return "serve" in args and f"--run-dir={run_dir}" in args


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _is_alive(pid):
            return True
        time.sleep(0.05)
    return not _is_alive(pid)


def _kill_server(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    if _wait_gone(pid, STOP_GRACE):
        return
    _err(f"server pid {pid} did not stop after SIGTERM; sending SIGKILL")
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    if not _wait_gone(pid, STOP_GRACE):
        raise SystemExit(f"webapp.py: server pid {pid} is still running after SIGKILL")


def _stop_existing(run_dir: Path) -> None:
    pid = _read_pid(run_dir)
    if pid is not None and _is_our_server(pid, run_dir):
        _kill_server(pid)
    try:
        (run_dir / PID_FILE).unlink()
    except FileNotFoundError:
        pass


# --------------------------------------------------------------------------- network


def _port_problem(host: str, port: int) -> str | None:
    """Why a server could not listen on ``host:port`` now, or None if it could. The
    probe uses SO_REUSEADDR like the server, so TIME_WAIT leftovers of a previous
    server do not count."""
    in_use = (
        f"port {port} on {host} is in use by another process; "
        'set the stack variable "port" to a free port'
    )
    try:
        with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return in_use
        return f"cannot listen on {host} port {port}: {exc.strerror or exc}"
    # A listener on the wildcard address may not block the bind on every OS.
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return in_use
    except OSError:
        return None


def _http_ok(url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=1.0) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _log_tail(run_dir: Path, lines: int = 30) -> str:
    try:
        text = (run_dir / LOG_FILE).read_text(errors="replace")
    except OSError:
        return "(no server log)"
    return "\n".join(text.splitlines()[-lines:]) or "(server log is empty)"


# --------------------------------------------------------------------------- commands


def render_page(name: str, version: str, image: str = "") -> str:
    n, v = html.escape(name, quote=True), html.escape(version, quote=True)
    i = html.escape(image, quote=True)
    image_line = f'<p class="image">image <code>{i}</code></p>\n' if image else ""
    return (
        "<!doctype html>\n"
        '<html lang="en">\n'
        "<head>\n"
        '<meta charset="utf-8">\n'
        f"<title>{n} - local-webapp</title>\n"
        "<style>body{font-family:sans-serif;margin:4em auto;max-width:40em}"
        "h1{margin-bottom:.2em}.version{color:#555}</style>\n"
        "</head>\n"
        "<body>\n"
        f"<h1>{n}</h1>\n"
        f'<p class="version">version {v}</p>\n'
        f"{image_line}"
        "<p>Served by the prefect-stacks <code>local-webapp</code> stack.</p>\n"
        "</body>\n"
        "</html>\n"
    )


def cmd_start(args: argparse.Namespace) -> int:
    host, port = args.host, args.port
    run_dir = Path(args.run_dir).expanduser().resolve()
    if not 1 <= port <= 65535:
        _err(f"invalid port {port}")
        return 2

    # Idempotent: a server of this run dir (an earlier start) is replaced.
    if run_dir.is_dir():
        _stop_existing(run_dir)

    problem = _port_problem(host, port)
    if problem:
        _err(problem)
        return 1

    run_dir.mkdir(parents=True, exist_ok=True)

    (run_dir / PAGE_FILE).write_text(
        render_page(args.name, args.version, args.image or ""), encoding="utf-8"
    )
    # The server runs from its own copy: the directory terraform ran in may be a
    # temporary copy of the stack that is deleted once terraform exits.
    server_script = run_dir / SERVER_SCRIPT
    if Path(__file__).resolve() != server_script:
        shutil.copyfile(__file__, server_script)

    argv = [
        sys.executable or "python3",
        str(server_script),
        "serve",
        f"--host={host}",
        f"--port={port}",
        f"--run-dir={run_dir}",
    ]
    with open(run_dir / LOG_FILE, "ab") as log, open(os.devnull, "rb") as devnull:
        proc = subprocess.Popen(
            argv,
            stdin=devnull,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=run_dir,
            start_new_session=True,  # survives terraform and its process group
            close_fds=True,
        )
    (run_dir / PID_FILE).write_text(f"{proc.pid}\n")

    url = f"http://{_url_host(host)}:{port}/"
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        if _http_ok(url + "healthz") and _http_ok(url):
            print(f"local-webapp: serving {url} (pid {proc.pid}, run dir {run_dir})")
            return 0
        time.sleep(0.1)

    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        reason = f"did not answer HTTP 200 within {START_TIMEOUT:.0f}s"
    else:
        reason = f"exited with code {proc.returncode}"
    _err(f"the server on {url} {reason}; tail of {run_dir / LOG_FILE}:")
    print(_log_tail(run_dir), file=sys.stderr, flush=True)
    # Terraform taints the resource and will not run the destroy-time provisioner for
    # it, so leave nothing behind.
    _remove_run_dir(run_dir)
    return 1


def _remove_run_dir(run_dir: Path) -> None:
    """Remove only what start created (run_dir may be any directory a user passed),
    then run_dir itself if that left it empty."""
    for name in OWN_FILES:
        try:
            (run_dir / name).unlink()
        except FileNotFoundError:
            pass
    shutil.rmtree(run_dir / "__pycache__", ignore_errors=True)
    try:
        run_dir.rmdir()
    except FileNotFoundError:
        pass
    except OSError:
        print(f"local-webapp: left {run_dir} in place (it holds other files)")


def cmd_stop(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir).expanduser().resolve()
    if not run_dir.is_dir():
        print(f"local-webapp: {run_dir} is already gone")
        return 0
    pid = _read_pid(run_dir)
    if pid is not None and _is_our_server(pid, run_dir):
        _kill_server(pid)
        print(f"local-webapp: stopped server pid {pid}")
    else:
        print("local-webapp: server already stopped")
    _remove_run_dir(run_dir)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir)
    page = (run_dir / PAGE_FILE).read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = "local-webapp"

        def _send(self, status: int, body: bytes, ctype: str, head: bool = False) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _route(self, head: bool) -> None:
            path = self.path.split("?", 1)[0]
            if path in ("/", "/index.html"):
                self._send(200, page, "text/html; charset=utf-8", head)
            elif path == "/healthz":
                self._send(200, b"ok\n", "text/plain; charset=utf-8", head)
            else:
                self._send(404, b"not found\n", "text/plain; charset=utf-8", head)

        def do_GET(self) -> None:  # noqa: N802
            self._route(head=False)

        def do_HEAD(self) -> None:  # noqa: N802
            self._route(head=True)

    class Server(http.server.ThreadingHTTPServer):
        address_family = _family(args.host)
        allow_reuse_address = True
        daemon_threads = True

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with Server((args.host, args.port), Handler) as httpd:
        print(f"serving http://{_url_host(args.host)}:{args.port}/ pid {os.getpid()}", flush=True)
        try:
            httpd.serve_forever()
        except (KeyboardInterrupt, SystemExit):
            pass
    return 0


def main(argv: list[str] | None = None) -> int:
    # Options are accepted before or after the subcommand, so that Terraform can pass
    # them in "interpreter" and the subcommand as "command" (which Terraform names in
    # its error messages): "webapp.py --run-dir=D stop" == "webapp.py stop --run-dir=D".
    def options(default: object) -> argparse.ArgumentParser:
        common = argparse.ArgumentParser(add_help=False)
        common.add_argument("--name", default=default, help="environment name (start)")
        common.add_argument("--version", default=default, help="version shown (start)")
        common.add_argument("--image", default=default, help="image reference shown (start)")
        common.add_argument("--port", type=int, default=default, help="TCP port (start)")
        common.add_argument("--host", default=default, help="bind address (127.0.0.1)")
        common.add_argument("--run-dir", default=default, help="directory for page, pid, log")
        return common

    parser = argparse.ArgumentParser(
        prog="webapp.py",
        description="Start or stop the local-webapp server.",
        parents=[options(None)],
    )
    sub = parser.add_subparsers(dest="command", required=True)
    after = options(argparse.SUPPRESS)  # do not overwrite options given before
    sub.add_parser("start", parents=[after], help="write the page, start the server")
    sub.add_parser("stop", parents=[after], help="stop the server, remove the run dir")
    sub.add_parser("serve", parents=[after], help="(internal) run the HTTP server")

    args = parser.parse_args(argv)
    needed = {
        "start": ("name", "version", "port", "run_dir"),
        "stop": ("run_dir",),
        "serve": ("port", "run_dir"),
    }[args.command]
    missing = ["--" + n.replace("_", "-") for n in needed if getattr(args, n) is None]
    if missing:
        parser.error(f"{args.command} needs {', '.join(missing)}")
    if args.host is None:
        args.host = "127.0.0.1"
    commands = {"start": cmd_start, "stop": cmd_stop, "serve": cmd_serve}
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
