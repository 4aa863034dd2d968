"""Searching the journal the way police queries do: time range plus door/room/tenant/card/result.

Results come newest first and page with an opaque cursor; every filter maps onto an indexed
column of `events`, so a query reads the matching rows only.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from .context import epoch_ms
from .crypto import Keys
from .errors import ValidationError
from .journal import JournalEntry, decode_row

MAX_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class EventQuery:
    """Filters, all optional; `since` inclusive, `until` exclusive, both timezone-aware."""

    since: datetime | None = None
    until: datetime | None = None
    types: tuple[str, ...] = ()
    door: str | None = None
    room: str | None = None
    tenant_id: str | None = None
    card: int | None = None
    result: Literal["granted", "denied"] | None = None
    limit: int = 100
    cursor: str | None = None


@dataclass(frozen=True, slots=True)
class EventPage:
    """One page of results; pass `next_cursor` back for the next (older) page, None at the end."""

    entries: list[JournalEntry]
    next_cursor: str | None


def query_events(conn: sqlite3.Connection, keys: Keys, q: EventQuery) -> EventPage:
    """Run `q` against the journal."""
    if not 1 <= q.limit <= MAX_LIMIT:
        raise ValidationError("limit", f"must be 1..{MAX_LIMIT}")
    where: list[str] = []
    params: list[Any] = []
    for moment, clause, name in ((q.since, "ts_ms >= ?", "since"), (q.until, "ts_ms < ?", "until")):
        if moment is not None:
            if moment.tzinfo is None:
                raise ValidationError(name, "must be timezone-aware")
            where.append(clause)
            params.append(epoch_ms(moment))
    for column, value in (
        ("door", q.door),
        ("room", q.room),
        ("tenant_id", q.tenant_id),
        ("card", q.card),
        ("result", q.result),
    ):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if q.types:
        where.append(f"type IN ({','.join('?' * len(q.types))})")
        params.extend(q.types)
    if q.cursor is not None:
        where.append("(ts_ms, seq) < (?, ?)")
        params.extend(_parse_cursor(q.cursor))
    sql = "SELECT seq, event_id, body, sealed_body, ts_ms FROM events"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY ts_ms DESC, seq DESC LIMIT ?"
    rows = conn.execute(sql, [*params, q.limit + 1]).fetchall()
    more = len(rows) > q.limit
    rows = rows[: q.limit]
    entries = [decode_row(keys, row[:4]) for row in rows]
    cursor = f"{rows[-1][4]}:{rows[-1][0]}" if more else None
    return EventPage(entries, cursor)


def _parse_cursor(cursor: str) -> tuple[int, int]:
    try:
        ts_ms, seq = cursor.split(":")
        return int(ts_ms), int(seq)
    except ValueError:
        raise ValidationError("cursor", "is not a cursor this query returned") from None
