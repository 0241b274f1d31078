"""Real varnishd instances for tests, in front of a tiny counting backend.

Each instance runs the package's own ``varnish_ban.vcl`` (optionally with its shared
secret check switched on, the way docs/day2.md says to), included from a two-line main
VCL that names the backend: what a user installs is what the tests exercise.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from prefect_stacks.blocks.varnish import ban_vcl_path
from tests.conftest import free_port, require, stop

VARNISHD = shutil.which("varnishd") or "/usr/sbin/varnishd"


class Backend:
    """An origin on 127.0.0.1: answers any GET with ``<host><path> #<n>`` (n counts the
    fetches of that host+path) and ``Cache-Control: max-age=300``."""

    def __init__(self) -> None:
        self.fetches: Counter[str] = Counter()
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                key = f"{self.headers.get('Host', '').split(':')[0]}{self.path}"
                backend.fetches[key] += 1
                body = f"{key} #{backend.fetches[key]}".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "max-age=300")
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def ban_vcl(secret: str | None) -> str:
    """The shipped snippet; with ``secret``, its optional secret check uncommented."""
    text = ban_vcl_path().read_text()
    if secret is None:
        return text
    commented = (
        '        # if (req.http.X-Ban-Secret != "CHANGE-ME") {\n'
        '        #     return (synth(403, "Wrong ban secret"));\n'
        "        # }\n"
    )
    assert commented in text, "varnish_ban.vcl no longer has the documented secret check"
    enabled = commented.replace("# ", "", 3).replace("CHANGE-ME", secret)
    return text.replace(commented, enabled)


class Varnish:
    """One real varnishd (foreground child) on a free loopback port."""

    def __init__(self, backend_port: int, secret: str | None = None) -> None:
        require(Path(VARNISHD).exists(), "varnishd is not installed (Debian package varnish)")
        self.dir = Path(tempfile.mkdtemp(prefix="psv-", dir="/tmp"))
        self.dir.chmod(0o755)  # varnishd reads the VCL as its own unprivileged user
        (self.dir / "ban.vcl").write_text(ban_vcl(secret))
        (self.dir / "main.vcl").write_text(
            "vcl 4.1;\n"
            f'backend default {{ .host = "127.0.0.1"; .port = "{backend_port}"; }}\n'
            f'include "{self.dir / "ban.vcl"}";\n'
        )
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = self.dir / "varnishd.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(  # tests start services directly (no shell)
                [
                    VARNISHD,
                    "-F",
                    "-a",
                    f"127.0.0.1:{self.port}",
                    "-f",
                    str(self.dir / "main.vcl"),
                    "-n",
                    str(self.dir / "n"),
                    "-s",
                    "malloc,32m",
                    "-T",
                    "none",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self._wait()

    def _wait(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = self.log.read_text()[-3000:]
                self.stop()
                raise RuntimeError(f"varnishd exited:\n{log}")
            try:
                httpx.get(f"{self.url}/__ready", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        log = self.log.read_text()[-3000:]
        self.stop()
        raise RuntimeError(f"varnishd did not answer in {timeout} s:\n{log}")

    def get(self, url: str) -> httpx.Response:
        """GET a path (or a full URL: its host goes as Host) from this instance."""
        parts = httpx.URL(url)
        headers = {"Host": parts.host} if parts.host else {}
        path = parts.raw_path.decode() if parts.host else url
        return httpx.get(f"{self.url}{path}", headers=headers, timeout=5)

    def is_hit(self, url: str) -> bool:
        return len(self.get(url).headers["x-varnish"].split()) == 2

    def stop(self) -> None:
        if self.proc.poll() is None:
            stop(self.proc, 10)
        shutil.rmtree(self.dir, ignore_errors=True)
