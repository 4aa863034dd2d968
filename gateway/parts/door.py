"""The door part: serial lines, decisions, the journal's commits and the relays.

This process holds nothing a stranger can reach: no network socket, no MQTT, no camera
decoding, no web request. It journals each event before its door opens, asks the camera part
for a picture with a datagram that never waits, and takes signed commands (unlock, lockdown)
that the uplink hands over on a local socket, checking their signatures itself.

    part = DoorPart(config, runtime)
    part.start()          # store, buses, command socket
    part.tick()           # a few times a second: door timers, capture deadlines
    part.stop()
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Final
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
from gateway.clock import BuildingClock
from gateway.commands import CommandExecutor
from gateway.config import Config
from gateway.decisions import CardRecord
from gateway.door import DoorController, DoorSettings, VisitorCodeOutcome
from gateway.parts.findings import Finding, finding, health_report
from gateway.parts.ipc import CaptureRequest, CaptureRequester, CommandServer
from gateway.parts.runtime import Runtime
from gateway.store import SNAPSHOT_TYPES, Store
from gateway.store.snapshots import CAPTURING

log = logging.getLogger(__name__)

FrameHook = Callable[[int, int, int], None]
# Below this much free space on the data disk the health report warns.
DISK_FLOOR_MB = 500
# The meta key where the camera part says its stream is down (and why), or null.
CAMERA_DOWN_KEY: Final = "camera_down"

# The store's reasons for refusing a visitor code, as they appear in `access.denied` events.
_VISITOR_CODE_REASONS = {
    "unknown": "unknown_code",
    "expired": "code_expired",
    "used_up": "code_used_up",
    "wrong_door": "wrong_door",
}


class DoorJournal:
    """The doors' journal: commit to the store, then ask the camera part for the picture.

    Access events get their snapshot field here: "disabled" without a camera, the reason at
    once when the camera part says its stream is down, else a capture after the commit whose
    deadline this part keeps (`expire_captures`), so a dead camera part holds an event back
    from the uplink for the deadline at most, and the door never.
    """

    def __init__(self, store: Store, camera: CaptureRequester | None, deadline_s: float) -> None:
        self._store = store
        self._camera = camera
        self._deadline_s = deadline_s
        self._lock = threading.Lock()
        self._deadlines: dict[int, float] = {}  # seq -> monotonic deadline
        self._unsent: list[int] = []  # requests the camera part never got

    def record(self, event: dict[str, Any], alarm: str | None = None) -> int:
        capture = False
        if event["type"] in SNAPSHOT_TYPES:
            event.setdefault("snapshot", None)
            if event["snapshot"] is None and "snapshot_error" not in event:
                error = "disabled" if self._camera is None else self._camera_down()
                capture = error is None
                event["snapshot_error"] = CAPTURING if error is None else error
        entry = self._store.append_event(event, alarm=alarm, capture=capture)
        if capture and self._camera is not None:
            now = time.monotonic()
            sent = self._camera.send(CaptureRequest(entry.seq, entry.event_id,
                                                    entry.body["ts"], now))  # fmt: skip
            with self._lock:
                self._deadlines[entry.seq] = now + self._deadline_s
                if not sent:
                    self._unsent.append(entry.seq)
        return entry.seq

    def _camera_down(self) -> str | None:
        reason = self._store.get_meta(CAMERA_DOWN_KEY)
        return reason if isinstance(reason, str) and reason else None

    def expire_captures(self) -> None:
        """Record why held events have no picture: the camera part never got the request
        ("camera_offline"), or the deadline passed ("timeout"). Off the door path."""
        now = time.monotonic()
        with self._lock:
            unsent, self._unsent = self._unsent, []
            overdue = [seq for seq, deadline in self._deadlines.items() if deadline <= now]
            for seq in unsent + overdue:
                self._deadlines.pop(seq, None)
        if not unsent and not overdue:
            return
        held = set(self._store.held_captures())  # most were filled by the camera part
        for seq in unsent:
            if seq in held:
                self._store.fill_snapshot(seq, None, "camera_offline")
        for seq in overdue:
            if seq in held and self._store.fill_snapshot(seq, None, "timeout") is not None:
                log.warning("snapshot of event %d: not taken within %.1f s", seq, self._deadline_s)


class DoorRegistry:
    """The registry as the doors read it: the store, plus the lockdown flag held in memory
    (only this part changes it, through a signed command)."""

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


class DoorPart:
    """Every door of the building, in a process of its own."""

    name = "door"

    def __init__(
        self, config: Config, runtime: Runtime, *, on_frame_written: FrameHook | None = None
    ) -> None:
        """Describe the part; `on_frame_written(address, code, ns)` is for measurements."""
        self.config = config
        self.runtime = runtime
        self._on_frame_written = on_frame_written
        self.clock = BuildingClock(ZoneInfo(config.gateway.timezone))
        self._buses: list[_Bus] = []
        self.doors: dict[str, DoorController] = {}
        self.store: Store | None = None
        self.journal: DoorJournal | None = None
        self._requester: CaptureRequester | None = None
        self._commands: CommandServer | None = None
        self._last_tick = time.monotonic()

    def start(self) -> None:
        """Open the store, let go of captures nobody runs any more, open the serial lines."""
        cfg = self.config
        # No upkeep in this process: the journal's index and the WAL's checkpoints never hold up
        # a swipe's commit (docs/architecture.md, "Parts").
        store = self.store = Store.open(cfg.gateway.data_dir, cfg.gateway.id, upkeep=False)
        released = store.release_all_captures()
        if released:
            log.info("%d event(s) go up without a picture: the gateway stopped mid-capture",
                     released)  # fmt: skip
        if cfg.camera is not None:
            self._requester = CaptureRequester(self.runtime.camera_socket)
        deadline = max(2.0, cfg.camera.max_frame_age_ms / 1000 + 1.0) if cfg.camera else 2.0
        journal = self.journal = DoorJournal(store, self._requester, deadline)
        registry = DoorRegistry(store)
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
                    registry=registry,
                    journal=journal,
                    today=self.clock.today,
                    stamp=self.clock.stamp,
                )
                controllers[door.address] = controller
                self.doors[door.name] = controller
            self._buses.append(_Bus(bus.name, panel, controllers))
        if cfg.mqtt is not None:
            executor = CommandExecutor(
                gateway_id=cfg.gateway.id,
                public_key=load_public_key(cfg.mqtt.command_public_key),
                store=store,
                doors=dict(self.doors),
                lockdown=registry,
                record=journal.record,
                stamp=self.clock.stamp,
            )
            self._commands = CommandServer(self.runtime.door_socket, executor.execute)
            self._commands.start()
        for bus_ in self._buses:
            bus_.panel.start()
        log.info("doors of %s started: %d door(s) on %d bus(es)", cfg.gateway.id,
                 len(self.doors), len(self._buses))  # fmt: skip

    def stop(self) -> None:
        """Close everything; safe to call twice."""
        if self._commands is not None:
            self._commands.stop()
            self._commands = None
        for bus in self._buses:
            bus.panel.stop()
        self._buses.clear()
        if self._requester is not None:
            self._requester.close()
            self._requester = None
        if self.store is not None:
            self.store.close()
            self.store = None

    def tick(self) -> None:
        """Run the doors' timers and the capture deadlines; called a few times a second."""
        for door in self.doors.values():
            door.tick()
        if self.journal is not None:
            self.journal.expire_captures()
        self._last_tick = time.monotonic()

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
                log.warning(
                    "reader %d: power %s",
                    address,
                    "failing" if event.power_failure else "back to normal",
                )
        except Exception:
            # The bus thread must keep polling every reader; the failure is logged with its
            # traceback and shows in the health report through the store's state.
            log.exception("handling %r at door %s failed", event, door.settings.name)

    def health(self) -> dict[str, Any]:
        """This part's health, without personal data."""
        problems: list[Finding] = []
        if self.store is None or not self.store.writable():
            problems.append(finding("store_not_writable"))
        if time.monotonic() - self._last_tick > 5.0:
            problems.append(finding("door_timers_stalled"))
        if self._commands is not None and not self._commands.alive():
            problems.append(finding("door_socket_stopped"))
        buses: dict[str, Any] = {}
        doors: dict[str, Any] = {}
        for bus in self._buses:
            running = bus.panel.is_running()
            if not running:
                problems.append(finding("bus_stopped", bus=bus.name))
            buses[bus.name] = {"running": running}
            for address, door in bus.doors.items():
                status = bus.panel.status(address)
                doors[door.settings.name] = {
                    "reader_online": status.online,
                    "secure_channel": status.secure,
                    "line_errors": sum(status.errors.values()),
                }
        warnings: list[Finding] = []
        if not self.clock.synced():
            warnings.append(finding("clock_not_synced"))
        free_mb = _free_mb(self.config)
        floor_mb = self.config.camera.min_free_mb if self.config.camera else DISK_FLOOR_MB
        if free_mb is not None and free_mb < floor_mb:
            warnings.append(finding("disk_low", free_mb=free_mb, floor_mb=floor_mb))
        return health_report(
            problems,
            warnings,
            clock_synced=self.clock.synced(),
            disk_free_mb=free_mb,
            buses=buses,
            doors=doors,
        )


def _free_mb(config: Config) -> int | None:
    try:
        return int(shutil.disk_usage(config.gateway.data_dir).free // (1024 * 1024))
    except OSError:
        return None
