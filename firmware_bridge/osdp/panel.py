"""The OSDP control panel: one bus thread that polls every reader on one serial port.

>>> cp = ControlPanel(port="loop://", readers=[ReaderSpec(address=1)], on_event=print)
>>> cp.status(1).online
False

The door path runs on the bus thread, in one straight line: a reply carrying a card is
decoded, ``on_event(CardRead)`` is called right there, the handler decides and calls
``pulse_output()``, and the OUT is the very next frame on the wire (queued commands go ahead
of every POLL). Handlers must therefore be quick: while one runs, no reader is polled.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass

from .codec import REPLY_FLAG, Frame, FrameError, StreamParser
from .events import Event, ReaderStatus
from .link import PortError, SerialLike, SerialLink
from .messages import (
    Command,
    ComSettings,
    LedColor,
    OutputControl,
    buz_data,
    comset_data,
    led_data,
    out_data,
    units_100ms,
)
from .reader import BusTiming, Outgoing, PendingCommand, ReaderState

log = logging.getLogger(__name__)

MAX_QUEUED_COMMANDS = 16
"""Per reader. A door needs a handful; more means the application is flooding a dead reader."""


@dataclass(frozen=True, slots=True)
class ReaderSpec:
    """One reader on the bus: its OSDP address and, for a secure channel, its 16-byte SCBK."""

    address: int
    scbk: bytes | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.address <= 0x7E:
            raise ValueError(f"reader address must be 0..126, got {self.address}")
        if self.scbk is not None and len(self.scbk) != 16:
            raise ValueError("a reader's SCBK must be 16 bytes")


EventHandler = Callable[[Event], None]
FrameWrittenHook = Callable[[int, int, int], None]


class _Wakeup:
    """Wake the sleeping bus thread from any thread: a binary semaphore on one lock.

    ``wait(timeout)`` is a single blocking lock acquire (one futex wait), where
    ``threading.Event.wait`` builds a Condition waiter, a second lock and a deque entry on
    every call. ``set()`` releases the lock; a wake-up already pending is kept, not doubled,
    and the wait that finds it returns at once and uses it up.
    """

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()  # held = nothing pending

    def set(self) -> None:
        """Wake the waiter now, or make its next wait return at once."""
        with contextlib.suppress(RuntimeError):  # already released: a wake-up is pending
            self._lock.release()

    def wait(self, timeout: float) -> bool:
        """Sleep until set() or `timeout` s; return True when woken (the wake-up is used up)."""
        return self._lock.acquire(True, timeout)


class ControlPanel:
    """An OSDP control panel driving several readers over one serial port.

    The constructor does no I/O; ``start()`` starts the bus thread, which opens the port (and
    keeps trying to, every second, while it is missing). Every method may be called from any
    thread, including from inside ``on_event``.
    """

    def __init__(
        self,
        port: str | SerialLike,
        baud: int = 9600,
        readers: Iterable[ReaderSpec] = (),
        on_event: EventHandler | None = None,
        *,
        on_frame_written: FrameWrittenHook | None = None,
        timing: BusTiming | None = None,
        mark_byte: bool = False,
    ) -> None:
        """Describe the bus; `port` is a device path, a pyserial URL or an open serial object.

        `on_frame_written(address, command_code, monotonic_ns)` is called after each frame
        has left the port (for latency measurements). `mark_byte` sends 0xFF before each frame
        for readers that want it; received frames are accepted with or without it.
        """
        specs = list(readers)
        addresses = [spec.address for spec in specs]
        if len(set(addresses)) != len(addresses):
            raise ValueError(f"duplicate reader addresses: {addresses}")
        self._timing = timing or BusTiming()
        self._link = SerialLink(port, baud)
        self._on_event = on_event
        self._on_frame_written = on_frame_written
        self._readers = [
            ReaderState(spec.address, spec.scbk, self._timing, mark=mark_byte) for spec in specs
        ]
        self._parser = StreamParser()
        self._wake = _Wakeup()
        self._stopping = threading.Event()
        self._stop_requested = False  # _stopping.is_set() without a method call per turn
        self._thread: threading.Thread | None = None
        self._round_robin = 0
        self._last_asked: ReaderState | None = None

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the bus thread (which opens the port)."""
        if self._thread is not None:
            raise RuntimeError("control panel already started")
        now = time.monotonic()
        for reader in self._readers:
            reader.started_at = now
            reader.next_due = now
        self._thread = threading.Thread(target=self._run, name="osdp-bus", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the bus thread and close the port; calling it again does nothing."""
        self._stop_requested = True
        self._stopping.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self._link.close()

    # --- commands ---------------------------------------------------------------------------

    def pulse_output(self, address: int, output: int = 0, seconds: float = 5.0) -> bool:
        """Switch an output on for `seconds` (OUT control code 5); False if the reader is out.

        This is the door strike. A retry after a lost reply makes the PD run the command
        again, which restarts the timer of a timed output: harmless for a door pulse.
        """
        timer = units_100ms("pulse", seconds * 1000, limit=0xFFFF)
        return self._queue(address, Command.OUT, out_data(output, OutputControl.ON_TIMED, timer))

    def set_output(self, address: int, output: int, on: bool) -> bool:
        """Switch an output permanently on or off (control codes 2 / 1, cancelling any timer)."""
        control = (
            OutputControl.ON_PERMANENT_ABORT_TIMER if on
            else OutputControl.OFF_PERMANENT_ABORT_TIMER
        )
        return self._queue(address, Command.OUT, out_data(output, control))

    def led(
        self,
        address: int,
        color: str = "green",
        *,
        on_ms: int = 500,
        off_ms: int = 0,
        duration_ms: int = 2000,
        off_color: str = "black",
        led: int = 0,
        permanent: bool = False,
    ) -> bool:
        """Show a colour on a reader's LED: for `duration_ms` (then back), or permanently.

        Flashing: `on_ms` in `color`, `off_ms` in `off_color`, repeated. Times are rounded to
        OSDP's 100 ms units. Example: ``cp.led(1, "red", on_ms=200, off_ms=200, duration_ms=3000)``.
        """
        data = led_data(
            led=led,
            color=_color(color),
            off_color=_color(off_color),
            on_100ms=max(1, units_100ms("on time", on_ms)),
            off_100ms=units_100ms("off time", off_ms),
            timer_100ms=units_100ms("duration", duration_ms, limit=0xFFFF),
            permanent=permanent,
        )
        return self._queue(address, Command.LED, data)

    def beep(self, address: int, count: int = 1, on_ms: int = 200, off_ms: int = 200) -> bool:
        """Sound a reader's buzzer `count` times."""
        data = buz_data(
            on_100ms=max(1, units_100ms("on time", on_ms)),
            off_100ms=units_100ms("off time", off_ms),
            count=count,
        )
        return self._queue(address, Command.BUZ, data)

    def set_reader_address_and_baud(
        self, address: int, new_address: int, new_baud: int
    ) -> Future[ComSettings]:
        """Move a reader to another address and/or baud rate (COMSET); resolves with its COM.

        The whole bus follows the new baud rate: every reader on it must be moved.
        """
        future: Future[ComSettings] = Future()
        command = PendingCommand(Command.COMSET, comset_data(new_address, new_baud),
                                 time.monotonic(), kind="comset", future=future)
        if not self._enqueue(address, command):
            future.set_exception(ConnectionError(f"reader {address} is not online"))
        return future

    def set_reader_key(self, address: int, new_scbk: bytes) -> Future[None]:
        """Give a reader in install mode its key: SCBK-D handshake, KEYSET, then the new key.

        Store the key before calling: once the reader has accepted it, only it opens the
        channel. The future resolves when the secure channel is up with the new key.
        """
        if len(new_scbk) != 16:
            raise ValueError("a reader's SCBK must be 16 bytes")
        reader = self._reader(address)
        future: Future[None] = Future()
        with reader.lock:
            reader.pending_key_request = (new_scbk, future)
        self._wake.set()
        return future

    def is_running(self) -> bool:
        """Return True while the bus thread runs; a watchdog should restart us when it dies."""
        return self._thread is not None and self._thread.is_alive()

    def status(self, address: int) -> ReaderStatus:
        """Return a snapshot of one reader: online, secure, last reply, identity, error counts."""
        return self._reader(address).snapshot()

    def readers(self) -> list[ReaderStatus]:
        """Return a snapshot of every reader."""
        return [reader.snapshot() for reader in self._readers]

    def _reader(self, address: int) -> ReaderState:
        for reader in self._readers:
            if reader.address == address:
                return reader
        raise KeyError(f"no reader at address {address}")

    def _queue(self, address: int, code: Command, data: bytes) -> bool:
        return self._enqueue(address, PendingCommand(code, data, time.monotonic()))

    def _enqueue(self, address: int, command: PendingCommand) -> bool:
        reader = self._reader(address)
        if not reader.in_service:
            log.warning("reader %d is not online: %s not sent", address, command.code.name)
            return False
        with reader.lock:
            if len(reader.queue) >= MAX_QUEUED_COMMANDS:
                reader.errors["queue_full"] += 1
                return False
            reader.queue.append(command)
        self._wake.set()  # the bus loop may be sleeping until the next poll: send it now
        return True

    # --- bus thread -------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop_requested:
                if not self._link.is_open and not self._open_port():
                    continue
                try:
                    while not self._stop_requested:  # the port stays open until an error
                        self._service_once()
                except PortError as error:
                    self._port_failed(f"serial port error: {error}")
        finally:
            self._link.close()

    def _open_port(self) -> bool:
        try:
            self._link.open()
        except PortError as error:
            log.warning("cannot open %s: %s", self._link.name, error)
            now = time.monotonic()
            for reader in self._readers:
                self._emit_all(reader.check_offline(now))
            self._stopping.wait(self._timing.port_retry_interval)
            return False
        self._parser.clear()
        log.info("serial port open")
        return True

    def _port_failed(self, reason: str) -> None:
        log.error("%s; reopening in %g s", reason, self._timing.port_retry_interval)
        self._link.close()
        now = time.monotonic()
        for reader in self._readers:
            self._emit_all(reader.port_lost(now, reason))
        self._stopping.wait(self._timing.port_retry_interval)

    def _service_once(self) -> None:
        now = time.monotonic()
        for state in self._readers:
            if state.pending_key_request is not None:
                self._apply_requests(state, now)
            events = state.check_offline(now)
            if events:
                self._emit_all(events)
        # A command queued from here on wakes the wait below. One queued earlier is chosen now
        # and leaves its wake-up pending: the next wait returns at once, one pass for nothing.
        reader, next_due = self._choose(now)
        if reader is None:
            wait = next_due - now  # > 0: no reader is due
            # Wake at least twice a second to notice readers going offline.
            self._wake.wait(wait if wait < 0.5 else 0.5)
            return
        self._transact(reader)

    def _apply_requests(self, reader: ReaderState, now: float) -> None:
        with reader.lock:
            request, reader.pending_key_request = reader.pending_key_request, None
        if request is not None:
            reader.install_key, reader.key_future = request
            reader.restart(now)

    def _choose(self, now: float) -> tuple[ReaderState | None, float]:
        """Pick the reader whose turn it is: waiting commands first, then the longest due.

        Return it (None when no reader is due) and the earliest time any reader is due.
        """
        readers = self._readers
        count = len(readers)
        if count == 1:  # a bus with one door: no turns to take
            reader = readers[0]
            due = reader.due_at() if reader.queue else reader.next_due
            return (reader if due <= now else None), due
        best: ReaderState | None = None
        best_due = now
        best_index = 0
        earliest = math.inf
        for i in range(count):
            index = (self._round_robin + i) % count
            reader = readers[index]
            due = reader.due_at() if reader.queue else reader.next_due  # the same, cheaper
            if due < earliest:
                earliest = due
            if due <= now and (best is None or due < best_due):
                best, best_due, best_index = reader, due, index
        if best is not None:
            self._round_robin = (best_index + 1) % count
        return best, earliest

    def _transact(self, reader: ReaderState) -> None:
        stale = self._link.drain()
        if stale or self._parser.pending:
            self._discard_stale(stale)
        out = reader.build_next(time.monotonic())
        written_ns = self._link.write(out.frame)
        self._last_asked = reader
        if self._on_frame_written is not None:
            try:
                self._on_frame_written(reader.address, out.code, written_ns)
            except Exception:  # a measuring hook must not stop the doors either
                log.exception("on_frame_written hook failed")
        reply = self._await_reply(reader, out)
        now = time.monotonic()
        if reply is None:
            reader.on_timeout(now)
            return
        frame, received_ns = reply
        if frame is None:  # the plain ACK expected to a plain POLL: no event can follow
            reader.on_plain_ack(now)
            return
        old_address = reader.address
        events = reader.on_reply(frame, received_ns, now)
        if reader.new_baud is not None:
            baud, reader.new_baud = reader.new_baud, None
            if baud != self._link.baud:
                self._link.set_baud(baud)
        if reader.address != old_address:
            self._parser.clear()
        if events:
            self._emit_all(events)

    def _await_reply(
        self, reader: ReaderState, out: Outgoing
    ) -> tuple[Frame | None, int] | None:
        """Wait for the reply to `out`: (frame, received ns), None at the reply timeout.

        The frame is None when the reply is exactly ``out.plain_ack`` with nothing before it
        (the usual answer to a plain POLL; the parser would find that one frame and nothing
        else in it).
        """
        deadline = time.monotonic() + self._timing.reply_timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                # Rescan what a false SOM may have hidden before declaring a timeout.
                return self._match(reader, out, self._parser.flush(), time.monotonic_ns())
            chunk = self._link.read(remaining)
            if not chunk:
                continue
            if chunk == out.plain_ack and not self._parser.pending:
                return None, 0
            found = self._match(reader, out, self._parser.feed(chunk), time.monotonic_ns())
            if found is not None:
                return found

    def _match(
        self, reader: ReaderState, out: Outgoing, items: list[Frame | FrameError], ns: int
    ) -> tuple[Frame, int] | None:
        found: tuple[Frame, int] | None = None
        for item in items:
            if isinstance(item, FrameError):
                reader.count(item.kind)
            elif out.frame.endswith(item.raw):
                continue  # our own command, echoed by a half-duplex adapter
            elif found is not None:
                reader.count("extra_frame")
            elif item.address != reader.address | REPLY_FLAG:
                self._count_foreign(reader, item)
            elif item.sequence != out.sequence:
                reader.count("wrong_sequence")
            else:
                found = (item, ns)
        return found

    def _count_foreign(self, asked: ReaderState, frame: Frame) -> None:
        """A frame from another address: a late reply of another reader, or a wrong address."""
        for reader in self._readers:
            if reader is not asked and frame.address == reader.address | REPLY_FLAG:
                reader.count("late_reply")
                return
        asked.count("wrong_address")

    def _discard_stale(self, stale: bytes) -> None:
        """Count and drop what arrived between transactions (late replies, line noise)."""
        items = (self._parser.feed(stale) if stale else []) + self._parser.flush()
        blame = self._last_asked
        if blame is None:
            return
        for item in items:
            if isinstance(item, FrameError):
                blame.count(item.kind)
            elif item.address == blame.address | REPLY_FLAG:
                blame.count("late_reply")
            else:
                self._count_foreign(blame, item)

    def _emit_all(self, events: list[Event]) -> None:
        for event in events:
            self._emit(event)

    def _emit(self, event: Event) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(event)
        except Exception:  # one handler bug must not stop every door on the bus
            log.exception("on_event handler failed for %r", event)


def _color(name: str) -> LedColor:
    try:
        return LedColor[name.upper()]
    except KeyError:
        raise ValueError(f"unknown LED colour {name!r}") from None


