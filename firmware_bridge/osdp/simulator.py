"""Simulated OSDP readers for tests, the demo and benchmarks: libosdp PDs on a pseudo-terminal.

``SimulatedBus`` is an RS-485 line: a pty whose slave end (``.port``) the control panel opens,
and whose master end is shared by any number of libosdp ``PeripheralDevice`` s. Every PD sees
every byte the CP sends; only the addressed one answers.

>>> with SimulatedBus() as bus:                          # doctest: +SKIP
...     reader = SimulatedReader(bus, address=1).start()
...     cp = ControlPanel(bus.port, readers=[ReaderSpec(1)], on_event=print)

libosdp is imported inside the constructors, so ``firmware_bridge`` imports without it.

What libosdp 3.2.9's PD does that shapes this module (seen here, with the prints in the tests):

* Its command callback receives dicts such as ``{'command': 1, 'output_no': 0,
  'control_code': 5, 'timer_count': 50}`` (OUT), ``{'command': 2, 'led_number': 0,
  'on_color': 2, ..., 'temporary': True}`` (LED), ``{'command': 3, 'on_count': 2, ...}`` (BUZ),
  ``{'command': 5, 'type': 1, 'data': key}`` (KEYSET), ``{'command': 9, 'type': 0}`` (ISTAT).
* It answers LSTAT from its own state (always ``00 00``) and NAKs ISTAT (reason 9): the reply
  dict a callback returns is not used. So on LSTAT/ISTAT this simulator queues the state as an
  event, which the PD sends with the next POLL.
* It re-executes a command repeated with the same sequence number, and a POLL repeated after a
  lost reply gets a fresh answer: the event the lost reply carried is gone.
"""

from __future__ import annotations

import contextlib
import os
import queue
import select
import threading
import time
import tty
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..wiegand import encode
from .codec import REPLY_FLAG, Frame, StreamParser, encode_frame
from .messages import Command, NakReason, Reply, keypad_codes

# libosdp command ids (osdp.Command) mapped to the names used in ReceivedCommand.kind.
_COMMAND_KINDS = {1: "output", 2: "led", 3: "buzzer", 4: "text", 5: "keyset", 6: "comset",
                  9: "status", 10: "comset_done"}


@dataclass(frozen=True, slots=True)
class ReceivedCommand:
    """A command a simulated reader's PD handed to its application."""

    kind: str
    """"output", "led", "buzzer", "keyset", "comset", "comset_done", "status"..."""
    fields: dict[str, Any]
    """libosdp's dict for it, e.g. {'output_no': 0, 'control_code': 5, 'timer_count': 50}."""
    at_ns: int = field(compare=False)
    """time.monotonic_ns() when the PD delivered it."""


class SimulatedBus:
    """A pseudo-terminal standing in for an RS-485 bus shared by simulated readers."""

    def __init__(self, baud: int | None = None) -> None:
        """Create the pty; with `baud`, bytes take the time they would on a real line."""
        self._master, self._slave = os.openpty()
        tty.setraw(self._master)
        tty.setraw(self._slave)  # no echo, no line discipline: OSDP is binary
        self.port = os.ttyname(self._slave)
        self.baud = baud
        self._channels: list[_PdChannel] = []
        self._write_lock = threading.Lock()
        self._closing = threading.Event()
        self._pump = threading.Thread(target=self._run, name="osdp-sim-bus", daemon=True)
        self._pump.start()

    def __enter__(self) -> SimulatedBus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wire_time(self, count: int) -> float:
        """Return how long `count` bytes take on the line (8N1), or 0 without a baud rate."""
        return count * 10 / self.baud if self.baud else 0.0

    def attach(self, channel: _PdChannel) -> None:
        """Let a PD's channel hear the bus."""
        self._channels.append(channel)

    def inject(self, data: bytes) -> None:
        """Put raw bytes on the line towards the CP (noise, forged or late frames)."""
        self.send_to_cp(data)

    def send_to_cp(self, data: bytes) -> None:
        """Write bytes to the CP's end."""
        with self._write_lock:
            os.write(self._master, data)

    def _run(self) -> None:
        while not self._closing.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.1)
            if not ready:
                continue
            try:
                data = os.read(self._master, 4096)
            except OSError:
                return  # closed under us
            delay = self.wire_time(len(data))
            if delay:
                time.sleep(delay)
            for channel in list(self._channels):
                channel.hear(data)

    def close(self) -> None:
        """Stop the pump and close both ends of the pty."""
        self._closing.set()
        self._pump.join(2)
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)


class _PdChannel:
    """A libosdp channel on the shared bus: non-blocking read, write, flush."""

    def __init__(self, bus: SimulatedBus, refuse_sc_at: int | None = None) -> None:
        self.bus = bus
        self.id = 0
        self._refuse_sc_at = refuse_sc_at
        self._parser = StreamParser()
        self.connected = True
        self.reply_delay = 0.0  # a slow PD: its replies still leave in order, as a UART's do
        self.drop_replies = 0
        self.reply_filter: Callable[[bytes], bytes] | None = None
        self._rx = bytearray()
        self._lock = threading.Lock()
        self._late: queue.Queue[tuple[float, bytes]] = queue.Queue()
        self._late_pending = 0  # replies queued behind a delay; later ones wait their turn
        self._late_sender: threading.Thread | None = None

    def hear(self, data: bytes) -> None:
        if not self.connected:
            return
        if self._refuse_sc_at is not None:
            data = self._refuse_chlng(data)
        with self._lock:
            self._rx += data

    def _refuse_chlng(self, data: bytes) -> bytes:
        """Pass every frame on except CHLNG to us, which is answered NAK 5 (no SC support)."""
        passed = bytearray()
        for item in self._parser.feed(data):
            if not isinstance(item, Frame):
                continue
            if item.address == self._refuse_sc_at and item.code == Command.CHLNG:
                nak = encode_frame(item.address | REPLY_FLAG, item.sequence, Reply.NAK,
                                   bytes([NakReason.SC_UNSUPPORTED]))
                self.bus.send_to_cp(nak)
            else:
                passed += item.raw
        return bytes(passed)

    def read(self, max_bytes: int) -> bytes:
        with self._lock:
            data = bytes(self._rx[:max_bytes])
            del self._rx[:max_bytes]
        return data

    def write(self, data: bytes) -> int:
        if not self.connected:
            return len(data)  # unplugged: the bytes go nowhere
        if self.drop_replies > 0:
            self.drop_replies -= 1
            return len(data)
        sent = len(data)
        data = bytes(data)
        if self.reply_filter is not None:
            data = self.reply_filter(data)  # a test's fault: corrupt, cut or forge the reply
        wire = self.bus.wire_time(len(data))
        with self._lock:
            late = self.reply_delay > 0 or self._late_pending > 0
            if late:
                self._late_pending += 1
                self._late.put((time.monotonic() + self.reply_delay + wire, data))
                if self._late_sender is None:
                    self._late_sender = threading.Thread(
                        target=self._send_late, daemon=True, name="osdp-sim-late")
                    self._late_sender.start()
        if not late:
            if wire:
                time.sleep(wire)
            self.bus.send_to_cp(data)
        return sent

    @property
    def late_replies(self) -> int:
        """Return how many replies are still waiting out a delay."""
        with self._lock:
            return self._late_pending

    def _send_late(self) -> None:
        """Send delayed replies one after another: a reply never overtakes an earlier one."""
        while True:
            due, data = self._late.get()
            time.sleep(max(0.0, due - time.monotonic()))
            self.bus.send_to_cp(data)
            with self._lock:
                self._late_pending -= 1

    def flush(self) -> None:
        """Nothing to do: input is consumed frame by frame, output is written at once."""

    def unplug(self) -> None:
        self.connected = False
        with self._lock:
            self._rx.clear()


class SimulatedReader:
    """A card reader with keypad, inputs, outputs, LED and buzzer: a libosdp PD on a bus."""

    def __init__(
        self,
        bus: SimulatedBus,
        address: int,
        scbk: bytes | None = None,
        install_mode: bool = False,
        inputs: int = 1,
        outputs: int = 1,
        *,
        enforce_secure: bool | None = None,
        refuse_secure_channel: bool = False,
    ) -> None:
        """Describe the reader; `enforce_secure` defaults to "has a key".

        ``refuse_secure_channel=True`` makes a reader without secure channel support: libosdp
        always offers one (with the install-mode key when it has none), so the bus answers
        CHLNG with NAK 5 for it, as such a reader does.
        """
        import osdp  # libosdp; imported here so firmware_bridge does not need it

        self._osdp = osdp
        self.address = address
        self.channel = _PdChannel(bus, address if refuse_secure_channel else None)
        bus.attach(self.channel)
        flags = []
        if enforce_secure if enforce_secure is not None else scbk is not None:
            flags.append(osdp.LibFlag.EnforceSecure)
        if install_mode:
            flags.append(osdp.LibFlag.InstallMode)
        caps = [
            (osdp.Capability.OutputControl, 1, outputs),
            (osdp.Capability.LEDControl, 1, 1),
            (osdp.Capability.AudibleControl, 1, 1),
            (osdp.Capability.CardDataFormat, 1, 1),
        ]
        if inputs:
            caps.append((osdp.Capability.ContactStatusMonitoring, 1, inputs))
        self._pd = osdp.PeripheralDevice(
            osdp.PDInfo(address, self.channel, scbk=scbk, flags=flags),
            osdp.PDCapabilities(caps),
            log_level=osdp.LogLevel.Emergency,
            command_handler=self._on_command,
        )
        self.inputs = [False] * inputs
        self.tamper = False
        self.commands: list[ReceivedCommand] = []
        self._commands_changed = threading.Condition()
        self._consumed: dict[str, int] = {}
        self._deferred: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._drop_reply_to: str | None = None

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> SimulatedReader:
        """Start the PD's thread; returns self."""
        self._worker = threading.Thread(target=self._submit_deferred, daemon=True,
                                        name=f"osdp-sim-{self.address}")
        self._worker.start()
        self._pd.start()
        return self

    def stop(self) -> None:
        """Stop answering for good."""
        self.channel.unplug()
        with contextlib.suppress(RuntimeError):
            self._pd.stop()
        self._deferred.put(None)
        if self._worker is not None:
            self._worker.join(2)

    def unplug(self) -> None:
        """Cut the reader off the bus: it hears nothing and its replies are lost."""
        self.channel.unplug()

    def replug(self) -> None:
        """Put the reader back on the bus."""
        self.channel.connected = True

    def drop_reply_after(self, kind: str) -> None:
        """Lose the reply to the next command of `kind` ("output", ...): the CP must retry."""
        self._drop_reply_to = kind

    @property
    def secure_channel_active(self) -> bool:
        """Return the PD's own view of its secure channel."""
        return bool(self._pd.is_sc_active())

    # --- what a person does at the reader --------------------------------------------------------

    def present_card(self, number: int, bits: int = 26) -> None:
        """Present a card: its number encoded as 26- or 34-bit Wiegand with correct parity."""
        self.present_raw(bits, encode(number, bits))

    def present_raw(self, bit_count: int, data: bytes) -> None:
        """Present card bits as they are (MSB first, left-justified), parity or not."""
        self._submit({
            "event": self._osdp.Event.CardRead, "reader_no": 0, "direction": 0,
            "length": bit_count, "format": self._osdp.CardFormat.Wiegand, "data": bytes(data),
        })

    def press_keys(self, digits: str) -> None:
        """Press keys: '0'-'9', '*', '#'."""
        self._submit({"event": self._osdp.Event.KeyPress, "reader_no": 0,
                      "data": keypad_codes(digits)})

    def set_input(self, n: int, active: bool) -> None:
        """Change input `n` (door contact, exit button) and report it."""
        self.inputs[n] = active
        self._submit(self._input_report())

    def set_tamper(self, tamper: bool) -> None:
        """Open or close the tamper switch and report it."""
        self.tamper = tamper
        self._submit(self._local_report())

    def _input_report(self) -> dict[str, Any]:
        return {"event": self._osdp.Event.Status, "type": self._osdp.StatusReportType.Input,
                "report": bytes(int(x) for x in self.inputs)}

    def _local_report(self) -> dict[str, Any]:
        return {"event": self._osdp.Event.Status, "type": self._osdp.StatusReportType.Local,
                "report": bytes([int(self.tamper), 0])}

    def _submit(self, event: dict[str, Any]) -> None:
        if not self._pd.submit_event(event):
            raise RuntimeError("the PD's event queue is full")

    # --- what the CP told the reader -------------------------------------------------------

    def _on_command(self, command: dict[str, Any]) -> tuple[int, None]:
        fields = {k: v for k, v in command.items() if k != "command"}
        received = ReceivedCommand(_COMMAND_KINDS.get(command["command"], "other"), fields,
                                   time.monotonic_ns())
        if received.kind == self._drop_reply_to:
            self._drop_reply_to = None
            self.channel.drop_replies += 1
        if received.kind == "status":
            # Runs on the PD's thread inside its refresh: submit from another thread.
            local = fields.get("type") == self._osdp.StatusReportType.Local
            self._deferred.put(self._local_report() if local else self._input_report())
        with self._commands_changed:
            self.commands.append(received)
            self._commands_changed.notify_all()
        return 0, None

    def _submit_deferred(self) -> None:
        while (event := self._deferred.get()) is not None:
            with contextlib.suppress(RuntimeError):
                self._submit(event)

    def wait_for(self, kind: str, timeout: float = 5.0) -> ReceivedCommand | None:
        """Return the next not yet returned command of `kind`, waiting up to `timeout` s."""
        deadline = time.monotonic() + timeout
        with self._commands_changed:
            while True:
                for i in range(self._consumed.get(kind, 0), len(self.commands)):
                    if self.commands[i].kind == kind:
                        self._consumed[kind] = i + 1
                        return self.commands[i]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._commands_changed.wait(remaining)

    def wait_for_output(self, timeout: float = 5.0) -> ReceivedCommand | None:
        """Return the next output (OUT) command received, waiting up to `timeout` s."""
        return self.wait_for("output", timeout)
