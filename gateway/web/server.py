"""Run the web application with uvicorn on a background thread."""

from __future__ import annotations

import logging
import socket
import threading
import time

import uvicorn
from fastapi import FastAPI

log = logging.getLogger(__name__)


class WebServer:
    """A uvicorn server on its own thread, started and stopped with the gateway."""

    def __init__(self, app: FastAPI, host: str, port: int,
                 tls_cert_file: str | None = None, tls_key_file: str | None = None) -> None:
        self._config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", access_log=False,
            ssl_certfile=tls_cert_file, ssl_keyfile=tls_key_file, lifespan="off",
        )
        self._server = uvicorn.Server(self._config)
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    def start(self, timeout: float = 10.0) -> None:
        """Bind the socket now (so a port in use fails loudly) and serve on a thread."""
        family = socket.AF_INET6 if ":" in self._config.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # asyncio sets TCP_NODELAY only on sockets made with IPPROTO_TCP; without it every
        # response body waited ~40 ms for the client's delayed ACK of the headers.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((self._config.host, self._config.port))
        sock.listen(64)
        sock.set_inheritable(True)
        self._socket = sock
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="web", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"web server did not start on {self.url}")
            time.sleep(0.02)

    @property
    def port(self) -> int:
        """The port actually bound (useful when configured as 0)."""
        if self._socket is not None:
            return int(self._socket.getsockname()[1])
        return self._config.port

    @property
    def url(self) -> str:
        """The base URL of the server."""
        scheme = "https" if self._config.ssl_certfile else "http"
        host = self._config.host
        if ":" in host:
            host = f"[{host}]"
        return f"{scheme}://{host}:{self.port}"

    def alive(self) -> bool:
        """Tell whether the server thread still runs."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        """Ask the server to finish and wait for it."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._socket is not None:
            self._socket.close()
            self._socket = None
