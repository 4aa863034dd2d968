"""The platform's SQLite database: events, ack watermarks, rejects, statuses, snapshots, commands.

Several consumer instances may share one database (a shared subscription splits a gateway's
events between them), so everything the ack rule needs lives here, not in one process's memory:
`gateways.watermark` is advanced inside the same transaction that stores the events, and
SQLite's write lock (`BEGIN IMMEDIATE`) serialises instances, so the later of two transactions
always sees both halves of a gap it fills.

WAL with `synchronous=FULL` on every writing connection: under a simulated power cut WAL +
NORMAL lost acknowledged commits (docs/store.md), and an ack here promises the gateway it may
forget nothing.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

# SQLite's INTEGER: a larger number from a gateway would fail the whole batch's transaction.
MAX_INT = 2**63 - 1
# The payload kept of a rejected message: enough to diagnose, bounded so junk cannot fill a disk.
REJECT_KEEP_BYTES = 64 * 1024

SCHEMA = [
    # version 1
    """
    CREATE TABLE events (
        gateway_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        event_id TEXT NOT NULL,
        type TEXT NOT NULL,
        ts TEXT NOT NULL,                 -- the gateway's RFC 3339 time stamp
        ts_epoch REAL NOT NULL,           -- the same in Unix seconds, for latency figures
        received_at REAL NOT NULL,        -- when this consumer received it (Unix seconds)
        stored_at REAL NOT NULL,          -- when its batch was written (committed just after)
        body TEXT NOT NULL,               -- the event JSON exactly as received
        PRIMARY KEY (gateway_id, seq)
    ) WITHOUT ROWID;
    CREATE TABLE gateways (
        gateway_id TEXT PRIMARY KEY,
        watermark INTEGER NOT NULL DEFAULT 0, -- every seq <= watermark is stored centrally
        floor INTEGER NOT NULL DEFAULT 0,     -- highest `acked` user property seen
        duplicates INTEGER NOT NULL DEFAULT 0,
        rejected INTEGER NOT NULL DEFAULT 0,
        last_event_at REAL
    );
    CREATE TABLE rejects (
        id INTEGER PRIMARY KEY,
        gateway_id TEXT,
        topic TEXT NOT NULL,
        reason TEXT NOT NULL,
        payload BLOB,
        received_at REAL NOT NULL
    );
    CREATE TABLE status (
        gateway_id TEXT PRIMARY KEY,
        state TEXT,
        body TEXT NOT NULL,
        received_at REAL NOT NULL
    );
    CREATE TABLE snapshots (
        id INTEGER PRIMARY KEY,
        gateway_id TEXT NOT NULL,
        event_id TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        jpeg BLOB NOT NULL,
        received_at REAL NOT NULL,
        UNIQUE (gateway_id, event_id)
    );
    CREATE TABLE command_counters (
        gateway_id TEXT PRIMARY KEY,
        counter INTEGER NOT NULL
    );
    CREATE TABLE commands (
        gateway_id TEXT NOT NULL,
        counter INTEGER NOT NULL,
        cmd TEXT,
        summary TEXT,                     -- never the args: a registry carries personal data
        issued_at TEXT,
        expires_at TEXT,
        sent_at REAL,
        ok INTEGER,                       -- NULL until the gateway's result arrives
        error TEXT,
        result_at REAL,
        PRIMARY KEY (gateway_id, counter)
    );
    """,
]


class Invalid(Exception):
    """A message the platform refuses to store as what it claims to be; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Incoming:
    """One message as the MQTT thread received it."""

    topic: str
    gateway_id: str | None
    leaf: str  # "events", "status", "cmd/result", "snapshots/<event_id>", or the unknown rest
    payload: bytes
    received_at: float
    acked: int | None  # the gateway's `acked` user property (events only)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as the platform stored it."""

    gateway_id: str
    seq: int
    event: dict[str, Any]
    ts_epoch: float
    received_at: float
    stored_at: float


@dataclass(frozen=True, slots=True)
class CommandRecord:
    """A command the platform sent and, once it came, the gateway's result."""

    gateway_id: str
    counter: int
    cmd: str | None
    summary: str | None
    sent_at: float | None
    ok: bool | None
    error: str | None
    result_at: float | None


@dataclass(slots=True)
class BatchOutcome:
    """What one committed batch changed: for acks and counters."""

    stored: int = 0
    duplicates: int = 0
    conflicts: int = 0
    rejected: int = 0
    statuses: int = 0
    results: int = 0
    snapshots: int = 0
    # gateway → its watermark after the batch, for every gateway with an event in the batch
    watermarks: dict[str, int] = field(default_factory=dict)
    # gateways that sent an event we had already: it may have missed our ack, so ack again
    resend_ack: set[str] = field(default_factory=set)


def connect(path: Path, *, timeout: float = 30.0) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL + synchronous=FULL."""
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def migrate(conn: sqlite3.Connection) -> None:
    """Bring the schema to the current version; safe to run from several processes at once."""
    with transaction(conn):
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        for number, script in enumerate(SCHEMA[version:], start=version + 1):
            for statement in script.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """`BEGIN IMMEDIATE` … `COMMIT`, or `ROLLBACK` on any exception."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


# -- parsing ------------------------------------------------------------------------------------


def parse_event(message: Incoming) -> tuple[dict[str, Any], float]:
    """The event of an `events` message checked against SPEC 6, and its time stamp in Unix
    seconds; raise Invalid saying why not."""
    body = _json_object(message.payload)
    if body.get("gateway_id") != message.gateway_id:
        raise Invalid("gateway_mismatch")
    seq = body.get("seq")
    if type(seq) is not int or not 1 <= seq <= MAX_INT:
        raise Invalid("bad_seq")
    if body.get("schema") != 1:
        raise Invalid("bad_schema")
    for name in ("event_id", "type"):
        if not isinstance(body.get(name), str) or not body[name]:
            raise Invalid(f"bad_{name}")
    return body, _epoch(body.get("ts"))


def _json_object(payload: bytes) -> dict[str, Any]:
    try:
        # Decoded first: json.loads would also take UTF-16 or UTF-32 bytes, which could not
        # then be stored as the text they claim to be.
        body = json.loads(payload.decode())
    except (UnicodeDecodeError, ValueError):
        raise Invalid("not_json") from None
    if not isinstance(body, dict):
        raise Invalid("not_object")
    return body


def _epoch(value: Any) -> float:
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
        if moment is None or moment.tzinfo is None:
            raise Invalid("bad_ts")
        return moment.timestamp()
    except (ValueError, OverflowError):
        raise Invalid("bad_ts") from None


# -- the batch write ----------------------------------------------------------------------------


def store_batch(conn: sqlite3.Connection, messages: Iterable[Incoming]) -> BatchOutcome:
    """Store a batch of messages in one transaction and advance the touched watermarks."""
    outcome = BatchOutcome()
    now = time.time()
    floors: dict[str, int] = {}
    duplicates: dict[str, int] = {}
    rejected: dict[str, int] = {}
    touched: set[str] = set()
    with transaction(conn):
        for message in messages:
            try:
                _store_one(conn, message, now, outcome, floors, duplicates, touched)
            except Invalid as invalid:
                outcome.rejected += 1
                if message.gateway_id is not None:
                    rejected[message.gateway_id] = rejected.get(message.gateway_id, 0) + 1
                conn.execute(
                    "INSERT INTO rejects (gateway_id, topic, reason, payload, received_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (message.gateway_id, message.topic, invalid.reason,
                     message.payload[:REJECT_KEEP_BYTES], message.received_at),
                )
        for gateway_id in touched | set(rejected):
            conn.execute(
                "INSERT INTO gateways (gateway_id, floor, duplicates, rejected, last_event_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (gateway_id) DO UPDATE SET"
                " floor = max(floor, excluded.floor),"
                " duplicates = duplicates + excluded.duplicates,"
                " rejected = rejected + excluded.rejected,"
                " last_event_at = coalesce(excluded.last_event_at, last_event_at)",
                (gateway_id, floors.get(gateway_id, 0), duplicates.get(gateway_id, 0),
                 rejected.get(gateway_id, 0), now if gateway_id in touched else None),
            )
        for gateway_id in touched:
            outcome.watermarks[gateway_id] = _advance(conn, gateway_id)
    return outcome


def _store_one(conn: sqlite3.Connection, message: Incoming, now: float, outcome: BatchOutcome,
               floors: dict[str, int], duplicates: dict[str, int], touched: set[str]) -> None:
    gateway_id = message.gateway_id
    if gateway_id is None:
        raise Invalid("unknown_topic")
    if message.leaf == "events":
        event, ts_epoch = parse_event(message)
        seq = event["seq"]
        cursor = conn.execute(
            "INSERT OR IGNORE INTO events (gateway_id, seq, event_id, type, ts, ts_epoch,"
            " received_at, stored_at, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (gateway_id, seq, event["event_id"], event["type"], event["ts"], ts_epoch,
             message.received_at, now, message.payload.decode()),
        )
        touched.add(gateway_id)
        if message.acked is not None and message.acked > floors.get(gateway_id, 0):
            floors[gateway_id] = message.acked
        if cursor.rowcount == 1:
            outcome.stored += 1
            return
        outcome.duplicates += 1
        duplicates[gateway_id] = duplicates.get(gateway_id, 0) + 1
        outcome.resend_ack.add(gateway_id)
        (kept,) = conn.execute("SELECT event_id FROM events WHERE gateway_id = ? AND seq = ?",
                               (gateway_id, seq)).fetchone()
        if kept != event["event_id"]:
            # Same (gateway, seq), another event: the gateway broke its promise never to
            # reuse a seq. Keep the first, record the second for a person to look at.
            outcome.conflicts += 1
            raise Invalid("seq_conflict")
    elif message.leaf == "status":
        body = _json_object(message.payload)
        state = body.get("state")
        if state not in ("online", "offline"):
            raise Invalid("bad_state")
        conn.execute(
            "INSERT INTO status (gateway_id, state, body, received_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (gateway_id) DO UPDATE SET state = excluded.state,"
            " body = excluded.body, received_at = excluded.received_at",
            (gateway_id, state, message.payload.decode(), message.received_at),
        )
        outcome.statuses += 1
    elif message.leaf == "cmd/result":
        body = _json_object(message.payload)
        counter, ok, error = body.get("counter"), body.get("ok"), body.get("error")
        if type(counter) is not int or not 1 <= counter <= MAX_INT or not isinstance(ok, bool):
            raise Invalid("bad_result")
        conn.execute(
            "INSERT INTO commands (gateway_id, counter, ok, error, result_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (gateway_id, counter) DO UPDATE SET"
            " ok = excluded.ok, error = excluded.error, result_at = excluded.result_at"
            # The first result wins: a command published again after a lost PUBACK is refused
            # by the gateway as a replay, and that refusal must not hide the real outcome.
            " WHERE ok IS NULL",
            (gateway_id, counter, ok, None if error is None else str(error),
             message.received_at),
        )
        outcome.results += 1
    elif message.leaf.startswith("snapshots/"):
        event_id = message.leaf.removeprefix("snapshots/")
        if not message.payload.startswith(b"\xff\xd8"):
            raise Invalid("not_jpeg")
        conn.execute(
            "INSERT OR REPLACE INTO snapshots (gateway_id, event_id, sha256, jpeg, received_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (gateway_id, event_id, hashlib.sha256(message.payload).hexdigest(), message.payload,
             message.received_at),
        )
        outcome.snapshots += 1
    else:
        raise Invalid("unknown_topic")


def _advance(conn: sqlite3.Connection, gateway_id: str) -> int:
    """Move the gateway's watermark over the stored seqs now contiguous with it; return it."""
    watermark, floor = conn.execute(
        "SELECT watermark, floor FROM gateways WHERE gateway_id = ?", (gateway_id,)).fetchone()
    mark = max(watermark, floor)
    while True:
        rows = conn.execute(
            "SELECT seq FROM events WHERE gateway_id = ? AND seq > ? ORDER BY seq LIMIT 1000",
            (gateway_id, mark)).fetchall()
        for (seq,) in rows:
            if seq != mark + 1:
                break
            mark = seq
        else:
            if len(rows) == 1000:
                continue
        break
    if mark != watermark:
        conn.execute("UPDATE gateways SET watermark = ? WHERE gateway_id = ?", (mark, gateway_id))
    return int(mark)


# -- commands -----------------------------------------------------------------------------------


def next_counter(conn: sqlite3.Connection, gateway_id: str, at_least: int) -> int:
    """Allocate the gateway's next command counter: above every earlier one, and >= at_least."""
    with transaction(conn):
        row = conn.execute("SELECT counter FROM command_counters WHERE gateway_id = ?",
                           (gateway_id,)).fetchone()
        counter = max((row[0] if row else 0) + 1, at_least)
        conn.execute(
            "INSERT INTO command_counters (gateway_id, counter) VALUES (?, ?)"
            " ON CONFLICT (gateway_id) DO UPDATE SET counter = excluded.counter",
            (gateway_id, counter),
        )
    return counter


def record_command(conn: sqlite3.Connection, gateway_id: str, counter: int, cmd: str,
                   summary: str, issued_at: str, expires_at: str) -> None:
    """Remember a command about to be published (its result may come before sent_at is set)."""
    with transaction(conn):
        conn.execute(
            "INSERT INTO commands (gateway_id, counter, cmd, summary, issued_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (gateway_id, counter) DO UPDATE SET"
            " cmd = excluded.cmd, summary = excluded.summary, issued_at = excluded.issued_at,"
            " expires_at = excluded.expires_at",
            (gateway_id, counter, cmd, summary, issued_at, expires_at),
        )


def command_sent(conn: sqlite3.Connection, gateway_id: str, counter: int, at: float) -> None:
    """The broker accepted the command's publish."""
    with transaction(conn):
        conn.execute("UPDATE commands SET sent_at = ? WHERE gateway_id = ? AND counter = ?",
                     (at, gateway_id, counter))


def command(conn: sqlite3.Connection, gateway_id: str, counter: int) -> CommandRecord | None:
    """One command and its result so far."""
    row = conn.execute(
        "SELECT gateway_id, counter, cmd, summary, sent_at, ok, error, result_at FROM commands"
        " WHERE gateway_id = ? AND counter = ?", (gateway_id, counter)).fetchone()
    if row is None:
        return None
    ok = None if row[5] is None else bool(row[5])
    return CommandRecord(row[0], row[1], row[2], row[3], row[4], ok, row[6], row[7])


# -- reading ------------------------------------------------------------------------------------


def events_for(conn: sqlite3.Connection, gateway_id: str) -> list[StoredEvent]:
    """Every stored event of a gateway, in seq order."""
    rows = conn.execute(
        "SELECT seq, body, ts_epoch, received_at, stored_at FROM events WHERE gateway_id = ?"
        " ORDER BY seq", (gateway_id,)).fetchall()
    return [StoredEvent(gateway_id, seq, json.loads(body), ts_epoch, received, stored)
            for seq, body, ts_epoch, received, stored in rows]


def gateway_row(conn: sqlite3.Connection, gateway_id: str) -> dict[str, Any]:
    """The gateway's watermark, floor and counters (zeros when never heard of)."""
    row = conn.execute(
        "SELECT watermark, floor, duplicates, rejected FROM gateways WHERE gateway_id = ?",
        (gateway_id,)).fetchone()
    names = ("watermark", "floor", "duplicates", "rejected")
    return dict(zip(names, row or (0, 0, 0, 0), strict=True))


def snapshot_bytes(conn: sqlite3.Connection, gateway_id: str, event_id: str) -> bytes | None:
    """The JPEG of an event, if it came."""
    row = conn.execute("SELECT jpeg FROM snapshots WHERE gateway_id = ? AND event_id = ?",
                       (gateway_id, event_id)).fetchone()
    return None if row is None else bytes(row[0])


def status_of(conn: sqlite3.Connection, gateway_id: str) -> dict[str, Any] | None:
    """The gateway's latest status message."""
    row = conn.execute("SELECT body FROM status WHERE gateway_id = ?", (gateway_id,)).fetchone()
    return None if row is None else dict(json.loads(row[0]))


def rejects(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every rejected message, oldest first."""
    rows = conn.execute("SELECT gateway_id, topic, reason, payload, received_at FROM rejects"
                        " ORDER BY id").fetchall()
    return [{"gateway_id": g, "topic": t, "reason": r, "payload": bytes(p or b""),
             "received_at": at} for g, t, r, p, at in rows]


def latencies(conn: sqlite3.Connection) -> list[tuple[float, float]]:
    """(receive − gateway ts, commit − gateway ts) in seconds for every stored event."""
    rows = conn.execute("SELECT received_at - ts_epoch, stored_at - ts_epoch FROM events")
    return [(float(a), float(b)) for a, b in rows]
