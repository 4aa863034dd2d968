"""The police search filters, each checked against its bounds before anything is read.

A value out of bounds is refused with the filter's name (a 422; on the page, in the page's
language through `invalid.<filter>` in i18n.py), never searched as given: a tenant id no tenant
can have, a door no door is called or an `until` before `since` would otherwise be an empty
search that reads as "no entries", and a card number padded with 4,000 zeros matched its card
but made the audit row too long to write. The API and the page build their query here.

    query = police_query(room="301", card=1234567, limit=100)
    form_query({"room": "301", "since": "2026-03-01T08:00"}, limit=50, zone=building_zone)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, tzinfo
from typing import Any, Literal, cast

from gateway.config.base import NAME_PATTERN
from gateway.store import EventQuery, ValidationError
from gateway.store.validation import CARD_NUMBER_MAX, refuse_other_digits

ENTRY_TYPES = ("access.granted", "access.denied")
LIMIT_MAX = 500
# A gateway whose clock was never set journals 1970; nothing is journaled past 2099.
FIRST_YEAR, LAST_YEAR = 1970, 2099  # as written, in the time's own zone
ROOM_MAX = 32  # as a tenant's room (gateway/store/validation.py)

_DOOR = re.compile(NAME_PATTERN)  # door names are config names
# A tenant's id, an event's id: a UUID in lower case.
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_CARD_TEXT = re.compile(r"[0-9]{1,10}")  # ASCII digits: str.isdigit() also takes "٤٢" and "²"
_CURSOR = re.compile(r"-?[0-9]{1,16}:[0-9]{1,19}")  # ts_ms:seq, as the store returns it
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_RESULTS = ("granted", "denied")


def police_query(
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    door: str | None = None,
    room: str | None = None,
    tenant_id: str | None = None,
    card: int | None = None,
    result: str | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> EventQuery:
    """The entry log query for these filters; ValidationError naming the first out of bounds."""
    for name, moment in (("since", since), ("until", until)):
        if moment is None:
            continue
        if moment.tzinfo is None:
            raise ValidationError(name, "needs a UTC offset (RFC 3339)")
        if not FIRST_YEAR <= moment.year <= LAST_YEAR:
            raise ValidationError(name, "must be between 1970 and 2099")
    if since is not None and until is not None and until <= since:
        raise ValidationError("until", "must be later than since")
    if door is not None and not _DOOR.fullmatch(door):
        raise ValidationError("door", "must be a door's name: a-z, 0-9, - and _, 1 to 32")
    if room is not None and not (
        0 < len(room) <= ROOM_MAX and room == room.strip() and not _CONTROL.search(room)
    ):
        raise ValidationError("room", f"must be 1 to {ROOM_MAX} characters, without spaces"
                              " around or control characters")  # fmt: skip
    if tenant_id is not None and not UUID.fullmatch(tenant_id):
        raise ValidationError("tenant_id", "must be a tenant's id: a UUID in lower case")
    if card is not None and not 0 <= card <= CARD_NUMBER_MAX:
        raise ValidationError("card", f"must be a card number, 0 to {CARD_NUMBER_MAX}")
    if result is not None and result not in _RESULTS:
        raise ValidationError("result", "must be granted or denied")
    if not 1 <= limit <= LIMIT_MAX:
        raise ValidationError("limit", f"must be 1 to {LIMIT_MAX}")
    if cursor is not None and (
        not _CURSOR.fullmatch(cursor) or int(cursor.split(":")[1]) > 2**63 - 1
    ):
        raise ValidationError("cursor", "is not a cursor a search returned")
    return EventQuery(
        since=since, until=until, types=ENTRY_TYPES, door=door, room=room, tenant_id=tenant_id,
        card=card, result=cast(Literal["granted", "denied"] | None, result), limit=limit,
        cursor=cursor,
    )  # fmt: skip


def form_query(form: Mapping[str, str], *, limit: int, zone: tzinfo | None) -> EventQuery:
    """The page's search form (text; an empty field is no filter) as a checked query.

    Times without an offset are the building's (`zone`, else this machine's).
    """
    text = {key: value.strip() for key, value in form.items()}

    def moment(key: str) -> datetime | None:
        if not text.get(key):
            return None
        try:
            value = datetime.fromisoformat(text[key])
            if value.tzinfo is None:
                value = value.replace(tzinfo=zone) if zone else value.astimezone()
        except (ValueError, OverflowError):  # astimezone() of year 1 overflows
            raise ValidationError(key, "must be a time such as 2026-03-01T08:00") from None
        return value

    card = text.get("card", "")
    refuse_other_digits(card, "card")
    if card and not _CARD_TEXT.fullmatch(card):
        raise ValidationError("card", "must be a card number: up to 10 digits")
    return police_query(
        since=moment("since"), until=moment("until"), door=text.get("door") or None,
        room=text.get("room") or None, tenant_id=text.get("tenant_id") or None,
        card=int(card) if card else None, result=text.get("result") or None, limit=limit,
        cursor=text.get("cursor") or None,
    )  # fmt: skip


def filter_params(query: EventQuery) -> dict[str, Any]:
    """The filters of `query` as its audit row records them (those given, times in RFC 3339)."""
    values: dict[str, Any] = {
        "since": query.since.isoformat() if query.since else None,
        "until": query.until.isoformat() if query.until else None,
        "door": query.door, "room": query.room, "tenant_id": query.tenant_id, "card": query.card,
        "result": query.result, "cursor": query.cursor,
    }  # fmt: skip
    return {key: value for key, value in values.items() if value is not None}
