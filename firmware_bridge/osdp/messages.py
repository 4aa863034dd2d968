"""OSDP command payloads the CP builds and reply payloads it decodes (plain data, no framing)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from .codec import OsdpError


class Command(IntEnum):
    """Command codes the CP sends."""

    POLL = 0x60
    ID = 0x61
    CAP = 0x62
    LSTAT = 0x64
    ISTAT = 0x65
    OSTAT = 0x66
    OUT = 0x68
    LED = 0x69
    BUZ = 0x6A
    COMSET = 0x6E
    KEYSET = 0x75
    CHLNG = 0x76
    SCRYPT = 0x77


class Reply(IntEnum):
    """Reply codes a PD sends."""

    ACK = 0x40
    NAK = 0x41
    PDID = 0x45
    PDCAP = 0x46
    LSTATR = 0x48
    ISTATR = 0x49
    OSTATR = 0x4A
    RAW = 0x50
    KEYPAD = 0x53
    COM = 0x54
    CCRYPT = 0x76
    RMAC_I = 0x78
    BUSY = 0x79


class NakReason(IntEnum):
    """Reasons a PD gives in a NAK (OSDP 2.2 table 47)."""

    NONE = 0
    BAD_CHECK = 1
    BAD_LENGTH = 2
    UNKNOWN_COMMAND = 3
    SEQUENCE = 4
    SC_UNSUPPORTED = 5
    SC_CONDITIONS = 6
    BIO_TYPE = 7
    BIO_FORMAT = 8
    UNABLE_TO_PROCESS = 9


class OutputControl(IntEnum):
    """Control codes of osdp_OUT."""

    NOP = 0
    OFF_PERMANENT_ABORT_TIMER = 1
    ON_PERMANENT_ABORT_TIMER = 2
    OFF_PERMANENT_AFTER_TIMER = 3
    ON_PERMANENT_AFTER_TIMER = 4
    ON_TIMED = 5
    OFF_TIMED = 6


class LedColor(IntEnum):
    """Colours of osdp_LED."""

    BLACK = 0
    RED = 1
    GREEN = 2
    AMBER = 3
    BLUE = 4
    MAGENTA = 5
    CYAN = 6
    WHITE = 7


class ReplyDataError(OsdpError):
    """A reply's data does not have the shape its code requires."""

    kind = "bad_reply_data"


# --- command payloads ------------------------------------------------------------------------


def _u8(name: str, value: int) -> int:
    if not 0 <= value <= 0xFF:
        raise ValueError(f"{name} must fit in one byte, got {value}")
    return value


def _u16(name: str, value: int) -> bytes:
    if not 0 <= value <= 0xFFFF:
        raise ValueError(f"{name} must fit in two bytes, got {value}")
    return value.to_bytes(2, "little")


def units_100ms(name: str, ms: float, *, limit: int = 0xFF) -> int:
    """Convert milliseconds to OSDP's 100 ms units, rounding to nearest; raise if it won't fit."""
    units = round(ms / 100)
    if not 0 <= units <= limit:
        raise ValueError(f"{name} of {ms} ms does not fit in OSDP's 100 ms units")
    return units


def out_data(output: int, control: OutputControl, timer_100ms: int = 0) -> bytes:
    """Return osdp_OUT data for one output."""
    return bytes([_u8("output", output), int(control)]) + _u16("timer", timer_100ms)


def led_data(
    *,
    led: int,
    color: LedColor,
    off_color: LedColor,
    on_100ms: int,
    off_100ms: int,
    timer_100ms: int,
    permanent: bool,
    reader: int = 0,
) -> bytes:
    """Return osdp_LED data (14 bytes): a temporary pattern, or a new permanent state."""
    pattern = bytes([_u8("on time", on_100ms), _u8("off time", off_100ms), color, off_color])
    if permanent:
        temporary = bytes([0, 0, 0, 0, 0]) + _u16("timer", 0)  # NOP
        steady = bytes([1]) + pattern  # set permanent state
    else:
        temporary = bytes([2]) + pattern + _u16("timer", timer_100ms)  # set temporary state
        steady = bytes(5)  # NOP
    return bytes([_u8("reader", reader), _u8("led", led)]) + temporary + steady


def buz_data(*, on_100ms: int, off_100ms: int, count: int, reader: int = 0) -> bytes:
    """Return osdp_BUZ data using the default tone (2)."""
    return bytes([_u8("reader", reader), 2, _u8("on", on_100ms), _u8("off", off_100ms),
                  _u8("count", count)])


def comset_data(address: int, baud: int) -> bytes:
    """Return osdp_COMSET data: the new address and baud rate."""
    if not 0 <= address <= 0x7E:
        raise ValueError(f"address must be 0..126, got {address}")
    return bytes([address]) + baud.to_bytes(4, "little")


def keyset_data(scbk: bytes) -> bytes:
    """Return osdp_KEYSET data installing a new secure channel base key."""
    if len(scbk) != 16:
        raise ValueError("SCBK must be 16 bytes")
    return bytes([1, 16]) + scbk


# --- reply payloads --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Nak:
    """osdp_NAK: the PD refused the command."""

    reason: int
    detail: bytes = b""


@dataclass(frozen=True, slots=True)
class PdId:
    """osdp_PDID: who the reader says it is."""

    vendor_code: int
    model: int
    version: int
    serial_number: int
    firmware: str


@dataclass(frozen=True, slots=True)
class Capability:
    """One osdp_PDCAP entry."""

    function: int
    compliance: int
    count: int


@dataclass(frozen=True, slots=True)
class LocalStatus:
    """osdp_LSTATR: tamper and power."""

    tamper: bool
    power_failure: bool


@dataclass(frozen=True, slots=True)
class InputStatus:
    """osdp_ISTATR: one flag per input."""

    inputs: tuple[bool, ...]


@dataclass(frozen=True, slots=True)
class OutputStatus:
    """osdp_OSTATR: one flag per output."""

    outputs: tuple[bool, ...]


@dataclass(frozen=True, slots=True)
class RawCard:
    """osdp_RAW: card bits, MSB first, left-justified."""

    reader: int
    format: int
    bit_count: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Keypad:
    """osdp_KEYPAD: keys pressed, as text."""

    reader: int
    digits: str


@dataclass(frozen=True, slots=True)
class ComSettings:
    """osdp_COM: the address and baud rate the PD switched to."""

    address: int
    baud: int


@dataclass(frozen=True, slots=True)
class Challenge:
    """osdp_CCRYPT: the PD's answer to CHLNG."""

    client_uid: bytes
    rnd_b: bytes
    cryptogram: bytes


@dataclass(frozen=True, slots=True)
class InitialRmac:
    """osdp_RMAC_I: the PD's first R-MAC."""

    rmac: bytes


@dataclass(frozen=True, slots=True)
class Ack:
    """osdp_ACK."""


@dataclass(frozen=True, slots=True)
class Busy:
    """osdp_BUSY: ask again later with the same sequence number."""


ReplyPayload = (
    Ack | Nak | PdId | tuple[Capability, ...] | LocalStatus | InputStatus | OutputStatus
    | RawCard | Keypad | ComSettings | Challenge | InitialRmac | Busy
)

#: OSDP keypad codes that are not ASCII digits.
_KEYPAD_SPECIAL = {0x7F: "*", 0x0D: "#"}


def keypad_text(codes: bytes) -> str:
    """Return the keys as text: '0'-'9', 0x7F → '*', 0x0D → '#'; anything else → '?'."""
    out = []
    for code in codes:
        if 0x30 <= code <= 0x39:
            out.append(chr(code))
        else:
            out.append(_KEYPAD_SPECIAL.get(code, "?"))
    return "".join(out)


def keypad_codes(text: str) -> bytes:
    """Return OSDP keypad codes for text made of '0'-'9', '*' and '#'."""
    reverse = {v: k for k, v in _KEYPAD_SPECIAL.items()}
    out = bytearray()
    for char in text:
        if char.isdigit() and char.isascii():
            out.append(ord(char))
        elif char in reverse:
            out.append(reverse[char])
        else:
            raise ValueError(f"not a keypad key: {char!r}")
    return bytes(out)


def _need(code: Reply, data: bytes, exact: int | None = None, minimum: int = 0) -> None:
    if exact is not None and len(data) != exact:
        raise ReplyDataError(f"{code.name} needs {exact} data byte(s), got {len(data)}")
    if len(data) < minimum:
        raise ReplyDataError(f"{code.name} needs at least {minimum} data byte(s), got {len(data)}")


_REPLIES = {int(reply): reply for reply in Reply}
"""Reply codes by value: a dict lookup, where ``Reply(code)`` goes through the enum machinery."""
_ACK = Ack()


def decode_reply(code: int, data: bytes) -> ReplyPayload:
    """Decode a reply's (decrypted) data by its code; raise ReplyDataError on a bad shape."""
    reply = _REPLIES.get(code)
    if reply is None:
        raise ReplyDataError(f"unknown reply code 0x{code:02x}")
    match reply:
        case Reply.ACK:  # the answer to nearly every POLL: one shared immutable instance
            return _ACK
        case Reply.BUSY:
            return Busy()
        case Reply.NAK:
            _need(reply, data, minimum=1)
            return Nak(data[0], data[1:])
        case Reply.PDID:
            _need(reply, data, exact=12)
            return PdId(
                vendor_code=int.from_bytes(data[0:3], "little"),
                model=data[3],
                version=data[4],
                serial_number=int.from_bytes(data[5:9], "little"),
                firmware=f"{data[9]}.{data[10]}.{data[11]}",
            )
        case Reply.PDCAP:
            if len(data) % 3:
                raise ReplyDataError(f"PDCAP data of {len(data)} byte(s) is not triples")
            return tuple(Capability(*data[i : i + 3]) for i in range(0, len(data), 3))
        case Reply.LSTATR:
            _need(reply, data, exact=2)
            return LocalStatus(tamper=data[0] != 0, power_failure=data[1] != 0)
        case Reply.ISTATR:
            return InputStatus(tuple(b != 0 for b in data))
        case Reply.OSTATR:
            return OutputStatus(tuple(b != 0 for b in data))
        case Reply.RAW:
            _need(reply, data, minimum=4)
            bit_count = data[2] | (data[3] << 8)
            if bit_count == 0 or len(data) - 4 != (bit_count + 7) // 8:
                raise ReplyDataError(f"RAW says {bit_count} bits but carries {len(data) - 4} bytes")
            return RawCard(reader=data[0], format=data[1], bit_count=bit_count, data=data[4:])
        case Reply.KEYPAD:
            _need(reply, data, minimum=2)
            if data[1] != len(data) - 2:
                raise ReplyDataError(f"KEYPAD says {data[1]} keys but carries {len(data) - 2}")
            return Keypad(reader=data[0], digits=keypad_text(data[2:]))
        case Reply.COM:
            _need(reply, data, exact=5)
            return ComSettings(address=data[0], baud=int.from_bytes(data[1:5], "little"))
        case Reply.CCRYPT:
            _need(reply, data, exact=32)
            return Challenge(client_uid=data[0:8], rnd_b=data[8:16], cryptogram=data[16:32])
        case Reply.RMAC_I:
            _need(reply, data, exact=16)
            return InitialRmac(data)
    raise ReplyDataError(f"unhandled reply code 0x{code:02x}")  # pragma: no cover
