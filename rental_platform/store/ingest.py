"""Storing a batch of received messages in one transaction: events once, and the acks they earn.

    outcome = store_batch(store, messages)      # BatchOutcome: counts, watermarks to ack

Work that needs no lock happens first: parsing and checking (messages.py), sealing, keyed
hashes, writing pictures to the snapshot store. Then one transaction locks the gateways' rows,
claims the new seqs in `ahead`, writes the events (COPY in PostgreSQL), compares every
duplicate with what is stored, and advances the watermarks (gateways.py).

- A seq seen again with the same body is a duplicate: dropped, counted, and the gateway is
  acked again (it evidently missed the ack).
- A seq seen again with another body is a conflict: the second body is kept, sealed, in
  `conflicts`, the gateway is flagged (`gateways.conflicts`), and its ack is held below that
  seq until a person resolves it (`gateways.resolve_conflict`). Which of the two is real
  cannot be told here, and an ack would let the gateway delete its copy: so neither body is
  dropped and nothing is acknowledged past it.
- Anything that fails a check is a reject (sealed payload, reason) and never moves an ack.
- A message the database still refuses (a check missed something) is found by storing the
  batch's messages one by one, and becomes a reject `unstorable`: one bad message never stops
  ingest, nor holds another gateway's acks.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import fleet, gateways, history, records
from .database import transient
from .messages import (
    Event,
    Incoming,
    Invalid,
    check_request,
    check_result,
    check_status,
    parse_event,
)

if TYPE_CHECKING:
    from .opening import Store

log = logging.getLogger(__name__)

EVENT_COLUMNS = (
    "gateway_id",
    "seq",
    "event_id",
    "type",
    "ts_epoch",
    "received_at",
    "stored_at",
    "district",
    "street",
    "community",
    "building",
    "door",
    "card",
    "tenant_id",
    "room",
    "result",
    "reason",
    "id_hash",
    "snapshot_sha256",
    "digest",
    "body",
    "sealed",
)


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
    # gateway → what its ack may say after the batch, for every gateway with an event in it
    watermarks: dict[str, int] = field(default_factory=dict)
    # gateways that sent an event we had already: it may have missed our ack, so ack again
    resend_ack: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class _Sealed:
    event: Event
    acked: int | None
    digest: bytes
    id_hash: bytes | None
    sealed: bytes | None
    payload: bytes
    received_at: float


@dataclass(slots=True)
class _Batch:
    events: list[_Sealed] = field(default_factory=list)
    rejects: list[tuple[Incoming, str]] = field(default_factory=list)
    statuses: list[records.Status] = field(default_factory=list)
    results: list[records.Result] = field(default_factory=list)
    snapshots: list[records.Picture] = field(default_factory=list)
    requests: list[records.Request] = field(default_factory=list)


def store_batch(store: Store, messages: Sequence[Incoming]) -> BatchOutcome:
    """Store `messages` in one transaction; see the module docstring."""
    batch = _prepare(store, messages)
    history.ensure_months(store, [m.received_at for m in messages])
    try:
        with store.db.transaction():
            return _write(store, batch, time.time())
    except Exception as exc:
        if transient(exc):
            raise
        if len(messages) > 1:
            log.warning(
                "a batch of %d failed (%s): storing its messages one by one",
                len(messages),
                type(exc).__name__,
            )
            return _one_by_one(store, messages)
        log.error("a message on %s cannot be stored: %s", messages[0].topic, type(exc).__name__)
        unstorable = _Batch(rejects=[(messages[0], "unstorable")])
        with store.db.transaction():
            return _write(store, unstorable, time.time())


def _one_by_one(store: Store, messages: Sequence[Incoming]) -> BatchOutcome:
    total = BatchOutcome()
    for message in messages:
        part = store_batch(store, [message])
        for name in (
            "stored",
            "duplicates",
            "conflicts",
            "rejected",
            "statuses",
            "results",
            "snapshots",
        ):
            setattr(total, name, getattr(total, name) + getattr(part, name))
        total.watermarks.update(part.watermarks)
        total.resend_ack |= part.resend_ack
    return total


def _prepare(store: Store, messages: Sequence[Incoming]) -> _Batch:
    """Check, seal and hash; write pictures. No transaction is open."""
    batch = _Batch()
    for message in messages:
        try:
            _prepare_one(store, message, batch)
        except Invalid as invalid:
            batch.rejects.append((message, invalid.reason))
    return batch


def _prepare_one(store: Store, message: Incoming, batch: _Batch) -> None:
    gateway_id = message.gateway_id
    if gateway_id is None:
        raise Invalid("unknown_topic")
    leaf = message.leaf
    if leaf == "events":
        event = parse_event(message)
        sealer = store.sealer
        sealed = id_hash = None
        if event.type == "tenant.changed":
            # The only event with a person's identity: sealed whole, found by keyed hash.
            sealed = sealer.seal(message.payload, f"events\0{gateway_id}\0{event.seq}")
            id_hash = None if event.id_number is None else sealer.id_number_hash(event.id_number)
        batch.events.append(
            _Sealed(
                event,
                message.acked,
                sealer.mac("event", message.payload),
                id_hash,
                sealed,
                message.payload,
                message.received_at,
            )
        )
    elif leaf == "status":
        body, state = check_status(message)
        code = body.get("building")
        building = code if isinstance(code, str) and gateways.building_parts(code) else None
        batch.statuses.append(
            (gateway_id, state, message.payload.decode(), message.received_at, building)
        )
    elif leaf == "web/csr":
        batch.requests.append((gateway_id, check_request(message), message.received_at))
    elif leaf == "cmd/result":
        counter, ok, error = check_result(message)
        batch.results.append((gateway_id, counter, ok, error, message.received_at))
    elif leaf.startswith("snapshots/"):
        event_id = leaf.removeprefix("snapshots/")
        if not message.payload.startswith(b"\xff\xd8"):
            raise Invalid("not_jpeg")
        if len(message.payload) > store.limits.snapshot_bytes:
            raise Invalid("too_large")
        if not 0 < len(event_id) <= 100 or not event_id.isascii():
            raise Invalid("bad_event_id")
        sha256 = store.snapshots.put(message.payload)
        batch.snapshots.append(
            (gateway_id, event_id, sha256, len(message.payload), message.received_at)
        )
    else:
        raise Invalid("unknown_topic")


def _write(store: Store, batch: _Batch, now: float) -> BatchOutcome:
    db = store.db
    outcome = BatchOutcome()
    touched = sorted(
        {s.event.gateway_id for s in batch.events}
        | {m.gateway_id for m, _ in batch.rejects if m.gateway_id is not None}
        | {s[0] for s in batch.statuses}
    )
    rows = gateways.lock(db, touched)
    floors: dict[str, int] = {}
    for item in batch.events:
        if item.acked is not None and item.acked > floors.get(item.event.gateway_id, 0):
            floors[item.event.gateway_id] = item.acked
    gateways.raise_floors(db, floors)

    # The first copy of each (gateway, seq) above its mark claims the seq; the rest are
    # compared with what is stored once the claimed ones are written.
    first: dict[tuple[str, int], _Sealed] = {}
    again: list[_Sealed] = []
    for item in batch.events:
        key = (item.event.gateway_id, item.event.seq)
        row = rows[key[0]]
        mark = max(row.watermark, row.floor, floors.get(key[0], 0))
        if key in first or key[1] <= mark:
            again.append(item)
        else:
            first[key] = item
    source, params = db.rows_of(sorted(first), ["text", "bigint"])
    claimed = {
        (g, int(s))
        for g, s in db.execute(
            f"INSERT INTO ahead (gateway_id, seq) SELECT c0, c1 FROM ({source}) AS s WHERE true"
            " ON CONFLICT (gateway_id, seq) DO NOTHING RETURNING gateway_id, seq",
            params,
        ).fetchall()
    }
    fresh = [item for key, item in first.items() if key in claimed]
    again.extend(item for key, item in first.items() if key not in claimed)
    _insert_events(store, [_event_row(i, rows, now) for i in fresh])
    fleet.note_parts(db, [i.event for i in fresh])
    outcome.stored = len(fresh)

    counts: dict[str, list[int]] = {g: [0, 0, 0] for g in touched}
    holds = _compare(store, again, outcome, counts, now)
    gateways.hold_at(db, holds)
    for message, _reason in batch.rejects:
        if message.gateway_id is not None:
            counts[message.gateway_id][1] += 1
    heard = {s.event.gateway_id for s in batch.events}
    gateways.add_counts(
        db, {g: (c[0], c[1], c[2]) for g, c in counts.items() if g in heard or any(c)}, heard, now
    )
    records.write(
        store, batch.statuses, batch.results, batch.snapshots, batch.requests, batch.rejects
    )
    outcome.statuses, outcome.results = len(batch.statuses), len(batch.results)
    outcome.snapshots, outcome.rejected = len(batch.snapshots), len(batch.rejects)
    if batch.events:
        outcome.watermarks = gateways.advance(db, [s.event.gateway_id for s in batch.events])
    return outcome


def _compare(
    store: Store,
    again: list[_Sealed],
    outcome: BatchOutcome,
    counts: dict[str, list[int]],
    now: float,
) -> dict[str, int]:
    """Duplicates and conflicts among events whose seq is stored already; return the holds."""
    if not again:
        return {}
    db = store.db
    keys = sorted({(i.event.gateway_id, i.event.seq) for i in again})
    source, params = db.rows_of(keys, ["text", "bigint"])
    stored = {
        (g, int(s)): (bytes(d), body, sealed)
        for g, s, d, body, sealed in db.execute(
            "SELECT gateway_id, seq, digest, body, sealed FROM events"
            f" WHERE (gateway_id, seq) IN ({source})",
            params,
        ).fetchall()
    }
    holds: dict[str, int] = {}
    conflict_rows = []
    for item in again:
        event = item.event
        kept = stored.get((event.gateway_id, event.seq))
        # Not found: below the floor (stored by an earlier database) or past retention.
        if kept is None or kept[0] == item.digest or _same_event(store, event, *kept[1:]):
            outcome.duplicates += 1
            counts[event.gateway_id][0] += 1
            outcome.resend_ack.add(event.gateway_id)
            continue
        outcome.conflicts += 1
        counts[event.gateway_id][2] += 1
        holds[event.gateway_id] = min(event.seq, holds.get(event.gateway_id, event.seq))
        conflict_rows.append(
            (
                event.gateway_id,
                event.seq,
                event.event_id,
                item.digest,
                store.sealer.seal(item.payload, f"conflicts\0{event.gateway_id}\0{event.seq}"),
                now,
            )
        )
    db.executemany(
        "INSERT INTO conflicts (gateway_id, seq, event_id, digest, sealed, received_at)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (gateway_id, seq, digest) DO NOTHING",
        conflict_rows,
    )
    if conflict_rows:
        log.error(
            "%d events arrived with the seq of another stored event (gateways %s):"
            " kept in conflicts, their acks held",
            len(conflict_rows),
            sorted(holds),
        )
    return holds


def _same_event(store: Store, event: Event, body: str | None, sealed: bytes | None) -> bool:
    """Whether the stored event is this one, written differently (key order, spaces)."""
    if body is None:
        body = store.sealer.open(
            bytes(sealed or b""), f"events\0{event.gateway_id}\0{event.seq}"
        ).decode()
    return bool(json.loads(body) == event.body)


def _event_row(item: _Sealed, rows: dict[str, gateways.GatewayRow], now: float) -> tuple[Any, ...]:
    e = item.event
    return (
        e.gateway_id,
        e.seq,
        e.event_id,
        e.type,
        e.ts_epoch,
        item.received_at,
        now,
        *rows[e.gateway_id].parts,
        e.door,
        e.card,
        e.tenant_id,
        e.room,
        e.result,
        e.reason,
        item.id_hash,
        e.snapshot_sha256,
        item.digest,
        None if item.sealed is not None else e.text,
        item.sealed,
    )


def _insert_events(store: Store, rows: list[tuple[Any, ...]]) -> None:
    if not rows:
        return
    db = store.db
    columns = ", ".join(EVENT_COLUMNS)
    if db.postgres:
        with (
            db.connection().cursor() as cursor,
            cursor.copy(f"COPY events ({columns}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
    else:
        marks = ", ".join("?" for _ in EVENT_COLUMNS)
        db.executemany(f"INSERT INTO events ({columns}) VALUES ({marks})", rows)
