"""Checks and masks for the values people type: ID and phone numbers, names, rooms, cards, PINs."""

from __future__ import annotations

import operator
import re
from datetime import date

from .errors import ValidationError

# GB 11643-1999: weights 2^(17-i) mod 11 for the first 17 digits; the ISO 7064 MOD 11-2
# remainder indexes the check character. It catches every single-digit error and every swap
# of two adjacent digits, which is what typing a number off a card gets wrong.
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CHARS = "10X98765432"
_ID_SHAPE = re.compile(r"[0-9]{17}[0-9X]")
_MOBILE_SHAPE = re.compile(r"1[0-9]{10}")
# Excel shows long numbers in scientific notation once a column is not formatted as text.
_SCIENTIFIC = re.compile(r"[0-9](\.[0-9]+)?[eE]\+?[0-9]+")


def id_check_char(first17: str) -> str:
    """Return the MOD 11-2 check character for the first 17 digits of an ID number."""
    total = sum(map(operator.mul, map(int, first17), ID_WEIGHTS))
    return CHECK_CHARS[total % 11]


def normalize_id_number(value: str, field: str = "id_number") -> str:
    """Validate an 18-character resident ID number and return it with an upper-case X.

    >>> normalize_id_number("11010519491231002x")
    '11010519491231002X'
    """
    text = value.strip().upper()
    if _SCIENTIFIC.fullmatch(text):
        raise ValidationError(field, "looks like a number Excel rounded; format the column as text")
    if len(text) != 18:
        raise ValidationError(field, f"must be 18 characters, got {len(text)}")
    if not _ID_SHAPE.fullmatch(text):
        raise ValidationError(field, "must be 17 digits followed by a digit or X")
    try:
        date(int(text[6:10]), int(text[10:12]), int(text[12:14]))
    except ValueError:
        raise ValidationError(field, f"birth date {text[6:14]} is not a real date") from None
    expected = id_check_char(text[:17])
    if text[17] != expected:
        raise ValidationError(field, f"check digit is wrong (expected {expected}); mistyped?")
    return text


def normalize_phone(value: str, field: str = "phone") -> str:
    """Validate a mainland mobile number and return its 11 digits (spaces, dashes, +86 dropped).

    >>> normalize_phone("+86 138-0013-8000")
    '13800138000'
    """
    text = re.sub(r"[\s-]", "", value)
    if _SCIENTIFIC.fullmatch(text):
        raise ValidationError(field, "looks like a number Excel rounded; format the column as text")
    if text.startswith("+86"):
        text = text[3:]
    if not _MOBILE_SHAPE.fullmatch(text):
        raise ValidationError(field, "must be an 11-digit mainland mobile number starting with 1")
    return text


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


CARD_NUMBER_MAX = 2**32 - 1
_PIN_SHAPE = re.compile(r"[0-9]{4,8}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _plain_text(value: str, field: str, max_len: int) -> str:
    text = value.strip()
    if not text:
        raise ValidationError(field, "is required")
    if len(text) > max_len:
        raise ValidationError(field, f"is longer than {max_len} characters")
    if _CONTROL.search(text):
        raise ValidationError(field, "contains control characters")
    return text


def normalize_name(value: str, field: str = "name") -> str:
    """A person's name: 1-64 characters after trimming, no control characters."""
    return _plain_text(value, field, 64)


def normalize_room(value: str, field: str = "room") -> str:
    """A room label such as "0301": 1-32 characters after trimming."""
    return _plain_text(value, field, 32)


def check_validity(valid_from: date, valid_until: date) -> None:
    """Refuse a stay that ends before it starts."""
    if valid_until < valid_from:
        raise ValidationError("valid_until", f"{valid_until} is before valid_from {valid_from}")


def check_card_number(value: int, field: str = "card") -> int:
    """A card number as SPEC 6 defines it: the decimal value of up to 32 Wiegand data bits."""
    if type(value) is not int or not 0 <= value <= CARD_NUMBER_MAX:
        raise ValidationError(field, f"card number must be 0..{CARD_NUMBER_MAX}, got {value!r}")
    return value


def check_pin(value: str, field: str = "pin") -> str:
    """A keypad PIN: 4 to 8 digits."""
    if not _PIN_SHAPE.fullmatch(value):
        raise ValidationError(field, "must be 4 to 8 digits")
    return value
