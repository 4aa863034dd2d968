"""Command payloads and reply decoding."""

from __future__ import annotations

import pytest

from firmware_bridge.osdp.messages import (
    Capability,
    ComSettings,
    InputStatus,
    Keypad,
    LedColor,
    LocalStatus,
    Nak,
    OutputControl,
    PdId,
    RawCard,
    ReplyDataError,
    buz_data,
    comset_data,
    decode_reply,
    keypad_codes,
    keypad_text,
    keyset_data,
    led_data,
    out_data,
    units_100ms,
)


def test_out_pulse_layout() -> None:
    assert out_data(0, OutputControl.ON_TIMED, 50) == bytes([0, 5, 50, 0])
    assert out_data(2, OutputControl.OFF_PERMANENT_ABORT_TIMER) == bytes([2, 1, 0, 0])


def test_led_temporary_layout() -> None:
    data = led_data(led=0, color=LedColor.GREEN, off_color=LedColor.BLACK, on_100ms=5,
                    off_100ms=0, timer_100ms=20, permanent=False)
    assert data == bytes([0, 0, 2, 5, 0, 2, 0, 20, 0, 0, 0, 0, 0, 0])


def test_led_permanent_layout() -> None:
    data = led_data(led=1, color=LedColor.RED, off_color=LedColor.BLACK, on_100ms=1,
                    off_100ms=0, timer_100ms=0, permanent=True)
    assert len(data) == 14
    assert data[2] == 0
    assert data[9:] == bytes([1, 1, 0, 1, 0])


def test_other_payloads() -> None:
    assert buz_data(on_100ms=2, off_100ms=3, count=4) == bytes([0, 2, 2, 3, 4])
    assert comset_data(5, 115200) == bytes([5]) + (115200).to_bytes(4, "little")
    assert keyset_data(bytes(16)) == bytes([1, 16]) + bytes(16)
    assert units_100ms("x", 149) == 1
    assert units_100ms("x", 150) == 2
    with pytest.raises(ValueError, match="does not fit"):
        units_100ms("x", 30000)


def test_keypad_codes() -> None:
    assert keypad_codes("19*#") == b"19\x7f\x0d"
    assert keypad_text(b"19\x7f\x0d\x01") == "19*#?"
    with pytest.raises(ValueError, match="not a keypad key"):
        keypad_codes("A")


def test_decode_replies() -> None:
    assert decode_reply(0x41, b"\x03") == Nak(3)
    pd_id = decode_reply(0x45, bytes.fromhex("bebafe0101afbeaddeaddead"))
    assert pd_id == PdId(0xFEBABE, 1, 1, 0xDEADBEAF, "173.222.173")
    assert decode_reply(0x46, bytes([1, 1, 2, 4, 1, 1])) == (Capability(1, 1, 2),
                                                             Capability(4, 1, 1))
    assert decode_reply(0x48, b"\x01\x00") == LocalStatus(tamper=True, power_failure=False)
    assert decode_reply(0x49, b"\x00\x01") == InputStatus((False, True))
    assert decode_reply(0x50, bytes.fromhex("00011a00123456c0")) == RawCard(
        0, 1, 26, bytes.fromhex("123456c0"))
    assert decode_reply(0x53, b"\x00\x03" + b"12\x0d") == Keypad(0, "12#")
    assert decode_reply(0x54, bytes([5, 0x80, 0x25, 0, 0])) == ComSettings(5, 9600)


@pytest.mark.parametrize(
    ("code", "data"),
    [
        (0x41, b""),
        (0x45, bytes(11)),
        (0x46, bytes(4)),
        (0x48, b"\x00"),
        (0x50, bytes([0, 1, 26, 0, 1, 2, 3])),  # 26 bits need 4 bytes
        (0x50, bytes([0, 1, 0, 0])),  # zero bits
        (0x53, bytes([0, 5, 0x31])),  # says 5 keys, has 1
        (0x54, bytes(4)),
        (0x76, bytes(31)),
        (0x78, bytes(15)),
        (0x99, b""),  # unknown reply code
    ],
)
def test_bad_reply_shapes_are_typed_errors(code: int, data: bytes) -> None:
    with pytest.raises(ReplyDataError):
        decode_reply(code, data)
