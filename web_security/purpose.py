"""The purpose of a police action (the case number or the reason), as both applications'
audits keep it: trimmed, and refused when it shows nothing.

    clean_purpose(" \u3000案件 2026-118\u200b ")     # '案件 2026-118'
    clean_purpose("\u200b")                          # PurposeError, code "purpose_required"

Each application words the refusal its own way (`PurposeError.code`, `.message`).
"""

from __future__ import annotations

import re
import unicodedata

PURPOSE_MAX = 200

# A purpose must show something. Unicode's separators, controls and format characters (zero-
# width space and joiners, word joiner, BOM, direction marks) show nothing, nor does a combining
# mark alone, nor these few letters and symbols drawn blank: the Hangul fillers and the blank
# braille pattern.
_BLANK = frozenset("\u115f\u1160\u3164\uffa0\u2800")
_EDGE = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})  # trimmed off both ends
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class PurposeError(ValueError):
    """A purpose refused: `code` for the application's words, `message` in English."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def clean_purpose(text: str) -> str:
    """The purpose as stored: trimmed; PurposeError when it shows nothing, holds a control
    character, or is longer than PURPOSE_MAX."""
    start, end = 0, len(text)
    while start < end and _trimmed(text[start]):
        start += 1
    while end > start and _trimmed(text[end - 1]):
        end -= 1
    purpose = text[start:end]
    if not any(_visible(ch) for ch in purpose):
        raise PurposeError("purpose_required", "must say something: the case number or the reason")
    if _CONTROL.search(purpose):
        raise PurposeError("purpose_control", "must not contain control characters")
    if len(purpose) > PURPOSE_MAX:
        raise PurposeError("purpose_too_long", f"is longer than {PURPOSE_MAX} characters")
    return purpose


def _trimmed(ch: str) -> bool:
    return ch.isspace() or ch in _BLANK or unicodedata.category(ch) in _EDGE


def _visible(ch: str) -> bool:
    # Letters, numbers, punctuation, symbols; not marks, separators or the "other" categories.
    return ch not in _BLANK and unicodedata.category(ch)[0] in "LNPS"
