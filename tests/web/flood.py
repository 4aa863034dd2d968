"""The real application served by uvicorn on loopback, and requests fired at it together."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager

import httpx
from fastapi import FastAPI

from gateway.web.app import create_app
from gateway.web.server import WebServer

from .building import BuildingGateway


@contextmanager
def serving(gateway: BuildingGateway) -> Iterator[tuple[str, FastAPI]]:
    """The application on a free loopback port: (base URL, app)."""
    app = create_app(gateway)
    server = WebServer(app, "127.0.0.1", 0)
    server.start()
    try:
        yield server.url, app
    finally:
        server.stop()


def at_once(
    url: str,
    count: int,
    request: Callable[[httpx.Client, int], httpx.Response],
    cookies: httpx.Cookies | None = None,
) -> list[Future[httpx.Response]]:
    """`count` requests released together, one thread and connection each."""
    gate = threading.Barrier(count)

    def one(i: int) -> httpx.Response:
        with httpx.Client(base_url=url, timeout=120, cookies=cookies) as client:
            gate.wait()
            return request(client, i)

    pool = ThreadPoolExecutor(max_workers=count)
    futures = [pool.submit(one, i) for i in range(count)]
    pool.shutdown(wait=False)
    return futures


def statuses(futures: list[Future[httpx.Response]]) -> Counter[int]:
    """How many answers had each status."""
    return Counter(f.result(timeout=120).status_code for f in futures)
