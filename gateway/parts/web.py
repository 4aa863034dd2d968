"""The web part: the building's page and API, in a process of its own.

Whatever a browser on the LAN does to this process (slow connections, big bodies, imports,
exports, long polls) stays here: the door's process has its own CPU, memory, descriptors and
systemd limits. The page reads and writes the store with SQLite's own locking, in short
transactions, and learns of new events (a card to enroll) from the journal. Its health report
is the gateway's: its own, plus every other part's from the runtime folder.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from gateway import __version__
from gateway.camera.snapshots import SnapshotStore
from gateway.config import Config
from gateway.parts.door import DISK_FLOOR_MB
from gateway.parts.findings import Finding, finding, health_report, said
from gateway.parts.runtime import BEHIND_DOOR, Runtime
from gateway.parts.watch import EventListener, JournalWatcher
from gateway.store import Store

if TYPE_CHECKING:
    from fastapi import FastAPI

    from gateway.web.server import WebServer

log = logging.getLogger(__name__)


def expected_parts(config: Config) -> list[str]:
    """The parts a gateway with this configuration runs."""
    parts = ["door"]
    if config.camera is not None:
        parts.append("camera")
    if config.mqtt is not None:
        parts.append("uplink")
    return [*parts, "web", "edge"]


class WebPart:
    """The page, the API, /healthz and /metrics."""

    name = "web"

    def __init__(self, config: Config, runtime: Runtime) -> None:
        self.config = config
        self.runtime = runtime
        floor_mb = config.camera.min_free_mb if config.camera else DISK_FLOOR_MB
        self.snapshots = SnapshotStore(config.gateway.data_dir, min_free_mb=floor_mb)
        self.zone = ZoneInfo(config.gateway.timezone)
        self.doors = {door.name: door.label for door in config.doors}
        self.store: Store | None = None
        self.app: FastAPI | None = None
        self.web: WebServer | None = None
        self.setup_code: str | None = None
        self._watcher: JournalWatcher | None = None
        self._pending_listeners: list[EventListener] = []
        self._started = time.monotonic()
        self._lock = threading.Lock()

    def add_listener(self, listener: EventListener) -> None:
        """Call `listener(entry)` for each event the door part commits from now on."""
        if self._watcher is not None:
            self._watcher.add_listener(listener)
        else:
            self._pending_listeners.append(listener)

    def start(self) -> None:
        """Open the store, then serve; a first start prints the one-time setup code."""
        from gateway.web.app import create_app
        from gateway.web.server import WebServer

        cfg = self.config
        store = self.store = Store.open(cfg.gateway.data_dir, cfg.gateway.id, yielding=BEHIND_DOOR)
        self._watcher = JournalWatcher(store, after_seq=store.last_seq())
        for listener in self._pending_listeners:
            self._watcher.add_listener(listener)
        self.app = create_app(self, tls=cfg.web.tls)
        self._watcher.start()
        # Only the edge (nginx) talks to this socket; browsers talk to the edge.
        self.web = WebServer(self.app, unix_socket=self.runtime.web_socket)
        self.web.start()
        if not store.has_users():
            # First start: nobody can log in yet. This code creates the building head's
            # account on the page's /setup (or use `gateway users add`).
            self.setup_code = self.app.state.web.setup_code.issue()
            print(f"gateway: no web user yet. Create the building head's account at"
                  f" {self.url}/setup with the one-time setup code {self.setup_code}"
                  " (or use `gateway users add`).", flush=True)  # fmt: skip

    @property
    def url(self) -> str:
        """Where a browser finds the page: the edge's address."""
        from gateway.parts.edge import EdgePart

        return EdgePart(self.config, self.runtime).url

    def stop(self) -> None:
        if self.web is not None:
            self.web.stop()
            self.web = None
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None
        if self.store is not None:
            self.store.close()
            self.store = None

    def tick(self) -> None:
        """Nothing to time here."""

    def own_health(self) -> dict[str, Any]:
        """This part's own state, for the runtime folder."""
        problems: list[Finding] = []
        if self.web is None or not self.web.alive():
            problems.append(finding("web_server_stopped"))
        if self._watcher is None or not self._watcher.alive():
            problems.append(finding("web_watch_stopped"))
        return health_report(problems, [])

    def part_reports(self) -> dict[str, dict[str, Any] | None]:
        """Each part's last report from the runtime folder (None: down or hung); this one's
        live."""
        return {
            part: self.own_health() if part == "web" else self.runtime.read_health(part)
            for part in expected_parts(self.config)
        }

    def health(self) -> dict[str, Any]:
        """The gateway's health report, every part's, without personal data (/healthz)."""
        return combine_health(self.config, self.part_reports(), time.monotonic() - self._started)


def combine_health(
    config: Config, reports: dict[str, dict[str, Any] | None], uptime_s: float
) -> dict[str, Any]:
    """One report for the gateway from each part's (None: that part is not running).

    `problems` and `warnings` say each part's findings in English, for people reading /healthz
    and the logs; `findings` keeps them as codes, for the installer's page to say them in its
    own language.
    """
    problems: list[Finding] = []
    warnings: list[Finding] = []
    parts: dict[str, Any] = {}
    for part, report in reports.items():
        if report is None:
            problems.append(finding("part_down", part=part))
            parts[part] = {"status": "down"}
            continue
        parts[part] = {"status": report.get("status"), "pid": report.get("pid")}
        problems.extend(report.get("problems", []))
        warnings.extend(report.get("warnings", []))
    door = reports.get("door") or {}
    return {
        "status": "ok" if not problems else "failing",
        "problems": [said(item, "en") for item in problems],
        "warnings": [said(item, "en") for item in warnings],
        "findings": {"problems": problems, "warnings": warnings},
        "version": __version__,
        "gateway_id": config.gateway.id,
        "clock_synced": door.get("clock_synced", False),
        "disk_free_mb": door.get("disk_free_mb"),
        "uptime_seconds": round(uptime_s, 1),
        "buses": door.get("buses", {}),
        "doors": door.get("doors", {}),
        "uplink": (reports.get("uplink") or {}).get("uplink"),
        "camera": (reports.get("camera") or {}).get("camera"),
        "parts": parts,
    }
