"""The event journal: append (seq assigned inside the write), pending, acknowledge, retention.

Every event the gateway produces is a row here before anything else happens with it; the
uplink reads `pending()` and the central platform's ack moves one watermark forward.
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
        tail,
    )  # fmt: skip


def append_event(
    conn: sqlite3.Connection, ctx: Context, event: Mapping[str, Any], alarm: str | None = None
) -> JournalEntry:
    """Validate `event`, give it the next seq and write it, with the alarm `alarm` if given."""
    prepared = prepare_event(ctx, event)
    seq = next_seq(conn)
    row = prepared.row(ctx, seq)
    try:
        conn.execute(INSERT_EVENT, row)
    except sqlite3.IntegrityError:
        raise Conflict(f"event_id {prepared.event_id} is already in the journal") from None
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
    seq = next_seq(conn)
    if rows is None or first_seq != seq:
        rows = [event.row(ctx, seq + n) for n, event in enumerate(events)]
    try:
        conn.executemany(INSERT_EVENT, rows)
    except sqlite3.IntegrityError:
        raise Conflict("an event_id is already in the journal") from None


def next_seq(conn: sqlite3.Connection) -> int:
    """The seq the next event gets (call inside the writing transaction)."""
    # sqlite_sequence holds the highest seq ever assigned, even if that row was deleted since;
    # reading it inside our write transaction makes seq+1 race-free.
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
    return (row[0] if row else 0) + 1


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
    """Events above the acknowledged watermark (and above `after_seq`), in seq order."""
    if limit < 1:
        raise ValidationError("limit", "must be at least 1")
    # One statement, so the watermark and the rows come from the same snapshot.
    rows = conn.execute(
        f"{_SELECT} WHERE seq > max(?, {_ACKED}) ORDER BY seq LIMIT ?",
        (after_seq or 0, limit),
    ).fetchall()
    return [decode_row(keys, row) for row in rows]


def acked_seq(conn: sqlite3.Connection) -> int:
    """The acknowledgement watermark: every seq at or below it is stored centrally."""
    value = conn.execute("SELECT value FROM meta WHERE key = 'acked_seq'").fetchone()[0]
    assert isinstance(value, int)
    return value


def acknowledge(conn: sqlite3.Connection, upto_seq: int) -> int:
    """Move the watermark to `upto_seq` (never back, never past the last seq); return it.

    One meta row update per ack, whatever the number of events it covers: the pending set
    is "seq above the watermark", not a flag on each row.
    """
    if type(upto_seq) is not int or upto_seq < 0:
        raise ValidationError("seq", "must be a non-negative integer")
    row = conn.execute(
        "UPDATE meta SET value = max(value, min(?, coalesce("
        "(SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)))"
        " WHERE key = 'acked_seq' RETURNING value",
        (upto_seq,),
    ).fetchone()
    return int(row[0])


def delete_acked_before(conn: sqlite3.Connection, before: datetime, batch: int) -> int:
    """Delete up to `batch` acknowledged events older than `before`; return how many.

    Unacknowledged events are kept whatever their age: they have not reached the city yet.
    """
    if before.tzinfo is None:
        raise ValidationError("before", "must be timezone-aware")
    cursor = conn.execute(
        "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE ts_ms < ?"
        " AND seq <= (SELECT value FROM meta WHERE key = 'acked_seq') ORDER BY seq LIMIT ?)",
        (epoch_ms(before), batch),
    )
    return cursor.rowcount
