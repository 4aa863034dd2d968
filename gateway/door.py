"""One door: reader events in, decisions, journal entries and lock/LED/buzzer commands out.

The door path is a straight line in `DoorController.on_card`: credential -> registry lookup ->
`decide_card` -> journal commit -> relay pulse. The journal commit comes first so that no door
ever opens without its `access.granted` on disk; nothing else (camera, uplink, web) is on it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

from gateway.decisions import (
    GRANTED_VISITOR,
    LOCKDOWN,
    PIN_TIMEOUT,
    WRONG_PIN,
    CardRecord,
    Decision,
    decide_card,
)

log = logging.getLogger(__name__)

# A door opened within this many seconds after its lock was released counts as a normal entry;
# door contacts bounce and people take a moment to push.
_ENTRY_GRACE_SECONDS = 2.0
# Every access is logged with its steps' times (no card, no person), as a warning when a
# decision or a journal commit is slower than this: a worn SD card, or the write lock held by
# someone else, shows in the log before a tenant waits at the door.
SLOW_STEP_MS = 50.0
# Keypad digits older than this are discarded (a visitor walked away mid-code).
_KEYPAD_IDLE_SECONDS = 10.0


class Panel(Protocol):
    """The commands a door sends to its reader (see `firmware_bridge.osdp.ControlPanel`)."""

    def pulse_output(self, address: int, output: int = 0, seconds: float = 5.0) -> object: ...
    def led(self, address: int, color: str = ..., *, on_ms: int = ..., off_ms: int = ...,
            duration_ms: int = ...) -> object: ...
    def beep(self, address: int, count: int = ..., on_ms: int = ...,
             off_ms: int = ...) -> object: ...


class Registry(Protocol):
    """The tenant registry as the door path reads it."""

    def card_lookup(self, number: int) -> CardRecord | None: ...
    def verify_pin(self, card_number: int, pin: str) -> bool: ...
    def use_visitor_code(self, code: str, door: str) -> VisitorCodeOutcome: ...
    def lockdown(self) -> bool: ...


class Journal(Protocol):
    """Commits an event (and optionally an alarm) durably; returns its seq."""

    def record(self, event: dict[str, Any], alarm: str | None = None) -> int: ...


@dataclass(frozen=True, slots=True)
class VisitorCodeOutcome:
    """Whether a visitor code opened the door, and why not."""

    ok: bool
    reason: str
    code_id: int | None = None
    room: str | None = None


@dataclass(frozen=True, slots=True)
class DoorSettings:
    """What a controller needs to know about its door (from the `[[doors]]` config)."""

    name: str
    address: int
    relay_output: int = 0
    contact_input: int | None = None
    unlock_seconds: float = 5.0
    held_open_seconds: float = 60.0
    pin_required: bool = False
    pin_timeout_seconds: float = 10.0


@dataclass(frozen=True, slots=True)
class AccessTiming:
    """Monotonic nanosecond stamps of one access, for the latency benchmark."""

    frame_received_ns: int
    commit_started_ns: int
    commit_done_ns: int
    relay_queued_ns: int | None
    granted: bool


@dataclass(slots=True)
class _PendingPin:
    card_number: int
    decision: Decision
    deadline: float


@dataclass(slots=True)
class _DoorState:
    open: bool | None = None  # None until the reader reports its inputs
    opened_at: float = 0.0
    held_reported: bool = False
    unlocked_until: float = 0.0
    tamper: bool = False
    online: bool | None = None
    keypad: str = ""
    keypad_at: float = 0.0
    pending_pin: _PendingPin | None = None
    timings: deque[AccessTiming] = field(default_factory=lambda: deque(maxlen=4096))


class DoorController:
    """The logic of one door; thread-safe (reader events and timer ticks come from two threads)."""

    def __init__(
        self,
        settings: DoorSettings,
        *,
        panel: Panel,
        registry: Registry,
        journal: Journal,
        today: Callable[[], date],
        stamp: Callable[[], dict[str, Any]],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._panel = panel
        self._registry = registry
        self._journal = journal
        self._today = today
        self._stamp = stamp  # {"ts": ..., "clock_synced": ...} for a new event
        self._now = monotonic
        self._lock = threading.Lock()
        self._state = _DoorState()

    # ----------------------------------------------------------------- credentials

    def on_card(self, number: int, parity_ok: bool | None, received_ns: int) -> Decision:
        """Handle a card read: decide, record, then unlock or refuse at the reader."""
        with self._lock:
            # A bad read is never looked up: it could match somebody else's card.
            record = None if parity_ok is False else self._registry.card_lookup(number)
            decision = decide_card(
                parity_ok=parity_ok,
                record=record,
                today=self._today(),
                lockdown=self._registry.lockdown(),
            )
            credential = {"kind": "card", "number": number}
            if decision.granted and self.settings.pin_required:
                self._state.pending_pin = _PendingPin(
                    number, decision, self._now() + self.settings.pin_timeout_seconds
                )
                self._state.keypad = ""
                self._panel.led(self.settings.address, "amber", on_ms=200, off_ms=200,
                                duration_ms=int(self.settings.pin_timeout_seconds * 1000))
                return Decision(False, "pin_required", decision.tenant_id, decision.room)
            self._conclude(decision, credential, received_ns)
            return decision

    def on_keypad(self, digits: str) -> None:
        """Handle keypad digits: a PIN after a card on a PIN door, else a visitor code.

        `*` clears what was typed, `#` ends a code.
        """
        with self._lock:
            now = self._now()
            state = self._state
            if now - state.keypad_at > _KEYPAD_IDLE_SECONDS:
                state.keypad = ""
            state.keypad_at = now
            for key in digits:
                if key == "*":
                    state.keypad = ""
                elif key == "#":
                    entered, state.keypad = state.keypad, ""
                    if entered:
                        self._code_entered(entered)
                elif key.isdigit() and len(state.keypad) < 16:
                    state.keypad += key

    def _code_entered(self, code: str) -> None:
        received_ns = time.monotonic_ns()
        pending = self._state.pending_pin
        if pending is not None:
            self._state.pending_pin = None
            credential = {"kind": "card", "number": pending.card_number}
            if self._registry.verify_pin(pending.card_number, code):
                decision = pending.decision
            else:
                decision = Decision(False, WRONG_PIN, pending.decision.tenant_id,
                                    pending.decision.room)
            self._conclude(decision, credential, received_ns)
            return
        if self._registry.lockdown():
            self._conclude(Decision(False, LOCKDOWN), {"kind": "visitor_code"}, received_ns)
            return
        outcome = self._registry.use_visitor_code(code, self.settings.name)
        credential = {"kind": "visitor_code", "code_id": outcome.code_id}
        decision = Decision(outcome.ok, GRANTED_VISITOR if outcome.ok else outcome.reason,
                            room=outcome.room)
        self._conclude(decision, credential, received_ns)

    def unlock(self, seconds: float, reason: str, extra: dict[str, Any]) -> int:
        """Release the lock on request (a signed remote command); returns the event's seq."""
        with self._lock:
            event = self._event("access.granted", reason=reason, **extra)
            seq = self._journal.record(event)
            self._release(seconds)
            return seq

    def _conclude(self, decision: Decision, credential: dict[str, Any], received_ns: int) -> None:
        event = self._event(
            "access.granted" if decision.granted else "access.denied",
            credential=credential,
            tenant_id=decision.tenant_id,
            room=decision.room,
            reason=decision.reason,
        )
        started = time.monotonic_ns()
        try:
            self._journal.record(event, alarm=decision.alarm)
        except Exception:
            # No door opens unrecorded: if the journal cannot take the grant, refuse at the
            # reader and let the failure reach the log and the health check.
            log.exception("journal write failed at door %s; refusing access", self.settings.name)
            self._refuse()
            raise
        committed = time.monotonic_ns()
        queued: int | None = None
        if decision.granted:
            self._release(self.settings.unlock_seconds)
            queued = time.monotonic_ns()
        else:
            self._refuse()
        self._state.timings.append(
            AccessTiming(received_ns, started, committed, queued, decision.granted)
        )
        decide_ms, commit_ms = (started - received_ns) / 1e6, (committed - started) / 1e6
        relay_ms = ((queued or committed) - committed) / 1e6
        slow = max(decide_ms, commit_ms) > SLOW_STEP_MS
        # Every access at debug level (`gateway -v`), a slow one as a warning: at the morning
        # rush a line per swipe would use up journald's burst cap and hide the faults.
        log.log(logging.WARNING if slow else logging.DEBUG, "%saccess at door %s: decided in "
                "%.1f ms, journaled in %.1f ms, relay in %.1f ms", "slow " if slow else "",
                self.settings.name, decide_ms, commit_ms, relay_ms)  # fmt: skip

    def _release(self, seconds: float) -> None:
        address = self.settings.address
        self._panel.pulse_output(address, self.settings.relay_output, seconds)
        self._state.unlocked_until = self._now() + seconds + _ENTRY_GRACE_SECONDS
        self._panel.led(address, "green", on_ms=500, off_ms=0, duration_ms=int(seconds * 1000))
        self._panel.beep(address, 1, on_ms=100, off_ms=100)

    def _refuse(self) -> None:
        address = self.settings.address
        self._panel.led(address, "red", on_ms=500, off_ms=0, duration_ms=1000)
        self._panel.beep(address, 2, on_ms=150, off_ms=150)

    # ------------------------------------------------------------ door and reader state

    def on_inputs(self, inputs: tuple[bool, ...]) -> None:
        """Track the door contact: raise `door.forced` when it opens without a grant."""
        contact = self.settings.contact_input
        if contact is None or contact >= len(inputs):
            return
        is_open = inputs[contact]
        with self._lock:
            state = self._state
            was_open, state.open = state.open, is_open
            if not is_open or was_open in (True, None):
                if not is_open:
                    state.held_reported = False
                if was_open is None and is_open:
                    state.opened_at = self._now()  # open at start: not forced, but timed
                return
            now = self._now()
            state.opened_at = now
            state.held_reported = False
            if now > state.unlocked_until:
                self._journal.record(self._event("door.forced"), alarm="door_forced")

    def on_tamper(self, tamper: bool) -> None:
        """Record a reader's tamper switch opening (and closing again)."""
        with self._lock:
            if tamper == self._state.tamper:
                return
            self._state.tamper = tamper
            event = self._event("reader.tamper", tamper=tamper)
            self._journal.record(event, alarm="reader_tamper" if tamper else None)

    def on_reader_online(self, online: bool, **details: Any) -> None:
        """Record a reader going offline or coming back, once per change."""
        with self._lock:
            if online == self._state.online:
                return
            first = self._state.online is None
            self._state.online = online
            if first and online:
                return  # the first contact after start-up is not news
            kind = "reader.online" if online else "reader.offline"
            self._journal.record(self._event(kind, address=self.settings.address, **details))

    def tick(self) -> None:
        """Check timers: a door held open too long, a PIN that never came."""
        with self._lock:
            now = self._now()
            state = self._state
            if (
                state.open
                and not state.held_reported
                and now - state.opened_at > self.settings.held_open_seconds
            ):
                state.held_reported = True
                self._journal.record(
                    self._event("door.held_open", open_seconds=round(now - state.opened_at, 1)),
                    alarm="door_held_open",
                )
            pending = state.pending_pin
            if pending is not None and now > pending.deadline:
                state.pending_pin = None
                decision = Decision(False, PIN_TIMEOUT, pending.decision.tenant_id,
                                    pending.decision.room)
                credential = {"kind": "card", "number": pending.card_number}
                self._conclude(decision, credential, time.monotonic_ns())

    @property
    def timings(self) -> list[AccessTiming]:
        """Recent access timings (newest last)."""
        with self._lock:
            return list(self._state.timings)

    @property
    def online(self) -> bool | None:
        """Whether the door's reader answers (None before the first contact)."""
        return self._state.online

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        event: dict[str, Any] = {"type": kind, **self._stamp(), "door": self.settings.name}
        event.update(fields)
        return event
