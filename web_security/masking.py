"""Masks for personal numbers shown to people: enough to tell two apart, not to use one."""

from __future__ import annotations


def mask_id_number(id_number: str) -> str:
    """Keep the region prefix and the last four characters.

    >>> mask_id_number("440305199001011234")
    '4403**********1234'
    """
    if len(id_number) <= 8:
        return "*" * len(id_number)
    return id_number[:4] + "*" * (len(id_number) - 8) + id_number[-4:]


def mask_phone(phone: str) -> str:
    """Keep the carrier prefix and the last four digits.

    >>> mask_phone("13800138000")
    '138****8000'
    """
    if len(phone) <= 7:
        return "*" * len(phone)
    return phone[:3] + "*" * (len(phone) - 7) + phone[-4:]
