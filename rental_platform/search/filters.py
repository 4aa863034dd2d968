"""The filters of `GET /api/v1/entries` (SPEC 8), checked into one frozen `EntryFilter`.

    entry_filter = parse_entry_filter(request.query_params.multi_items(), store.sealer)
    # FilterError(field="street", code="street_code", message="…") on any bad value

A bad value is refused, naming the field, and never searched as something wider or narrower
than what was asked: an unknown or repeated parameter, a street code without its district (the
same three digits name a street in every district), areas that do not nest, a time without a
UTC offset or an `until` not after `since`, an unknown result, a limit past `LIMIT_MAX`, a
cursor from another search, an ID number whose check digit is wrong. An empty value is no
filter, as an empty field of a form.

The ID number never stays in the filter: it is replaced at once by its keyed hash (the store's
`Sealer.id_number_hash`, what `events.id_hash` holds) and a masked form for the audit.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from web_security.id_numbers import id_check_char
from web_security.masking import mask_id_number
from web_security.purpose import PurposeError
from web_security.purpose import clean_purpose as clean

from ..store.messages import MAX_CARD, MAX_TEXT
from ..store.sealing import Sealer
from . import cursor

LIMIT_MAX = 500
LIMIT_DEFAULT = 100
FIRST_YEAR, LAST_YEAR = 1970, 2099  # a gateway whose clock was never set journals 1970
RESULTS = ("granted", "denied")
FIELDS = frozenset({
    "street", "community", "building", "gateway_id", "card", "id_number", "room", "since",
    "until", "result", "limit", "cursor", "purpose",
})  # fmt: skip

_STREET = re.compile(r"[0-9]{9}")  # district (6) and street (3)
_COMMUNITY = re.compile(r"[0-9]{12}")  # … and community (3)
_BUILDING = re.compile(r"[0-9]{12}-[0-9]{4}")  # … and building (4): 440305001002-0042
_GATEWAY = re.compile(r"[a-z0-9][a-z0-9-]{2,63}")  # SPEC 2's gateway.id
_DIGITS = re.compile(r"[0-9]{1,10}")
_ID_NUMBER = re.compile(r"[0-9]{17}[0-9X]")
_ID_LIKE = re.compile(r"(?<![0-9])[0-9]{17}[0-9Xx](?![0-9A-Za-z])")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class FilterError(ValueError):
    """A filter refused: `field` names it, `code` says why (stable, for clients), `message`
    says it in words."""

    def __init__(self, field: str, code: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class EntryFilter:
    """A checked search. Area fields are the building code's prefixes; the narrowest given
    wins (those given nest, or the search was refused)."""

    purpose: str
    street: str | None = None  # 440305001
    community: str | None = None  # 440305001002
    building: str | None = None  # 440305001002-0042
    gateway_id: str | None = None
    card: int | None = None
    id_hash: bytes | None = None  # keyed hash of the ID number searched
    id_number_masked: str | None = None  # 4403**********1234, for the audit
    room: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    result: str | None = None
    limit: int = LIMIT_DEFAULT
    after: cursor.Position | None = None  # where the previous page ended

    @property
    def area(self) -> tuple[str, ...]:
        """The narrowest area as (district, street[, community[, building]]), or ()."""
        if self.building:
            return (self.building[:6], self.building[6:9], self.building[9:12], self.building[13:])
        if self.community:
            return (self.community[:6], self.community[6:9], self.community[9:12])
        if self.street:
            return (self.street[:6], self.street[6:9])
        return ()

    def fingerprint(self) -> str:
        """What defines the result set (not the page size, the position or the purpose): a
        cursor is bound to it."""
        fields = (self.street, self.community, self.building, self.gateway_id, self.card,
                  self.id_hash.hex() if self.id_hash else None, self.room,
                  self.since.timestamp() if self.since else None,
                  self.until.timestamp() if self.until else None, self.result)  # fmt: skip
        return repr(fields)

    def audit_params(self) -> dict[str, Any]:
        """The filters given, as the audit records them: times in RFC 3339, the ID number
        masked and as its keyed hash (an auditor holding the key can tell whose it was), never
        in plaintext."""
        values: dict[str, Any] = {
            "street": self.street, "community": self.community, "building": self.building,
            "gateway_id": self.gateway_id, "card": self.card,
            "id_number": self.id_number_masked,
            "id_hash": self.id_hash.hex() if self.id_hash else None, "room": self.room,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None, "result": self.result,
            "limit": self.limit, "page": "next" if self.after else None,
        }  # fmt: skip
        return {key: value for key, value in values.items() if value is not None}


def parse_entry_filter(
    params: Mapping[str, str] | Iterable[tuple[str, str]], sealer: Sealer
) -> EntryFilter:
    """The checked filter of a request's query parameters; FilterError on the first bad one.

    parse_entry_filter({"street": "440305001", "card": "1234567",
                        "since": "2026-03-01T00:00:00+08:00", "purpose": "案件 2026-118"},
                       store.sealer)
    # EntryFilter(purpose='案件 2026-118', street='440305001', card=1234567, …)
    """
    given: dict[str, str] = {}
    for key, value in params.items() if isinstance(params, Mapping) else params:
        if key not in FIELDS:
            raise FilterError(key, "unknown_filter", f"is not a filter; the filters are"
                              f" {', '.join(sorted(FIELDS))}")  # fmt: skip
        if key in given:
            raise FilterError(key, "repeated", "is given more than once")
        given[key] = value
    text = {key: value.strip() for key, value in given.items() if value.strip()}
    purpose = clean_purpose(given.get("purpose", ""))
    street, community, building = _area(text)
    gateway_id = text.get("gateway_id")
    if gateway_id is not None and not _GATEWAY.fullmatch(gateway_id):
        raise FilterError("gateway_id", "gateway_id", "must be a gateway's id such as"
                          " gw-440305-0042: a-z, 0-9 and -, 3 to 64")  # fmt: skip
    room = text.get("room")
    if room is not None:
        if len(room) > MAX_TEXT or _CONTROL.search(room):
            raise FilterError("room", "room", f"must be 1 to {MAX_TEXT} characters without"
                              " control characters")  # fmt: skip
        if building is None and gateway_id is None:
            raise FilterError("room", "room_needs_building", "a room number repeats in every"
                              " building: give the building or the gateway too")  # fmt: skip
    id_hash = masked = None
    if "id_number" in text:
        id_number = check_id_number(text["id_number"])
        id_hash, masked = sealer.id_number_hash(id_number), mask_id_number(id_number)
    since, until = _moment(text, "since"), _moment(text, "until")
    if since is not None and until is not None and until <= since:
        raise FilterError("until", "until_before_since", "must be later than since")
    result = text.get("result")
    if result is not None and result not in RESULTS:
        raise FilterError("result", "result", "must be granted or denied")
    entry_filter = EntryFilter(
        purpose=purpose, street=street, community=community, building=building,
        gateway_id=gateway_id, card=_number(text, "card", MAX_CARD), id_hash=id_hash,
        id_number_masked=masked, room=room, since=since, until=until, result=result,
        limit=_number(text, "limit", LIMIT_MAX, low=1) or LIMIT_DEFAULT,
    )  # fmt: skip
    if "cursor" not in text:
        return entry_filter
    position = cursor.decode(sealer, entry_filter.fingerprint(), text["cursor"])
    if position is None:
        raise FilterError("cursor", "cursor", "is not the next_cursor of this search (a cursor"
                          " belongs to the filters it was made for)")  # fmt: skip
    return replace(entry_filter, after=position)


def _area(text: Mapping[str, str]) -> tuple[str | None, str | None, str | None]:
    shapes = (
        ("street", _STREET, "the district's 6 digits then the street's 3, such as 440305001"
         " (a street's 3 digits alone name a street in every district)"),
        ("community", _COMMUNITY, "district, street and community, 12 digits such as"
         " 440305001002"),
        ("building", _BUILDING, "a building code such as 440305001002-0042"),
    )  # fmt: skip
    found: list[str | None] = []
    wider: tuple[str, str] | None = None
    for name, shape, words in shapes:
        value = text.get(name)
        if value is not None and not shape.fullmatch(value):
            raise FilterError(name, f"{name}_code", f"must be {words}")
        if value is not None and wider is not None and not value.startswith(wider[1]):
            raise FilterError(name, "outside_area", f"{value} is not within the {wider[0]}"
                              f" {wider[1]} also given")  # fmt: skip
        if value is not None:
            wider = (name, value)
        found.append(value)
    return found[0], found[1], found[2]


def _number(text: Mapping[str, str], name: str, top: int, low: int = 0) -> int | None:
    value = text.get(name)
    if value is None:
        return None
    if not _DIGITS.fullmatch(value) or not low <= int(value) <= top:
        raise FilterError(name, name, f"must be a whole number from {low} to {top}")
    return int(value)


def _moment(text: Mapping[str, str], name: str) -> datetime | None:
    value = text.get(name)
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value) if len(value) <= 40 else None
    except ValueError:
        moment = None
    if moment is None:
        raise FilterError(name, "time", "must be a time in RFC 3339 such as"
                          " 2026-03-01T08:00:00+08:00")  # fmt: skip
    if moment.tzinfo is None:
        raise FilterError(name, "time_offset", "needs its UTC offset, such as +08:00 or Z: a"
                          " time without one could be any of 24 hours")  # fmt: skip
    if not FIRST_YEAR <= moment.year <= LAST_YEAR:
        raise FilterError(name, "time_range", f"must be between {FIRST_YEAR} and {LAST_YEAR}")
    return moment


def check_id_number(typed: str) -> str:
    """An 18-character resident ID number as the store hashes it (spaces out, X upper case);
    FilterError unless its shape and check digit (GB 11643-1999) are right."""
    text = "".join(typed.split()).upper()
    if not _ID_NUMBER.fullmatch(text):
        raise FilterError("id_number", "id_number", "must be 17 digits followed by a digit or"
                          " X (18 characters)")  # fmt: skip
    if text[17] != id_check_char(text[:17]):
        raise FilterError("id_number", "id_check_digit", "check digit is wrong: mistyped?")
    return text


def clean_purpose(typed: str) -> str:
    """The purpose (case number or reason) as the audit keeps it (web_security.purpose, the
    gateway's rule too); FilterError when it shows nothing, holds a control character or an ID
    number, or is too long."""
    try:
        purpose = clean(typed)
    except PurposeError as refused:
        raise FilterError("purpose", refused.code, refused.message) from None
    refuse_id_numbers(purpose, "purpose")
    return purpose


def refuse_id_numbers(text: str, field: str) -> None:
    """FilterError if `text` holds an ID number (its shape and check digit): the audit, which
    keeps the purpose and the parameters, must hold none in plaintext."""
    for found in _ID_LIKE.finditer(text):
        try:
            check_id_number(found.group())
        except FilterError:
            continue
        raise FilterError(field, f"{field}_id_number", "must not hold an ID number: the audit"
                          " keeps none in plaintext (search by id_number instead)")  # fmt: skip
