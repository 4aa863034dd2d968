"""Entry snapshots in the journal: the capture gate, filling in an event's snapshot, the
snapshot outbox and police holds.

An access event is committed before its door opens, and its picture is taken after, off the
door path. So the event is journaled with `"snapshot": null, "snapshot_error": "interrupted"`
and its seq is *held* (a row in `captures`, written in the event's transaction) until the
capture has written the JPEG and `fill_snapshot` has put `{"sha256", "bytes"}` (or the reason
there is none) into the body and deleted the hold, in one transaction. While a seq is held, the
uplink sends nothing from it on, so every event goes up once, in seq order, with its final body.
The hold is in the database because the door, the camera and the uplink are separate processes.
If the gateway stops before the capture ends, the door lets the holds go at its next start and
the body keeps "interrupted", which is then true.

Snapshots go up (`P/snapshots/{event_id}`) only for events the platform has acknowledged, in
seq order; `meta.snapshot_sent_seq` is the outbox's watermark, saved like the ack watermark.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from .crypto import Keys
from .errors import ValidationError
from .journal import JournalEntry, decode_row

# The events that carry a `snapshot` field (SPEC 6).
SNAPSHOT_TYPES = frozenset({"access.granted", "access.denied", "door.forced"})
# snapshot_error of an event whose capture is running, and stays so if it never finished.
CAPTURING = "interrupted"
SENT_KEY = "snapshot_sent_seq"
_TYPES_SQL = "(" + ", ".join(f"'{t}'" for t in sorted(SNAPSHOT_TYPES)) + ")"


def hold_capture(conn: sqlite3.Connection, seq: int) -> None:
    """Hold event `seq` back from the uplink until its snapshot is filled in (same transaction
    as the event, so whoever can read the row also sees the hold)."""
    conn.execute("INSERT INTO captures (seq) VALUES (?)", (seq,))


def claim_capture(conn: sqlite3.Connection, seq: int) -> bool:
    """Take the hold off `seq`; True for the first caller only (the capture and its deadline
    race to fill a seq, possibly from two processes)."""
    return conn.execute("DELETE FROM captures WHERE seq = ?", (seq,)).rowcount > 0


def release_all_captures(conn: sqlite3.Connection) -> int:
    """Let every held event go up as journaled ("interrupted"); how many were held."""
    return conn.execute("DELETE FROM captures").rowcount


def held_captures(conn: sqlite3.Connection) -> list[int]:
    """The seqs waiting for their snapshot, lowest first."""
    return [row[0] for row in conn.execute("SELECT seq FROM captures ORDER BY seq")]


def fill_snapshot(
    conn: sqlite3.Connection,
    keys: Keys,
    seq: int,
    snapshot: dict[str, Any] | None,
    error: str | None,
) -> JournalEntry | None:
    """Put the capture's outcome into event `seq`'s body and take its hold off; None if it is
    not waiting for one (the hold was taken off already, by the deadline or a restart)."""
    if (snapshot is None) == (error is None):
        raise ValidationError("snapshot", "give either the snapshot or the error")
    if not claim_capture(conn, seq):
        return None
    row = conn.execute(
        "SELECT seq, event_id, body, sealed_body FROM events WHERE seq = ?", (seq,)
    ).fetchone()
    if row is None or row[2] is None:
        return None
    body = decode_row(keys, row).body
    if body.get("snapshot") is not None or body.get("snapshot_error") != CAPTURING:
        return None
    body["snapshot"] = snapshot
    if snapshot is None:
        body["snapshot_error"] = error
    else:
        del body["snapshot_error"]
    # The same encoding as the journal's own (journal.prepare_event), key order kept.
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    conn.execute("UPDATE events SET body = ? WHERE seq = ?", (text, seq))
    return JournalEntry(seq, row[1], body, text)


@dataclass(frozen=True, slots=True)
class SnapshotRef:
    """An event's snapshot as the journal records it."""

    seq: int
    event_id: str
    ts: str
    sha256: str
    bytes: int


def next_snapshot(conn: sqlite3.Connection, after_seq: int, upto_seq: int) -> SnapshotRef | None:
    """The first event with a snapshot in (after_seq, upto_seq], by seq."""
    row = conn.execute(
        "SELECT seq, event_id, ts, json_extract(body, '$.snapshot.sha256'),"  # noqa: S608
        " json_extract(body, '$.snapshot.bytes') FROM events"
        f" WHERE seq > ? AND seq <= ? AND type IN {_TYPES_SQL}"
        " AND json_extract(body, '$.snapshot.sha256') IS NOT NULL ORDER BY seq LIMIT 1",
        (after_seq, upto_seq),
    ).fetchone()
    return None if row is None else SnapshotRef(*row)


def sent_seq(conn: sqlite3.Connection) -> int:
    """The saved outbox watermark: every snapshot of a seq at or below it went up."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (SENT_KEY,)).fetchone()
    return 0 if row is None else int(row[0])


def save_sent(conn: sqlite3.Connection, seq: int) -> None:
    """Move the outbox watermark forward (never back), in the caller's transaction."""
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?)"
        " ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
        (SENT_KEY, seq),
    )


@dataclass(frozen=True, slots=True)
class SnapshotHold:
    """A police hold: this snapshot outlives retention until the hold is released."""

    event_id: str
    purpose: str
    held_by: str
    held_at: str


def hold(conn: sqlite3.Connection, event_id: str, purpose: str, held_by: str, now: str) -> None:
    """Place a hold (or renew it with a new purpose)."""
    purpose = purpose.strip()
    if not 1 <= len(purpose) <= 200:
        raise ValidationError("purpose", "must be 1 to 200 characters (the case number)")
    conn.execute(
        "INSERT INTO snapshot_holds (event_id, purpose, held_by, held_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (event_id) DO UPDATE SET purpose = excluded.purpose,"
        " held_by = excluded.held_by, held_at = excluded.held_at",
        (event_id, purpose, held_by, now),
    )


def release(conn: sqlite3.Connection, event_id: str) -> bool:
    """Lift a hold; False if there was none."""
    cursor = conn.execute("DELETE FROM snapshot_holds WHERE event_id = ?", (event_id,))
    return cursor.rowcount > 0


def holds(conn: sqlite3.Connection) -> list[SnapshotHold]:
    """Every hold, oldest first."""
    rows = conn.execute(
        "SELECT event_id, purpose, held_by, held_at FROM snapshot_holds ORDER BY held_at"
    ).fetchall()
    return [SnapshotHold(*row) for row in rows]
