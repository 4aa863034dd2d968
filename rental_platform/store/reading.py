"""Reading what was stored: events, statuses, pictures, rejects, conflicts, latencies."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .database import Database
    from .opening import Store


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as the platform stored it (a sealed one opened)."""

    gateway_id: str
    seq: int
    event: dict[str, Any]
    ts_epoch: float
    received_at: float
    stored_at: float


def events_for(store: Store, gateway_id: str) -> list[StoredEvent]:
    """Every stored event of a gateway, in seq order."""
    rows = store.db.execute(
        "SELECT seq, body, sealed, ts_epoch, received_at, stored_at FROM events"
        " WHERE gateway_id = ? ORDER BY seq",
        (gateway_id,),
    ).fetchall()
    found = []
    for seq, body, sealed, ts_epoch, received, stored in rows:
        if body is None:
            body = store.sealer.open(bytes(sealed), f"events\0{gateway_id}\0{seq}").decode()
        found.append(
            StoredEvent(gateway_id, int(seq), json.loads(body), ts_epoch, received, stored)
        )
    return found


def snapshot_bytes(store: Store, gateway_id: str, event_id: str) -> bytes | None:
    """The JPEG of an event, if it came (and is within its retention)."""
    row = store.db.execute(
        "SELECT sha256 FROM snapshots WHERE gateway_id = ? AND event_id = ?", (gateway_id, event_id)
    ).fetchone()
    return None if row is None else store.snapshots.get(row[0])


def status_of(store: Store, gateway_id: str) -> dict[str, Any] | None:
    """The gateway's latest status message."""
    row = store.db.execute("SELECT body FROM status WHERE gateway_id = ?", (gateway_id,)).fetchone()
    return None if row is None else dict(json.loads(row[0]))


def web_request(db: Database, gateway_id: str) -> bytes | None:
    """The gateway's latest page certificate request (PEM), as it sent it up on `P/web/csr`."""
    row = db.execute("SELECT csr FROM web_requests WHERE gateway_id = ?", (gateway_id,)).fetchone()
    return None if row is None else str(row[0]).encode("ascii")


def rejects(store: Store) -> list[dict[str, Any]]:
    """Every rejected message, oldest first, its kept payload opened."""
    rows = store.db.execute(
        "SELECT gateway_id, topic, reason, size, sealed, received_at FROM rejects ORDER BY id"
    ).fetchall()
    return [
        {
            "gateway_id": g,
            "topic": t,
            "reason": r,
            "size": int(n),
            "payload": store.sealer.open(bytes(s), f"rejects\0{t}") if s else b"",
            "received_at": at,
        }
        for g, t, r, n, s, at in rows
    ]


def conflicts(store: Store, gateway_id: str) -> list[dict[str, Any]]:
    """The other bodies that arrived for stored seqs of a gateway, opened, oldest first."""
    rows = store.db.execute(
        "SELECT seq, event_id, sealed, received_at, resolved_at FROM conflicts"
        " WHERE gateway_id = ? ORDER BY id",
        (gateway_id,),
    ).fetchall()
    return [
        {
            "seq": int(seq),
            "event_id": event_id,
            "event": json.loads(
                store.sealer.open(bytes(sealed), f"conflicts\0{gateway_id}\0{seq}")
            ),
            "received_at": at,
            "resolved_at": resolved,
        }
        for seq, event_id, sealed, at, resolved in rows
    ]


def latencies(store: Store) -> list[tuple[float, float]]:
    """(receive − gateway ts, commit − gateway ts) in seconds for every stored event."""
    rows = store.db.execute("SELECT received_at - ts_epoch, stored_at - ts_epoch FROM events")
    return [(float(a), float(b)) for a, b in rows]
