"""Searching the journal the way police queries do: time range plus door/room/tenant/card/result.

Results come newest first and page with an opaque cursor. Events up to meta `indexed_seq` are
found through the block index (journal.py): by card, tenant or room in `event_keys`, one probe
per block, else by time in `event_times`, read newest first until the page is full. The few
events above it, not indexed yet, are read directly and merged in.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from .context import epoch_ms
from .crypto import Keys
from .errors import ValidationError
from .journal import BLOCKS, INDEXED, JournalEntry, decode_row
from .validation import CARD_NUMBER_MAX

MAX_LIMIT = 1000
# What query_events returns as next_cursor: the last row's ts_ms and seq, both within 64 bits.
_CURSOR = re.compile(r"(-?[0-9]{1,16}):([0-9]{1,19})")
_SEQ_MAX = 2**63 - 1


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
    if q.card is not None and not 0 <= q.card <= CARD_NUMBER_MAX:
        raise ValidationError("card", f"must be 0..{CARD_NUMBER_MAX}")
    # Conditions as (SQL with {t} for the table's alias, values): first those on (ts_ms, seq),
    # which the indexes hold too, then those on the other columns of the events.
    bounds: dict[str, int] = {}
    for moment, name in ((q.since, "since"), (q.until, "until")):
        if moment is not None:
            if moment.tzinfo is None:
                raise ValidationError(name, "must be timezone-aware")
            bounds[name] = epoch_ms(moment)
    order: list[tuple[str, tuple[Any, ...]]] = []
    if "since" in bounds:
        order.append(("{t}ts_ms >= ?", (bounds["since"],)))
    if q.cursor is not None:
        ts_ms, seq = _parse_cursor(q.cursor)
        # One plain upper bound, so SQLite starts the index range there.
        last = min(ts_ms, bounds.get("until", ts_ms + 1) - 1)
        order.append(("{t}ts_ms <= ? AND ({t}ts_ms, {t}seq) < (?, ?)", (last, ts_ms, seq)))
    elif "until" in bounds:
        order.append(("{t}ts_ms < ?", (bounds["until"],)))
    columns: list[tuple[str, tuple[Any, ...]]] = [
        (f"{{t}}{column} = ?", (value,))
        for column, value in (
            ("door", q.door),
            ("room", q.room),
            ("tenant_id", q.tenant_id),
            ("card", q.card),
            ("result", q.result),
        )
        if value is not None
    ]
    if q.types:
        columns.append((f"{{t}}type IN ({','.join('?' * len(q.types))})", q.types))
    # The most selective key given leads through event_keys; the others filter the rows.
    key = next(
        ((kind, value) for kind, value in (("c", q.card), ("t", q.tenant_id), ("r", q.room))
         if value is not None),
        None,
    )  # fmt: skip
    # Only constants and "?" are formatted into the SQL below (noqa: S608); values go to params.
    params: list[Any] = []
    if key is None:
        indexed = (
            "SELECT e.seq, e.ts_ms FROM event_times AS t JOIN events AS e ON e.seq = t.seq"  # noqa: S608
            f" WHERE {_sql(order, 't.', params)} AND {_sql(columns, 'e.', params)}"
            " ORDER BY t.ts_ms DESC, t.seq DESC LIMIT ?"
        )
    else:
        params.extend(key)
        indexed = (
            "SELECT k.seq, k.ts_ms FROM blocks JOIN event_keys AS k ON k.block = blocks.b"  # noqa: S608
            f" AND k.kind = ? AND k.value = ? AND {_sql(order, 'k.', params)}"
            f" JOIN events AS e ON e.seq = k.seq WHERE {_sql(columns, 'e.', params)}"
            " ORDER BY k.ts_ms DESC, k.seq DESC LIMIT ?"
        )
    params.append(q.limit + 1)
    tail = (
        f"SELECT seq, ts_ms FROM events WHERE seq > {INDEXED}"  # noqa: S608
        f" AND {_sql(order + columns, '', params)} ORDER BY ts_ms DESC, seq DESC LIMIT ?"
    )
    params.append(q.limit + 1)
    # The two parts never overlap (seqs up to indexed_seq, and above), and being one statement
    # they read the same indexed_seq. Each gives its newest limit+1 (the second from at most
    # about one block of events), and only the page's rows are read whole.
    sql = (
        f"WITH RECURSIVE {BLOCKS}, hits(seq, ts_ms) AS (SELECT * FROM ({indexed})"  # noqa: S608
        f" UNION ALL SELECT * FROM ({tail})), page AS (SELECT seq, ts_ms FROM hits"
        " ORDER BY ts_ms DESC, seq DESC LIMIT ?) SELECT e.seq, e.event_id, e.body,"
        " e.sealed_body, e.ts_ms FROM page JOIN events AS e ON e.seq = page.seq"
        " ORDER BY page.ts_ms DESC, page.seq DESC"
    )
    rows = conn.execute(sql, [*params, q.limit + 1]).fetchall()
    more = len(rows) > q.limit
    rows = rows[: q.limit]
    entries = [decode_row(keys, row[:4]) for row in rows]
    cursor = f"{rows[-1][4]}:{rows[-1][0]}" if more else None
    return EventPage(entries, cursor)


def _sql(conditions: list[tuple[str, tuple[Any, ...]]], alias: str, params: list[Any]) -> str:
    """`conditions` joined by AND ("1" for none) on table `alias`; their values go to `params`."""
    for _, values in conditions:
        params.extend(values)
    return " AND ".join(clause.format(t=alias) for clause, _ in conditions) or "1"


def _parse_cursor(cursor: str) -> tuple[int, int]:
    match = _CURSOR.fullmatch(cursor)
    if match is None or int(match[2]) > _SEQ_MAX:
        raise ValidationError("cursor", "is not a cursor this query returned")
    return int(match[1]), int(match[2])
