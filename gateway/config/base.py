"""What every section model shares: strict, frozen, no unknown keys; and the name patterns."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

GATEWAY_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{2,63}$"
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"
BUILDING_CODE_PATTERN = r"^[0-9]+(-[0-9]+)*$"

PATTERN_HINTS = {
    GATEWAY_ID_PATTERN: "must be 3 to 64 lowercase letters, digits or dashes,"
    ' starting with a letter or digit, e.g. "gw-440305-0042"',
    NAME_PATTERN: 'must be 1 to 32 lowercase letters, digits, "-" or "_",'
    ' starting with a letter or digit, e.g. "main"',
    BUILDING_CODE_PATTERN: "must be digits in groups joined by single dashes,"
    ' e.g. "440305001002-0042"',
}
"""What to tell the installer when a value does not match one of the patterns above."""


class Section(BaseModel):
    """Base of the section models: unknown keys refused, values frozen and strictly typed."""

    # strict: TOML has types, so "5" where a number belongs is a mistake to report, not coerce.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
