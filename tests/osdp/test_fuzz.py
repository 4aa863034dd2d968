"""Malformed but CRC-correct frames: the parser, the decoder and a reader never crash.

Random bytes almost never get past the CRC, so these generators build frames whose CRC is
right and aim at what lies behind it: the LEN field, the security block length, data lengths
against what each reply code expects, boundary values 0, 1 and the maximum.
"""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware_bridge.osdp.codec import (
    MAX_FRAME_LEN,
    SOM,
    Frame,
    FrameError,
    OsdpError,
    StreamParser,
    parse_frame,
)
from firmware_bridge.osdp.crc import checksum8, crc16
from firmware_bridge.osdp.messages import Reply, ReplyDataError, decode_reply
from firmware_bridge.osdp.reader import BusTiming, Outgoing, Phase, ReaderState
from firmware_bridge.osdp.secure import SCBK_D, SecureSession, pad

REPLY_CODES = [int(code) for code in Reply]
EXPECTED_DATA_LEN = {0x45: 12, 0x48: 2, 0x54: 5, 0x76: 32, 0x78: 16, 0x50: 8, 0x53: 4}


@st.composite
def data_for(draw: st.DrawFn, code: int) -> bytes:
    """Data whose length sits on and around what `code` expects."""
    expected = EXPECTED_DATA_LEN.get(code, 3)
    length = draw(st.sampled_from([0, 1, expected - 1, expected, expected + 1, 16, 17])
                  | st.integers(0, 64))
    return draw(st.binary(min_size=max(0, length), max_size=max(0, length)))


@st.composite
def crc_correct_frames(draw: st.DrawFn) -> bytes:
    """A frame with a correct check but possibly lying LEN, SB length or data length."""
    address = draw(st.sampled_from([0x81, 0x82, 0x01, 0xFF]) | st.integers(0, 255))
    use_crc = draw(st.booleans() | st.just(True))
    with_sb = draw(st.booleans())
    ctrl = draw(st.integers(0, 3)) | (0x04 if use_crc else 0) | (0x08 if with_sb else 0)
    ctrl |= draw(st.sampled_from([0, 0, 0, 0x10, 0x80]))
    block = b""
    if with_sb:
        sb_type = draw(st.sampled_from([0x11, 0x12, 0x14, 0x15, 0x16, 0x17, 0x18, 0x00, 0xFF]))
        sb_len = draw(st.sampled_from([0, 1, 2, 3, 4, 200, 255]))
        block = bytes([sb_len, sb_type]) + draw(st.binary(max_size=3))
    code = draw(st.sampled_from(REPLY_CODES) | st.integers(0, 255))
    data = draw(data_for(code))
    mac = draw(st.sampled_from([b"", bytes(4)]) | st.binary(max_size=5))
    body = block + bytes([code]) + data + mac
    true_len = 5 + len(body) + (2 if use_crc else 1)
    length = draw(
        st.sampled_from([true_len, true_len - 1, true_len + 1, 0, 1, 7, 8, MAX_FRAME_LEN,
                         MAX_FRAME_LEN + 1, 0xFFFF])
        | st.integers(0, 0xFFFF)
    )
    head = bytes([SOM, address, length & 0xFF, length >> 8, ctrl])
    packet = head + body
    if use_crc:
        crc = crc16(packet)
        return packet + bytes([crc & 0xFF, crc >> 8])
    return packet + bytes([checksum8(packet)])


@given(crc_correct_frames())
def test_parse_frame_returns_or_raises_a_frame_error(raw: bytes) -> None:
    try:
        frame = parse_frame(raw)
    except FrameError:
        return
    assert frame.raw == raw
    assert len(raw) == raw[2] | raw[3] << 8


@given(st.lists(crc_correct_frames() | st.binary(max_size=20), max_size=6),
       st.integers(1, 17))
def test_stream_parser_never_raises(chunks: list[bytes], step: int) -> None:
    stream = b"".join(chunks)
    parser = StreamParser()
    whole = StreamParser().feed(stream) + StreamParser().flush()
    out: list[Frame | FrameError] = []
    for i in range(0, len(stream), step):
        out += parser.feed(stream[i : i + step])
    out += parser.flush()
    assert all(isinstance(x, (Frame, FrameError)) for x in out)
    # However the bytes arrive, the same frames are found.
    frames = [x.raw for x in out if isinstance(x, Frame)]
    assert frames[: len([x for x in whole if isinstance(x, Frame)])] == [
        x.raw for x in whole if isinstance(x, Frame)
    ]


@given(st.sampled_from(REPLY_CODES) | st.integers(0, 255), st.data())
def test_decode_reply_returns_or_raises_reply_data_error(code: int, data: st.DataObject) -> None:
    payload = data.draw(data_for(code))
    with contextlib.suppress(ReplyDataError):
        decode_reply(code, payload)


def _online_reader(secure: bool) -> ReaderState:
    reader = ReaderState(1, SCBK_D if secure else None, BusTiming())
    reader.phase = Phase.ONLINE
    reader.announced = True
    reader.last_heard = 0.0
    reader.sequence = 1
    if secure:
        session = SecureSession(SCBK_D, rnd_a=bytes(8))
        session.rnd_b = bytes(8)
        session.established = True
        reader.session = session
    reader.inflight = Outgoing(0x60, b"", 1, 0.0)
    return reader


@given(crc_correct_frames(), st.booleans())
def test_reader_survives_any_frame(raw: bytes, secure: bool) -> None:
    try:
        frame = parse_frame(raw)
    except FrameError:
        return
    reader = _online_reader(secure)
    events = reader.on_reply(frame, 0, 1.0)
    assert isinstance(events, list)


def _seal_reply(session: SecureSession, code: int, plain: bytes, encrypt: bool) -> Frame:
    """Build a reply as a PD would (MAC chained from the last C-MAC): test-only PD side."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    if encrypt:
        iv = bytes(b ^ 0xFF for b in session.c_mac)
        enc = Cipher(algorithms.AES(session.s_enc), modes.CBC(iv)).encryptor()
        payload = enc.update(plain) + enc.finalize()  # plain is given already padded or not
        block = bytes([2, 0x18])
    else:
        payload = plain
        block = bytes([2, 0x16])
    body = block + bytes([code]) + payload
    length = 5 + len(body) + 4 + 2
    head = bytes([SOM, 0x81, length & 0xFF, length >> 8, 0x0C | 1])
    mac = session._mac(head + body, session.c_mac)[:4]
    packet = head + body + mac
    crc = crc16(packet)
    return parse_frame(packet + bytes([crc & 0xFF, crc >> 8]))


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(REPLY_CODES) | st.integers(0, 255), st.data(), st.booleans(),
       st.booleans())
def test_reader_survives_authentic_replies_with_bad_contents(
    code: int, data: st.DataObject, encrypt: bool, padded: bool
) -> None:
    reader = _online_reader(secure=True)
    assert reader.session is not None
    plain = data.draw(data_for(code))
    if encrypt:
        plain = pad(plain) if padded else plain + bytes(-len(plain) % 16)
        if not plain:
            plain = bytes(16)
    frame = _seal_reply(reader.session, code, plain, encrypt)
    try:
        events = reader.on_reply(frame, 0, 1.0)
    except OsdpError as error:  # pragma: no cover - must not happen
        raise AssertionError(f"on_reply raised {error!r}") from error
    assert isinstance(events, list)
