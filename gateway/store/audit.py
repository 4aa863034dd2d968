"""The police audit log: append-only and hash-chained.

Every police query, export, picture viewed and ID number revealed is a row: who, when, from
where, why (the case number), with which parameters, and how many records it returned. Each
row's `hash` is a keyed MAC (HMAC-SHA256 under a key derived from `secret.key`) over the
previous row's hash and the row itself, so a row changed, removed or inserted anywhere breaks
every hash after it, and a copy of the database alone is not enough to forge a new chain.
Triggers refuse UPDATE and DELETE.

    store.audit(username="li.police", role="police", remote="10.0.0.7", action="entries.query",
                purpose="案件 2026-118", params={"room": "301"}, records=12)
    store.verify_audit()      # AuditCheck(ok=True, rows=1, first_bad=None)
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from .crypto import Keys
from .errors import ValidationError

GENESIS = b"\0" * 32
# What police actions are called in the log.
ACTIONS = frozenset({
    "entries.query", "entries.export", "snapshot.view", "snapshot.hold", "id_number.reveal",
    "audit.view",
})  # fmt: skip
_MAX_PARAMS = 4096


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One row of the audit log."""

    seq: int
    ts: str
    username: str
    role: str
    remote: str | None
    action: str
    purpose: str | None
    params: dict[str, Any]
    records: int
    hash: str  # hex


@dataclass(frozen=True, slots=True)
class AuditCheck:
    """The outcome of walking the chain: `first_bad` is the seq where it breaks."""

    ok: bool
    rows: int
    first_bad: int | None = None


def _mac(keys: Keys, previous: bytes, fields: tuple[Any, ...]) -> bytes:
    text = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
    return keys.lookup_hash("audit-chain", previous.hex() + text)


def _fields(seq: int, ts: str, username: str, role: str, remote: str | None, action: str,
            purpose: str | None, params: str, records: int) -> tuple[Any, ...]:  # fmt: skip
    return (seq, ts, username, role, remote, action, purpose, params, records)


def append(
    conn: sqlite3.Connection,
    keys: Keys,
    *,
    ts: str,
    username: str,
    role: str,
    remote: str | None,
    action: str,
    purpose: str | None,
    params: dict[str, Any],
    records: int,
) -> AuditRecord:
    """Add a row at the end of the chain (in the caller's write transaction)."""
    if action not in ACTIONS:
        raise ValidationError("action", f"unknown audit action {action!r}")
    if records < 0:
        raise ValidationError("records", "must not be negative")
    params_text = json.dumps(params, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    if len(params_text) > _MAX_PARAMS:
        raise ValidationError("params", f"are longer than {_MAX_PARAMS} characters")
    last = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    seq, previous = (1, GENESIS) if last is None else (last[0] + 1, last[1])
    fields = _fields(seq, ts, username, role, remote, action, purpose, params_text, records)
    digest = _mac(keys, previous, fields)
    conn.execute(
        "INSERT INTO audit (seq, ts, username, role, remote, action, purpose, params, records,"
        " prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (*fields, previous, digest),
    )
    return AuditRecord(seq, ts, username, role, remote, action, purpose, params, records,
                       digest.hex())  # fmt: skip


def page(conn: sqlite3.Connection, *, before: int | None, limit: int) -> list[AuditRecord]:
    """Rows newest first, below seq `before` (None: from the newest)."""
    rows = conn.execute(
        "SELECT seq, ts, username, role, remote, action, purpose, params, records, hash"
        " FROM audit WHERE seq < ? ORDER BY seq DESC LIMIT ?",
        (before if before is not None else 2**62, limit),
    ).fetchall()
    return [
        AuditRecord(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7]), r[8], r[9].hex())
        for r in rows
    ]


def verify(conn: sqlite3.Connection, keys: Keys) -> AuditCheck:
    """Walk the whole chain from the first row; report the first row that does not verify."""
    previous = GENESIS
    expected_seq = 1
    rows = 0
    cursor = conn.execute(
        "SELECT seq, ts, username, role, remote, action, purpose, params, records, prev_hash,"
        " hash FROM audit ORDER BY seq"
    )
    for row in cursor:
        rows += 1
        seq = row[0]
        fields = _fields(*row[:9])
        if (
            seq != expected_seq
            or not Keys.same(row[9], previous)
            or not Keys.same(row[10], _mac(keys, previous, fields))
        ):
            return AuditCheck(False, rows, seq)
        previous = row[10]
        expected_seq = seq + 1
    return AuditCheck(True, rows)
