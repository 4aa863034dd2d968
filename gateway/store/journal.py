"""The event journal: append (seq assigned inside the write), pending, acknowledge, retention.

Every event the gateway produces is a row here before anything else happens with it; the
uplink reads `pending()` and the central platform's ack moves one watermark forward.

An append writes the event's row and nothing else, so its commit is one page of the events
table (plus, now and then, the pages a growing table needs). What police queries and the
event_id check look events up by is indexed afterwards, a block of INDEX_BLOCK events at a time
(`index_next_block`, run by the writer thread when it is idle); the events above
`indexed_seq` are few and read directly (entries.py).
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from . import alarms
from .context import Context, epoch_ms, timestamp
from .crypto import Keys
from .errors import Conflict, ValidationError

EVENT_SCHEMA = 1
EVENT_TYPES = frozenset(
    {
        "access.granted",
        "access.denied",
        "door.forced",
        "door.held_open",
        "reader.online",
        "reader.offline",
        "reader.tamper",
        "camera.online",
        "camera.offline",
        "command.executed",
        "command.rejected",
        "tenant.changed",
    }
)
# The only event carrying a tenant's identity (SPEC 6); its body is sealed at rest.
SEALED_TYPES = frozenset({"tenant.changed"})
# Set by the journal, never by the caller.
_RESERVED = ("schema", "gateway_id", "seq")
# Personal or secret data that must not appear in any other event body, at any depth.
_FORBIDDEN_KEYS = frozenset({"id_number", "phone", "pin", "password"})
_MAX_BODY_BYTES = 16 * 1024
_CARD_MAX = 2**32 - 1

_SELECT = "SELECT seq, event_id, body, sealed_body FROM events"
_ACKED = "(SELECT value FROM meta WHERE key = 'acked_seq')"
# Nothing from the lowest event still waiting for its snapshot on (snapshots.py): in the same
# statement as the rows, so a fill committed meanwhile cannot be half seen.
_BEFORE_CAPTURES = "seq < coalesce((SELECT min(seq) FROM captures), 9223372036854775807)"
# The highest seq ever used: the highest row, or a higher one deleted since (schema m0002).
_LAST_SEQ = (
    "SELECT max(coalesce((SELECT max(seq) FROM events), 0),"
    " coalesce((SELECT value FROM meta WHERE key = 'seq_floor'), 0))"
)
# Every event up to this seq is in event_keys and event_times; the ones above are not yet.
# (The SQL marked noqa: S608 formats in only constants like this one, never a value.)
INDEXED = "(SELECT value FROM meta WHERE key = 'indexed_seq')"
# Events per block of event_keys (block = seq // INDEX_BLOCK): a query probes each block once,
# and reads the events of the block not yet complete (at most this many) directly. About 12 h
# of a building's events. Part of the stored format: another value needs the keys rebuilt.
INDEX_BLOCK = 1024
# The block numbers present, lowest to highest, for a recursive CTE named `blocks(b)`.
BLOCKS = (
    "blocks(b) AS (SELECT (SELECT min(block) FROM event_keys) UNION ALL"
    " SELECT b + 1 FROM blocks WHERE b < (SELECT max(block) FROM event_keys))"
)
# Key of the acknowledgement watermark in meta, and of its unsaved value in the writer.
ACKED_KEY = "acked_seq"


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One journaled event: `body` is the full event JSON object, `body_json` its exact text."""

    seq: int
    event_id: str
    # Out of repr: a tenant.changed body holds an ID number, and entries end up in log lines.
    body: dict[str, Any] = field(repr=False)
    body_json: str = field(repr=False)


def _sealing_context(event_id: str) -> bytes:
    return b"events.body\0" + event_id.encode()


@dataclass(frozen=True, slots=True)
class PreparedEvent:
    """An event checked and encoded up to its seq, which only the writing transaction knows.

    Bulk writers prepare their events outside the write lock; `row()` then costs a string
    join and, for sealed types, one AES-GCM call.
    """

    event_id: str
    ts: str
    ts_ms: int
    type: str
    columns: tuple[str | None, int | None, str | None, str | None, str | None, str | None]
    # The body's JSON after `"seq":N,` (every key the journal and the caller set but seq), in
    # UTF-8: half the memory of the str for Chinese names, and what gets sealed anyway.
    tail: bytes = field(repr=False)
    # The caller chose the event_id (else it is a fresh UUID4): it must be checked for reuse.
    chosen_id: bool = False

    def text(self, gateway_id: str, seq: int) -> str:
        """The exact body JSON with this seq (as json.dumps would write the whole body)."""
        return self.data(gateway_id, seq).decode()

    def data(self, gateway_id: str, seq: int) -> bytes:
        """`text()` in UTF-8."""
        return b"%s%d,%s" % (_head(gateway_id), seq, self.tail)

    def row(self, ctx: Context, seq: int) -> tuple[Any, ...]:
        """The parameters of `INSERT_EVENT` for this event at `seq`."""
        body, sealed = self.body(ctx, seq)
        return (seq, self.event_id, self.ts, self.ts_ms, self.type, *self.columns, body, sealed)

    def body(self, ctx: Context, seq: int) -> tuple[str | None, bytes | None]:
        """The `body` and `sealed_body` columns at `seq` (exactly one of them is set)."""
        data = self.data(ctx.gateway_id, seq)
        if len(data) > _MAX_BODY_BYTES:
            raise ValidationError("event", f"is larger than {_MAX_BODY_BYTES} bytes")
        if self.type in SEALED_TYPES:
            return None, ctx.keys.seal(data, _sealing_context(self.event_id))
        return data.decode(), None


@lru_cache(maxsize=8)
def _head(gateway_id: str) -> bytes:
    return f'{{"schema":{EVENT_SCHEMA},"gateway_id":{json.dumps(gateway_id)},"seq":'.encode()


INSERT_EVENT = (
    "INSERT INTO events (seq, event_id, ts, ts_ms, type, door, card, tenant_id, room, result,"
    " reason, body, sealed_body) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
)


def prepare_event(ctx: Context, event: Mapping[str, Any]) -> PreparedEvent:
    """Validate `event`, fill in ts and event_id, and encode everything but the seq."""
    chosen_id = isinstance(event, Mapping) and event.get("event_id") is not None
    fields, ts_ms = _validated(event, ctx)
    columns = _query_columns(fields)
    rest: dict[str, Any] = {
        "event_id": fields.pop("event_id"),
        "ts": fields.pop("ts"),
        "type": fields.pop("type"),
        **fields,
    }
    try:
        text = json.dumps(rest, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValidationError("event", f"is not JSON-serialisable: {exc}") from None
    tail = text[1:].encode()
    if len(tail) > _MAX_BODY_BYTES:
        raise ValidationError("event", f"is larger than {_MAX_BODY_BYTES} bytes")
    return PreparedEvent(
        rest["event_id"], rest["ts"], ts_ms, rest["type"],
        (columns["door"], columns["card"], columns["tenant_id"], columns["room"],
         columns["result"], columns["reason"]),
        tail, chosen_id,
    )  # fmt: skip


def append_event(
    conn: sqlite3.Connection, ctx: Context, event: Mapping[str, Any], alarm: str | None = None
) -> JournalEntry:
    """Validate `event`, give it the next seq and write it, with the alarm `alarm` if given."""
    prepared = prepare_event(ctx, event)
    if prepared.chosen_id:
        _check_unused(conn, [prepared.event_id])
    seq = next_seq(conn)
    conn.execute(INSERT_EVENT, prepared.row(ctx, seq))
    door, card, _, room, _, _ = prepared.columns
    if alarm is not None:
        alarms.raise_alarm(
            conn, alarm, raised_at=prepared.ts, door=door, event_seq=seq,
            detail=alarms.detail_for(card, room),
        )  # fmt: skip
    # Parsed back rather than returned as built: the entry then shares nothing with the
    # caller's dicts and equals what pending_events() will return for it.
    text = prepared.text(ctx.gateway_id, seq)
    return JournalEntry(seq, prepared.event_id, json.loads(text), text)


def append_prepared(
    conn: sqlite3.Connection,
    ctx: Context,
    events: Sequence[PreparedEvent],
    rows: Sequence[tuple[Any, ...]] | None = None,
    first_seq: int | None = None,
) -> None:
    """Journal prepared events in order with the next seqs, in one executemany.

    `rows` are the events already encoded (sealed) outside the transaction for seqs starting
    at `first_seq`; they are used when that is still the next seq, and rebuilt otherwise (an
    event appended meanwhile by another writer took it).
    """
    _check_unused(conn, [event.event_id for event in events if event.chosen_id])
    seq = next_seq(conn)
    if rows is None or first_seq != seq:
        rows = [event.row(ctx, seq + n) for n, event in enumerate(events)]
    conn.executemany(INSERT_EVENT, rows)


def next_seq(conn: sqlite3.Connection) -> int:
    """The seq the next event gets (call inside the writing transaction)."""
    # Read inside our write transaction, seq+1 is race-free. It is above every seq ever used,
    # also one whose row was deleted since (seq_floor): consumers dedupe on seq.
    return last_seq(conn) + 1


def last_seq(conn: sqlite3.Connection) -> int:
    """The highest seq ever given to an event (0 before the first)."""
    return int(conn.execute(_LAST_SEQ).fetchone()[0])


def _check_unused(conn: sqlite3.Connection, event_ids: list[str]) -> None:
    """Conflict if one of these caller-chosen event_ids is journaled already (or repeated).

    Generated ones are UUID4s, unique without looking. The table has no UNIQUE index (one more
    page in every commit): indexed events are found through event_keys, one probe per block,
    the few above indexed_seq directly.
    """
    if len(set(event_ids)) < len(event_ids):
        raise Conflict("an event_id is repeated in the events appended")
    for event_id in event_ids:
        if seq_of(conn, event_id) is not None:
            raise Conflict(f"event_id {event_id} is already in the journal")


def seq_of(conn: sqlite3.Connection, event_id: str) -> int | None:
    """The seq of the event with this event_id: through the block index, or among the newest."""
    row = conn.execute(
        f"WITH RECURSIVE {BLOCKS} SELECT k.seq FROM blocks JOIN event_keys AS k"  # noqa: S608
        " ON k.block = blocks.b AND k.kind = 'e' AND k.value = ?1 UNION ALL SELECT seq"
        f" FROM events WHERE seq > {INDEXED} AND event_id = ?1 LIMIT 1",
        (event_id,),
    ).fetchone()
    return None if row is None else int(row[0])


def find_event(conn: sqlite3.Connection, keys: Keys, event_id: str) -> JournalEntry | None:
    """The event with this event_id, or None."""
    seq = seq_of(conn, event_id)
    row = None if seq is None else conn.execute(f"{_SELECT} WHERE seq = ?", (seq,)).fetchone()
    return None if row is None else decode_row(keys, row)


def _validated(event: Mapping[str, Any], ctx: Context) -> tuple[dict[str, Any], int]:
    """A copy of the caller's fields, checked, with ts and event_id filled in; and ts in ms."""
    if not isinstance(event, Mapping):
        raise ValidationError("event", "must be a JSON object")
    fields = dict(event)
    for key in _RESERVED:
        if key in fields:
            raise ValidationError(f"event.{key}", "is set by the journal, not by the caller")
    kind = fields.get("type")
    if kind not in EVENT_TYPES:
        raise ValidationError("event.type", f"unknown event type {kind!r}")
    fields["ts"], ts_ms = _checked_ts(fields.get("ts"), ctx)
    fields["event_id"] = _checked_event_id(fields.get("event_id"))
    if kind.startswith(("access.", "door.", "reader.")) and not _is_text(fields.get("door")):
        raise ValidationError("event.door", f"is required for {kind} events")
    if kind.startswith("access."):
        _check_access(fields)
    if kind in SEALED_TYPES:
        _check_tenant_changed(fields)
    else:
        _refuse_personal_keys(fields, "event")
    return fields, ts_ms


def _checked_ts(value: Any, ctx: Context) -> tuple[str, int]:
    if value is None:
        now = ctx.now()
        return timestamp(now), epoch_ms(now)
    if not isinstance(value, str):
        raise ValidationError("event.ts", "must be an RFC 3339 string")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationError("event.ts", f"{value!r} is not an RFC 3339 timestamp") from None
    if moment.tzinfo is None or "T" not in value.upper():
        raise ValidationError("event.ts", f"{value!r} needs a date, a time and an offset")
    return value, epoch_ms(moment)


def _checked_event_id(value: Any) -> str:
    if value is None:
        return str(uuid.uuid4())
    try:
        if isinstance(value, str) and str(uuid.UUID(value)) == value:
            return value
    except ValueError:
        pass
    raise ValidationError("event.event_id", "must be a lower-case UUID string")


def _check_access(fields: dict[str, Any]) -> None:
    credential = fields.get("credential")
    if not isinstance(credential, dict) or not _is_text(credential.get("kind")):
        raise ValidationError("event.credential", 'must be an object with a "kind"')
    if credential["kind"] == "card":
        number = credential.get("number")
        if type(number) is not int or not 0 <= number <= _CARD_MAX:
            raise ValidationError("event.credential.number", "must be an integer 0..2^32-1")
    if not _is_text(fields.get("reason")):
        raise ValidationError("event.reason", "is required for access events")
    if "snapshot" not in fields:
        raise ValidationError("event.snapshot", "is required (null when there is none)")
    if fields["snapshot"] is None and not _is_text(fields.get("snapshot_error")):
        raise ValidationError("event.snapshot_error", "is required when snapshot is null")


def _check_tenant_changed(fields: dict[str, Any]) -> None:
    if fields.get("change") not in ("added", "updated", "removed"):
        raise ValidationError("event.change", "must be added, updated or removed")
    tenant = fields.get("tenant")
    if not isinstance(tenant, dict) or not _is_text(tenant.get("id")):
        raise ValidationError("event.tenant", 'must be an object with an "id"')


def _refuse_personal_keys(value: Any, path: str) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if key in _FORBIDDEN_KEYS:
                raise ValidationError(
                    f"{path}.{key}", "personal data is only allowed in tenant.changed events"
                )
            _refuse_personal_keys(item, f"{path}.{key}")
    elif isinstance(value, list):
        for item in value:
            _refuse_personal_keys(item, path)


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and value != ""


def _query_columns(fields: dict[str, Any]) -> dict[str, Any]:
    """The indexed columns police queries filter on, copied out of the body."""
    kind = fields["type"]
    if kind in SEALED_TYPES:
        tenant_id, room = fields["tenant"]["id"], fields["tenant"].get("room")
    else:
        tenant_id, room = fields.get("tenant_id"), fields.get("room")
    credential = fields.get("credential")
    card = None
    if isinstance(credential, dict) and credential.get("kind") == "card":
        card = credential["number"]
    return {
        "door": _text_or_none(fields.get("door")),
        "card": card,
        "tenant_id": _text_or_none(tenant_id),
        "room": _text_or_none(room),
        "result": {"access.granted": "granted", "access.denied": "denied"}.get(kind),
        "reason": _text_or_none(fields.get("reason")),
    }


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def decode_row(keys: Keys, row: sqlite3.Row | tuple[Any, ...]) -> JournalEntry:
    """Build a JournalEntry from (seq, event_id, body, sealed_body), opening sealed bodies."""
    seq, event_id, plain, sealed = row
    text = plain if sealed is None else keys.open(sealed, _sealing_context(event_id)).decode()
    return JournalEntry(seq, event_id, json.loads(text), text)


def pending(
    conn: sqlite3.Connection, keys: Keys, after_seq: int | None, limit: int
) -> list[JournalEntry]:
    """Events above the saved acknowledgement watermark and above `after_seq`, in seq order,
    up to the first one whose snapshot is still being captured.

    The store passes its newest watermark as `after_seq`: an ack is saved a little later.
    """
    if limit < 1:
        raise ValidationError("limit", "must be at least 1")
    # One statement, so the watermark and the rows come from the same snapshot.
    rows = conn.execute(
        f"{_SELECT} WHERE seq > max(?, {_ACKED}) AND {_BEFORE_CAPTURES} ORDER BY seq LIMIT ?",
        (after_seq or 0, limit),
    ).fetchall()
    return [decode_row(keys, row) for row in rows]


def events_after(
    conn: sqlite3.Connection, keys: Keys, after_seq: int, limit: int
) -> list[JournalEntry]:
    """Events above `after_seq`, acknowledged or not, in seq order, up to the first one whose
    snapshot is still being captured: every event once, with its final body."""
    rows = conn.execute(
        f"{_SELECT} WHERE seq > ? AND {_BEFORE_CAPTURES} ORDER BY seq LIMIT ?", (after_seq, limit)
    ).fetchall()
    return [decode_row(keys, row) for row in rows]


def pending_bodies(
    conn: sqlite3.Connection, keys: Keys, after_seq: int, limit: int
) -> list[tuple[int, bytes]]:
    """`pending()` as (seq, body JSON in UTF-8), for the uplink: no parsing, half the cost."""
    if limit < 1:
        raise ValidationError("limit", "must be at least 1")
    rows = conn.execute(
        f"{_SELECT} WHERE seq > max(?, {_ACKED}) AND {_BEFORE_CAPTURES} ORDER BY seq LIMIT ?",
        (after_seq, limit),
    ).fetchall()
    return [
        (seq, plain.encode() if sealed is None else keys.open(sealed, _sealing_context(event_id)))
        for seq, event_id, plain, sealed in rows
    ]


def acked_seq(conn: sqlite3.Connection) -> int:
    """The saved acknowledgement watermark: every seq at or below it is stored centrally.

    `Store.acked_seq()` also counts an ack not saved yet.
    """
    value = conn.execute("SELECT value FROM meta WHERE key = 'acked_seq'").fetchone()[0]
    assert isinstance(value, int)
    return value


def check_ack(upto_seq: object) -> int:
    """`upto_seq` if it can be an acknowledgement watermark, else ValidationError."""
    if type(upto_seq) is not int or upto_seq < 0:
        raise ValidationError("seq", "must be a non-negative integer")
    return upto_seq


def save_acked(conn: sqlite3.Connection, upto_seq: int) -> None:
    """Store the watermark (never backwards, never past the last seq), in the caller's transaction.

    One meta row whatever the number of events it covers: the pending set is "seq above the
    watermark", not a flag on each row.
    """
    conn.execute(
        f"UPDATE meta SET value = max(value, min(?, ({_LAST_SEQ}))) WHERE key = 'acked_seq'",  # noqa: S608
        (check_ack(upto_seq),),
    )


def delete_acked_before(conn: sqlite3.Connection, before: datetime, batch: int) -> int:
    """Delete up to `batch` acknowledged events older than `before`; return how many.

    Unacknowledged events are kept whatever their age: they have not reached the city yet.
    Their index entries go with them.
    """
    if before.tzinfo is None:
        raise ValidationError("before", "must be timezone-aware")
    upto = acked_seq(conn)
    # Old events are found through the time index, those not indexed yet directly.
    doomed = conn.execute(
        "SELECT seq, ts_ms FROM (SELECT t.seq, t.ts_ms FROM event_times AS t"  # noqa: S608
        " WHERE t.ts_ms < ?1 AND t.seq <= ?2 UNION ALL SELECT seq, ts_ms FROM events"
        f" WHERE seq > {INDEXED} AND seq <= ?2 AND ts_ms < ?1) ORDER BY seq LIMIT ?3",
        (epoch_ms(before), upto, batch),
    ).fetchall()
    if not doomed:
        return 0
    seqs = json.dumps([seq for seq, _ in doomed])
    cursor = conn.execute(
        "DELETE FROM events WHERE seq IN (SELECT value FROM json_each(?))", (seqs,)
    )
    conn.executemany("DELETE FROM event_times WHERE ts_ms = ? AND seq = ?",
                     [(ts_ms, seq) for seq, ts_ms in doomed])  # fmt: skip
    conn.execute(
        "DELETE FROM event_keys WHERE block BETWEEN ? AND ?"
        " AND seq IN (SELECT value FROM json_each(?))",
        (doomed[0][0] // INDEX_BLOCK, doomed[-1][0] // INDEX_BLOCK, seqs),
    )
    return int(cursor.rowcount)


def index_due(conn: sqlite3.Connection) -> bool:
    """Whether a complete block of events waits to be indexed (a cheap read, no transaction)."""
    row = conn.execute(
        f"SELECT {INDEXED}, coalesce((SELECT max(seq) FROM events), 0),"  # noqa: S608
        " coalesce((SELECT value FROM meta WHERE key = 'seq_floor'), 0)"
    ).fetchone()
    if row[0] is None:
        return False  # a database without the block index (being migrated)
    return bool(_block_end(row[0]) <= max(row[1], row[2]))


def index_next_block(conn: sqlite3.Connection) -> bool:
    """Index the next complete block of events, in the caller's transaction; False if none.

    Its keys are written in key order after the last block, its times mostly after the
    newest: new pages filled one after another, not a page here and there for every event.
    """
    done = conn.execute(f"SELECT {INDEXED}").fetchone()[0]
    end = _block_end(done)
    if end > last_seq(conn):
        return False  # seqs of this block may still be handed out
    columns = (("c", "card"), ("t", "tenant_id"), ("r", "room"), ("e", "event_id"))
    keys = " UNION ALL ".join(
        f"SELECT '{kind}' AS kind, {column} AS value, ts_ms, seq FROM events"  # noqa: S608
        f" WHERE seq > ?1 AND seq <= ?2 AND {column} IS NOT NULL"
        for kind, column in columns
    )
    conn.execute(
        "INSERT INTO event_keys (block, kind, value, ts_ms, seq)"  # noqa: S608
        f" SELECT ?3, kind, value, ts_ms, seq FROM ({keys}) ORDER BY kind, value, ts_ms, seq",
        (done, end, end // INDEX_BLOCK),
    )
    conn.execute(
        "INSERT INTO event_times (ts_ms, seq) SELECT ts_ms, seq FROM events"
        " WHERE seq > ? AND seq <= ? ORDER BY ts_ms, seq",
        (done, end),
    )
    conn.execute("UPDATE meta SET value = ? WHERE key = 'indexed_seq'", (end,))
    return True


def _block_end(indexed: int) -> int:
    """The last seq of the block after the one `indexed` ends."""
    return ((indexed + 1) // INDEX_BLOCK + 1) * INDEX_BLOCK - 1
