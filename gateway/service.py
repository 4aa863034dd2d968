"""Every part of the gateway in this one process: for tests and benchmarks.

`gateway run` runs each part in a process of its own (`gateway.parts.run`), and so do the
systemd units. Here the same parts run side by side in one process, still meeting only in the
store and the runtime folder's sockets, so a test drives exactly the code paths a building
runs, without starting four interpreters. Construction does no I/O: `start()` starts the parts,
`stop()` stops them.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from gateway.camera.snapshots import SnapshotStore
from gateway.config import Config
from gateway.door import DoorController
from gateway.parts.door import DISK_FLOOR_MB, DoorPart, FrameHook
from gateway.parts.run import HEALTH_SECONDS, part_health
from gateway.parts.runtime import Runtime
from gateway.parts.watch import EventListener, JournalWatcher
from gateway.parts.web import combine_health
from gateway.store import Store

if TYPE_CHECKING:
    from fastapi import FastAPI

    from gateway.camera.capture import Camera
    from gateway.parts.camera import CameraPart
    from gateway.parts.edge import EdgePart
    from gateway.parts.uplink import UplinkPart
    from gateway.parts.web import WebPart
    from gateway.uplink import Uplink
    from gateway.web.server import WebServer


class Gateway:
    """The whole gateway of one building, its parts in this process."""

    def __init__(
        self, config: Config, *, web: bool = True, on_frame_written: FrameHook | None = None
    ) -> None:
        """Describe the gateway; `on_frame_written(address, code, ns)` is for measurements."""
        self.config = config
        self.runtime = Runtime.for_config(config)
        self.door_part = DoorPart(config, self.runtime, on_frame_written=on_frame_written)
        self.camera_part: CameraPart | None = None
        self.uplink_part: UplinkPart | None = None
        self.web_part: WebPart | None = None
        self.edge_part: EdgePart | None = None
        if config.camera is not None:
            from gateway.parts.camera import CameraPart

            self.camera_part = CameraPart(config, self.runtime)
        if config.mqtt is not None:
            from gateway.parts.uplink import UplinkPart

            self.uplink_part = UplinkPart(config, self.runtime)
        if web:
            from gateway.parts.web import WebPart

            self.web_part = WebPart(config, self.runtime)
            # In one process the page reads every part's report live, not from the files.
            self.web_part.part_reports = self._part_reports  # type: ignore[method-assign]
            from gateway.parts.edge import EdgePart

            self.edge_part = EdgePart(config, self.runtime)
        self.zone = self.door_part.clock.zone  # the building's time zone
        floor_mb = config.camera.min_free_mb if config.camera else DISK_FLOOR_MB
        self.snapshots = SnapshotStore(config.gateway.data_dir, min_free_mb=floor_mb)
        self._watcher: JournalWatcher | None = None
        self._listeners: list[EventListener] = []
        self._started = time.monotonic()
        self._reported = float("-inf")

    def _parts(self) -> list[Any]:
        parts = [self.door_part, self.camera_part, self.uplink_part, self.web_part,
                 self.edge_part]  # fmt: skip
        return [part for part in parts if part is not None]

    # Attributes of the parts that tests and the demo reach for.

    @property
    def store(self) -> Store | None:
        """The door part's store."""
        return self.door_part.store

    @property
    def doors(self) -> dict[str, DoorController]:
        return self.door_part.doors

    @property
    def camera(self) -> Camera | None:
        return None if self.camera_part is None else self.camera_part.camera

    @property
    def uplink(self) -> Uplink | None:
        return None if self.uplink_part is None else self.uplink_part.uplink

    @property
    def web(self) -> WebServer | None:
        return None if self.web_part is None else self.web_part.web

    @property
    def url(self) -> str | None:
        """Where a browser finds the page (through the edge), or None without one."""
        return None if self.edge_part is None else self.edge_part.url

    @property
    def app(self) -> FastAPI | None:
        return None if self.web_part is None else self.web_part.app

    @property
    def setup_code(self) -> str | None:
        return None if self.web_part is None else self.web_part.setup_code

    def add_listener(self, listener: EventListener) -> None:
        """Call `listener(entry)` for each committed event, in seq order, with its final body."""
        if self._watcher is not None:
            self._watcher.add_listener(listener)
        else:
            self._listeners.append(listener)

    def start(self) -> None:
        """Start the parts, the door first."""
        for part in self._parts():
            part.start()
        store = self.door_part.store
        assert store is not None
        self._watcher = JournalWatcher(store, after_seq=store.last_seq())
        for listener in self._listeners:
            self._watcher.add_listener(listener)
        self._watcher.start()
        self._report()

    def stop(self) -> None:
        """Stop every part, the door last; safe to call twice."""
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None
        for part in reversed(self._parts()):
            part.stop()
            self.runtime.clear_health(part.name)

    def tick(self) -> None:
        """Run the doors' timers and write the parts' health; a few times a second."""
        self.door_part.tick()
        if time.monotonic() - self._reported >= HEALTH_SECONDS:
            self._report()

    def _report(self) -> None:
        self._reported = time.monotonic()
        for part in self._parts():
            self.runtime.write_health(part.name, part_health(part))

    def _part_reports(self) -> dict[str, dict[str, Any] | None]:
        return {part.name: part_health(part) for part in self._parts()}

    def health(self) -> dict[str, Any]:
        """The gateway's health report, every part's, without personal data."""
        return combine_health(self.config, self._part_reports(), time.monotonic() - self._started)
