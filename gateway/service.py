"""The running gateway: store, reader buses, doors, web server and the systemd handshake.

`Gateway` wires the parts together; `run_service` is `gateway run`. Construction does no I/O:
`start()` opens the store, the serial lines and the web socket, `stop()` closes them.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from functools import partial
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from cloud_sync.envelope import load_public_key
from firmware_bridge.osdp import (
    BusTiming,
    CardRead,
    ControlPanel,
    Event,
    InputChanged,
    KeypadInput,
    PowerChanged,
    ReaderOffline,
    ReaderOnline,
    ReaderSpec,
    SecureChannelFailed,
    TamperChanged,
)
from gateway import __version__
from gateway.camera.snapshots import SnapshotStore
from gateway.clock import clock_synchronised, rfc3339
from gateway.commands import CommandExecutor
from gateway.config import Config
from gateway.decisions import CardRecord
from gateway.door import DoorController, DoorSettings, VisitorCodeOutcome
from gateway.sdnotify import Notifier
from gateway.store import SNAPSHOT_TYPES, JournalEntry, Store, Transaction
from gateway.store.snapshots import CAPTURING
from gateway.uplink import Uplink
from gateway.web.app import create_app
from gateway.web.server import WebServer

if TYPE_CHECKING:
    from fastapi import FastAPI

    # Imported when a camera is configured: OpenCV and NumPy cost 25 MiB of resident memory,
    # and about half the buildings have no camera.
    from gateway.camera.capture import Camera, Capture

log = logging.getLogger(__name__)

_TICK_SECONDS = 0.2
# Below this much free space on the data disk /healthz warns (without a camera; with one, its
# min_free_mb, below which snapshots stop).
DISK_FLOOR_MB = 500

EventListener = Callable[[JournalEntry], None]
FrameHook = Callable[[int, int, int], None]

# The store's reasons for refusing a visitor code, as they appear in `access.denied` events.
_VISITOR_CODE_REASONS = {
    "unknown": "unknown_code",
    "expired": "code_expired",
    "used_up": "code_used_up",
    "wrong_door": "wrong_door",
}


class _Clock:
    """Event time stamps in the building's time zone, with the synchronisation flag."""

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone
        self._synced = False
        self._checked = 0.0

    def synced(self) -> bool:
        now = time.monotonic()
        if now - self._checked > 10.0:  # adjtimex is cheap, but not on every event
            self._synced = clock_synchronised()
            self._checked = now
        return self._synced

    def stamp(self) -> dict[str, Any]:
        return {"ts": rfc3339(datetime.now(self.zone)), "clock_synced": self.synced()}

    def today(self) -> date:
        return datetime.now(self.zone).date()


class _EventFanout:
    """Hands committed events to listeners on a thread of its own, never on the door path.

    An event whose snapshot is being captured is handed on once the capture has ended (or
    its deadline passed), with its final body; the events after it wait, so listeners see
    every event once, in seq order.
    """

    def __init__(self, listeners: list[EventListener]) -> None:
        self._listeners = listeners
        self._queue: queue.SimpleQueue[JournalEntry | Capture | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="event-fanout", daemon=True)
        self._thread.start()

    def publish(self, entry: JournalEntry | Capture) -> None:
        self._queue.put(entry)

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=10)
            self._thread = None

    @staticmethod
    def _final(capture: Capture) -> JournalEntry:
        try:
            return capture.result()
        except Exception:
            # Filling in "timeout" failed (the store cannot write): hand the event on as
            # journaled rather than lose this thread and every event after it.
            log.exception("snapshot of an event could not be recorded")
            return capture.entry

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            entry = item if isinstance(item, JournalEntry) else self._final(item)
            for listener in self._listeners:
                try:
                    listener(entry)
                except Exception:  # a display or uplink hook must never stop the others
                    log.exception("event listener failed")


class _StoreJournal:
    """The doors' journal: commit to the store, then hand the entry to the fan-out.

    Access events get their snapshot field here: "disabled" without a camera, the reason at
    once when the camera is known to be down, else a capture after the commit.
    """

    def __init__(self, store: Store, fanout: _EventFanout, camera: Camera | None) -> None:
        self._store = store
        self._fanout = fanout
        self._camera = camera
        self._camera_lock = threading.Lock()

    def record(self, event: dict[str, Any], alarm: str | None = None) -> int:
        capture = False
        if event["type"] in SNAPSHOT_TYPES:
            event.setdefault("snapshot", None)
            if event["snapshot"] is None and "snapshot_error" not in event:
                camera = self._camera
                error = "disabled" if camera is None else camera.unavailable()
                capture = error is None
                event["snapshot_error"] = CAPTURING if error is None else error
        entry = self._store.append_event(event, alarm=alarm, capture=capture)
        if capture and self._camera is not None:
            self._fanout.publish(self._camera.request(entry))
        else:
            self._fanout.publish(entry)
        return entry.seq

    def record_camera(self, online: bool, reason: str, stamp: dict[str, Any]) -> None:
        """A camera.online / camera.offline event, only when the state differs from the last
        one journaled (also across restarts)."""
        with self._camera_lock:
            if self._store.get_meta("camera_online") == int(online):
                return
            event = {"type": "camera.online" if online else "camera.offline", "reason": reason,
                     **stamp}  # fmt: skip

            def write(tx: Transaction) -> JournalEntry:
                tx.set_meta("camera_online", online)
                return tx.append_event(event)

            self._fanout.publish(self._store.transaction(write))


class _StoreRegistry:
    """The registry as the doors read it: the store, plus the lockdown flag held in memory."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._lockdown = store.lockdown()

    def card_lookup(self, number: int) -> CardRecord | None:
        return self._store.card_lookup(number)

    def verify_pin(self, card_number: int, pin: str) -> bool:
        return self._store.verify_pin(card_number, pin)

    def use_visitor_code(self, code: str, door: str) -> VisitorCodeOutcome:
        result = self._store.use_visitor_code(code, door)
        if result.ok:
            return VisitorCodeOutcome(True, "visitor_code", result.code_id, result.room)
        reason = _VISITOR_CODE_REASONS.get(result.reason or "", "unknown_code")
        return VisitorCodeOutcome(False, reason, result.code_id, result.room)

    def lockdown(self) -> bool:
        return self._lockdown

    def set_lockdown(self, on: bool) -> None:
        self._store.set_lockdown(on)
        self._lockdown = on


@dataclass(frozen=True, slots=True)
class _Bus:
    name: str
    panel: ControlPanel
    doors: dict[int, DoorController]  # by reader address


class Gateway:
    """The whole gateway of one building."""

    def __init__(
        self, config: Config, *, web: bool = True, on_frame_written: FrameHook | None = None
    ) -> None:
        """Describe the gateway; `on_frame_written(address, code, ns)` is for measurements."""
        self.config = config
        self._web_enabled = web
        self._on_frame_written = on_frame_written
        self._listeners: list[EventListener] = []
        self._fanout = _EventFanout(self._listeners)
        self._clock = _Clock(ZoneInfo(config.gateway.timezone))
        self.zone = self._clock.zone  # the building's time zone, for the web page's "today"
        self._buses: list[_Bus] = []
        self.doors: dict[str, DoorController] = {}
        self.store: Store | None = None
        self.web: WebServer | None = None
        self.app: FastAPI | None = None
        self.setup_code: str | None = None
        self.uplink: Uplink | None = None
        self.camera: Camera | None = None
        # The snapshot folder (read by the police pages even without a camera); its floor is
        # also where /healthz warns of a low disk.
        floor_mb = config.camera.min_free_mb if config.camera else DISK_FLOOR_MB
        self.snapshots = SnapshotStore(config.gateway.data_dir, min_free_mb=floor_mb)
        self._registry: _StoreRegistry | None = None
        self._journal: _StoreJournal | None = None
        self._started = time.monotonic()
        self._last_tick = time.monotonic()

    def add_listener(self, listener: EventListener) -> None:
        """Call `listener(entry)` for each committed event, in seq order, on the fan-out thread."""
        self._listeners.append(listener)

    # --------------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Open the store, the buses and the web server."""
        cfg = self.config
        if self._web_enabled:  # first, so /healthz answers (and tells) from the start
            web = cfg.web
            self.app = create_app(self, tls=web.tls_cert_file is not None)
            self.web = WebServer(
                self.app, web.host, web.port,
                str(web.tls_cert_file) if web.tls_cert_file else None,
                str(web.tls_key_file) if web.tls_key_file else None,
            )
            self.web.start()
        self.store = Store.open(cfg.gateway.data_dir, cfg.gateway.id)
        if self.app is not None and self.web is not None and not self.store.has_users():
            # First start: nobody can log in yet. This code, printed here once, creates the
            # building head's account on the page's /setup (or use `gateway users add`).
            # run_service prints it once (the console, and the journal under systemd).
            self.setup_code = self.app.state.web.setup_code.issue()
        self._registry = _StoreRegistry(self.store)
        self._fanout.start()
        self.camera = self._make_camera(self.store)
        journal = _StoreJournal(self.store, self._fanout, self.camera)
        self._journal = journal
        for bus in cfg.buses:
            doors = [d for d in cfg.doors if d.bus == bus.name]
            controllers: dict[int, DoorController] = {}
            panel = ControlPanel(
                port=bus.port,
                baud=bus.baud,
                readers=[ReaderSpec(address=d.address, scbk=d.scbk) for d in doors],
                on_event=partial(self._dispatch, controllers),
                on_frame_written=self._on_frame_written,
                timing=BusTiming(poll_interval=bus.poll_interval_ms / 1000),
            )
            for door in doors:
                controller = DoorController(
                    DoorSettings(
                        name=door.name,
                        address=door.address,
                        relay_output=door.relay_output,
                        contact_input=door.contact_input,
                        unlock_seconds=door.unlock_seconds,
                        held_open_seconds=door.held_open_seconds,
                        pin_required=door.pin_required,
                        pin_timeout_seconds=door.pin_timeout_seconds,
                    ),
                    panel=panel,
                    registry=self._registry,
                    journal=journal,
                    today=self._clock.today,
                    stamp=self._clock.stamp,
                )
                controllers[door.address] = controller
                self.doors[door.name] = controller
            self._buses.append(_Bus(bus.name, panel, controllers))
        if cfg.mqtt is not None:
            executor = CommandExecutor(
                gateway_id=cfg.gateway.id,
                public_key=load_public_key(cfg.mqtt.command_public_key),
                store=self.store,
                doors=dict(self.doors),
                lockdown=self._registry,
                record=journal.record,
                stamp=self._clock.stamp,
            )
            self.uplink = Uplink(cfg, self.store, executor,
                                 self.snapshots if cfg.camera is not None else None)
            self.add_listener(lambda _entry: self._kick_uplink())
            self.uplink.start()
        if self.camera is not None:
            self.camera.start()
        for bus_ in self._buses:
            bus_.panel.start()
        log.info("gateway %s started: %d door(s) on %d bus(es)", cfg.gateway.id,
                 len(self.doors), len(self._buses))

    def _make_camera(self, store: Store) -> Camera | None:
        cfg = self.config.camera
        if cfg is None:
            return None
        from gateway.camera.capture import Camera, CaptureSettings
        from gateway.camera.source import open_source

        stamp = self._clock.stamp

        def on_state(online: bool, reason: str) -> None:
            journal = self._journal
            if journal is not None:
                journal.record_camera(online, reason, stamp())

        # A snapshot URL must answer within the frame age; a stream gets 5 s to open.
        source = open_source(cfg.source, on_state=on_state,
                             fetch_timeout_ms=min(5000, cfg.max_frame_age_ms))  # fmt: skip
        settings = CaptureSettings(
            max_frame_age_ms=cfg.max_frame_age_ms,
            jpeg_quality=cfg.jpeg_quality,
            max_height=cfg.max_height,
            retention_days=cfg.retention_days,
        )
        return Camera(source, store, self.snapshots, settings, today=self._clock.today)

    def _disk_free_mb(self) -> int | None:
        try:
            return int(self.snapshots.free_mb())
        except OSError:
            return None

    def _kick_uplink(self) -> None:
        if self.uplink is not None:
            self.uplink.kick()

    def stop(self) -> None:
        """Close everything; safe to call twice."""
        if self.uplink is not None:
            self.uplink.stop()
            self.uplink = None
        if self.web is not None:
            self.web.stop()
            self.web = None
        for bus in self._buses:
            bus.panel.stop()
        self._buses.clear()
        if self.camera is not None:
            self.camera.stop()
            self.camera = None
        self._fanout.stop()
        if self.store is not None:
            self.store.close()
            self.store = None

    def tick(self) -> None:
        """Run the doors' timers; called a few times a second."""
        for door in self.doors.values():
            door.tick()
        self._last_tick = time.monotonic()

    # ------------------------------------------------------------------ reader events

    def _dispatch(self, doors: dict[int, DoorController], event: Event) -> None:
        address = getattr(event, "address", None)
        door = doors.get(address) if isinstance(address, int) else None
        if door is None:
            log.warning("event from unconfigured reader: %r", event)
            return
        try:
            if isinstance(event, CardRead):
                door.on_card(event.number, event.parity_ok, event.received_at)
            elif isinstance(event, KeypadInput):
                door.on_keypad(event.digits)
            elif isinstance(event, InputChanged):
                door.on_inputs(event.inputs)
            elif isinstance(event, TamperChanged):
                door.on_tamper(event.tamper)
            elif isinstance(event, ReaderOnline):
                door.on_reader_online(True, secure=event.secure)
            elif isinstance(event, ReaderOffline):
                door.on_reader_online(False, reason=event.reason)
            elif isinstance(event, SecureChannelFailed):
                # A reader that cannot prove it holds the key is never used in plain mode:
                # for the door it is offline, and the reason says why.
                log.warning("reader %d: secure channel failed: %s", address, event.reason)
                door.on_reader_online(False, reason=f"secure channel failed: {event.reason}")
            elif isinstance(event, PowerChanged):
                log.warning("reader %d: power %s", address,
                            "failing" if event.power_failure else "back to normal")
        except Exception:
            # The bus thread must keep polling every reader; the failure is logged with its
            # traceback and shows in /healthz through the store's state.
            log.exception("handling %r at door %s failed", event, door.settings.name)

    # ------------------------------------------------------------------------ health

    def health(self) -> dict[str, Any]:
        """A health report without personal data, for /healthz and the watchdog."""
        problems: list[str] = []
        if self.store is None or not self.store.writable():
            problems.append("store not writable")
        if time.monotonic() - self._last_tick > 5.0:
            problems.append("door timers stalled")
        buses: dict[str, Any] = {}
        doors: dict[str, Any] = {}
        for bus in self._buses:
            running = bus.panel.is_running()
            if not running:
                problems.append(f"bus {bus.name} stopped")
            buses[bus.name] = {"running": running}
            for address, door in bus.doors.items():
                status = bus.panel.status(address)
                doors[door.settings.name] = {
                    "reader_online": status.online,
                    "secure_channel": status.secure,
                    "line_errors": sum(status.errors.values()),
                }
        if self.uplink is not None:
            problems += self.uplink.problems()
        # Worth a look, not a restart: the watchdog goes by `problems` only.
        warnings: list[str] = []
        if not self._clock.synced():
            warnings.append("clock not synchronised: event times may be wrong")
        free_mb = self._disk_free_mb()
        floor_mb = self.snapshots.min_free_mb
        if free_mb is not None and free_mb < floor_mb:
            warnings.append(f"data disk low: {free_mb} MB free (snapshots stop below"
                            f" {floor_mb} MB so the journal keeps its room)")  # fmt: skip
        return {
            "status": "ok" if not problems else "failing",
            "problems": problems,
            "warnings": warnings,
            "version": __version__,
            "gateway_id": self.config.gateway.id,
            "clock_synced": self._clock.synced(),
            "disk_free_mb": free_mb,
            "uptime_seconds": round(time.monotonic() - self._started, 1),
            "buses": buses,
            "doors": doors,
            "uplink": None if self.uplink is None else self.uplink.health(),
            "camera": None if self.camera is None else self.camera.health(),
        }


def run_service(config: Config, *, ready: Callable[[Gateway], None] | None = None) -> int:
    """Run the gateway until SIGTERM or SIGINT; speaks sd_notify when systemd asks for it."""
    gateway = Gateway(config)
    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    notifier = Notifier()
    try:
        gateway.start()
        if gateway.setup_code is not None and gateway.web is not None:
            # On the console (and in the journal under systemd): the installer reads it there.
            print(f"gateway: no web user yet. Create the building head's account at"
                  f" {gateway.web.url}/setup with the one-time setup code {gateway.setup_code}"
                  " (or use `gateway users add`).", flush=True)
        if ready is not None:
            ready(gateway)
        notifier.notify(f"READY=1\nSTATUS=serving {len(gateway.doors)} door(s)")
        watchdog = notifier.watchdog_interval()
        last_ping = 0.0
        while not stop.wait(_TICK_SECONDS):
            gateway.tick()
            if watchdog is not None and time.monotonic() - last_ping >= watchdog:
                report = gateway.health()
                # Ping only when healthy: a stuck gateway is restarted by systemd.
                if report["status"] == "ok":
                    notifier.notify("WATCHDOG=1")
                    last_ping = time.monotonic()
                else:
                    log.error("not pinging the watchdog: %s", "; ".join(report["problems"]))
        notifier.notify("STOPPING=1")
    finally:
        gateway.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
