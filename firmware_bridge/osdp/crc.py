"""Check characters of OSDP frames: CRC-16/AUG-CCITT and the 8-bit checksum."""

from __future__ import annotations

CRC_INIT = 0x1D0F
CRC_POLY = 0x1021


def _make_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ CRC_POLY) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return tuple(table)


_TABLE = _make_table()


def crc16(data: bytes, crc: int = CRC_INIT) -> int:
    """Return the CRC-16/AUG-CCITT of `data` (poly 0x1021, init 0x1D0F, not reflected).

    >>> hex(crc16(b"123456789"))
    '0xe5cc'
    """
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _TABLE[((crc >> 8) ^ byte) & 0xFF]
    return crc


def checksum8(data: bytes) -> int:
    """Return the OSDP 8-bit checksum: the two's complement of the byte sum."""
    return (-sum(data)) & 0xFF
