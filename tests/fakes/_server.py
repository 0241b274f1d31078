"""What every contract fake shares: a threaded HTTP server on 127.0.0.1 (a real socket, so
flows in other processes can call it), started and stopped from the test, usable as a
context manager."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, TypeVar

_F = TypeVar("_F", bound="FakeServer")


class FakeServer:
    """Base of the fakes: subclasses set ``handler`` (a BaseHTTPRequestHandler subclass,
    which finds the fake as ``self.fake``) and call ``_init_server(host, port)``."""

    handler: ClassVar[type[BaseHTTPRequestHandler]]

    def _init_server(self, host: str, port: int) -> None:
        self._host, self._port = host, port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self: _F) -> _F:
        if self._server is not None:
            return self
        handler = type("Handler", (self.handler,), {"fake": self})
        server = ThreadingHTTPServer((self._host, self._port), handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self: _F) -> _F:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"
