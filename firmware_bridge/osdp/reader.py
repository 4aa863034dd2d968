"""One reader (PD) on the bus: its sequence numbers, secure channel, bring-up and replies.

No I/O happens here. The bus loop in ``panel`` asks a ReaderState for its next frame, writes
it, and hands back the reply (or the timeout); the ReaderState answers with events for the
application. That keeps every protocol decision in one place and testable without a port.

Bring-up, run when a reader first answers and after anything that resets it::

    ID (sequence 0: the PD resets) → CAP → [CHLNG → SCRYPT → [KEYSET]] → LSTAT → ISTAT → online
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from .. import wiegand
from .codec import REPLY_FLAG, SCS_11, SCS_13, Frame, encode_frame
from .events import (
    CardRead,
    Event,
    InputChanged,
    KeypadInput,
    PowerChanged,
    ReaderOffline,
    ReaderOnline,
    ReaderStatus,
    SecureChannelFailed,
    TamperChanged,
)
from .messages import (
    Ack,
    Busy,
    Capability,
    Challenge,
    Command,
    ComSettings,
    InitialRmac,
    InputStatus,
    Keypad,
    LocalStatus,
    Nak,
    NakReason,
    OutputStatus,
    PdId,
    RawCard,
    Reply,
    ReplyDataError,
    ReplyPayload,
    decode_reply,
    keyset_data,
)
from .secure import SCBK_D, SecureChannelError, SecureSession, open_reply, seal_command

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BusTiming:
    """Every time limit of the bus loop, in seconds; tests shorten some of them."""

    reply_timeout: float = 0.2
    """OSDP: a PD must answer within 200 ms."""
    poll_interval: float = 0.05
    """Time between POLLs of one reader; a card read waits at most this long to be fetched."""
    offline_after: float = 8.0
    """OSDP: a PD that has not answered validly for 8 s is offline."""
    probe_interval: float = 0.5
    """Pause after an unanswered probe of an offline reader. One that answers again is back in
    service within this plus the reply timeout plus one bring-up (a few round trips)."""
    sc_retry_interval: float = 5.0
    """How long to wait before trying again a secure channel the reader refused."""
    command_expiry: float = 2.0
    """A door command older than this is dropped: opening a door seconds after the card is
    worse than not opening it."""
    port_retry_interval: float = 1.0
    """How often a missing serial port is opened again."""


class Phase(Enum):
    """Where a reader is in its bring-up."""

    PROBE = "probe"  # not answering: ID with sequence 0 every probe_interval
    CAP = "cap"
    CHLNG = "chlng"
    SCRYPT = "scrypt"
    KEYSET = "keyset"
    LSTAT = "lstat"
    ISTAT = "istat"
    ONLINE = "online"


@dataclass(slots=True)
class PendingCommand:
    """A command the application asked for, waiting for its reader's turn."""

    code: Command
    data: bytes
    queued_at: float
    kind: str = "app"  # "app", or "comset" whose reply changes the reader's address
    future: Future[Any] | None = None


@dataclass(slots=True)
class Outgoing:
    """The frame in flight for a reader: resent byte for byte on a retry."""

    code: int
    frame: bytes
    sequence: int
    first_sent: float
    command: PendingCommand | None = None
    attempts: int = 0
    plain_ack: bytes | None = None
    """For a plain POLL: the PD's ACK to it, byte for byte (see ReaderState.on_plain_ack)."""


def next_sequence(seq: int) -> int:
    """Return the sequence number after `seq`: 0 → 1 → 2 → 3 → 1 (0 only ever resets)."""
    return 1 if seq in (0, 3) else seq + 1


@dataclass(slots=True)
class ReaderState:
    """Everything the CP knows about one reader; mutated only on the bus thread."""

    address: int
    scbk: bytes | None
    timing: BusTiming
    mark: bool = False
    phase: Phase = Phase.PROBE
    sequence: int = 0
    session: SecureSession | None = None
    inflight: Outgoing | None = None
    announced: bool = False
    last_heard: float | None = None
    started_at: float = 0.0
    next_due: float = 0.0
    pd_id: PdId | None = None
    capabilities: tuple[Capability, ...] = ()
    inputs: tuple[bool, ...] | None = None
    tamper: bool = False
    power_failure: bool = False
    install_key: bytes | None = None
    key_future: Future[None] | None = None
    new_baud: int | None = None
    pending_key_request: tuple[bytes, Future[None]] | None = None
    sc_failure_reported: bool = False
    failure: str | None = None
    startup_offline_reported: bool = False
    queue: deque[PendingCommand] = field(default_factory=deque)
    errors: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    plain_polls: dict[tuple[int, int], tuple[bytes, bytes]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    """Plain POLL frames and the ACKs answering them, by (address, sequence): the same bytes
    every time, built once."""

    # --- shared with other threads -----------------------------------------------------------

    def count(self, kind: str, n: int = 1) -> None:
        """Add to an error counter (read by status() on other threads)."""
        with self.lock:
            self.errors[kind] += n

    def snapshot(self) -> ReaderStatus:
        """Return a consistent ReaderStatus."""
        with self.lock:
            errors = dict(self.errors)
        return ReaderStatus(
            address=self.address,
            online=self.announced and self.phase is Phase.ONLINE,
            secure=self.secure,
            last_reply_monotonic=self.last_heard,
            pd_id=self.pd_id,
            capabilities=self.capabilities,
            errors=errors,
        )

    @property
    def secure(self) -> bool:
        """Return True while a secure channel is established."""
        return self.session is not None and self.session.established

    @property
    def in_service(self) -> bool:
        """Return True when application commands can be sent."""
        return self.phase is Phase.ONLINE

    def has_commands(self) -> bool:
        """Return True when application commands wait.

        No lock: other threads only append, the bus thread only pops, and a deque's length is
        read atomically. A command appended just after this returned False wakes the loop.
        """
        return bool(self.queue)

    # --- scheduling ------------------------------------------------------------------------

    def due_at(self) -> float:
        """Return the monotonic time this reader next wants the bus."""
        if self.queue and self.phase is Phase.ONLINE and self.inflight is None:
            return 0.0  # the door path: ahead of everything else (queue read as in has_commands)
        return self.next_due

    def build_next(self, now: float) -> Outgoing:
        """Return the frame to send now: the one in flight (a retry) or a new one."""
        out = self.inflight
        expired = (
            out is not None and out.command is not None and out.command.kind == "app"
            and now - out.first_sent > self.timing.command_expiry
        )
        if out is not None and expired:
            log.warning("reader %d: dropping %s after %.1f s of retries", self.address,
                        Command(out.code).name, now - out.first_sent)
            self.count("command_expired")
            out = None  # replaced below, reusing its sequence number
        if out is None:
            if self.phase is Phase.ONLINE and not self.queue and self.session is None:
                out = self._plain_poll(now)  # most turns of a reader without a secure channel
            else:
                code, data, block, command = self._next_command(now)
                if code == Command.POLL and self.session is None:
                    out = self._plain_poll(now)
                else:
                    frame = self._frame(code, data, block)
                    out = Outgoing(code, frame, self.sequence, now, command)
        out.attempts += 1
        self.inflight = out
        return out

    def _next_command(self, now: float) -> tuple[int, bytes, bytes | None, PendingCommand | None]:
        if self.phase is Phase.ONLINE:
            command = self._pop_command(now) if self.queue else None
            if command is not None:
                return command.code, command.data, None, command
            return Command.POLL, b"", None, None
        match self.phase:
            case Phase.PROBE:
                self.sequence = 0  # every probe resets the PD, whatever state it is in
                self.session = None
                return Command.ID, b"\x00", None, None
            case Phase.CAP:
                return Command.CAP, b"\x00", None, None
            case Phase.CHLNG:
                key, key_type = self._handshake_key()
                self.session = SecureSession(key)
                return Command.CHLNG, self.session.rnd_a, bytes([3, SCS_11, key_type]), None
            case Phase.SCRYPT:
                assert self.session is not None
                _, key_type = self._handshake_key()
                block = bytes([3, SCS_13, key_type])
                return Command.SCRYPT, self.session.server_cryptogram(), block, None
            case Phase.KEYSET:
                assert self.install_key is not None
                return Command.KEYSET, keyset_data(self.install_key), None, None
            case Phase.LSTAT:
                return Command.LSTAT, b"", None, None
            case Phase.ISTAT:
                return Command.ISTAT, b"", None, None
        raise AssertionError(f"no command for phase {self.phase}")  # pragma: no cover

    def _pop_command(self, now: float) -> PendingCommand | None:
        with self.lock:
            while self.queue:
                command = self.queue.popleft()
                if now - command.queued_at <= self.timing.command_expiry:
                    return command
                self.errors["command_expired"] += 1
                if command.future is not None:
                    command.future.set_exception(TimeoutError("command expired in the queue"))
        return None

    def _frame(self, code: int, data: bytes, block: bytes | None) -> bytes:
        if self.secure and block is None:
            assert self.session is not None
            return seal_command(self.session, self.address, self.sequence, code, data,
                                mark=self.mark)
        return encode_frame(self.address, self.sequence, code, data, security_block=block,
                            mark=self.mark)

    def _plain_poll(self, now: float) -> Outgoing:
        """Return a plain POLL, its bytes and those of the ACK answering it built only once."""
        key = (self.address, self.sequence)
        frames = self.plain_polls.get(key)
        if frames is None:
            poll = encode_frame(self.address, self.sequence, Command.POLL, mark=self.mark)
            ack = encode_frame(self.address | REPLY_FLAG, self.sequence, Reply.ACK)
            frames = self.plain_polls[key] = (poll, ack)
        return Outgoing(Command.POLL, frames[0], self.sequence, now, plain_ack=frames[1])

    def _handshake_key(self) -> tuple[bytes, int]:
        if self.install_key is not None:
            return SCBK_D, 0
        assert self.scbk is not None
        return self.scbk, 1

    @property
    def wants_secure(self) -> bool:
        """Return True when this reader may only be used through a secure channel."""
        return self.scbk is not None or self.install_key is not None

    # --- outcomes -------------------------------------------------------------------------

    def on_plain_ack(self, now: float) -> None:
        """The PD answered a plain POLL (``Outgoing.plain_ack``) with exactly that ACK.

        The reply a plain reader sends to nearly every POLL, recognised by the bus loop by
        comparing bytes: this does what ``on_reply`` does for it (nothing to decode, no
        event, no command to resolve), without parsing the same eight bytes again each time.
        """
        self.inflight = None
        self.sequence = 1 if self.sequence == 3 else self.sequence + 1  # next_sequence(), inlined
        self.last_heard = now
        self.next_due = now + self.timing.poll_interval

    def on_timeout(self, now: float) -> None:
        """No valid reply came in time: resend later, or start over if bring-up stalled."""
        if self.phase is Phase.PROBE:
            self.inflight = None
            self.next_due = now + self.timing.probe_interval
            return
        self.count("timeout")
        if self.phase is not Phase.ONLINE:
            # A half-done bring-up is not worth resuming: start over from sequence 0.
            self.restart(now + self.timing.probe_interval)
            return
        self.next_due = now  # resend the same bytes on this reader's next turn

    def restart(self, when: float) -> None:
        """Forget the session and begin bring-up again (ID with sequence 0) at `when`."""
        self.phase = Phase.PROBE
        self.session = None
        self.inflight = None
        self.sequence = 0
        self.next_due = when

    def check_offline(self, now: float) -> list[Event]:
        """Take the reader out of service after offline_after without a valid reply."""
        limit = self.timing.offline_after
        if self.announced:
            assert self.last_heard is not None
            if now - self.last_heard > limit:
                return self._go_offline(now, f"no valid reply for {limit:g} s")
        elif not self.startup_offline_reported and now - self.started_at > limit:
            # Tell the application once that a reader never came into service.
            self.startup_offline_reported = True
            reason = self.failure or f"no reply within {limit:g} s of start"
            return [ReaderOffline(self.address, reason)]
        return []

    def port_lost(self, now: float, reason: str) -> list[Event]:
        """The serial port failed: the reader is out of service until it answers again."""
        events = self._go_offline(now, reason) if self.announced else []
        self.restart(now)
        return events

    def _go_offline(self, now: float, reason: str) -> list[Event]:
        self.announced = False
        self.restart(now)
        with self.lock:
            dropped = list(self.queue)
            self.queue.clear()
        for command in dropped:
            if command.future is not None:
                command.future.set_exception(ConnectionError(f"reader offline: {reason}"))
        log.warning("reader %d offline: %s", self.address, reason)
        return [ReaderOffline(self.address, reason)]

    def on_reply(self, frame: Frame, received_ns: int, now: float) -> list[Event]:
        """Handle the reply to the frame in flight (address and sequence already checked)."""
        try:
            data = self._open(frame)
        except SecureChannelError as error:
            self.count(error.kind)
            log.warning("reader %d: %s; setting the secure channel up again", self.address, error)
            self.restart(now)
            return []
        try:
            payload = decode_reply(frame.code, data)
        except ReplyDataError as error:
            self.count(error.kind)
            self.next_due = now
            return []
        if isinstance(payload, Busy):
            self.count("busy")
            self.next_due = now + self.timing.poll_interval
            return []
        sent, self.inflight = self.inflight, None
        self.sequence = next_sequence(self.sequence)
        self.last_heard = now
        self.next_due = now + self.timing.poll_interval
        if isinstance(payload, Nak):
            events = self._on_nak(payload, sent, now)
        else:
            events = self._on_payload(payload, sent, received_ns, now)
        if self.phase not in (Phase.PROBE, Phase.ONLINE):
            self.next_due = now  # bring-up goes on at once, not at the polling pace
        return events

    def _open(self, frame: Frame) -> bytes:
        if self.secure:
            assert self.session is not None
            if frame.security_block is None and frame.code == 0x41:
                return frame.data  # a plain NAK: the PD dropped the session; handled as a NAK
            return open_reply(self.session, frame)
        if frame.mac is not None:
            raise SecureChannelError("secured reply without a secure channel")
        return frame.data

    def _on_nak(self, nak: Nak, sent: Outgoing | None, now: float) -> list[Event]:
        self.count(f"nak_{nak.reason}")
        reason = nak.reason
        if reason == NakReason.SEQUENCE:
            self.restart(now)
            return []
        if self.phase in (Phase.CHLNG, Phase.SCRYPT):
            return self._sc_failed(now, f"reader refused the secure channel (NAK {reason})")
        if reason in (NakReason.SC_CONDITIONS, NakReason.SC_UNSUPPORTED):
            if self.wants_secure:
                self.count("sc_lost")
                self.restart(now)
                return []
            if self.phase is not Phase.PROBE:
                return self._sc_failed(now, "reader demands a secure channel; no key configured")
        match self.phase:
            case Phase.PROBE:
                self.phase = Phase.CAP
            case Phase.CAP:
                self.phase = Phase.CHLNG if self.wants_secure else Phase.LSTAT
            case Phase.LSTAT:
                self.phase = Phase.ISTAT  # a reader without local status: carry on
            case Phase.ISTAT:
                return self._come_online(now)
            case Phase.KEYSET:
                return self._sc_failed(now, f"reader refused the new key (NAK {reason})")
            case Phase.ONLINE:
                if sent is not None and sent.command is not None:
                    log.warning("reader %d refused %s: NAK %d", self.address,
                                Command(sent.code).name, reason)
                    if sent.command.future is not None:
                        sent.command.future.set_exception(
                            ConnectionRefusedError(f"reader answered NAK {reason}"))
        return []

    def _sc_failed(self, now: float, reason: str) -> list[Event]:
        self.count("sc_failed")
        self.failure = f"secure channel failed: {reason}"
        events: list[Event] = []
        if self.sc_failure_reported:
            log.debug("reader %d: secure channel failed again: %s", self.address, reason)
        else:
            log.error("reader %d: secure channel failed: %s", self.address, reason)
            self.sc_failure_reported = True
            events.append(SecureChannelFailed(self.address, reason))
        if self.key_future is not None and self.install_key is not None:
            self.key_future.set_exception(SecureChannelError(reason))
            self.key_future = None
            self.install_key = None
        if self.announced:
            events += self._go_offline(now, self.failure)
        self.restart(now + self.timing.sc_retry_interval)
        return events

    def _on_payload(
        self, payload: ReplyPayload, sent: Outgoing | None, received_ns: int, now: float
    ) -> list[Event]:
        if self.phase is Phase.ONLINE:  # every poll: skip the bring-up cases
            return self._online_reply(payload, sent, received_ns, now)
        match self.phase:
            case Phase.PROBE:
                if isinstance(payload, PdId):
                    self.pd_id = payload
                self.phase = Phase.CAP
            case Phase.CAP:
                if isinstance(payload, tuple):
                    self.capabilities = payload
                self.phase = Phase.CHLNG if self.wants_secure else Phase.LSTAT
            case Phase.CHLNG:
                assert self.session is not None
                if not isinstance(payload, Challenge):
                    return self._sc_failed(now, f"CHLNG answered with {type(payload).__name__}")
                try:
                    self.session.check_client_cryptogram(payload.rnd_b, payload.cryptogram)
                except SecureChannelError as error:
                    return self._sc_failed(now, str(error))
                self.phase = Phase.SCRYPT
            case Phase.SCRYPT:
                assert self.session is not None
                if not isinstance(payload, InitialRmac):
                    return self._sc_failed(now, f"SCRYPT answered with {type(payload).__name__}")
                try:
                    self.session.accept_initial_rmac(payload.rmac)
                except SecureChannelError as error:
                    return self._sc_failed(now, str(error))
                self.phase = Phase.KEYSET if self.install_key is not None else Phase.LSTAT
            case Phase.KEYSET:
                if not isinstance(payload, Ack):
                    return self._sc_failed(now, f"KEYSET answered with {type(payload).__name__}")
                log.info("reader %d accepted its new key", self.address)
                self.scbk, self.install_key = self.install_key, None
                self.restart(now)  # the PD drops the session: set it up with the new key
            case Phase.LSTAT:
                if isinstance(payload, LocalStatus):
                    return self._status_events(payload) + self._advance(Phase.ISTAT)
                self.phase = Phase.ISTAT
            case Phase.ISTAT:
                if isinstance(payload, InputStatus):
                    self.inputs = payload.inputs
                return self._come_online(now)
        return []

    def _advance(self, phase: Phase) -> list[Event]:
        self.phase = phase
        return []

    def _come_online(self, now: float) -> list[Event]:
        if self.wants_secure and not self.secure:  # defence in depth: never plain with a key
            return self._sc_failed(now, "bring-up ended without a secure channel")
        self.phase = Phase.ONLINE
        self.sc_failure_reported = False
        self.failure = None
        self.startup_offline_reported = True
        events: list[Event] = []
        if not self.announced:
            self.announced = True
            log.info("reader %d online (secure=%s)", self.address, self.secure)
            events.append(ReaderOnline(self.address, self.secure, self.pd_id))
            if self.inputs is not None:
                events.append(InputChanged(self.address, self.inputs))
        if self.key_future is not None and self.install_key is None and self.secure:
            self.key_future.set_result(None)
            self.key_future = None
        return events

    def _status_events(self, status: LocalStatus) -> list[Event]:
        events: list[Event] = []
        if status.tamper != self.tamper:
            self.tamper = status.tamper
            events.append(TamperChanged(self.address, status.tamper))
        if status.power_failure != self.power_failure:
            self.power_failure = status.power_failure
            events.append(PowerChanged(self.address, status.power_failure))
        return events

    def _online_reply(
        self, payload: ReplyPayload, sent: Outgoing | None, received_ns: int, now: float
    ) -> list[Event]:
        command = sent.command if sent is not None else None
        if isinstance(payload, (Ack, OutputStatus)):  # the answer to nearly every poll
            if command is not None and command.future is not None:
                command.future.set_result(payload)
            return []
        if isinstance(payload, RawCard):
            try:
                card = wiegand.decode(payload.bit_count, payload.data)
            except ValueError:
                self.count("bad_reply_data")
                return []
            return [CardRead(self.address, payload.bit_count, payload.data, card.number,
                             card.parity_ok, card.format, received_ns)]
        if isinstance(payload, Keypad):
            return [KeypadInput(self.address, payload.digits, received_ns)]
        if isinstance(payload, InputStatus):
            self.inputs = payload.inputs
            return [InputChanged(self.address, payload.inputs)]
        if isinstance(payload, LocalStatus):
            return self._status_events(payload)
        if isinstance(payload, ComSettings) and command is not None and command.kind == "comset":
            log.info("reader %d moved to address %d at %d baud", self.address, payload.address,
                     payload.baud)
            self.address = payload.address
            self.new_baud = payload.baud
            if command.future is not None:
                command.future.set_result(payload)
            self.restart(now)
            return []
        self.count("unexpected_reply")
        return []
