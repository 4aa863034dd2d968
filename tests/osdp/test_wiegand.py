"""Wiegand card numbers: SPEC §6 formats, parity errors, pass-through lengths."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_bridge.wiegand import bits_value, decode, encode, value_bytes


def bits(text: str) -> tuple[int, bytes]:
    """Return (bit count, left-justified bytes) for a string of 0/1."""
    text = text.replace(" ", "")
    return len(text), value_bytes(len(text), int(text, 2))


def test_h10301_by_hand() -> None:
    # Facility 1, card 1: first 13 bits "P 00000001 0000" hold one 1 → P = 1 (even);
    # last 13 bits "000000000001 P" hold one 1 → P = 0 (odd).
    count, data = bits("1 00000001 0000000000000001 0")
    card = decode(count, data)
    assert (card.number, card.facility, card.card, card.parity_ok) == (65537, 1, 1, True)
    assert card.format == "h10301"
    assert encode(65537, 26) == data


def test_wiegand34_by_hand() -> None:
    # Data 0x00000001: first 17 bits all zero → P = 0; last 17 hold one 1 → P = 0.
    count, data = bits("0" + "0" * 31 + "1" + "0")
    card = decode(count, data)
    assert (card.number, card.parity_ok, card.format) == (1, True, "wiegand34")
    assert encode(1, 34) == data


@pytest.mark.parametrize("flip", range(26))
def test_h10301_any_single_bit_flip_breaks_parity(flip: int) -> None:
    value = bits_value(26, encode(0xABCDEF, 26)) ^ (1 << flip)
    assert decode(26, value_bytes(26, value)).parity_ok is False


@pytest.mark.parametrize("flip", range(34))
def test_wiegand34_any_single_bit_flip_breaks_parity(flip: int) -> None:
    value = bits_value(34, encode(0xDEADBEEF, 34)) ^ (1 << flip)
    assert decode(34, value_bytes(34, value)).parity_ok is False


@given(st.integers(0, (1 << 24) - 1))
def test_h10301_round_trip(number: int) -> None:
    card = decode(26, encode(number, 26))
    assert card.number == number
    assert card.parity_ok is True
    assert card.facility == number >> 16
    assert card.card == number & 0xFFFF


@given(st.integers(0, (1 << 32) - 1))
def test_wiegand34_round_trip(number: int) -> None:
    card = decode(34, encode(number, 34))
    assert card.number == number
    assert card.parity_ok is True


@pytest.mark.parametrize(("count", "value"), [(1, 1), (8, 0xA5), (37, 0x1234567890), (96, 7)])
def test_other_lengths_pass_through(count: int, value: int) -> None:
    card = decode(count, value_bytes(count, value))
    assert (card.number, card.parity_ok, card.format) == (value, None, "raw")


def test_short_data_is_an_error() -> None:
    with pytest.raises(ValueError, match="need"):
        decode(26, b"\x00\x00\x00")


@pytest.mark.parametrize(("number", "count"), [(1 << 24, 26), (1 << 32, 34), (5, 37), (-1, 26)])
def test_encode_refuses_what_does_not_fit(number: int, count: int) -> None:
    with pytest.raises(ValueError, match=r"fit|only 26"):
        encode(number, count)
