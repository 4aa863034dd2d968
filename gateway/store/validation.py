"""Checks for the values people type: ID and phone numbers, names, rooms, cards, PINs.

How a number is masked for people to see is `web_security.masking`.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date

from web_security.id_numbers import id_check_char

from .errors import ValidationError, refuse

_ID_SHAPE = re.compile(r"[0-9]{17}[0-9X]")
_MOBILE_SHAPE = re.compile(r"1[0-9]{10}")
# Excel shows long numbers in scientific notation once a column is not formatted as text.
_SCIENTIFIC = re.compile(r"[0-9](\.[0-9]+)?[eE]\+?[0-9]+")

# What a refusal says, in English (the API, the CLI, logs), by the key the page finds its own
# words under (gateway/web/i18n.py, "invalid.KEY"), with the values a person needs to put it
# right (what was typed is escaped where it is shown).
REFUSALS = {
    "required": "is required",
    "too_long": "is longer than {max} characters",
    "other_digits": "must be typed with the digits 0-9, not full-width or other digits",
    "invisible": "contains an invisible or direction-changing character; type it in again",
    "not_text": "has no visible letter or digit",
    "replacement": "contains \ufffd, a character lost to a wrong encoding; type it in again",
    "name_formula": "must not start with =, +, - or @ (a spreadsheet would run it as a formula)",
    "room_formula": (
        "must not start with =, + or @, nor with - unless it is a floor below ground such as -1"
        " or -1-02 (a spreadsheet would run it as a formula)"
    ),
    "excel_rounded": "looks like a number Excel rounded; format the column as text",
    "id_length": "must be 18 characters, got {length}",
    "id_shape": "must be 17 digits followed by a digit or X",
    "id_birth_date": "birth date {birth} is not a real date",
    "id_check_digit": "check digit is wrong (expected {expected}); mistyped?",
    "phone_shape": "must be an 11-digit mainland mobile number starting with 1",
    "ends_before_start": "{valid_until} is before valid_from {valid_from}",
    "card_range": "card number must be 0..{max}, got {value}",
    "card_not_digits": "{typed} is not a decimal card number",
    "card_excel": (
        "{typed} is not a decimal card number; Excel rounded it, format the column as text"
    ),
    "card_too_big": "{shown} is above {max} (32 bits)",
    "pin_shape": "must be 4 to 8 digits",
    "date_shape": "{typed} is not a date written YYYY-MM-DD",
    "not_a_date": "{typed} is not a real date",
    "card_twice": "card {number} is listed twice",
    "not_a_number": "must be a whole number",
    "not_valid": "is not valid",
    "no_such_room": "{room} is not a room of this building (register its tenant first)",
    "extend_not_later": "the new end ({typed}) must be after the lease's end ({valid_until})",
}
# Kept for the words table's English column and older callers: the same texts by name.
OTHER_DIGITS = REFUSALS["other_digits"]
INVISIBLE = REFUSALS["invisible"]
NOT_TEXT = REFUSALS["not_text"]
REPLACEMENT = REFUSALS["replacement"]
NAME_FORMULA = REFUSALS["name_formula"]
ROOM_FORMULA = REFUSALS["room_formula"]


def refusal(field: str, code: str, **params: object) -> ValidationError:
    """The ValidationError for REFUSALS[code] about `field`."""
    return refuse(field, code, REFUSALS, **params)


def refuse_other_digits(text: str, field: str) -> None:
    """Refuse digits a person typed with a full-width or another script's keyboard.

    str.isdigit() and int() take "１２３" (full-width) and "١٢٣" (Arabic-Indic); isdigit also
    takes the superscript "²", which int() then refuses. A number is stored, compared and
    shown as 0-9 only, so the person is told rather than have it guessed.
    """
    if not text.isascii() and any(char.isnumeric() for char in text):
        raise refusal(field, "other_digits")


def normalize_id_number(value: str, field: str = "id_number") -> str:
    """Validate an 18-character resident ID number and return it with an upper-case X.

    >>> normalize_id_number("11010519491231002x")
    '11010519491231002X'
    """
    text = value.strip().upper()
    if _SCIENTIFIC.fullmatch(text):
        raise refusal(field, "excel_rounded")
    refuse_other_digits(text, field)
    if len(text) != 18:
        raise refusal(field, "id_length", length=len(text))
    if not _ID_SHAPE.fullmatch(text):
        raise refusal(field, "id_shape")
    try:
        date(int(text[6:10]), int(text[10:12]), int(text[12:14]))
    except ValueError:
        raise refusal(field, "id_birth_date", birth=text[6:14]) from None
    expected = id_check_char(text[:17])
    if text[17] != expected:
        raise refusal(field, "id_check_digit", expected=expected)
    return text


def normalize_phone(value: str, field: str = "phone") -> str:
    """Validate a mainland mobile number and return its 11 digits (spaces, dashes, +86 dropped).

    >>> normalize_phone("+86 138-0013-8000")
    '13800138000'
    """
    text = re.sub(r"[\s-]", "", value)
    if _SCIENTIFIC.fullmatch(text):
        raise refusal(field, "excel_rounded")
    if text.startswith("+86"):
        text = text[3:]
    refuse_other_digits(text, field)
    if not _MOBILE_SHAPE.fullmatch(text):
        raise refusal(field, "phone_shape")
    return text


CARD_NUMBER_MAX = 2**32 - 1
_PIN_SHAPE = re.compile(r"[0-9]{4,8}")
_DIGITS = re.compile(r"[0-9]+")
# What Unicode calls control (Cc: C0, DEL, C1), format (Cf: zero-width spaces and joiners,
# the bidi embeddings, overrides and isolates, soft hyphen, BOM), surrogate (Cs: a lone
# "\ud800" that JSON can carry and SQLite cannot store) and line/paragraph separators.
# "\u202e" makes a name read backwards on the page and in exports; zero-width characters
# make two names look the same, or a name look empty.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
# Letters and marks Unicode does not class as format characters but that show as nothing:
# the combining grapheme joiner and the Hangul fillers (the "blank name" of chat apps).
_BLANKS = frozenset("\u034f\u115f\u1160\u3164\uffa0")


def _plain_text(value: str, field: str, max_len: int) -> str:
    text = value.strip()
    if not text:
        raise refusal(field, "required")
    if len(text) > max_len:
        raise refusal(field, "too_long", max=max_len)
    if any(unicodedata.category(char) in _INVISIBLE_CATEGORIES or char in _BLANKS for char in text):
        raise refusal(field, "invisible")
    if "\ufffd" in text:
        raise refusal(field, "replacement")
    # Private-use and unassigned code points stay allowed: rare characters of Chinese names
    # are found there (GB18030's private-use mappings, CJK extensions newer than Python's
    # Unicode tables).
    if not any(unicodedata.category(char)[0] in "LN" for char in text):
        raise refusal(field, "not_text")
    return text


def normalize_name(value: str, field: str = "name") -> str:
    """A person's name: 1-64 visible characters after trimming, not the start of a formula.

    No real name starts with =, +, - or @, and names travel on to the city's platform, whose
    exports this gateway cannot neutralise (its own CSV exports do: web_security/csvstream.py).
    """
    text = _plain_text(value, field, 64)
    if text[0] in "=+-@":
        raise refusal(field, "name_formula")
    return text


# A basement room is written "-1", "-1-02" or "-1层": a leading "-" is allowed when only
# letters, digits and dashes follow, which cannot make a formula that calls a function or
# another program (that needs parentheses or "|").
_BELOW_GROUND = re.compile(r"-\w[\w-]*")


def normalize_room(value: str, field: str = "room") -> str:
    """A room label such as "0301" or "-1-02": 1-32 visible characters after trimming.

    Like names, rooms may not start a spreadsheet formula (=, + or @); "-" only for a floor
    below ground.
    """
    text = _plain_text(value, field, 32)
    if text[0] in "=+@" or (text[0] == "-" and not _BELOW_GROUND.fullmatch(text)):
        raise refusal(field, "room_formula")
    return text


def check_validity(valid_from: date, valid_until: date) -> None:
    """Refuse a stay that ends before it starts."""
    if valid_until < valid_from:
        raise refusal("valid_until", "ends_before_start", valid_until=valid_until,
                      valid_from=valid_from)


def check_card_number(value: int, field: str = "card") -> int:
    """A card number as SPEC 6 defines it: the decimal value of up to 32 Wiegand data bits."""
    if type(value) is not int or not 0 <= value <= CARD_NUMBER_MAX:
        raise refusal(field, "card_range", max=CARD_NUMBER_MAX, value=repr(value))
    return value


def parse_card_number(value: str, field: str = "card") -> int:
    """Read a card number a person typed (page, CSV import): the digits 0-9, up to 32 bits.

    >>> parse_card_number(" 1234567 ")
    1234567
    """
    text = value.strip()
    if not text:
        raise refusal(field, "required")
    refuse_other_digits(text, field)
    if not _DIGITS.fullmatch(text):
        code = "card_excel" if "E+" in text.upper() else "card_not_digits"
        raise refusal(field, code, typed=repr(text[:20]))
    # Length first: int() of 4,300 digits or more raises ValueError, not a wrong number.
    if len(text.lstrip("0")) > len(str(CARD_NUMBER_MAX)) or int(text) > CARD_NUMBER_MAX:
        shown = text if len(text) <= 20 else text[:17] + "…"
        raise refusal(field, "card_too_big", shown=shown, max=CARD_NUMBER_MAX)
    return int(text)


def check_pin(value: str, field: str = "pin") -> str:
    """A keypad PIN: 4 to 8 digits."""
    refuse_other_digits(value, field)
    if not _PIN_SHAPE.fullmatch(value):
        raise refusal(field, "pin_shape")
    return value
