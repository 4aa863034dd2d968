"""OSDP frame encoding, validation and a resynchronising stream parser.

A frame on the wire::

    [FF] 53 ADDR LEN_LO LEN_HI CTRL [SB_LEN SB_TYPE SB_DATA..] CODE DATA.. [MAC×4] CRC_LO CRC_HI

LEN counts everything from SOM through the check bytes (the mark byte excluded). CTRL carries
the sequence number (bits 0-1), "CRC-16 follows" (bit 2) and "security block present" (bit 3).
"""

from __future__ import annotations

from dataclasses import dataclass

from .crc import checksum8, crc16

SOM = 0x53
MARK = 0xFF
BROADCAST = 0x7F
REPLY_FLAG = 0x80

CTRL_SEQ_MASK = 0x03
CTRL_CRC = 0x04
CTRL_SCB = 0x08

HEADER_LEN = 5  # SOM, ADDR, LEN (2), CTRL
MAC_LEN = 4
#: Largest frame accepted. OSDP sets no hard limit; libosdp's buffers are 256 bytes and the
#: biggest message a door reader sends (PDID, a long card) is far below this. A cap keeps a
#: corrupted LEN from making the parser wait for kilobytes that will never come.
MAX_FRAME_LEN = 1440
#: SOM ADDR LEN LEN CTRL CODE + one check byte.
MIN_FRAME_LEN = HEADER_LEN + 1 + 1

# Security block types (OSDP 2.2 annex D).
SCS_11 = 0x11  # CHLNG
SCS_12 = 0x12  # CCRYPT
SCS_13 = 0x13  # SCRYPT
SCS_14 = 0x14  # RMAC_I
SCS_15 = 0x15  # command with MAC, data (if any) in clear
SCS_16 = 0x16  # reply with MAC, data (if any) in clear
SCS_17 = 0x17  # command, MAC, encrypted data
SCS_18 = 0x18  # reply, MAC, encrypted data
MAC_BLOCK_TYPES = frozenset({SCS_15, SCS_16, SCS_17, SCS_18})


class OsdpError(Exception):
    """Base of every error raised by this package's protocol code."""

    kind = "osdp_error"


class FrameError(OsdpError):
    """A frame (or what looked like the start of one) could not be accepted."""

    kind = "bad_frame"


class BadCheck(FrameError):
    """The CRC-16 or checksum does not match the frame's contents."""

    kind = "bad_check"


class BadLength(FrameError):
    """The LEN field is below the minimum, above MAX_FRAME_LEN, or disagrees with the frame."""

    kind = "bad_length"


class BadSecurityBlock(FrameError):
    """The security block's length does not fit the frame."""

    kind = "bad_security_block"


class Truncated(FrameError):
    """A frame was started but its remaining bytes never arrived."""

    kind = "truncated"


class Garbage(FrameError):
    """Bytes that were not part of any frame were skipped to find the next SOM."""

    kind = "garbage"

    def __init__(self, count: int) -> None:
        super().__init__(f"skipped {count} byte(s) before SOM")
        self.count = count


@dataclass(frozen=True, slots=True)
class Frame:
    """One validated OSDP frame (command or reply); data is as on the wire (maybe encrypted)."""

    address: int
    """The ADDR byte as sent: a PD's replies carry its address | 0x80."""
    sequence: int
    use_crc: bool
    security_block: bytes | None
    """The whole block: [length, type, data...], or None when CTRL bit 3 is clear."""
    code: int
    data: bytes
    mac: bytes | None
    raw: bytes
    """The frame from SOM through the check bytes (mark byte excluded)."""

    @property
    def security_type(self) -> int | None:
        """Return the security block type (SCS_xx), or None without a block."""
        return self.security_block[1] if self.security_block else None

    @property
    def mac_input(self) -> bytes:
        """Return the bytes a MAC covers: SOM through the end of the data."""
        end = len(self.raw) - (2 if self.use_crc else 1) - (MAC_LEN if self.mac else 0)
        return self.raw[:end]


def encode_frame(
    address: int,
    sequence: int,
    code: int,
    data: bytes = b"",
    *,
    security_block: bytes | None = None,
    mac: bytes | None = None,
    mark: bool = False,
) -> bytes:
    """Build a frame with CRC-16; `mac` (4 bytes) is appended after the data when given.

    The MAC must be computed over the frame's own header, which includes LEN, so secure
    callers use `frame_length()` and `encode_header()` first; see `secure.SecureSession`.
    """
    body = (security_block or b"") + bytes([code]) + data
    length = frame_length(len(body), with_mac=mac is not None)
    head = encode_header(address, sequence, length, security=security_block is not None)
    packet = head + body + (mac or b"")
    crc = crc16(packet)
    out = packet + bytes([crc & 0xFF, crc >> 8])
    return (bytes([MARK]) + out) if mark else out


def frame_length(body_len: int, *, with_mac: bool) -> int:
    """Return the LEN value of a CRC-16 frame whose security block + code + data is `body_len`."""
    return HEADER_LEN + body_len + (MAC_LEN if with_mac else 0) + 2


def encode_header(address: int, sequence: int, length: int, *, security: bool) -> bytes:
    """Return SOM ADDR LEN CTRL for a CRC-16 frame."""
    if not 0 <= address <= 0xFF:
        raise ValueError(f"address out of range: {address}")
    if not 0 <= sequence <= 3:
        raise ValueError(f"sequence out of range: {sequence}")
    if not MIN_FRAME_LEN <= length <= MAX_FRAME_LEN:
        raise ValueError(f"frame length out of range: {length}")
    ctrl = sequence | CTRL_CRC | (CTRL_SCB if security else 0)
    return bytes([SOM, address, length & 0xFF, length >> 8, ctrl])


def parse_frame(packet: bytes) -> Frame:
    """Validate one complete frame starting at SOM and return it; raise a FrameError if bad."""
    if len(packet) < MIN_FRAME_LEN or packet[0] != SOM:
        raise BadLength(f"not a frame: {len(packet)} byte(s)")
    length = packet[2] | (packet[3] << 8)
    if length != len(packet):
        raise BadLength(f"LEN says {length}, frame has {len(packet)} byte(s)")
    if length > MAX_FRAME_LEN:
        raise BadLength(f"LEN {length} above {MAX_FRAME_LEN}")
    ctrl = packet[4]
    use_crc = bool(ctrl & CTRL_CRC)
    check_len = 2 if use_crc else 1
    if length < HEADER_LEN + 1 + check_len:
        raise BadLength(f"LEN {length} too short for a {'CRC' if use_crc else 'checksum'} frame")
    if use_crc:
        expected = packet[-2] | (packet[-1] << 8)
        if crc16(packet[:-2]) != expected:
            raise BadCheck("CRC-16 mismatch")
    elif checksum8(packet[:-1]) != packet[-1]:
        raise BadCheck("checksum mismatch")

    end = length - check_len  # one past the last byte of code/data/MAC
    pos = HEADER_LEN
    security_block: bytes | None = None
    if ctrl & CTRL_SCB:
        sb_len = packet[pos]
        if sb_len < 2 or pos + sb_len >= end:
            raise BadSecurityBlock(f"security block length {sb_len} does not fit the frame")
        security_block = bytes(packet[pos : pos + sb_len])
        pos += sb_len
    mac: bytes | None = None
    if security_block is not None and security_block[1] in MAC_BLOCK_TYPES:
        if end - MAC_LEN <= pos:
            raise BadSecurityBlock("frame too short for its MAC")
        mac = bytes(packet[end - MAC_LEN : end])
        end -= MAC_LEN
    return Frame(
        address=packet[1],
        sequence=ctrl & CTRL_SEQ_MASK,
        use_crc=use_crc,
        security_block=security_block,
        code=packet[pos],
        data=bytes(packet[pos + 1 : end]),
        mac=mac,
        raw=bytes(packet),
    )


class StreamParser:
    """Split a byte stream into frames, resynchronising on SOM after anything bad.

    `feed()` never raises on bad input: it returns frames and FrameError instances in the
    order found. Bytes are only thrown away one at a time from a rejected SOM, so a real
    frame hidden behind a false SOM (garbage that happened to contain 0x53) is still found.

    >>> p = StreamParser()
    >>> [type(x).__name__ for x in p.feed(b"\\x00\\x01" + encode_frame(0x81, 1, 0x40))]
    ['Garbage', 'Frame']
    """

    def __init__(self, max_frame_len: int = MAX_FRAME_LEN) -> None:
        self._buf = bytearray()
        self._max = max_frame_len

    @property
    def pending(self) -> int:
        """Return how many bytes are buffered waiting for the rest of a frame."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame | FrameError]:
        """Add received bytes; return every complete frame or error they finish."""
        self._buf += data
        return self._scan(final=False)

    def flush(self) -> list[FrameError | Frame]:
        """Give up waiting (reply timeout): report the partial frame and rescan behind it."""
        return self._scan(final=True)

    def clear(self) -> None:
        """Drop everything buffered without reporting it."""
        self._buf.clear()

    def _scan(self, *, final: bool) -> list[Frame | FrameError]:
        out: list[Frame | FrameError] = []
        buf = self._buf
        while buf:
            start = buf.find(SOM)
            if start < 0:
                start = len(buf)
            if start:
                skipped = bytes(buf[:start])
                del buf[:start]
                # Mark bytes (0xFF) before a SOM are allowed line conditioning, not garbage.
                if skipped.strip(bytes([MARK])):
                    out.append(Garbage(start))
                continue
            if len(buf) < HEADER_LEN:
                if final:
                    out.append(Truncated(f"{len(buf)} byte(s) of a header"))
                    del buf[:1]
                    continue
                break
            length = buf[2] | (buf[3] << 8)
            check_len = 2 if buf[4] & CTRL_CRC else 1
            if length < HEADER_LEN + 1 + check_len or length > self._max:
                out.append(BadLength(f"LEN {length}"))
                del buf[:1]
                continue
            if len(buf) < length:
                if final:
                    out.append(Truncated(f"{len(buf)} of {length} byte(s)"))
                    del buf[:1]
                    continue
                break
            try:
                frame = parse_frame(bytes(buf[:length]))
            except FrameError as error:
                out.append(error)
                del buf[:1]
                continue
            del buf[:length]
            out.append(frame)
        return out
