"""Wiegand card formats: decode reader bits into a card number, and encode one for tests.

A card number is the decimal value of the data bits without parity (SPEC §6):

* 26-bit H10301: ``P FFFFFFFF CCCCCCCCCCCCCCCC P`` — even parity over the first 13 bits, odd
  over the last 13; number = facility × 65536 + card.
* 34-bit: ``P D×32 P`` — even parity over the first 17 bits, odd over the last 17; number = the
  32 data bits.
* Any other length: number = the integer value of all bits; parity unknown (``None``).

Bits are MSB first, left-justified in whole bytes, as osdp_RAW carries them.

>>> card = decode(26, encode(1234567, 26))
>>> (card.number, card.parity_ok, card.format, card.facility, card.card)
(1234567, True, 'h10301', 18, 54919)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class WiegandCard:
    """A decoded card read."""

    bit_count: int
    number: int
    parity_ok: bool | None
    """True/False for formats with parity (26, 34 bits); None when the format is unknown."""
    format: str
    """"h10301", "wiegand34" or "raw"."""
    facility: int | None = None
    card: int | None = None


def bits_value(bit_count: int, data: bytes) -> int:
    """Return the integer value of the first `bit_count` bits of `data` (MSB first)."""
    if bit_count <= 0:
        raise ValueError(f"bit count must be positive, got {bit_count}")
    needed = (bit_count + 7) // 8
    if len(data) < needed:
        raise ValueError(f"{bit_count} bits need {needed} byte(s), got {len(data)}")
    return int.from_bytes(data[:needed], "big") >> (needed * 8 - bit_count)


def value_bytes(bit_count: int, value: int) -> bytes:
    """Return `value` as `bit_count` bits, MSB first, left-justified in whole bytes."""
    if bit_count <= 0 or value < 0 or value >> bit_count:
        raise ValueError(f"{value} does not fit in {bit_count} bits")
    needed = (bit_count + 7) // 8
    return (value << (needed * 8 - bit_count)).to_bytes(needed, "big")


def _ones(value: int) -> int:
    return bin(value).count("1")


def _parity_ok(value: int, bit_count: int) -> bool:
    half = bit_count // 2
    first = value >> (bit_count - half)  # leading parity bit + first data half
    last = value & ((1 << half) - 1)  # last data half + trailing parity bit
    return _ones(first) % 2 == 0 and _ones(last) % 2 == 1


def decode(bit_count: int, data: bytes) -> WiegandCard:
    """Decode a card read; raise ValueError when `data` is shorter than `bit_count` needs."""
    value = bits_value(bit_count, data)
    if bit_count in (26, 34):
        number = (value >> 1) & ((1 << (bit_count - 2)) - 1)
        parity = _parity_ok(value, bit_count)
        if bit_count == 26:
            return WiegandCard(26, number, parity, "h10301", number >> 16, number & 0xFFFF)
        return WiegandCard(34, number, parity, "wiegand34")
    return WiegandCard(bit_count, value, None, "raw")


def encode(number: int, bits: int = 26) -> bytes:
    """Return the Wiegand bits of a card number with correct parity (26 or 34 bits).

    For 26 bits the number is facility × 65536 + card, so it must be below 2**24.
    """
    if bits not in (26, 34):
        raise ValueError(f"only 26- and 34-bit cards can be encoded, not {bits}")
    data_bits = bits - 2
    if not 0 <= number < (1 << data_bits):
        raise ValueError(f"card number {number} does not fit in {data_bits} data bits")
    half = data_bits // 2
    first, last = number >> half, number & ((1 << half) - 1)
    even = _ones(first) % 2  # makes the leading half even
    odd = 1 - _ones(last) % 2  # makes the trailing half odd
    value = (even << (bits - 1)) | (number << 1) | odd
    return value_bytes(bits, value)
