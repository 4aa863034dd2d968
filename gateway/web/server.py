"""Run the web application with uvicorn on a background thread.

In production uvicorn listens on a Unix socket behind nginx (`gateway/web/edge.py`), which
holds the limits uvicorn lacks; uvicorn's own limits here are the second line. The TCP
listener serves the page directly (the current single process, the benches).
"""

from __future__ import annotations

import logging
import os
import socket
import stat
import threading
import time
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger(__name__)

# Second line behind nginx (edge.py), each above nginx's own limit so nginx refuses first:
# requests at once (nginx: 48) beyond which uvicorn answers 503 at once, the largest request
# head h11 buffers (nginx: 4 headers of 4 KiB, plus its X-Forwarded ones), idle keep-alive
# seconds, connections waiting to be accepted.
LIMIT_CONCURRENCY = 64
MAX_HEAD_BYTES = 32 * 1024
KEEP_ALIVE_SECONDS = 5
BACKLOG = 64


class ClientFromEdge:
    """On the Unix socket, where nginx is the only peer, the client is nginx's X-Forwarded-For
    and the scheme its X-Forwarded-Proto; on TCP these headers are ignored (anyone sends them).

    nginx sets both (never appends), so each holds exactly one value.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # uvicorn gives a Unix socket's peer as no client at all.
        if scope["type"] == "http" and scope.get("client") is None:
            headers = dict(scope["headers"])
            forwarded = headers.get(b"x-forwarded-for", b"").decode("latin-1").strip()
            proto = headers.get(b"x-forwarded-proto", b"").decode("latin-1")
            scope = dict(scope)
            if forwarded:
                scope["client"] = (forwarded, 0)
            if proto in ("http", "https"):
                scope["scheme"] = proto
        await self.app(scope, receive, send)


class WebServer:
    """A uvicorn server on its own thread, started and stopped with the gateway.

    On TCP (`host`, `port`, TLS optional) or, behind nginx, on a Unix socket:

        WebServer(app, unix_socket=Path("/run/rental-gateway/web.sock")).start()
    """

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0,
                 tls_cert_file: str | None = None, tls_key_file: str | None = None, *,
                 unix_socket: Path | None = None) -> None:  # fmt: skip
        self._unix_socket = unix_socket
        self._config = uvicorn.Config(
            ClientFromEdge(app) if unix_socket else app,
            host=host, port=port, log_level="warning", access_log=False,
            ssl_certfile=tls_cert_file, ssl_keyfile=tls_key_file, lifespan="off",
            # The client address is the socket's peer on TCP, ClientFromEdge's on the socket.
            proxy_headers=False,
            limit_concurrency=LIMIT_CONCURRENCY, h11_max_incomplete_event_size=MAX_HEAD_BYTES,
            timeout_keep_alive=KEEP_ALIVE_SECONDS, backlog=BACKLOG,
        )  # fmt: skip
        self._server = uvicorn.Server(self._config)
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    def start(self, timeout: float = 10.0) -> None:
        """Bind the socket now (so a port in use fails loudly) and serve on a thread."""
        sock = self._bind_unix() if self._unix_socket else self._bind_tcp()
        sock.listen(BACKLOG)
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

    def _bind_tcp(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self._config.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # asyncio sets TCP_NODELAY only on sockets made with IPPROTO_TCP; without it every
        # response body waited ~40 ms for the client's delayed ACK of the headers.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((self._config.host, self._config.port))
        return sock

    def _bind_unix(self) -> socket.socket:
        path = self._unix_socket
        assert path is not None
        try:  # a socket left by a process that died; anything else there is not ours
            if stat.S_ISSOCK(path.lstat().st_mode):
                path.unlink()
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(os.fspath(path))
        # nginx runs as the same user (or group); nobody else may talk to the app unproxied.
        path.chmod(0o660)
        return sock

    @property
    def port(self) -> int:
        """The port actually bound (useful when configured as 0)."""
        if self._socket is not None and not self._unix_socket:
            return int(self._socket.getsockname()[1])
        return self._config.port

    @property
    def url(self) -> str:
        """The base URL of the server (a Unix socket's is `http+unix://` and its path)."""
        if self._unix_socket:
            return f"http+unix://{self._unix_socket}"
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
            if self._unix_socket:
                self._unix_socket.unlink(missing_ok=True)
