"""CRC, frame encoding and the stream parser, with vectors produced by libosdp's PD."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_bridge.osdp.codec import (
    MAX_FRAME_LEN,
    BadCheck,
    BadLength,
    BadSecurityBlock,
    Frame,
    Garbage,
    StreamParser,
    Truncated,
    encode_frame,
    parse_frame,
)
from firmware_bridge.osdp.crc import checksum8, crc16

# Replies captured from libosdp 3.2.9's PeripheralDevice at address 1 (an independent
# implementation of the same CRC and framing).
LIBOSDP_ACK_SEQ0 = bytes.fromhex("5381080004400806")
LIBOSDP_NAK6_SEQ0 = bytes.fromhex("538109000441066091")
LIBOSDP_PDID_SEQ1 = bytes.fromhex("5381140005 45 bebafe0101afbeaddeaddead e881".replace(" ", ""))


def test_crc16_check_value() -> None:
    # The catalogue check value of CRC-16/AUG-CCITT.
    assert crc16(b"123456789") == 0xE5CC


def test_crc16_by_hand() -> None:
    # One byte, bit by bit: init 0x1D0F, poly 0x1021, no reflection.
    crc = 0x1D0F ^ (0x53 << 8)
    for _ in range(8):
        crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
    assert crc16(b"\x53") == crc & 0xFFFF


def _crc16_bitwise(data: bytes) -> int:
    crc = 0x1D0F
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


@given(st.binary(max_size=300))
def test_crc16_matches_the_bitwise_definition(data: bytes) -> None:
    assert crc16(data) == _crc16_bitwise(data)
    assert crc16(data[1:], crc16(data[:1])) == crc16(data)  # continues from a partial CRC


def test_checksum8() -> None:
    assert (sum(b"\x53\x01\x07\x00\x00\x60") + checksum8(b"\x53\x01\x07\x00\x00\x60")) % 256 == 0


@pytest.mark.parametrize(
    ("raw", "code", "seq", "data"),
    [
        (LIBOSDP_ACK_SEQ0, 0x40, 0, b""),
        (LIBOSDP_NAK6_SEQ0, 0x41, 0, b"\x06"),
        (LIBOSDP_PDID_SEQ1, 0x45, 1, bytes.fromhex("bebafe0101afbeaddeaddead")),
    ],
)
def test_libosdp_frames_parse_and_reencode(raw: bytes, code: int, seq: int, data: bytes) -> None:
    frame = parse_frame(raw)
    assert (frame.address, frame.sequence, frame.code, frame.data) == (0x81, seq, code, data)
    assert frame.use_crc
    assert frame.security_block is None
    assert frame.mac is None
    assert encode_frame(0x81, seq, code, data) == raw


def test_encode_poll_layout() -> None:
    frame = encode_frame(0x65, 2, 0x60)
    assert frame[:6] == bytes([0x53, 0x65, 8, 0, 0x04 | 2, 0x60])
    assert int.from_bytes(frame[6:], "little") == crc16(frame[:6])


def test_mark_byte_and_security_block_round_trip() -> None:
    raw = encode_frame(1, 3, 0x76, bytes(8), security_block=bytes([3, 0x11, 1]), mark=True)
    assert raw[0] == 0xFF
    frame = parse_frame(raw[1:])
    assert frame.security_block == bytes([3, 0x11, 1])
    assert frame.security_type == 0x11
    assert frame.code == 0x76
    assert frame.data == bytes(8)
    assert frame.mac is None


def test_mac_is_split_off() -> None:
    raw = encode_frame(1, 1, 0x60, security_block=bytes([2, 0x15]), mac=b"\x01\x02\x03\x04")
    frame = parse_frame(raw)
    assert frame.mac == b"\x01\x02\x03\x04"
    assert frame.data == b""
    assert frame.mac_input == raw[:-6]


def test_checksum_frames_are_accepted() -> None:
    body = bytes([0x53, 0x81, 7, 0, 0x01, 0x40])
    frame = parse_frame(body + bytes([checksum8(body)]))
    assert frame.code == 0x40
    assert not frame.use_crc
    assert frame.sequence == 1


def test_bad_crc_is_rejected() -> None:
    raw = bytearray(LIBOSDP_ACK_SEQ0)
    raw[-1] ^= 0x01
    with pytest.raises(BadCheck):
        parse_frame(bytes(raw))


def test_security_block_longer_than_frame() -> None:
    raw = encode_frame(1, 1, 0x60, security_block=bytes([2, 0x15]))
    forged = bytearray(raw[:-2])
    forged[5] = 40  # the block claims 40 bytes
    crc = crc16(bytes(forged))
    with pytest.raises(BadSecurityBlock):
        parse_frame(bytes(forged) + bytes([crc & 0xFF, crc >> 8]))


def test_parser_skips_garbage_and_mark() -> None:
    parser = StreamParser()
    out = parser.feed(b"\x00\x12\xff" + LIBOSDP_ACK_SEQ0 + b"\xff" + LIBOSDP_NAK6_SEQ0)
    assert [type(x) for x in out] == [Garbage, Frame, Frame]


def test_parser_byte_by_byte() -> None:
    parser = StreamParser()
    out: list[object] = []
    for byte in LIBOSDP_PDID_SEQ1:
        out += parser.feed(bytes([byte]))
    assert len(out) == 1
    assert isinstance(out[0], Frame)


def test_parser_finds_frame_behind_false_som() -> None:
    # 0x53 followed by a plausible LEN of 40: the parser waits for it, then finds the real
    # frame inside when told to give up (reply timeout).
    parser = StreamParser()
    assert parser.feed(bytes([0x53, 0x81, 40, 0, 0x04]) + LIBOSDP_ACK_SEQ0) == []
    out = parser.flush()
    assert any(isinstance(x, Truncated) for x in out)
    assert next(x for x in out if isinstance(x, Frame)).raw == LIBOSDP_ACK_SEQ0


def test_parser_resyncs_after_bad_crc() -> None:
    bad = bytearray(LIBOSDP_ACK_SEQ0)
    bad[5] ^= 0x10
    out = StreamParser().feed(bytes(bad) + LIBOSDP_NAK6_SEQ0)
    assert isinstance(out[0], BadCheck)
    assert isinstance(out[-1], Frame)
    assert out[-1].code == 0x41


@pytest.mark.parametrize("length", [0, 1, 6, MAX_FRAME_LEN + 1, 0xFFFF])
def test_parser_rejects_impossible_lengths(length: int) -> None:
    head = bytes([0x53, 0x81, length & 0xFF, length >> 8, 0x04])
    out = StreamParser().feed(head + LIBOSDP_ACK_SEQ0)
    assert isinstance(out[0], BadLength)
    assert isinstance(out[-1], Frame)


def test_parser_truncated_frame_then_next() -> None:
    parser = StreamParser()
    assert parser.feed(LIBOSDP_PDID_SEQ1[:10]) == []
    out = parser.flush()
    assert isinstance(out[0], Truncated)
    assert parser.pending == 0
    assert isinstance(parser.feed(LIBOSDP_ACK_SEQ0)[-1], Frame)
