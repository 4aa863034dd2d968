"""What the control panel tells the application, and what it reports about each reader.

Events are delivered by calling ``on_event(event)`` on the bus thread (see ``panel``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .messages import Capability, PdId


@dataclass(frozen=True, slots=True)
class CardRead:
    """A card was presented at a reader."""

    address: int
    bit_count: int
    data: bytes
    """The bits as the reader sent them: MSB first, left-justified."""
    number: int
    """Card number without parity (SPEC §6); for unknown formats the value of all bits."""
    parity_ok: bool | None
    """False means a bad read (deny as ``bad_read``); None when the format has no known parity."""
    format: str
    """"h10301" (26 bits), "wiegand34" or "raw"."""
    received_at: int = field(default=0, compare=False)
    """time.monotonic_ns() when the frame's last byte was read."""


@dataclass(frozen=True, slots=True)
class KeypadInput:
    """Keys were pressed at a reader ('0'-'9', '*', '#')."""

    address: int
    digits: str
    received_at: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class InputChanged:
    """A reader's inputs (door contact, exit button...), active = True; sent on (re)connect too."""

    address: int
    inputs: tuple[bool, ...]


@dataclass(frozen=True, slots=True)
class TamperChanged:
    """A reader's tamper switch changed."""

    address: int
    tamper: bool


@dataclass(frozen=True, slots=True)
class PowerChanged:
    """A reader reported its power failing or back to normal."""

    address: int
    power_failure: bool


@dataclass(frozen=True, slots=True)
class ReaderOnline:
    """A reader answers and is in service (after ID, CAP, secure channel and status)."""

    address: int
    secure: bool
    pd_id: PdId | None


@dataclass(frozen=True, slots=True)
class ReaderOffline:
    """A reader left service: no valid reply for the offline time, port lost, or channel lost."""

    address: int
    reason: str


@dataclass(frozen=True, slots=True)
class SecureChannelFailed:
    """A reader with a key could not set up (or lost) its secure channel; it is not used."""

    address: int
    reason: str


Event = (
    CardRead | KeypadInput | InputChanged | TamperChanged | PowerChanged | ReaderOnline
    | ReaderOffline | SecureChannelFailed
)


@dataclass(frozen=True, slots=True)
class ReaderStatus:
    """A snapshot of one reader, for diagnostics pages and health checks."""

    address: int
    online: bool
    secure: bool
    last_reply_monotonic: float | None
    pd_id: PdId | None
    capabilities: tuple[Capability, ...]
    errors: dict[str, int]
    """Counts per kind: bad_check, bad_length, garbage, truncated, timeout, wrong_address,
    wrong_sequence, bad_mac, bad_reply_data, nak_<reason>, ..."""
