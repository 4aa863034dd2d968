"""The web in a process of its own, beside ingest: `rental-platform run --web HOST:PORT`.

Ingest must never wait on a web request. In one process they would share one interpreter
lock: rendering a page of 500 entries, encoding a large JSON answer or writing a CSV export
holds it for milliseconds at a time, every one of them taken from the writer and the MQTT
thread (whose per-message work is Python too), and a web bug that exhausts memory or hangs
would take ingest with it. So the web is a child process (multiprocessing's `spawn`: nothing
of the parent's threads or connections is copied) with its own connections (`StorePool`), and
the parent only starts it, restarts it if it dies, and stops it. The child dies with its
parent (PR_SET_PDEATHSIG), so a killed platform leaves no page server holding the port.

    web = WebProcess(settings).start()
    web.check()            # now and then: starts it again, with back-off, if it died
    web.stop()
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import time
from multiprocessing.process import BaseProcess

import uvicorn
from fastapi import FastAPI

from ..audit import AnchorFile
from ..keys import read_signing_key
from ..store import Store, StoreConfig
from ..store.pool import StorePool
from .app import create_app
from .audit import AuditWriter
from .deps import WebState
from .settings import WebSettings

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
# uvicorn's own limits: beyond 64 requests at once, 503 at once rather than a queue.
LIMIT_CONCURRENCY = 64


def open_state(settings: WebSettings) -> WebState:
    """The web's state: a pool on the primary, and one on `--search-db` when given."""
    config = StoreConfig.for_url(
        settings.db, key_file=settings.store_key, snapshot_dir=settings.snapshot_dir
    )
    store = Store.open(config, prepare=False)
    store.close()  # a template for the pools' connections: key, pictures, URL
    primary = StorePool(store)
    reads = StorePool(store, url=settings.search_db) if settings.search_db else primary
    anchors = signing_key = None
    if settings.audit_anchors is not None and settings.signing_key is not None:
        anchors = AnchorFile(settings.audit_anchors)
        signing_key = read_signing_key(settings.signing_key)
    audit = AuditWriter(store, anchors=anchors, signing_key=signing_key)
    return WebState.over(settings, primary, reads, audit)


def uvicorn_config(settings: WebSettings, app: FastAPI) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        server_header=False,
        ssl_certfile=str(settings.cert) if settings.cert else None,
        ssl_keyfile=str(settings.key) if settings.key else None,
        # X-Forwarded-For and -Proto only from the load balancers named; else the peer is the
        # client (a client could otherwise write any address into the audit log).
        proxy_headers=bool(settings.proxies),
        forwarded_allow_ips=",".join(settings.proxies) if settings.proxies else "",
        limit_concurrency=LIMIT_CONCURRENCY,
        timeout_keep_alive=5,
    )


def serve(settings: WebSettings, parent: int) -> None:
    """The web process's life: serve until SIGTERM, or until the parent is gone."""
    # Not Linux with glibc: the parent's stop() still ends it.
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the line above
        return
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    state = open_state(settings)
    state.audit.keep_anchoring()
    # uvicorn raises the SIGTERM it caught again once it has shut down, which under the
    # default handler would end the process before the audit's last anchor: it is caught.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: None)
    try:
        uvicorn.Server(uvicorn_config(settings, create_app(state))).run()
    finally:
        close_state(state)


def close_state(state: WebState) -> None:
    """Close every connection the state made (anchoring the audit's head a last time)."""
    state.audit.close()
    state.primary.close()
    state.reads.close()


class WebProcess:
    """The child process serving the pages; see the module docstring."""

    def __init__(self, settings: WebSettings) -> None:
        self.settings = settings
        self._process: BaseProcess | None = None
        self._delay = 1.0
        self._next_start = 0.0
        self.restarts = 0

    def start(self) -> WebProcess:
        context = multiprocessing.get_context("spawn")
        self._process = context.Process(
            target=serve, args=(self.settings, os.getpid()), name="platform-web", daemon=True
        )
        self._process.start()
        log.info(
            "serving the city's pages on %s:%d (process %s)",
            self.settings.host,
            self.settings.port,
            self._process.pid,
        )
        return self

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    def check(self) -> None:
        """Start the web again if it died, at most once per back-off delay (1 s to 60 s)."""
        if self._process is None or self.alive or time.monotonic() < self._next_start:
            return
        log.error("the web process ended (exit code %s): starting it again", self._process.exitcode)
        self.restarts += 1
        self._next_start = time.monotonic() + self._delay
        self._delay = min(self._delay * 2, 60.0)
        self.start()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (uvicorn finishes the requests under way), then SIGKILL after `timeout`."""
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        process.join(timeout)
        if process.is_alive():
            process.kill()
            process.join()
