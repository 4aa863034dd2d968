"""Check characters of OSDP frames: CRC-16/AUG-CCITT and the 8-bit checksum."""

from __future__ import annotations

from binascii import crc_hqx

CRC_INIT = 0x1D0F
CRC_POLY = 0x1021


def crc16(data: bytes, crc: int = CRC_INIT) -> int:
    """Return the CRC-16/AUG-CCITT of `data` (poly 0x1021, init 0x1D0F, not reflected).

    That is CRC-CCITT with another start value, which ``binascii.crc_hqx`` computes in C
    (a 256-entry table, as a Python loop would use, but without a bytecode round per byte).

    >>> hex(crc16(b"123456789"))
    '0xe5cc'
    """
    return crc_hqx(data, crc)


def checksum8(data: bytes) -> int:
    """Return the OSDP 8-bit checksum: the two's complement of the byte sum."""
    return (-sum(data)) & 0xFF
