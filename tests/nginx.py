"""Real nginx servers for the day-2 tests: each one a "host" with its own port, site and
maintenance directory, configured with the snippet docs/day2.md tells users to add, so a
test sees exactly the pages a visitor would."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import free_port, require, stop

CONFIG = """
daemon off;
master_process on;
worker_processes 1;
user root;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {root}/tmp;
  proxy_temp_path {root}/tmp;
  fastcgi_temp_path {root}/tmp;
  uwsgi_temp_path {root}/tmp;
  scgi_temp_path {root}/tmp;
  server {{
    listen 127.0.0.1:{port};
    root {root}/site;
    error_page 503 /maintenance.html;
    location = /maintenance.html {{ root {maintenance}; internal; }}
    location / {{
      if (-f {maintenance}/maintenance.html) {{ return 503; }}
    }}
  }}
}}
"""


@dataclass
class NginxHost:
    name: str
    root: Path
    port: int

    @property
    def maintenance_dir(self) -> Path:
        return self.root / "maintenance"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def get(self) -> httpx.Response:
        return httpx.get(self.url, timeout=5)


@contextmanager
def nginx_hosts(base: Path, names: list[str]) -> Iterator[list[NginxHost]]:
    """One real nginx per name, each serving "<name> is up" at / until its maintenance
    flag file exists."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    require(Path(binary).exists(), "nginx is not installed (Debian package nginx-light)")
    with ExitStack() as stack:
        hosts = []
        for name in names:
            root = base / name
            for sub in ("site", "maintenance", "tmp"):
                (root / sub).mkdir(parents=True, exist_ok=True)
            (root / "site" / "index.html").write_text(f"{name} is up\n")
            host = NginxHost(name, root, free_port())
            conf = root / "nginx.conf"
            conf.write_text(
                CONFIG.format(root=root, port=host.port, maintenance=host.maintenance_dir)
            )
            proc = subprocess.Popen(
                [binary, "-c", str(conf), "-p", str(root)],
                stdout=subprocess.DEVNULL,
                stderr=(root / "stderr.log").open("wb"),
            )
            stack.callback(stop, proc, 10)
            hosts.append(host)
        for host in hosts:
            _wait_until_serving(host)
        yield hosts


def _wait_until_serving(host: NginxHost, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if host.get().status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            log = host.root / "error.log"
            said = (host.root / "stderr.log").read_text() + (
                log.read_text() if log.exists() else ""
            )
            raise RuntimeError(f"nginx for {host.name} did not serve on {host.port}: {said}")
        time.sleep(0.1)
