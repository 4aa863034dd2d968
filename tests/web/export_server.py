"""A police export that stops mid-stream on purpose, so a test can cut or kill it there.

`StallingStore` is a real store whose entry searches stall from their second page on (a slow
SD card, a long scan) until `release` is set: an export sends its header and first page, then
waits. Run as a program, it serves the real application over such a store, prints the URL and
serves until it is killed:

    python -m tests.web.export_server DATA_DIR
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

from gateway.store import EventPage, EventQuery, Store
from gateway.web.app import create_app
from gateway.web.server import WebServer

from .building import BuildingGateway
from .conftest import GATEWAY_ID, PASSWORDS

ROOM = "301"
EVENTS = 1200  # more than one export page (500 rows)


class StallingStore(Store):
    """A store whose searches wait for `release` before any page after the first."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.release = threading.Event()

    def query_events(self, query: EventQuery) -> EventPage:
        if query.cursor is not None:
            self.release.wait()
        return super().query_events(query)


def open_stalling(data_dir: Path) -> StallingStore:
    """A StallingStore in `data_dir`, opened."""
    store = StallingStore.open(data_dir, GATEWAY_ID)
    assert isinstance(store, StallingStore)
    return store


def seed(store: Store, count: int = EVENTS) -> None:
    """`count` granted entries of room ROOM, in one transaction, and the police user."""
    events = [{
        "type": "access.granted", "door": "main", "credential": {"kind": "card", "number": 42},
        "room": ROOM, "reason": "tenant_card", "snapshot": None, "snapshot_error": "disabled",
    } for _ in range(count)]  # fmt: skip
    store.transaction(lambda tx: [tx.append_event(event) for event in events])
    role, password = PASSWORDS["police"]
    store.add_user("police", role, password)


def serve(store: Store, data_dir: Path) -> WebServer:
    """The real application over `store` on a free loopback port, started."""
    server = WebServer(create_app(BuildingGateway(store, data_dir)), "127.0.0.1", 0)
    server.start()
    return server


def main(data_dir: Path) -> None:
    store = open_stalling(data_dir)
    seed(store)
    server = serve(store, data_dir)
    print(server.url, flush=True)
    threading.Event().wait()  # until killed


if __name__ == "__main__":
    main(Path(sys.argv[1]))
