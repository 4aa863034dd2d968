"""The camera part: the stream, the JPEG encoder and the snapshot files, in a process of its own.

Decoding a 720p stream and encoding JPEGs cost CPU and tens of MiB (OpenCV, FFmpeg, frames);
here they cannot take the door's. The door part asks for a snapshot with a datagram
(`ipc.CaptureRequest`); this part fills it into the event (`Store.fill_snapshot`), which lets
the event go up. It also says in the store when its stream is down, so the door records
"camera_offline" at once instead of holding the event back.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from gateway.camera.snapshots import SnapshotStore
from gateway.clock import BuildingClock
from gateway.config import Config
from gateway.parts.door import CAMERA_DOWN_KEY
from gateway.parts.findings import Finding, finding, health_report
from gateway.parts.ipc import CaptureInbox
from gateway.parts.runtime import BEHIND_DOOR, Runtime
from gateway.store import JournalEntry, Store, Transaction

if TYPE_CHECKING:
    from gateway.camera.capture import Camera

log = logging.getLogger(__name__)


class CameraPart:
    """The building camera, for the door part's events."""

    name = "camera"

    def __init__(self, config: Config, runtime: Runtime) -> None:
        assert config.camera is not None, "a camera part needs [camera]"
        self.config = config
        self.runtime = runtime
        self.clock = BuildingClock(ZoneInfo(config.gateway.timezone))
        self.store: Store | None = None
        self.camera: Camera | None = None
        self._inbox: CaptureInbox | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._state_lock = threading.Lock()
        self._stream = False

    def start(self) -> None:
        """Open the store, the stream and the request socket."""
        from gateway.camera.capture import Camera, CaptureSettings
        from gateway.camera.source import FrameSource, open_source

        cfg = self.config.camera
        assert cfg is not None
        store = self.store = Store.open(
            self.config.gateway.data_dir, self.config.gateway.id, yielding=BEHIND_DOOR
        )
        snapshots = SnapshotStore(self.config.gateway.data_dir, min_free_mb=cfg.min_free_mb)
        # A snapshot URL must answer within the frame age; a stream gets 5 s to open.
        source = open_source(cfg.source, on_state=self._on_state,
                             fetch_timeout_ms=min(5000, cfg.max_frame_age_ms))  # fmt: skip
        self._stream = isinstance(source, FrameSource)
        settings = CaptureSettings(
            max_frame_age_ms=cfg.max_frame_age_ms,
            jpeg_quality=cfg.jpeg_quality,
            max_height=cfg.max_height,
            retention_days=cfg.retention_days,
        )
        self.camera = Camera(source, store, snapshots, settings, today=self.clock.today)
        self._inbox = CaptureInbox(self.runtime.camera_socket)
        self.camera.start()
        self._thread = threading.Thread(target=self._receive, name="camera-inbox", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._inbox is not None:
            self._inbox.close()
            self._inbox = None
        if self.camera is not None:
            self.camera.stop()
            self.camera = None
        if self.store is not None:
            self.store.close()
            self.store = None

    def tick(self) -> None:
        """Nothing to time here: the capture worker looks after retention itself."""

    def _receive(self) -> None:
        while not self._stopping.is_set():
            inbox, camera = self._inbox, self.camera
            if inbox is None or camera is None:
                return
            request = inbox.receive(timeout=0.5)
            if request is not None:
                camera.request_from_door(request.seq, request.event_id, request.ts,
                                         request.requested)  # fmt: skip

    def _on_state(self, online: bool, reason: str) -> None:
        """A camera.online / camera.offline event, only when the state differs from the last
        one journaled (also across restarts); and the door's "known to be down" flag."""
        store = self.store
        if store is None:
            return
        down = "" if online or not self._stream else "camera_offline"
        with self._state_lock:
            if store.get_meta("camera_online") == int(online):
                if store.get_meta(CAMERA_DOWN_KEY) != down:
                    store.transaction(lambda tx: tx.set_meta(CAMERA_DOWN_KEY, down))
                return
            event = {"type": "camera.online" if online else "camera.offline", "reason": reason,
                     **self.clock.stamp()}  # fmt: skip

            def write(tx: Transaction) -> JournalEntry:
                tx.set_meta("camera_online", online)
                tx.set_meta(CAMERA_DOWN_KEY, down)
                return tx.append_event(event)

            store.transaction(write)

    def health(self) -> dict[str, Any]:
        problems: list[Finding] = []
        if self.camera is None or not self.camera.alive():
            problems.append(finding("camera_worker_stopped"))
        if self._thread is None or not self._thread.is_alive():
            problems.append(finding("camera_socket_stopped"))
        return health_report(
            problems, [], camera=None if self.camera is None else self.camera.health()
        )
