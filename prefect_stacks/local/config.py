"""Where and how the local platform runs: :class:`LocalConfig` (home, host, port, pool and
the paths and environment derived from them), the defaults, the error family of the
local platform, and :func:`api_settings` for the Prefect client of this process."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

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

FOREIGN_ENV = ("PREFECT_SERVER_DATABASE_", "PREFECT_API_DATABASE_", "PREFECT__SERVER_")


@dataclass(frozen=True)
class LocalConfig:
    """Where and how the local platform runs."""

    home: Path = DEFAULT_HOME
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    pool: str = DEFAULT_POOL
    worker_query_seconds: int = 1
    worker_prefetch_seconds: int = 2
    # The server's database: None is SQLite in the platform's home (the default);
    # a ``postgresql+asyncpg://`` URL is what Prefect recommends beyond a few writers.
    database_url: str | None = None

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
            "PREFECT_SERVER_DATABASE_CONNECTION_URL": self.database_url
            or f"sqlite+aiosqlite:///{self.prefect_home / 'prefect.db'}",
            "PREFECT_SERVER_API_HOST": self.host,
            "PREFECT_SERVER_API_PORT": str(self.port),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_WORKER_QUERY_SECONDS": str(self.worker_query_seconds),
            "PREFECT_WORKER_PREFETCH_SECONDS": str(self.worker_prefetch_seconds),
            "PREFECT_STACKS_HOME": str(self.home),
            "PYTHONUNBUFFERED": "1",
        }

    def process_env(self) -> dict[str, str]:
        """The whole environment of the server and the worker: this process's, without
        the database settings inherited from the caller (another server's, a test
        harness's: they must not point our server elsewhere), plus :meth:`child_env`."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_ENV)}
        env.update(self.child_env())
        return env


@contextlib.contextmanager
def api_settings(api_url: str) -> Iterator[None]:
    """Point the Prefect client of *this* process at ``api_url`` (Prefect reads its
    settings once at import, so setting os.environ afterwards is not enough)."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        yield
