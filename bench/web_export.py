"""The police CSV export streamed over HTTP: memory stays flat however many rows go out.

Seeds a store with `--events` access events (as bench.web does), serves the real app on
loopback in this process, logs in as police and downloads `/police/export.csv` for the whole
journal, then for a tenth of it, reading the body in chunks. A sampler thread reads this
process's resident memory (VmRSS) every 20 ms: the peak during each export, minus the
resident memory just before it, is what the export cost. Rows per second are the client's.

    .venv/bin/python -m bench.web_export --events 100000
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench._common import machine, save
from bench.gateway_rss import status_kib
from bench.web import ServerTiming, login, prepare_store
from gateway.store import Store
from gateway.web.app import create_app
from gateway.web.server import WebServer
from tests.web.building import BuildingGateway

GATEWAY_ID = "gw-bench-0001"


class RssSampler:
    """The peak VmRSS of this process between start() and stop(), in KiB."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self.peak = status_kib_self()
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, status_kib_self())


def status_kib_self() -> int:
    return status_kib(os.getpid())["VmRSS"]


def export(client: httpx.Client, since: datetime | None) -> dict[str, Any]:
    params: dict[str, str] = {"purpose": "bench export"}
    if since is not None:
        params["since"] = since.isoformat()
    before = status_kib_self()
    started = time.monotonic()
    rows = -1  # the header
    size = 0
    with RssSampler() as sampler, client.stream("GET", "/police/export.csv", params=params) as r:
        r.raise_for_status()
        for chunk in r.iter_bytes():
            size += len(chunk)
            rows += chunk.count(b"\n")
    seconds = time.monotonic() - started
    return {
        "rows": rows,
        "megabytes": round(size / 1e6, 1),
        "seconds": round(seconds, 1),
        "rows_per_second": round(rows / seconds),
        "rss_before_mib": round(before / 1024, 1),
        "rss_growth_peak_mib": round((sampler.peak - before) / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--tenants", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        folder = Path(tmp)
        with Store.open(folder, GATEWAY_ID) as store:
            seeded = prepare_store(store, args.events, args.tenants)
            app = create_app(BuildingGateway(store, folder))
            app.add_middleware(ServerTiming)  # bench.web's login reads its header
            server = WebServer(app, "127.0.0.1", 0)
            server.start()
            try:
                with httpx.Client(base_url=server.url, timeout=600) as client:
                    login(client, "police")
                    export(client, datetime.now(UTC) - timedelta(days=3))  # warm-up
                    # A tenth of the journal first (the newest ~36 days), then all of it.
                    tenth = export(client, datetime.now(UTC) - timedelta(days=36.5))
                    whole = export(client, None)
            finally:
                server.stop()
    save("web_export", {"machine": machine(), "seed": seeded, "tenth": tenth, "whole": whole})


if __name__ == "__main__":
    main()
