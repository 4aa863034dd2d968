"""The uplink part: the MQTT session to the city, in a process of its own.

Everything the broker can send arrives here, never in the door's process: acknowledgements,
registry updates (which write thousands of rows) and signed commands. Door commands go on to
the door part as the signed envelopes they are (`ipc.send_door_command`). Events are read
from the store as the door part commits them; a change of SQLite's `data_version`, polled
every 50 ms without I/O, says when to look.
"""

from __future__ import annotations

import logging
import threading
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from cloud_sync.envelope import load_public_key
from gateway.camera.snapshots import SnapshotStore
from gateway.certificates import page_certificate
from gateway.clock import BuildingClock
from gateway.commands import CommandExecutor
from gateway.config import Config
from gateway.parts.findings import Finding, finding, health_report
from gateway.parts.ipc import send_door_command
from gateway.parts.runtime import BEHIND_DOOR, Runtime
from gateway.store import Store, StoreClosed
from gateway.uplink import Uplink

log = logging.getLogger(__name__)

POLL_SECONDS = 0.05


class UplinkPart:
    """The city's MQTT session for this gateway."""

    name = "uplink"

    def __init__(self, config: Config, runtime: Runtime) -> None:
        assert config.mqtt is not None, "an uplink part needs [mqtt]"
        self.config = config
        self.runtime = runtime
        self.clock = BuildingClock(ZoneInfo(config.gateway.timezone))
        self.store: Store | None = None
        self.uplink: Uplink | None = None
        self._stop = threading.Event()
        self._watch: threading.Thread | None = None

    def start(self) -> None:
        cfg = self.config
        assert cfg.mqtt is not None
        store = self.store = Store.open(cfg.gateway.data_dir, cfg.gateway.id, yielding=BEHIND_DOOR)
        executor = CommandExecutor(
            gateway_id=cfg.gateway.id,
            public_key=load_public_key(cfg.mqtt.command_public_key),
            store=store,
            doors={},
            lockdown=None,
            record=lambda event: store.append_event(event).seq,
            stamp=self.clock.stamp,
            forward=partial(send_door_command, self.runtime.door_socket),
            page_certificate=page_certificate(cfg.gateway.data_dir, cfg.web),
        )
        snapshots = None
        if cfg.camera is not None:
            snapshots = SnapshotStore(cfg.gateway.data_dir, min_free_mb=cfg.camera.min_free_mb)
        self.uplink = Uplink(cfg, store, executor, snapshots)
        self.uplink.start()
        self._watch = threading.Thread(target=self._kick_on_commit, name="uplink-watch",
                                       daemon=True)  # fmt: skip
        self._watch.start()

    def stop(self) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.join(timeout=5)
            self._watch = None
        if self.uplink is not None:
            self.uplink.stop()
            self.uplink = None
        if self.store is not None:
            self.store.close()
            self.store = None

    def tick(self) -> None:
        """Nothing to time here: the session keeps its own timers."""

    def _kick_on_commit(self) -> None:
        seen: int | None = None
        while not self._stop.wait(POLL_SECONDS):
            store, uplink = self.store, self.uplink
            if store is None or uplink is None:
                return
            try:
                version = store.data_version()
            except StoreClosed:
                return
            if version != seen:
                seen = version
                uplink.kick()

    def health(self) -> dict[str, Any]:
        problems: list[Finding] = []
        report = None if self.uplink is None else self.uplink.health()
        if self.uplink is None:
            problems.append(finding("uplink_stopped"))
        else:
            problems.extend(finding(code) for code in self.uplink.problems())
        if self._watch is None or not self._watch.is_alive():
            problems.append(finding("uplink_watch_stopped"))
        return health_report(problems, [], uplink=report)
