"""Alarms: conditions a person must look at, raised from events and acknowledged by a user."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from .errors import NotFound, ValidationError

# Event types that always need a person's attention; a denied lost card is handled apart.
_ALARMING_TYPES = frozenset({"door.forced", "door.held_open", "reader.tamper"})


@dataclass(frozen=True, slots=True)
class Alarm:
    """An alarm; `event_seq` is None for alarms not tied to an event or whose event expired."""

    id: int
    kind: str
    raised_at: str
    door: str | None
    event_seq: int | None
    detail: str
    acknowledged_by: str | None
    acknowledged_at: str | None


_SELECT = (
    "SELECT id, kind, raised_at, door, event_seq, detail, acknowledged_by, acknowledged_at"
    " FROM alarms"
)


def kind_for(body: dict[str, Any]) -> str | None:
    """The alarm an event raises by itself, or None."""
    kind = body["type"]
    if kind == "access.denied" and body.get("reason") == "lost_card":
        return "lost_card"
    return kind if kind in _ALARMING_TYPES else None


def detail_for(body: dict[str, Any]) -> str:
    """A short human line for the alarm list (no personal data: room and card only)."""
    if body["type"] == "access.denied":
        return f"lost card {body['credential'].get('number')} presented (room {body.get('room')})"
    return ""


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
    if not kind:
        raise ValidationError("kind", "is required")
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
    where = "WHERE acknowledged_at IS NULL" if open_only else ""
    rows = conn.execute(f"{_SELECT} {where} ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
    return [Alarm(*row) for row in rows]


def acknowledge_alarm(conn: sqlite3.Connection, alarm_id: int, username: str, now: str) -> Alarm:
    """Mark an alarm seen by `username`; acknowledging again keeps the first acknowledgement."""
    conn.execute(
        "UPDATE alarms SET acknowledged_by = ?, acknowledged_at = ?"
        " WHERE id = ? AND acknowledged_at IS NULL",
        (username, now, alarm_id),
    )
    row = conn.execute(f"{_SELECT} WHERE id = ?", (alarm_id,)).fetchone()
    if row is None:
        raise NotFound(f"no alarm {alarm_id}")
    return Alarm(*row)
