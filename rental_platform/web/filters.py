"""Filters of the fleet, checked before anything is read: out of bounds is a 422 naming the
filter (`FilterRefused`), never an empty or wider answer."""

from __future__ import annotations

import re
from dataclasses import dataclass

_THREE_DIGITS = re.compile(r"[0-9]{3}")


class FilterRefused(ValueError):
    """A filter out of bounds: `field`, `code` (`filter.<field>` in i18n.py) and the English."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(detail)
        self.field = field
        self.code = f"bad_{field}"
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Area:
    street: str | None
    community: str | None


def area(street: str | None, community: str | None) -> Area:
    """A street and a community as parts of a building code (`440305001002-0042`: street
    `001`, community `002`); empty is no filter."""
    street, community = (street or "").strip() or None, (community or "").strip() or None
    if street is not None and not _THREE_DIGITS.fullmatch(street):
        raise FilterRefused("street", "street must be the 3 digits of a street code, such as 001")
    if community is not None and not _THREE_DIGITS.fullmatch(community):
        raise FilterRefused(
            "community", "community must be the 3 digits of a community code, such as 002"
        )
    return Area(street, community)
