"""Alarms: conditions a person must look at, raised with an event and acknowledged by a user.

Which events alarm is the door logic's call (a tamper switch closing again is an event, not an
alarm), so the store raises exactly the alarm its caller names, in the event's transaction.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass, replace
from typing import Any

from .errors import NotFound, ValidationError


@dataclass(frozen=True, slots=True)
class Alarm:
    """An alarm; `event_seq` is None for alarms not tied to an event or whose event expired.

    The event's card, room and tenant (by name) and whether it has a snapshot come with it, so
    an alarm says whose card was presented at which door without a second lookup.
    """

    id: int
    kind: str
    raised_at: str
    door: str | None
    event_seq: int | None
    detail: str
    acknowledged_by: str | None
    acknowledged_at: str | None
    card: int | None = None
    room: str | None = None
    tenant_name: str | None = None
    event_id: str | None = None
    has_snapshot: bool = False


_KIND = re.compile(r"[a-z][a-z0-9_.]{0,63}")
_SELECT = (
    "SELECT a.id, a.kind, a.raised_at, a.door, a.event_seq, a.detail, a.acknowledged_by,"
    " a.acknowledged_at, e.card, e.room, t.name, e.event_id,"
    " coalesce(json_extract(e.body, '$.snapshot.sha256') IS NOT NULL, 0)"
    " FROM alarms AS a LEFT JOIN events AS e ON e.seq = a.event_seq"
    " LEFT JOIN tenants AS t ON t.id = e.tenant_id"
)


def detail_for(card: int | None, room: str | None) -> str:
    """A short line for the alarm list from the event's card and room (no personal data)."""
    parts = ([f"card {card}"] if card is not None else []) + ([f"room {room}"] if room else [])
    return ", ".join(parts)


def raise_alarm(
    conn: sqlite3.Connection,
    kind: str,
    *,
    raised_at: str,
    door: str | None = None,
    event_seq: int | None = None,
    detail: str = "",
) -> int:
    """Record an alarm and return its id; the same kind for the same event is recorded once."""
    if not _KIND.fullmatch(kind):
        raise ValidationError("alarm", f"{kind!r} is not an alarm kind like 'door_forced'")
    row = conn.execute(
        "INSERT INTO alarms (kind, raised_at, door, event_seq, detail) VALUES (?,?,?,?,?)"
        " ON CONFLICT (event_seq, kind) DO NOTHING RETURNING id",
        (kind, raised_at, door, event_seq, detail),
    ).fetchone()
    if row is None:
        row = conn.execute(
            "SELECT id FROM alarms WHERE event_seq = ? AND kind = ?", (event_seq, kind)
        ).fetchone()
    return int(row[0])


def list_alarms(conn: sqlite3.Connection, *, open_only: bool, limit: int) -> list[Alarm]:
    """Newest first; `open_only` leaves out acknowledged ones."""
    where = "WHERE a.acknowledged_at IS NULL" if open_only else ""
    rows = conn.execute(f"{_SELECT} {where} ORDER BY a.id DESC LIMIT ?", (limit,)).fetchall()
    return [_alarm(row) for row in rows]


def acknowledge_alarm(conn: sqlite3.Connection, alarm_id: int, username: str, now: str) -> Alarm:
    """Mark an alarm seen by `username`; acknowledging again keeps the first acknowledgement."""
    conn.execute(
        "UPDATE alarms SET acknowledged_by = ?, acknowledged_at = ?"
        " WHERE id = ? AND acknowledged_at IS NULL",
        (username, now, alarm_id),
    )
    return get_alarm(conn, alarm_id)


def get_alarm(conn: sqlite3.Connection, alarm_id: int) -> Alarm:
    """The alarm, or NotFound."""
    row = conn.execute(f"{_SELECT} WHERE a.id = ?", (alarm_id,)).fetchone()
    if row is None:
        raise NotFound(f"no alarm {alarm_id}")
    return _alarm(row)


def _alarm(row: tuple[Any, ...]) -> Alarm:
    *fields, has_snapshot = row
    alarm = Alarm(*fields)
    return replace(alarm, has_snapshot=True) if has_snapshot else alarm
