"""What a batch writes besides events: statuses, command results, pictures' rows, page
certificate requests, rejects."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import gateways
from .messages import Incoming

if TYPE_CHECKING:
    from .opening import Store

# The payload kept of a rejected message (sealed): enough to diagnose, bounded.
REJECT_KEEP_BYTES = 64 * 1024

Status = tuple[str, str, str, float, str | None]  # gateway, state, JSON, received, building
Result = tuple[str, int, bool, str | None, float]  # gateway, counter, ok, error, received
Picture = tuple[str, str, str, int, float]  # gateway, event_id, sha256, bytes, received
Request = tuple[str, str, float]  # gateway, the page's certificate request (PEM), received


def write(
    store: Store,
    statuses: list[Status],
    results: list[Result],
    pictures: list[Picture],
    requests: list[Request],
    rejects: list[tuple[Incoming, str]],
) -> None:
    """Write a batch's statuses, command results, picture rows, requests and rejects."""
    db = store.db
    db.executemany(
        "INSERT INTO web_requests (gateway_id, csr, received_at) VALUES (?, ?, ?)"
        " ON CONFLICT (gateway_id) DO UPDATE SET csr = excluded.csr,"
        " received_at = excluded.received_at"
        " WHERE web_requests.received_at <= excluded.received_at",
        sorted(requests),
    )
    for gateway_id, state, text, received_at, building in sorted(statuses):
        db.execute(
            "INSERT INTO status (gateway_id, state, body, received_at, since)"
            " VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (gateway_id) DO UPDATE SET state = excluded.state,"
            " body = excluded.body, received_at = excluded.received_at,"
            # Online every 30 minutes is not news: `since` moves when the state changes.
            " since = CASE WHEN status.state = excluded.state"
            " THEN coalesce(status.since, status.received_at) ELSE excluded.received_at END"
            " WHERE status.received_at <= excluded.received_at",
            (gateway_id, state, text, received_at, received_at),
        )
        if building is not None:
            gateways.set_building(db, gateway_id, building)
    db.executemany(
        "INSERT INTO commands (gateway_id, counter, ok, error, result_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (gateway_id, counter) DO UPDATE SET"
        " ok = excluded.ok, error = excluded.error, result_at = excluded.result_at"
        # The first result wins: a command published again after a lost PUBACK is refused
        # by the gateway as a replay, and that refusal must not hide the real outcome.
        " WHERE commands.ok IS NULL",
        sorted(results, key=lambda r: (r[0], r[1])),  # arrival order within a command
    )
    db.executemany(
        "INSERT INTO snapshots (gateway_id, event_id, sha256, bytes, received_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (gateway_id, event_id) DO UPDATE SET"
        " sha256 = excluded.sha256, bytes = excluded.bytes, received_at = excluded.received_at",
        sorted(pictures),
    )
    db.executemany(
        "INSERT INTO rejects (gateway_id, topic, reason, size, sealed, received_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [
            (
                m.gateway_id,
                m.topic,
                reason,
                len(m.payload),
                store.sealer.seal(m.payload[:REJECT_KEEP_BYTES], f"rejects\0{m.topic}"),
                m.received_at,
            )
            for m, reason in rejects
        ],
    )
